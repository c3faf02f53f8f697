#pragma once
// The control-flow ops If, Loop and Scan. They have no kernels: a session
// inlines them when it is built (engine/fold_control.cc), If by the branch
// its constant condition selects, Loop and Scan by unrolling their
// iterations, whose count must be known then. These checks are shared by
// that inliner and by the ops' shape inference.
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "util/status.h"

namespace caliprox::control {

// The subgraph attribute `key` of the node, or invalid_input naming it.
Result<const Graph*> subgraph(const Node& node, const char* key);

// Structural checks of an If node: both branches present, with as many
// outputs as the node; one explicit input.
Status check_if(const Node& node);

// The value of If's condition (a one-element bool tensor), or unsupported
// when it is only known at run time (it must fold when the session is built).
Result<bool> if_condition(const Node& node, const InferInput& cond);

// Loop: N loop-carried values and K scan outputs, from its inputs
// (M, cond, v_1..v_N) and its body's outputs (cond, v_1..v_N, scan_1..scan_K).
struct LoopForm {
  size_t carried = 0;
  size_t scans = 0;
};
Result<LoopForm> check_loop(const Node& node);

// The trip count (INT64_MAX when omitted) and the initial condition (true
// when omitted); both must be constants.
struct LoopBounds {
  int64_t trip_count = 0;
  bool condition = true;
};
Result<LoopBounds> loop_bounds(const Node& node, const InferInput& trip_count, const InferInput& condition);

// The condition a body iteration returns; it must be a constant.
Result<bool> loop_continues(const Node& node, const InferInput& condition);

// Scan (opset 9 on): N state values, then scan inputs sliced along their
// axes; the scan outputs stacked along theirs (axes as given: negative ones
// count from the stacked output's last axis).
struct ScanForm {
  size_t states = 0;
  int64_t length = 0;               // iterations: the scan inputs' length along their axes
  std::vector<int64_t> input_axes;  // normalized
  std::vector<bool> input_reversed;
  std::vector<int64_t> output_axes;
  std::vector<bool> output_reversed;
};
// `types`: the node's explicit inputs.
Result<ScanForm> check_scan(const Node& node, std::span<const TensorType> types);

// Most body iterations (summed over a model) the inliner unrolls.
inline constexpr int64_t kMaxUnrolledIterations = 4096;

}  // namespace caliprox::control
