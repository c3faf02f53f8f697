#pragma once
// Semantics shared by the quantized ops' shape inference
// (ir/ops/quant_ops.cc) and their reference kernels
// (backends/reference/quant_*.cc): where scales and zero points apply, the
// integer matrix-product geometry, and the rounding and saturation steps of
// the ONNX formulas. Inference and kernels call the same resolvers, so they
// cannot disagree about an op.
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::quant {

// QuantizeLinear / DequantizeLinear: the scale (and zero point) holds one
// value for the whole tensor, or (opset 13 on) one value per index of `axis`;
// x is then walked as [outer, channels, inner] blocks.
struct LinearQuantParams {
  bool per_axis = false;
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
};
// inputs: x, scale, optional zero point (either op).
Result<LinearQuantParams> resolve_linear_quant(const Node& node, std::span<const InferInput> inputs);

// numpy.matmul geometry of two operands (rank >= 1), batch axes broadcast.
struct MatMulGeometry {
  int64_t m = 1, k = 1, n = 1;
  Shape out_shape;
  // Per output batch index (row-major over the broadcast batch axes): the
  // offsets of the A and B matrices, in elements.
  std::vector<int64_t> a_offsets;
  std::vector<int64_t> b_offsets;
};
Result<MatMulGeometry> matmul_geometry(const Node& node, const Shape& a, const Shape& b);

// How a MatMulInteger / QLinearMatMul scale or zero point applies: one value,
// one per row of A (M values) or one per column of B (N values).
enum class QuantGranularity { per_tensor, per_row, per_column };
// `operand` 0 is A (per row allowed), 1 is B (per column allowed); `q` the
// scale or zero point input, `what` its name for errors.
Result<QuantGranularity> matmul_quant_granularity(const Node& node, const InferInput& q, const MatMulGeometry& g,
                                                  int operand, std::string_view what);

// Element (m, n)'s value of a per-tensor / per-row / per-column parameter.
inline int64_t granular_index(QuantGranularity q, int64_t m, int64_t n) {
  return q == QuantGranularity::per_row ? m : q == QuantGranularity::per_column ? n : 0;
}

// Round half to even (numpy.rint / the ONNX quantization formulas),
// independent of the floating-point environment's rounding mode.
inline double round_half_even(double v) {
  const double f = std::floor(v);
  const double frac = v - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

// v (already rounded) clamped to the range of Q; NaN gives 0.
template <typename Q> Q saturate(double v) {
  if (std::isnan(v)) return Q(0);
  const double lo = std::numeric_limits<Q>::lowest();
  const double hi = std::numeric_limits<Q>::max();
  return static_cast<Q>(v < lo ? lo : (v > hi ? hi : v));
}

}  // namespace caliprox::quant
