#include "ir/onnx_export.h"

#include <bit>
#include <climits>
#include <set>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>  // defines ONNX_API, then includes onnx-ml.pb.h

#include "ir/onnx_import.h"
#include "util/atomic_file.h"

namespace caliprox {

// raw_data is little-endian by the ONNX spec; tensors are written as-is.
static_assert(std::endian::native == std::endian::little, "ONNX raw_data export assumes a little-endian host");

int64_t onnx_ir_version_for_opset(int64_t opset) {
  // ONNX releases: 1.4.1 IR 4 / opset 9, 1.5 IR 5 / 10, 1.6 IR 6 / 11,
  // 1.7-1.9 IR 7 / 12-14, 1.10-1.13 IR 8 / 15-18, 1.14-1.15 IR 9 / 19-20,
  // 1.16- IR 10 / 21-.
  if (opset <= 8) return 3;
  if (opset <= 11) return opset - 5;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

namespace {

constexpr std::string_view kInternalAttrPrefix = "caliprox.";

Status fill_tensor(const Tensor& t, const std::string& name, onnx::TensorProto& p) {
  if (!dtype_known(static_cast<int>(t.dtype())))
    return invalid_input("tensor '{}': element type {} cannot be written to an ONNX file", name, dtype_name(t.dtype()));
  p.set_name(name);
  p.set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) p.add_dims(d);
  p.set_raw_data(static_cast<const char*>(t.raw()), t.nbytes());
  return {};
}

Status fill_value_info(const ValueInfo& v, onnx::ValueInfoProto& p) {
  p.set_name(v.name);
  if (v.dtype == DType::undefined && !v.dims) return {};  // type left to the reader's inference
  auto* tt = p.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(v.dtype));
  if (!v.dims) return {};
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *v.dims) {
    auto* dim = shape->add_dim();
    if (d.fixed()) dim->set_dim_value(d.value);
    else if (!d.symbol.empty()) dim->set_dim_param(d.symbol);
  }
  return {};
}

Status fill_graph(const Graph& graph, onnx::GraphProto& g);

Status fill_attribute(const std::string& key, const Attribute& a, const Node& node, onnx::AttributeProto& p) {
  p.set_name(key);
  switch (a.kind) {
    case Attribute::Kind::f:
      p.set_type(onnx::AttributeProto::FLOAT);
      p.set_f(a.f);
      break;
    case Attribute::Kind::i:
      p.set_type(onnx::AttributeProto::INT);
      p.set_i(a.i);
      break;
    case Attribute::Kind::s:
      p.set_type(onnx::AttributeProto::STRING);
      p.set_s(a.s);
      break;
    case Attribute::Kind::t:
      p.set_type(onnx::AttributeProto::TENSOR);
      CP_TRY(
          fill_tensor(a.t, "", *p.mutable_t()).with_context(fmt::format("{}: attribute '{}'", node.describe(), key)));
      break;
    case Attribute::Kind::floats:
      p.set_type(onnx::AttributeProto::FLOATS);
      for (float v : a.floats) p.add_floats(v);
      break;
    case Attribute::Kind::ints:
      p.set_type(onnx::AttributeProto::INTS);
      for (int64_t v : a.ints) p.add_ints(v);
      break;
    case Attribute::Kind::strings:
      p.set_type(onnx::AttributeProto::STRINGS);
      for (const auto& v : a.strings) p.add_strings(v);
      break;
    case Attribute::Kind::graph:
      p.set_type(onnx::AttributeProto::GRAPH);
      if (!a.g) return invalid_input("{}: attribute '{}' holds no graph", node.describe(), key);
      CP_TRY(fill_graph(*a.g, *p.mutable_g()).with_context(fmt::format("{}: subgraph '{}'", node.describe(), key)));
      break;
  }
  return {};
}

Status fill_node(const Node& node, onnx::NodeProto& p) {
  p.set_name(node.name);
  p.set_op_type(node.op_type);
  if (!node.domain.empty()) p.set_domain(node.domain);
  // A subgraph's captures (the trailing inputs) stay implicit in ONNX.
  const size_t explicit_inputs = explicit_input_count(node);
  for (size_t i = 0; i < explicit_inputs; ++i) p.add_input(node.inputs[i]);
  for (const auto& out : node.outputs) p.add_output(out);
  for (const auto& [key, attr] : node.attrs) {
    if (key.starts_with(kInternalAttrPrefix))
      return invalid_input("{}: carries caliprox's internal attribute '{}' (a node fused by the executor), which no "
                           "other ONNX runtime understands; export the graph before the executor's passes",
                           node.describe(), key);
    CP_TRY(fill_attribute(key, attr, node, *p.add_attribute()));
  }
  return {};
}

// The default-domain opset of the file: the graph's, which every node that
// says which opset it was made under must share.
Result<int64_t> default_opset(const Graph& graph) {
  int64_t opset = graph.opset;
  bool uses_default = false;
  for (const Node& node : graph.nodes) {
    if (!node.domain.empty()) continue;
    uses_default = true;
    if (node.opset == 0) continue;
    if (opset == 0) opset = node.opset;
    if (node.opset != opset)
      return invalid_input("{}: was made under opset {} but the graph is opset {}; an ONNX file has one opset per "
                           "domain, and ops changed meaning between opsets",
                           node.describe(), node.opset, opset);
  }
  if (opset == 0 && uses_default)
    return invalid_input("graph '{}' has no opset for the default ONNX domain (Graph::opset is 0)", graph.name);
  if (opset != 0 && (opset < kMinExportOpset || opset > kMaxOnnxOpset))
    return unsupported("graph '{}': opset {} of the default ONNX domain cannot be exported (caliprox exports opsets "
                       "{}-{}; a model of an older opset was rewritten into newer forms when imported)",
                       graph.name, opset, kMinExportOpset, kMaxOnnxOpset);
  return opset;
}

Status fill_graph(const Graph& graph, onnx::GraphProto& g) {
  g.set_name(graph.name);
  for (const auto& [name, tensor] : graph.initializers) CP_TRY(fill_tensor(tensor, name, *g.add_initializer()));
  for (const auto& in : graph.inputs) CP_TRY(fill_value_info(in, *g.add_input()));
  for (const auto& out : graph.outputs) CP_TRY(fill_value_info(out, *g.add_output()));
  for (const Node& node : graph.nodes) CP_TRY(fill_node(node, *g.add_node()));
  return {};
}

// The non-default domains of the graph's nodes and its subgraphs' nodes.
void collect_domains(const Graph& graph, std::set<std::string>& domains) {
  for (const Node& node : graph.nodes) {
    if (!node.domain.empty()) domains.insert(node.domain);
    for (const auto& [key, a] : node.attrs)
      if (a.kind == Attribute::Kind::graph && a.g) collect_domains(*a.g, domains);
  }
}

Status fill_model(const Graph& graph, onnx::ModelProto& model) {
  CP_ASSIGN_OR_RETURN(const int64_t opset, default_opset(graph));
  model.set_ir_version(onnx_ir_version_for_opset(opset == 0 ? kMinExportOpset : opset));
  model.set_producer_name("caliprox");
  if (opset != 0) {
    auto* imp = model.add_opset_import();
    imp->set_domain("");
    imp->set_version(opset);
  }
  std::set<std::string> domains;
  collect_domains(graph, domains);
  for (const auto& domain : domains) {
    auto* imp = model.add_opset_import();
    imp->set_domain(domain);
    imp->set_version(1);
  }

  auto* g = model.mutable_graph();
  CP_TRY(fill_graph(graph, *g));
  if (graph.name.empty()) g->set_name("caliprox");
  return {};
}

}  // namespace

Result<std::string> serialize_onnx(const Graph& graph) {
  try {
    onnx::ModelProto model;
    CP_TRY(fill_model(graph, model));
    const size_t size = model.ByteSizeLong();
    if (size > static_cast<size_t>(INT_MAX))
      return unsupported("graph '{}': {} bytes exceeds protobuf's 2 GiB message limit (the exporter writes no external "
                         "data)",
                         graph.name, size);
    std::string bytes;
    if (!model.SerializeToString(&bytes))
      return runtime_error("graph '{}': protobuf could not serialize the model", graph.name);
    return bytes;
  } catch (const std::bad_alloc&) {
    return runtime_error("graph '{}': out of memory while serializing the model", graph.name);
  }
}

Status save_onnx(const Graph& graph, const std::string& path) {
  auto bytes = serialize_onnx(graph);
  if (!bytes.ok()) return bytes.status().with_context(fmt::format("exporting {}", path));
  return write_file_atomic(path, *bytes);
}

}  // namespace caliprox
