#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "ir/tensor.h"

using namespace caliprox;

TEST_CASE("half conversion round-trips every half value and rounds to nearest even") {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      CHECK(std::isnan(half_to_float(float_to_half(f))));
      continue;
    }
    CHECK(float_to_half(f) == static_cast<uint16_t>(h));
  }
  CHECK(half_to_float(float_to_half(1.0f)) == 1.0f);
  CHECK(half_to_float(float_to_half(65504.0f)) == 65504.0f);
  CHECK(std::isinf(half_to_float(float_to_half(65520.0f))));  // rounds up past max -> inf
  // 1 + 2^-11 is exactly between 1 and the next half (1 + 2^-10): ties to even -> 1.
  CHECK(half_to_float(float_to_half(1.0f + std::ldexp(1.0f, -11))) == 1.0f);
  // Smallest subnormal half is 2^-24; half of it rounds to zero (tie to even).
  CHECK(half_to_float(float_to_half(std::ldexp(1.0f, -24))) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(float_to_half(std::ldexp(1.0f, -25))) == 0.0f);
}

TEST_CASE("check_shape rejects negative and absurd dimensions") {
  CHECK(check_shape({1, 3, 28, 28}, "x").ok());
  CHECK(check_shape({}, "scalar").ok());
  Status neg = check_shape({1, -3}, "w");
  CHECK(neg.code() == Errc::invalid_input);
  CHECK(neg.message().find("dimension 1 is -3") != std::string::npos);
  CHECK(check_shape({1 << 20, 1 << 20, 1 << 20}, "huge").code() == Errc::invalid_input);
  CHECK(check_shape({0, int64_t{1} << 62}, "empty").ok());
}

TEST_CASE("tensor views share memory and reshape keeps data") {
  Tensor t(DType::f32, {2, 3});
  for (int i = 0; i < 6; ++i) t.data<float>()[i] = static_cast<float>(i);
  Tensor r = t.reshaped({3, 2});
  CHECK(r.raw() == t.raw());
  CHECK(r.dim(0) == 3);
  Tensor c = t.clone();
  CHECK(c.raw() != t.raw());
  CHECK(std::memcmp(c.raw(), t.raw(), t.nbytes()) == 0);
  CHECK(shape_strides({2, 3, 4}) == std::vector<int64_t>{12, 4, 1});
  CHECK(t.to_double_vector()[5] == 5.0);
}
