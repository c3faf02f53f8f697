// The graph half of ONNX import (ir/onnx_graph_import.h): values, nodes,
// attributes and subgraphs of one GraphProto, checked and sorted.
#include "ir/onnx_graph_import.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>  // defines ONNX_API, then includes onnx-ml.pb.h

#include "ir/onnx_legacy.h"
#include "ir/onnx_proto.h"
#include "ir/op_registry.h"

namespace caliprox {

bool op_is_supported(const Node& node) { return node.domain.empty() && find_op(node.op_type) != nullptr; }

namespace {

const char* type_case_name(onnx::TypeProto::ValueCase c) {
  switch (c) {
    case onnx::TypeProto::kTensorType: return "tensor";
    case onnx::TypeProto::kSequenceType: return "sequence";
    case onnx::TypeProto::kMapType: return "map";
    case onnx::TypeProto::kOptionalType: return "optional";
    case onnx::TypeProto::kSparseTensorType: return "sparse tensor";
#ifdef ONNX_ML  // the static build's protobuf code has no ML extensions
    case onnx::TypeProto::kOpaqueType: return "opaque";
#endif
    case onnx::TypeProto::VALUE_NOT_SET: return "unset";
  }
  return "unknown";
}

// `kind` is "graph input" / "graph output" / "subgraph input" / "subgraph
// output". Graph inputs need a type (sessions allocate them); the others may
// leave it to shape inference.
Result<ValueInfo> convert_value_info(const onnx::ValueInfoProto& v, const char* kind) {
  ValueInfo info;
  info.name = v.name();
  const std::string what = fmt::format("{} '{}'", kind, v.name());
  if (v.name().empty()) return invalid_input("{} has an empty name", kind);
  if (!v.has_type() || v.type().value_case() == onnx::TypeProto::VALUE_NOT_SET) {
    if (std::string_view(kind) == "graph input") return invalid_input("{}: no type is declared", what);
    return info;
  }
  if (v.type().value_case() != onnx::TypeProto::kTensorType)
    return unsupported("{}: has type '{}'; caliprox handles tensors only", what, type_case_name(v.type().value_case()));
  const auto& tt = v.type().tensor_type();
  if (tt.elem_type() != onnx::TensorProto_DataType_UNDEFINED) {
    if (!dtype_known(tt.elem_type()))
      return unsupported("{}: element type {} is not supported", what, onnx_dtype_name(tt.elem_type()));
    info.dtype = static_cast<DType>(tt.elem_type());
  } else if (std::string_view(kind) == "graph input") {
    return invalid_input("{}: element type is not set", what);
  }
  if (!tt.has_shape()) return info;
  std::vector<Dim> dims;
  Shape fixed;  // symbolic/unknown dims counted as 1, to bound the fixed ones
  for (const auto& d : tt.shape().dim()) {
    Dim dim;
    if (d.has_dim_value()) {
      dim.value = d.dim_value();
    } else if (d.has_dim_param()) {
      dim.symbol = d.dim_param();
    }
    fixed.push_back(d.has_dim_value() ? d.dim_value() : 1);
    dims.push_back(std::move(dim));
  }
  CP_TRY(check_shape(fixed, what));
  info.dims = std::move(dims);
  return info;
}

Result<Attribute> convert_attribute(const onnx::AttributeProto& a, const Node& node, const std::string& base_dir) {
  const std::string what = fmt::format("{}: attribute '{}'", node.describe(), a.name());
  if (a.has_ref_attr_name()) return unsupported("{}: refers to a function attribute, which is not supported", what);
  auto type = a.type();
  if (type == onnx::AttributeProto::UNDEFINED) {  // old exporters leave it unset: infer from the filled field
    if (a.has_f()) type = onnx::AttributeProto::FLOAT;
    else if (a.has_i()) type = onnx::AttributeProto::INT;
    else if (a.has_s()) type = onnx::AttributeProto::STRING;
    else if (a.has_t()) type = onnx::AttributeProto::TENSOR;
    else if (a.has_g()) type = onnx::AttributeProto::GRAPH;
    else if (a.floats_size()) type = onnx::AttributeProto::FLOATS;
    else if (a.ints_size()) type = onnx::AttributeProto::INTS;
    else if (a.strings_size()) type = onnx::AttributeProto::STRINGS;
    else return invalid_input("{}: has no type and no value", what);
  }
  Attribute out;
  switch (type) {
    case onnx::AttributeProto::FLOAT:
      out.kind = Attribute::Kind::f;
      out.f = a.f();
      break;
    case onnx::AttributeProto::INT:
      out.kind = Attribute::Kind::i;
      out.i = a.i();
      break;
    case onnx::AttributeProto::STRING:
      out.kind = Attribute::Kind::s;
      out.s = a.s();
      break;
    case onnx::AttributeProto::TENSOR: {
      out.kind = Attribute::Kind::t;
      auto t = tensor_from_proto(a.t(), base_dir);
      if (!t.ok()) return t.status().with_context(what);
      out.t = std::move(t).value();
      break;
    }
    case onnx::AttributeProto::FLOATS:
      out.kind = Attribute::Kind::floats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.kind = Attribute::Kind::ints;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = Attribute::Kind::strings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    default:
      return unsupported("{}: attributes of type {} are not supported (graph lists and sparse tensors cannot be "
                         "imported)",
                         what, onnx::AttributeProto_AttributeType_Name(type));
  }
  return out;
}

// The tensor a Constant node produces (opset 1-17 forms: `value` since 1, the
// sparse and typed forms since 12).
Result<Tensor> constant_value(const onnx::NodeProto& n, const Node& node, const std::string& base_dir) {
  if (n.attribute_size() != 1)
    return invalid_input("{}: a Constant needs exactly one value attribute, found {}", node.describe(),
                         n.attribute_size());
  const auto& a = n.attribute(0);
  CP_ASSIGN_OR_RETURN(Attribute attr, convert_attribute(a, node, base_dir));
  const std::string& key = a.name();
  if (key == "value" && attr.kind == Attribute::Kind::t) return attr.t;
  if (key == "value_float" && attr.kind == Attribute::Kind::f) return Tensor::copy_of(DType::f32, {}, &attr.f);
  if (key == "value_int" && attr.kind == Attribute::Kind::i) return Tensor::copy_of(DType::i64, {}, &attr.i);
  if (key == "value_floats" && attr.kind == Attribute::Kind::floats)
    return Tensor::copy_of(DType::f32, {static_cast<int64_t>(attr.floats.size())}, attr.floats.data());
  if (key == "value_ints" && attr.kind == Attribute::Kind::ints)
    return Tensor::copy_of(DType::i64, {static_cast<int64_t>(attr.ints.size())}, attr.ints.data());
  if (key == "value_string" || key == "value_strings" || key == "sparse_value")
    return unsupported("{}: Constant attribute '{}' is not supported (string and sparse constants)", node.describe(),
                       key);
  return invalid_input("{}: unexpected Constant attribute '{}' (expected value, value_float(s) or value_int(s))",
                       node.describe(), key);
}

// Stable topological order: Kahn's algorithm always taking the ready node
// that comes first in the file, so an already sorted file keeps its order.
// A subgraph's captures count as available.
Status sort_topologically(Graph& g) {
  std::unordered_set<std::string> available(g.captures.begin(), g.captures.end());
  for (const auto& in : g.inputs) available.insert(in.name);
  for (const auto& [name, t] : g.initializers) available.insert(name);
  std::unordered_map<std::string, size_t> producer;
  for (size_t j = 0; j < g.nodes.size(); ++j) {
    for (const auto& o : g.nodes[j].outputs) {
      if (o.empty()) continue;
      if (available.count(o))
        return invalid_input("{}: {}: output '{}' is already a graph input or initializer", g.source_path,
                             g.nodes[j].describe(), o);
      auto [it, fresh] = producer.emplace(o, j);
      if (!fresh)
        return invalid_input("{}: value '{}' is produced twice: by {} and by {}", g.source_path, o,
                             g.nodes[it->second].describe(), g.nodes[j].describe());
    }
  }
  const size_t n = g.nodes.size();
  std::vector<size_t> pending(n, 0);
  std::vector<std::vector<size_t>> users(n);
  for (size_t j = 0; j < n; ++j) {
    std::set<size_t> deps;
    for (const auto& in : g.nodes[j].inputs) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        return invalid_input("{}: {}: input '{}' is not a graph input, an initializer or any node's output",
                             g.source_path, g.nodes[j].describe(), in);
      deps.insert(it->second);
    }
    pending[j] = deps.size();
    for (size_t d : deps) users[d].push_back(j);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t j = 0; j < n; ++j)
    if (pending[j] == 0) ready.push(j);
  std::vector<size_t> order;
  order.reserve(n);
  while (!ready.empty()) {
    size_t j = ready.top();
    ready.pop();
    order.push_back(j);
    for (size_t u : users[j])
      if (--pending[u] == 0) ready.push(u);
  }
  if (order.size() != n) {
    for (size_t j = 0; j < n; ++j)
      if (pending[j] != 0)
        return invalid_input("{}: the nodes form a cycle ({} depends on its own output, directly or through others)",
                             g.source_path, g.nodes[j].describe());
  }
  bool sorted = std::is_sorted(order.begin(), order.end());
  if (!sorted) {
    std::vector<Node> nodes;
    nodes.reserve(n);
    for (size_t j : order) nodes.push_back(std::move(g.nodes[j]));
    g.nodes = std::move(nodes);
  }
  for (const auto& out : g.outputs)
    if (!available.count(out.name) && !producer.count(out.name))
      return invalid_input("{}: graph output '{}' is not produced by any node, input or initializer", g.source_path,
                           out.name);
  return {};
}

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Initializers, inputs and outputs of `gp` into `g`.
Status import_values(const onnx::GraphProto& gp, const GraphImportContext& ctx, bool subgraph, Graph& g) {
  const std::string& path = ctx.path;
  if (gp.sparse_initializer_size() > 0)
    return unsupported("{}: sparse initializers are not supported ('{}')", path,
                       gp.sparse_initializer(0).values().name());
  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) return invalid_input("{}: an initializer has an empty name", path);
    if (g.initializers.count(init.name()))
      return invalid_input("{}: initializer '{}' appears twice", path, init.name());
    auto t = tensor_from_proto(init, ctx.base_dir);
    if (!t.ok()) return t.status().with_context(path);
    g.initializers.emplace(init.name(), std::move(t).value());
  }
  // Graph inputs that are initializers (IR < 4 lists them as inputs) are constants.
  std::unordered_set<std::string> seen_inputs;
  for (const auto& in : gp.input()) {
    if (g.initializers.count(in.name())) continue;
    if (!seen_inputs.insert(in.name()).second)
      return invalid_input("{}: graph input '{}' appears twice", path, in.name());
    auto info = convert_value_info(in, subgraph ? "subgraph input" : "graph input");
    if (!info.ok()) return info.status().with_context(path);
    g.inputs.push_back(std::move(info).value());
  }
  for (const auto& out : gp.output()) {
    auto info = convert_value_info(out, subgraph ? "subgraph output" : "graph output");
    if (!info.ok()) return info.status().with_context(path);
    g.outputs.push_back(std::move(info).value());
  }
  return {};
}

// Node skeletons (no attributes yet), so an unsupported op is reported before
// any error its attributes would cause. Constant nodes become initializers.
Status import_node_skeletons(const onnx::GraphProto& gp, GraphImportContext& ctx, Graph& g,
                             std::vector<const onnx::NodeProto*>& protos) {
  const std::string& path = ctx.path;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& n = gp.node(i);
    Node node;
    node.domain = n.domain() == "ai.onnx" ? std::string() : n.domain();
    node.op_type = node.domain.empty() ? legacy_op_type(n.op_type(), g.opset) : n.op_type();
    node.index = i;
    node.opset = g.opset;
    node.name = n.name();
    if (node.name.empty()) {
      std::string base = fmt::format("{}_{}", lowercase(n.op_type()), i);
      node.name = base;
      for (int k = 2; ctx.taken_names.count(node.name); ++k) node.name = fmt::format("{}_{}", base, k);
      ctx.taken_names.insert(node.name);
    }
    if (node.op_type.empty()) return invalid_input("{}: {}: empty op_type", path, node.describe());
    node.inputs.assign(n.input().begin(), n.input().end());
    node.outputs.assign(n.output().begin(), n.output().end());
    if (node.domain.empty() && node.op_type == "Constant") {
      if (node.outputs.size() != 1 || node.outputs[0].empty())
        return invalid_input("{}: {}: a Constant needs exactly one named output", path, node.describe());
      const std::string& out = node.outputs[0];
      if (g.initializers.count(out) || g.find_input(out))
        return invalid_input("{}: {}: output '{}' is already an initializer or graph input", path, node.describe(),
                             out);
      auto value = constant_value(n, node, ctx.base_dir);
      if (!value.ok()) return value.status().with_context(path);
      g.initializers.emplace(out, std::move(value).value());
      continue;
    }
    g.nodes.push_back(std::move(node));
    protos.push_back(&n);
  }
  return {};
}

Result<Attribute> subgraph_attribute(const onnx::AttributeProto& a, GraphImportContext& ctx, const Node& node) {
  auto sub = import_graph(a.g(), ctx, true);
  if (!sub.ok()) return sub.status().with_context(fmt::format("{}: subgraph '{}'", node.describe(), a.name()));
  Attribute out;
  out.kind = Attribute::Kind::graph;
  out.g = std::make_shared<const Graph>(std::move(sub).value());
  return out;
}

// The node's attributes; subgraphs are imported recursively and their
// captures appended to the node's inputs (Graph::captures).
Status import_attributes(const onnx::NodeProto& proto, GraphImportContext& ctx, Node& node) {
  const std::string& path = ctx.path;
  for (const auto& a : proto.attribute()) {
    if (a.name().empty()) return invalid_input("{}: {}: an attribute has an empty name", path, node.describe());
    const bool is_graph =
        a.type() == onnx::AttributeProto::GRAPH || (a.type() == onnx::AttributeProto::UNDEFINED && a.has_g());
    auto attr = is_graph ? subgraph_attribute(a, ctx, node) : convert_attribute(a, node, ctx.base_dir);
    if (!attr.ok()) {
      // A node kept only so the caller can list its unsupported op must not
      // hide that op behind an error about an attribute it could never use.
      if (!ctx.options.require_supported_ops && attr.status().code() == Errc::unsupported && !op_is_supported(node))
        continue;
      return attr.status().with_context(path);
    }
    node.attrs[a.name()] = std::move(attr).value();
  }
  for (auto& name : subgraph_captures(node)) node.inputs.push_back(std::move(name));
  return {};
}

// What a subgraph reads without defining it: names its nodes (captures of
// nested subgraphs included) or outputs use that are neither its inputs,
// its initializers nor its nodes' outputs.
std::vector<std::string> outer_reads(const Graph& g) {
  std::unordered_set<std::string> defined;
  for (const auto& in : g.inputs) defined.insert(in.name);
  for (const auto& [name, t] : g.initializers) defined.insert(name);
  for (const auto& node : g.nodes) defined.insert(node.outputs.begin(), node.outputs.end());
  std::set<std::string> reads;
  for (const auto& node : g.nodes)
    for (const auto& in : node.inputs)
      if (!in.empty() && !defined.count(in)) reads.insert(in);
  for (const auto& out : g.outputs)
    if (!defined.count(out.name)) reads.insert(out.name);
  return {reads.begin(), reads.end()};
}

}  // namespace

void collect_node_names(const onnx::GraphProto& gp, std::set<std::string>& names) {
  for (const auto& n : gp.node()) {
    if (!n.name().empty()) names.insert(n.name());
    for (const auto& a : n.attribute())
      if (a.has_g()) collect_node_names(a.g(), names);
  }
}

Result<Graph> import_graph(const onnx::GraphProto& gp, GraphImportContext& ctx, bool subgraph) {
  Graph g;
  g.source_path = ctx.path;
  g.opset = ctx.opset;
  g.name = gp.name();
  CP_TRY(import_values(gp, ctx, subgraph, g));
  std::vector<const onnx::NodeProto*> protos;
  CP_TRY(import_node_skeletons(gp, ctx, g, protos));
  if (ctx.options.require_supported_ops) CP_TRY(check_ops_supported(g));
  for (size_t j = 0; j < g.nodes.size(); ++j) CP_TRY(import_attributes(*protos[j], ctx, g.nodes[j]));
  if (auto st = upgrade_legacy_nodes(g); !st.ok()) return st.with_context(ctx.path);
  if (subgraph) g.captures = outer_reads(g);
  CP_TRY(sort_topologically(g));
  return g;
}

}  // namespace caliprox
