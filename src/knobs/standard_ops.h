#pragma once
// Kernel knobs lowered to standard ONNX ops, for `caliprox export`: the
// returned graph computes what caliprox computes under the configuration,
// with ops every ONNX runtime has (ONNX Runtime's CPU provider runs them
// all), so a configuration tuned here can be deployed elsewhere.
//
// A knob applies to the node the executor makes of a Conv (ir/passes.h): a
// BatchNormalization that follows is folded into its weights, and a
// residual Add and an activation fused into it. The lowering reproduces
// that (fused_conv.h): the BatchNormalization is folded into the lowered
// Conv's weights, the Add and the activation stay nodes of their own. Per
// knob, on Conv node C (new nodes and values are named "C/<part>",
// original node names are kept):
//
//   samp-S-O  a Conv whose weight is the knob's effective weight: the
//             dropped elements zero, the kept ones times S/(S-1). The same
//             numbers as caliprox, and no speedup in another runtime: it
//             multiplies by the zeros.
//   fp16, samp-S-O-fp16  Cast to float16 and back (round to nearest even)
//             of C's input, of the fused residual (the Add's other input)
//             and of the fused node's output (after the activation, or
//             after the Conv when nothing is fused); weights and bias
//             rounded to half (times the sampling mask and scale first) and
//             stored as float32. The convolution itself stays float32,
//             as caliprox computes it.
//   bf16      Cast to bfloat16 and back of C's input; weights rounded to
//             bfloat16, stored as float32; bias, accumulation, output
//             float32.
//   int8      C's input through QuantizeLinear / DequantizeLinear with the
//             calibrated scale of int8_input_quantisation() (uint8, zero
//             point 0, for a range without negative values; int8 otherwise);
//             weights as int8 codes, one scale per output channel
//             (int8_weight_scale()), through a per-axis DequantizeLinear
//             (opset >= 13). Opsets 10-12 have only per-tensor
//             DequantizeLinear: the weights are then stored as the float32
//             values it would produce (code x channel scale). Opset 9 has no
//             QuantizeLinear: Errc::unsupported (the opset is never raised:
//             ops changed meaning between opsets). The Conv then sums
//             float32 products of dequantised values where caliprox sums
//             int32 codes and scales once: equal up to float32 rounding of
//             the sum (relative ~1e-7 per term), and a value within that of
//             a code boundary at the next int8 layer may take the
//             neighbouring code.
//   perf-*    Errc::invalid_input naming the node and knob: no standard ONNX
//             op skips output rows or columns and interpolates them.
//
// `ranges`: the calibrated range of input #0 per node name (int8 only);
// missing, not finite or min > max: Errc::invalid_input naming the node.
// Unknown knobs or nodes, knobs on non-Conv nodes, and Convs a knob does not
// apply to (knob_applies) are Errc::invalid_input; Convs whose weight is not
// a float32 initializer, or whose fusion cannot be told from the graph
// alone (fused_conv.h), Errc::unsupported. "fp32" entries change nothing.
#include <map>
#include <string>

#include "ir/graph.h"
#include "knobs/knobs.h"
#include "util/status.h"

namespace caliprox {

Result<Graph> lower_to_standard_ops(const Graph& graph, const KnobConfig& config,
                                    const std::map<std::string, ValueRange>& ranges);

// Whether lower_to_standard_ops can express `knob` (everything but
// perforation).
bool knob_has_standard_form(const Knob& knob);

// The lowest default-domain opset of the graphs lower_to_standard_ops
// writes `knob` into (int8: 10, the others: any).
int64_t min_opset_for_standard_form(const Knob& knob);

}  // namespace caliprox
