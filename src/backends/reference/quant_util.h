#pragma once
// Internals shared by the reference kernels of the quantized ops
// (quant_kernels.cc, quant_conv.cc): integer reads of 8-bit
// and int32 tensors and the requantization step of QLinear*.
#include <cstdint>
#include <span>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/ops/quant_params.h"
#include "ir/tensor.h"

namespace caliprox::reference::quant_kernels {

inline bool is_8bit(DType t) { return t == DType::u8 || t == DType::i8; }

// Element i of a u8 / i8 / i32 tensor.
inline int32_t int_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::u8: return t.data<uint8_t>()[i];
    case DType::i8: return t.data<int8_t>()[i];
    default: return t.data<int32_t>()[i];
  }
}

// out[i] = t[i] - zero_point[i % zp_count] (a null zero point reads 0) for a
// u8 / i8 tensor; zp_count is 1 or divides into rows of `inner` elements
// (zero point index (i / inner) % zp_count).
inline void widen_minus_zero_point(const Tensor& t, const Tensor* zero_point, int64_t inner,
                                   std::vector<int32_t>& out) {
  const int64_t n = t.numel();
  const int64_t zp_count = zero_point != nullptr ? zero_point->numel() : 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t zp = zp_count == 0 ? 0 : int_at(*zero_point, zp_count == 1 ? 0 : (i / inner) % zp_count);
    out[static_cast<size_t>(i)] = int_at(t, i) - zp;
  }
}

// Output element i of a u8 / i8 tensor: saturate(round(value) + zero_point).
inline void store_requantized(Tensor& y, int64_t i, double value, int32_t zero_point) {
  const double q = quant::round_half_even(value) + zero_point;
  if (y.dtype() == DType::u8) y.data<uint8_t>()[i] = quant::saturate<uint8_t>(q);
  else y.data<int8_t>()[i] = quant::saturate<int8_t>(q);
}

// The QLinear* multiplier x_scale * w_scale / y_scale, in float as the ONNX
// formulas compute it.
inline float requant_multiplier(float x_scale, float w_scale, float y_scale) { return x_scale * w_scale / y_scale; }

// Registration of quant_conv.cc; register_quant_kernels (quant_kernels.cc)
// calls it.
void add_quant_conv_kernels(std::vector<KernelEntry>& table);

}  // namespace caliprox::reference::quant_kernels
