#pragma once
// Tensors: a dtype, a shape and a pointer into memory that is either owned
// (shared between copies: constants are shared by the graph and every session)
// or borrowed from a session's arena (the memory plan hands out views).
// A device tensor (on_device()) holds a handle to an accelerator's buffer
// instead (backends/backend.h DeviceMemory): only its backend's kernels and
// transfers may touch it; data<T>() on it is an internal error.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace caliprox {

// Values match onnx::TensorProto::DataType so import is a cast after a check.
enum class DType : int {
  undefined = 0,
  f32 = 1,
  u8 = 2,
  i8 = 3,
  u16 = 4,
  i16 = 5,
  i32 = 6,
  i64 = 7,
  boolean = 9,
  f16 = 10,
  f64 = 11,
  u32 = 12,
  u64 = 13,
  // Also the internal type of activations between bf16 layers.
  bf16 = 16,
};

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // "float32", "int64", ...
bool dtype_known(int onnx_type);        // one of the values above

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);    // 1 for a scalar (rank 0)
std::string shape_str(const Shape& s);  // "[1, 3, 28, 28]"
// Row-major strides in elements.
std::vector<int64_t> shape_strides(const Shape& s);

// Largest tensor caliprox accepts, in elements (guards against absurd dims
// from corrupt files before anything is allocated).
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 34;
// Validates dims: non-negative and the product within kMaxTensorElements.
Status check_shape(const Shape& s, std::string_view what);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::u16; }
template <> constexpr DType dtype_of<int16_t>() { return DType::i16; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::u32; }
template <> constexpr DType dtype_of<uint64_t>() { return DType::u64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<bool>() { return DType::boolean; }

// dtype + shape without data: what shape inference computes.
struct TensorType {
  DType dtype = DType::undefined;
  Shape shape;
  bool operator==(const TensorType&) const = default;
};

class Tensor {
 public:
  Tensor() = default;
  // Owned, zero-initialised, 64-byte aligned.
  Tensor(DType dtype, Shape shape);
  // Borrowed view of memory someone else owns.
  static Tensor view(DType dtype, Shape shape, void* data);
  // Owned copy of `bytes` (must be numel * dtype_size bytes).
  static Tensor copy_of(DType dtype, Shape shape, const void* bytes);
  // A device tensor: `handle` is the device's buffer, kept alive by `owner`
  // (null for a view of a buffer someone else owns).
  static Tensor device(DType dtype, Shape shape, void* handle, std::shared_ptr<void> owner = nullptr);

  bool empty() const { return dtype_ == DType::undefined; }
  bool on_device() const { return on_device_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  TensorType type() const { return {dtype_, shape_}; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T> T* data() { check_type(dtype_of<T>()); return static_cast<T*>(data_); }
  template <typename T> const T* data() const { check_type(dtype_of<T>()); return static_cast<const T*>(data_); }
  template <typename T> std::span<T> span() { return {data<T>(), static_cast<size_t>(numel())}; }
  template <typename T> std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel())}; }

  // Same data, new shape with the same element count (a view sharing ownership).
  Tensor reshaped(Shape shape) const;
  // Deep copy into owned memory.
  Tensor clone() const;
  // Values of an integer tensor (i32/i64) as int64, for shape-like inputs.
  std::vector<int64_t> to_int64_vector() const;
  // Values of a numeric tensor converted to double (for tests and metrics).
  std::vector<double> to_double_vector() const;
  // Element i (flat index) converted to double.
  double at_double(int64_t i) const;

 private:
  void check_type(DType t) const;
  DType dtype_ = DType::undefined;
  Shape shape_;
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  bool on_device_ = false;
};

// IEEE half <-> float, round to nearest even (used for f16 data and emulation).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
// A float rounded to bfloat16 (the upper half of a float), to nearest even;
// a NaN stays a (quiet) NaN instead of rounding into infinity.
float round_to_bf16(float f);

}  // namespace caliprox
