#include "ir/tensor.h"

#include <bit>
#include <cmath>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace caliprox {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::u8: return 1;
    case DType::i8: return 1;
    case DType::u16: return 2;
    case DType::i16: return 2;
    case DType::i32: return 4;
    case DType::u32: return 4;
    case DType::u64: return 8;
    case DType::i64: return 8;
    case DType::boolean: return 1;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::f64: return 8;
    case DType::undefined: return 0;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::u8: return "uint8";
    case DType::i8: return "int8";
    case DType::u16: return "uint16";
    case DType::i16: return "int16";
    case DType::u32: return "uint32";
    case DType::u64: return "uint64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::boolean: return "bool";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::f64: return "float64";
    case DType::undefined: return "undefined";
  }
  return "undefined";
}

bool dtype_known(int onnx_type) {
  switch (onnx_type) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 9:
    case 10:
    case 11:
    case 12:
    case 13:
    case 16: return true;
    default: return false;
  }
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::vector<int64_t> shape_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

Status check_shape(const Shape& s, std::string_view what) {
  int64_t n = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] < 0)
      return invalid_input("{}: dimension {} is {} (expected a non-negative size) in shape {}", what, i, s[i],
                           shape_str(s));
    if (s[i] != 0 && n > kMaxTensorElements / s[i])
      return invalid_input("{}: shape {} has more than {} elements (absurdly large dimension)", what, shape_str(s),
                           kMaxTensorElements);
    n *= s[i];
  }
  return {};
}

namespace {
std::shared_ptr<void> allocate(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  owner_ = allocate(nbytes());
  data_ = owner_.get();
}

Tensor Tensor::view(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::device(DType dtype, Shape shape, void* handle, std::shared_ptr<void> owner) {
  Tensor t = view(dtype, std::move(shape), handle);
  t.owner_ = std::move(owner);
  t.on_device_ = true;
  return t;
}

Tensor Tensor::copy_of(DType dtype, Shape shape, const void* bytes) {
  Tensor t(dtype, std::move(shape));
  if (t.nbytes()) std::memcpy(t.data_, bytes, t.nbytes());
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  assert(shape_numel(shape) == numel());
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  if (on_device_) {
    fmt::print(stderr, "internal error: a device tensor of {} was cloned as host memory\n", dtype_name(dtype_));
    std::abort();
  }
  return copy_of(dtype_, shape_, data_);
}

void Tensor::check_type(DType t) const {
  if (on_device_) {
    fmt::print(stderr, "internal error: a device tensor of {} was read as host memory\n", dtype_name(dtype_));
    std::abort();
  }
  if (t != dtype_) {
    fmt::print(stderr, "internal error: tensor of {} accessed as {}\n", dtype_name(dtype_), dtype_name(t));
    std::abort();
  }
}

double Tensor::at_double(int64_t i) const {
  const auto* p = static_cast<const std::byte*>(data_);
  switch (dtype_) {
    case DType::f32: { float v; std::memcpy(&v, p + i * 4, 4); return v; }
    case DType::f64: { double v; std::memcpy(&v, p + i * 8, 8); return v; }
    case DType::u8: return static_cast<double>(static_cast<const uint8_t*>(data_)[i]);
    case DType::i8: return static_cast<double>(static_cast<const int8_t*>(data_)[i]);
    case DType::boolean: return static_cast<const uint8_t*>(data_)[i] ? 1.0 : 0.0;
    case DType::u16: {
      uint16_t v;
      std::memcpy(&v, p + i * 2, 2);
      return v;
    }
    case DType::i16: {
      int16_t v;
      std::memcpy(&v, p + i * 2, 2);
      return v;
    }
    case DType::u32: {
      uint32_t v;
      std::memcpy(&v, p + i * 4, 4);
      return v;
    }
    case DType::u64: {
      uint64_t v;
      std::memcpy(&v, p + i * 8, 8);
      return static_cast<double>(v);
    }
    case DType::i32: { int32_t v; std::memcpy(&v, p + i * 4, 4); return v; }
    case DType::i64: { int64_t v; std::memcpy(&v, p + i * 8, 8); return static_cast<double>(v); }
    case DType::f16: { uint16_t v; std::memcpy(&v, p + i * 2, 2); return half_to_float(v); }
    case DType::bf16: {
      uint16_t v;
      std::memcpy(&v, p + i * 2, 2);
      const uint32_t bits = static_cast<uint32_t>(v) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case DType::undefined: break;
  }
  return 0.0;
}

std::vector<int64_t> Tensor::to_int64_vector() const {
  std::vector<int64_t> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) {
    if (dtype_ == DType::i64) out[i] = static_cast<const int64_t*>(data_)[i];
    else if (dtype_ == DType::u64) out[i] = static_cast<int64_t>(static_cast<const uint64_t*>(data_)[i]);
    else out[i] = static_cast<int64_t>(at_double(i));
  }
  return out;
}

std::vector<double> Tensor::to_double_vector() const {
  std::vector<double> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[i] = at_double(i);
  return out;
}

float round_to_bf16(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return std::bit_cast<float>((bits | 0x00400000u) & 0xFFFF0000u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return std::bit_cast<float>(bits & 0xFFFF0000u);
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t float_to_half(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  }
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {  // subnormal or zero in half
    // value = absx as float; half subnormal unit = 2^-24
    float a = std::bit_cast<float>(absx);
    float scaled = a * 16777216.0f;  // / 2^-24
    // round to nearest even
    auto m = static_cast<uint32_t>(scaled);
    float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t exp = ((absx >> 23) - 127 + 15);
  uint32_t mant = absx & 0x7fffffu;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into exponent: correct
  return static_cast<uint16_t>(sign | h);
}

}  // namespace caliprox
