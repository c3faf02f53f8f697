#pragma once
// What a session's executor makes of a Conv node (ir/passes.h: a
// BatchNormalization folded into its weights, a residual Add and an
// activation fused into it), learned from the graph alone by running the
// same passes over it. A knob applies to the fused node, so code that
// reproduces a knob outside the engine (standard_ops.h) needs to know where
// the fused node's input, residual and output are, and which weights it
// multiplies with.
//
// Sessions run the passes on the graph after binding the inputs' shapes and
// folding constant subgraphs. Here every symbolic dim is taken as 1 and the
// values of folded subgraphs are unknown (knobs/ has no kernels to compute
// them); where that could make the passes decide otherwise than a session
// would (a node of the chain reading such a value, a shape that cannot be
// inferred without it), the plan is refused with Errc::unsupported naming
// the node, never guessed.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

struct FusedConv {
  std::string node;                 // the Conv's name
  Shape input_shape;                // its input #0, symbolic dims as 1
  Tensor weight;                    // what it multiplies with (BatchNorm folded), f32
  Tensor bias;                      // empty when the Conv has none (f32 otherwise)
  std::vector<std::string> folded;  // BatchNormalization nodes folded into it, in order
  std::string conv_output;          // the value the folded convolution produces
  std::string residual_add;         // the Add fused as a residual ("" when none)
  std::string residual;             // that Add's other input
  std::string output;               // the value the fused node produces (after residual, activation)
  std::string output_producer;      // the node of the graph that produces `output`
};

// The fused form of each Conv named in `convs` (which must be Conv nodes
// of `graph` with a constant f32 weight; otherwise Errc::invalid_input or
// Errc::unsupported naming the node).
Result<std::map<std::string, FusedConv>> plan_fused_convs(const Graph& graph, const std::set<std::string>& convs);

}  // namespace caliprox
