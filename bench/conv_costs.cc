#include "conv_costs.h"

#include <vector>

#include <fmt/format.h>

#include "ir/op_registry.h"
#include "ir/ops/conv_geometry.h"

namespace caliprox::bench {

std::string ConvCost::describe() const {
  std::vector<std::string> k;
  for (size_t d = 2; d < weights.size(); ++d) k.push_back(std::to_string(weights[d]));
  std::vector<std::string> s;
  for (int64_t v : strides) s.push_back(std::to_string(v));
  return fmt::format("{} -> {}, k{} s{} g{}", fmt::join(input, "x"), fmt::join(output, "x"), fmt::join(k, "x"),
                     fmt::join(s, "x"), group);
}

Result<std::map<std::string, ConvCost>> conv_costs(const Graph& graph,
                                                   const std::map<std::string, Shape>& input_shapes) {
  std::map<std::string, TensorType> types;
  for (const auto& [name, t] : graph.initializers) types[name] = t.type();
  for (const ValueInfo& in : graph.inputs) {
    auto it = input_shapes.find(in.name);
    if (it == input_shapes.end())
      return invalid_input("{}: no shape given for graph input '{}'", graph.source_path, in.name);
    types[in.name] = TensorType{in.dtype, it->second};
  }

  std::map<std::string, ConvCost> costs;
  for (const Node& node : graph.nodes) {
    const OpDef* op = find_op(node.op_type);
    if (op == nullptr || !node.domain.empty())
      return unsupported("{}: no shape inference for this op", node.describe());
    std::vector<InferInput> inputs;
    for (const std::string& name : node.inputs) {
      InferInput in;
      if (!name.empty()) {
        auto t = types.find(name);
        if (t == types.end()) return invalid_input("{}: input '{}' has no inferred type", node.describe(), name);
        in.type = t->second;
        auto c = graph.initializers.find(name);
        if (c != graph.initializers.end()) in.value = &c->second;
      }
      inputs.push_back(std::move(in));
    }
    CP_ASSIGN_OR_RETURN(std::vector<TensorType> out, op->infer(node, inputs));
    for (size_t i = 0; i < node.outputs.size() && i < out.size(); ++i)
      if (!node.outputs[i].empty()) types[node.outputs[i]] = out[i];

    if (node.op_type != "Conv") continue;
    if (inputs.size() < 2 || inputs[1].value == nullptr)
      return unsupported("{}: weights are not a constant initializer", node.describe());
    CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, inputs[0].type.shape, inputs[1].type.shape));
    ConvCost c;
    c.input = inputs[0].type.shape;
    c.weights = inputs[1].type.shape;
    c.output = g.output_shape();
    c.group = g.group;
    c.strides = g.strides;
    double taps = static_cast<double>(g.c_in_per_group());
    for (int64_t k : g.kernel) taps *= static_cast<double>(k);
    double outputs = static_cast<double>(g.n) * static_cast<double>(g.c_out);
    for (int64_t o : g.out_spatial) outputs *= static_cast<double>(o);
    c.flops = 2.0 * outputs * taps;
    costs[node.name] = std::move(c);
  }
  return costs;
}

}  // namespace caliprox::bench
