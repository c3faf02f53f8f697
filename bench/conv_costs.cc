#include "conv_costs.h"

#include <vector>

#include <fmt/format.h>

#include "engine/session.h"
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
  // The engine's own folding: shapes computed by Shape/Reshape subgraphs
  // (PaddlePaddle and TensorFlow exports) resolve as they do in a session.
  CP_ASSIGN_OR_RETURN(auto types, infer_value_types(graph, input_shapes));
  std::map<std::string, ConvCost> costs;
  for (const Node& node : graph.nodes) {
    if (node.op_type != "Conv" || node.inputs.size() < 2) continue;
    auto x = types.find(node.inputs[0]);
    auto w = types.find(node.inputs[1]);
    // A Conv that constant folding removed, or one on a value the folded graph does not type.
    if (x == types.end() || w == types.end()) continue;
    CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, x->second.shape, w->second.shape));
    ConvCost c;
    c.input = x->second.shape;
    c.weights = w->second.shape;
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
