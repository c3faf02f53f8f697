#pragma once
// Helpers shared by the reference kernels of the reduce/normalisation family
// (reduce_*.cc in this folder), over the tensor family's element types and
// dispatch (tensor_util.h).
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "backends/reference/tensor_util.h"

namespace caliprox::reference::reduce {

// The tensor family's element helpers, used throughout reduce_*.cc.
using tensor::compute_t;
using tensor::convert;
using tensor::in_data;
using tensor::in_type;
using tensor::load;
using tensor::make_fn_kernel;
using tensor::out_data;
using tensor::store;
using tensor::supports_unary;

// What sums and products of T accumulate in: double for the floating-point
// types, int64 or uint64 (wrapping like the hardware) for the signed and
// unsigned integers; the result is converted back to T.
template <typename T>
using acc_t = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double,
                                 std::conditional_t<std::is_signed_v<compute_t<T>>, int64_t, uint64_t>>;

template <typename A> A wrap_add(A a, A b) {
  if constexpr (std::is_integral_v<A>) return static_cast<A>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  else return a + b;
}
template <typename A> A wrap_mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) return static_cast<A>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  else return a * b;
}
template <typename A> A magnitude(A v) {
  if constexpr (std::is_floating_point_v<A>) return std::fabs(v);
  else if constexpr (std::is_signed_v<A>) return v < 0 ? wrap_mul(v, A{-1}) : v;
  else return v;
}

template <typename C> bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return std::isnan(v);
  else return false;
}

// The order ArgMax, ArgMin, Hardmax and TopK rank values in: NumPy's, where
// NaN is the extreme in both directions (argmax and argmin both pick the
// first NaN). `beyond(a, b)`: a ranks strictly before b; `level`: neither
// ranks before the other.
template <typename C> bool beyond(C a, C b, bool largest) {
  if (is_nan(a)) return !is_nan(b);
  if (is_nan(b)) return false;
  return largest ? b < a : a < b;
}
template <typename C> bool level(C a, C b) { return is_nan(a) ? is_nan(b) : a == b; }

// Sub-families registered by register_reduce_kernels() (reduce_kernels.cc).
void register_norm_kernels(std::vector<KernelEntry>& table);   // reduce_norm.cc
void register_order_kernels(std::vector<KernelEntry>& table);  // reduce_order.cc

}  // namespace caliprox::reference::reduce
