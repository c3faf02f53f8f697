#pragma once
// Arithmetic cost of every Conv node of a graph at given input shapes, so the
// benchmark can turn per-node times into GFLOP/s. Shapes come from running the
// op registry's own shape inference over the graph (the same rules a session
// uses), and the convolution geometry from conv_geometry(): the benchmark adds
// nothing to the engine.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::bench {

struct ConvCost {
  Shape input;          // X [N, C_in, H, W]
  Shape weights;        // W [C_out, C_in/group, KH, KW]
  Shape output;         // Y [N, C_out, OH, OW]
  int64_t group = 1;
  std::vector<int64_t> strides;
  // 2 * N * C_out * prod(out spatial) * (C_in/group) * prod(kernel): multiply
  // and add of every tap. Fused bias / BatchNorm / residual / activation work
  // is not counted (it is O(output), negligible next to the taps).
  double flops = 0;
  std::string describe() const;  // "64x32x28x28 -> 64x64x14x14, k3x3 s2 g1"
};

// Keyed by node name (sessions keep a Conv's name through fusion passes).
// Types come from the engine's constant folding (infer_value_types), so errors
// are a session's: an input shape missing, an op shape inference refuses.
Result<std::map<std::string, ConvCost>> conv_costs(const Graph& graph,
                                                   const std::map<std::string, Shape>& input_shapes);

}  // namespace caliprox::bench
