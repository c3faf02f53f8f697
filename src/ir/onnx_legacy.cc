#include "ir/onnx_legacy.h"

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace caliprox {

namespace {

// A fresh initializer name for a node's converted attribute.
std::string add_constant(Graph& g, const Node& node, std::string_view what, Tensor value) {
  std::string name = fmt::format("{}__{}", node.name, what);
  for (int k = 2; g.initializers.count(name); ++k) name = fmt::format("{}__{}_{}", node.name, what, k);
  g.initializers.emplace(name, std::move(value));
  return name;
}

Status upgrade_reshape(Graph& g, Node& node) {
  if (node.inputs.size() != 1) return {};  // already the input form
  auto it = node.attrs.find("shape");
  if (it == node.attrs.end() || it->second.kind != Attribute::Kind::ints)
    return invalid_input("{}: a Reshape of opset {} needs the 'shape' attribute (ints)", node.describe(), node.opset);
  const auto& dims = it->second.ints;
  Tensor shape = Tensor::copy_of(DType::i64, {static_cast<int64_t>(dims.size())}, dims.data());
  node.inputs.push_back(add_constant(g, node, "shape", std::move(shape)));
  node.attrs.erase(it);
  return {};
}

Status upgrade_cast(Node& node) {
  auto it = node.attrs.find("to");
  if (it == node.attrs.end() || it->second.kind != Attribute::Kind::s) return {};
  static constexpr std::pair<std::string_view, int64_t> kNames[] = {{"FLOAT", 1},    {"UINT8", 2},   {"INT8", 3},
                                                                    {"UINT16", 4},   {"INT16", 5},   {"INT32", 6},
                                                                    {"INT64", 7},    {"STRING", 8},  {"BOOL", 9},
                                                                    {"FLOAT16", 10}, {"DOUBLE", 11}, {"UINT32", 12},
                                                                    {"UINT64", 13}};
  for (const auto& [name, code] : kNames)
    if (it->second.s == name) {
      Attribute a;
      a.kind = Attribute::Kind::i;
      a.i = code;
      it->second = a;
      return {};
    }
  return invalid_input("{}: Cast 'to' names the unknown type '{}'", node.describe(), it->second.s);
}

// The node was renamed Resize when imported (legacy_op_type).
Status upgrade_upsample(Graph& g, Node& node) {
  if (node.opset < 7)
    return unsupported("{}: the experimental Upsample of opset {} is not supported", node.describe(), node.opset);
  if (node.opset >= 9) return {};  // (X, scales) already
  auto it = node.attrs.find("scales");
  if (it == node.attrs.end() || it->second.kind != Attribute::Kind::floats)
    return invalid_input("{}: an Upsample of opset {} needs the 'scales' attribute (floats)", node.describe(),
                         node.opset);
  const auto& s = it->second.floats;
  Tensor scales = Tensor::copy_of(DType::f32, {static_cast<int64_t>(s.size())}, s.data());
  if (node.inputs.size() != 1)
    return invalid_input("{}: an Upsample of opset {} takes one input, found {}", node.describe(), node.opset,
                         node.inputs.size());
  node.inputs.push_back(add_constant(g, node, "scales", std::move(scales)));
  node.attrs.erase(it);
  return {};
}

Status upgrade_node(Graph& g, Node& node) {
  const int64_t v = node.opset;
  if (v < 7) node.attrs.erase("consumed_inputs");
  const std::string& op = node.op_type;
  if (op == "Reshape" && v < 5) return upgrade_reshape(g, node);
  if (op == "Cast" && v < 6) return upgrade_cast(node);
  if (op == "Resize" && v < 10) return upgrade_upsample(g, node);
  if (op == "Pad" && v < 2) {
    if (auto it = node.attrs.find("paddings"); it != node.attrs.end()) {
      node.attrs["pads"] = it->second;
      node.attrs.erase(it);
    }
  } else if (op == "Concat" && v < 4 && !node.has("axis")) {
    Attribute a;
    a.kind = Attribute::Kind::i;
    a.i = 1;
    node.attrs["axis"] = a;
  } else if (op == "BatchNormalization" && v < 7 && node.attr_int("is_test", 0) == 0) {
    return unsupported("{}: BatchNormalization of opset {} with is_test=0 computes batch statistics (training); "
                       "export the model in eval mode",
                       node.describe(), v);
  } else if (op == "Tile" && v < 6) {
    return unsupported("{}: Tile of opset {} (tiles and axis inputs) is not supported; re-export at opset 6 or newer",
                       node.describe(), v);
  }
  return {};
}

}  // namespace

std::string legacy_op_type(const std::string& op_type, int64_t opset) {
  if (op_type == "Upsample" && opset < 10) return "Resize";
  return op_type;
}

Status upgrade_legacy_nodes(Graph& graph) {
  for (Node& node : graph.nodes) {
    if (!node.domain.empty() || node.opset >= 10 || node.opset == 0) continue;
    CP_TRY(upgrade_node(graph, node));
  }
  return {};
}

}  // namespace caliprox
