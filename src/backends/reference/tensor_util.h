#pragma once
// Helpers shared by the reference kernels of the tensor-op family
// (tensor_*.cc in this folder): element types, dtype dispatch, kernels built
// from a callable, and index-map iteration (the one loop behind broadcasting,
// Transpose, Slice, Pad and nearest Resize).
#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"

namespace caliprox::reference::tensor {

// float16 and bfloat16 storage; arithmetic on them happens in float.
struct Half {
  uint16_t bits = 0;
};
struct BF16 {
  uint16_t bits = 0;
};
inline float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
// Rounded to nearest even (round_to_bf16), NaN kept.
inline uint16_t float_to_bf16(float f) {
  return static_cast<uint16_t>(std::bit_cast<uint32_t>(round_to_bf16(f)) >> 16);
}

template <typename T> struct ComputeOf { using type = T; };
template <> struct ComputeOf<Half> { using type = float; };
template <> struct ComputeOf<BF16> { using type = float; };
// The type arithmetic on T is done in (T itself except for Half and BF16).
template <typename T> using compute_t = typename ComputeOf<T>::type;

template <typename T> compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, Half>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, BF16>) return bf16_to_float(v.bits);
  else return v;
}
template <typename T> T store(compute_t<T> v) {
  if constexpr (std::is_same_v<T, Half>) return Half{float_to_half(v)};
  else if constexpr (std::is_same_v<T, BF16>) return BF16{float_to_bf16(v)};
  else return v;
}

template <typename T> constexpr DType dtype_code() {
  if constexpr (std::is_same_v<T, Half>) return DType::f16;
  else if constexpr (std::is_same_v<T, BF16>) return DType::bf16;
  else return dtype_of<T>();
}

// A set of element types: `contains` for supports(), `visit` to call a
// generic lambda with a value of the C++ type matching a dtype.
template <typename... Ts> struct TypeSet {
  static bool contains(DType t) { return ((t == dtype_code<Ts>()) || ...); }
  template <typename F> static void visit(DType t, F&& fn) {
    [[maybe_unused]] bool found = ((t == dtype_code<Ts>() ? (fn(Ts{}), true) : false) || ...);
    assert(found);
  }
};
using FloatTypes = TypeSet<float, double, Half>;
using SignedTypes = TypeSet<float, double, Half, int8_t, int16_t, int32_t, int64_t>;
using UnsignedTypes = TypeSet<uint8_t, uint16_t, uint32_t, uint64_t>;
using NumericTypes =
    TypeSet<float, double, Half, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t>;
// Every element type, bfloat16 included (Cast, data movement, Where).
using AllTypes =
    TypeSet<float, double, Half, BF16, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t, bool>;

template <typename T> const T* in_data(const Tensor& t) { return static_cast<const T*>(t.raw()); }
template <typename T> T* out_data(Tensor& t) { return static_cast<T*>(t.raw()); }

// Value conversion with the rules of ONNX Cast: to bool is "non-zero",
// float to integer truncates (saturating, NaN -> 0, instead of the undefined
// behaviour of an out-of-range C++ cast), float16 and bfloat16 go through
// float.
template <typename To, typename From> To convert(From v) {
  if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BF16>) {
    return convert<To>(load(v));
  } else if constexpr (std::is_same_v<To, Half>) {
    return Half{float_to_half(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<To, BF16>) {
    return BF16{float_to_bf16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From{0};
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (!(v == v)) return 0;
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

// Writes `value` converted to dtype into `out` (dtype_size(dtype) bytes).
void encode_scalar(DType dtype, double value, void* out);
// Writes v[i] converted to out's dtype into element i of out (the kernels
// that compute in double: signal, sampling, linear algebra).
void encode_doubles(const std::vector<double>& v, Tensor& out);

// A kernel whose run() is a callable holding parameters parsed in make().
template <typename F> class FnKernel final : public Kernel {
 public:
  explicit FnKernel(F fn) : fn_(std::move(fn)) {}
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    return fn_(inputs, outputs);
  }

 private:
  F fn_;
};
template <typename F> Result<std::unique_ptr<Kernel>> make_fn_kernel(F fn) {
  return std::unique_ptr<Kernel>(std::make_unique<FnKernel<F>>(std::move(fn)));
}

// Input i's element type (undefined past the end).
inline DType in_type(const NodeContext& ctx, size_t i = 0) {
  return i < ctx.input_types.size() ? ctx.input_types[i].dtype : DType::undefined;
}

template <typename Set> bool supports_unary(const NodeContext& ctx) { return Set::contains(in_type(ctx)); }

// y[i] = op(x[i]) for the element types in Set; `op` is a generic lambda
// over the compute type (compute_t).
template <typename Set, typename Op> Result<std::unique_ptr<Kernel>> unary_kernel(const NodeContext& ctx, Op op) {
  const DType dtype = in_type(ctx);
  return make_fn_kernel([dtype, op](std::span<const Tensor* const> in, std::span<Tensor* const> out) -> Status {
    Set::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      for (int64_t i = 0, n = in[0]->numel(); i < n; ++i) y[i] = store<T>(op(load(x[i])));
    });
    return {};
  });
}

// Copies the bytes of `from` into `to` (same size; may be the same memory).
void copy_bytes(const Tensor& from, Tensor& to);

// Index maps: for each axis of an output shape, the offset (in elements) that
// output index i along that axis contributes to the source offset. A source
// offset is the sum over axes; kOutside marks indices with no source (Pad's
// constant border, crop-and-resize extrapolation) and makes the sum negative.
using AxisMap = std::vector<int64_t>;
using IndexMaps = std::vector<AxisMap>;
inline constexpr int64_t kOutside = -(int64_t{1} << 40);

// Maps that read `in` broadcast (numpy rules) to `out`: 0 on broadcast axes.
IndexMaps broadcast_maps(const Shape& in, const Shape& out);
// Maps for row-major `shape` reading itself.
IndexMaps identity_maps(const Shape& shape);

// Walks an output shape in row-major order with K sets of index maps and
// calls fn(out_index, offsets) where offsets[k] is the source offset of set
// k. Built once in make(): running it does not allocate.
template <size_t K> class MappedLoop {
 public:
  MappedLoop() = default;
  MappedLoop(Shape out_shape, std::array<IndexMaps, K> maps)
      : shape_(std::move(out_shape)), maps_(std::move(maps)), index_(shape_.size(), 0), base_(shape_.size() + 1) {
    for ([[maybe_unused]] const auto& m : maps_) assert(m.size() == shape_.size());
  }

  template <typename F> void run(F&& fn) {
    const size_t rank = shape_.size();
    std::array<int64_t, K> offsets{};
    if (shape_numel(shape_) == 0) return;
    if (rank == 0) {
      fn(int64_t{0}, offsets);
      return;
    }
    std::fill(index_.begin(), index_.end(), 0);
    base_[0].fill(0);
    refresh_bases(0);
    const int64_t inner = shape_[rank - 1];
    int64_t out = 0;
    while (true) {
      for (int64_t i = 0; i < inner; ++i) {
        for (size_t k = 0; k < K; ++k) offsets[k] = base_[rank - 1][k] + maps_[k][rank - 1][static_cast<size_t>(i)];
        fn(out++, offsets);
      }
      // Odometer over the outer axes; only the bases from the changed axis on
      // are recomputed.
      size_t a = rank - 1;
      while (a > 0) {
        --a;
        if (++index_[a] < shape_[a]) break;
        index_[a] = 0;
        if (a == 0) return;
      }
      if (rank == 1) return;
      refresh_bases(a);
    }
  }

 private:
  void refresh_bases(size_t from) {
    for (size_t a = from; a + 1 < shape_.size(); ++a)
      for (size_t k = 0; k < K; ++k)
        base_[a + 1][k] = base_[a][k] + maps_[k][a][static_cast<size_t>(index_[a])];
  }

  Shape shape_;
  std::array<IndexMaps, K> maps_;
  std::vector<int64_t> index_;
  std::vector<std::array<int64_t, K>> base_;
};

// Calls fn(U{}) with an unsigned integer type of `bytes` size (1, 2, 4, 8):
// data-movement kernels copy elements of any dtype through it.
template <typename F> void visit_element_size(size_t bytes, F&& fn) {
  switch (bytes) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    case 8: fn(uint64_t{}); break;
    default: assert(false && "unexpected element size");
  }
}

// Sub-families registered by register_tensor_kernels() (tensor_kernels.cc).
void register_movement_kernels(std::vector<KernelEntry>& table);  // tensor_movement.cc
void register_resize_kernels(std::vector<KernelEntry>& table);    // tensor_resize.cc

}  // namespace caliprox::reference::tensor
