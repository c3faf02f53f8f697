// Elementwise family: shape inference (ir/ops/elementwise_ops.cc) and the
// reference kernels (backends/reference/elementwise_*.cc). Expected values
// are worked out by hand in the comments (relative 1e-5 unless stated).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Every input a run-time input, except those listed as constants.
Tensor run1(const Node& node, const std::vector<Tensor>& inputs, std::vector<bool> constant = {}) {
  constant.resize(inputs.size(), false);
  auto r = run_node(node, inputs, constant);
  if (!r.ok()) FAIL(r.status().message());
  return r.value()[0];
}

Errc error_code(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_node(node, inputs, std::vector<bool>(inputs.size(), true));
  return r.ok() ? Errc::ok : r.status().code();
}

std::vector<bool> bools(const Tensor& t) {
  std::vector<bool> v;
  for (double d : t.to_double_vector()) v.push_back(d != 0);
  return v;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

}  // namespace

TEST_CASE("elementwise ops: unary math") {
  const Tensor x = f32({3}, {-1, 0, 0.5f});
  check_values(run1(make_node("Exp", 1), {x}), {3}, {0.36787944, 1, 1.64872127});
  check_values(run1(make_node("Log", 1), {f32({3}, {1, 2.718281828f, 0.5f})}), {3}, {0, 1, -0.69314718});
  check_values(run1(make_node("Sin", 1), {x}), {3}, {-0.84147098, 0, 0.47942554});
  check_values(run1(make_node("Cos", 1), {x}), {3}, {0.54030231, 1, 0.87758256});
  check_values(run1(make_node("Atan", 1), {x}), {3}, {-0.78539816, 0, 0.46364761});
  check_values(run1(make_node("Acosh", 1), {f32({2}, {1, 2})}), {2}, {0, 1.3169579});
  check_values(run1(make_node("Erf", 1), {x}), {3}, {-0.84270079, 0, 0.52049988});
  check_values(run1(make_node("Reciprocal", 1), {f32({2}, {4, -0.5f})}), {2}, {0.25, -2});
  // Round: halves to even.
  check_values(run1(make_node("Round", 1), {f32({6}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f})}), {6},
               {0, 2, 2, -0, -2, 2});
  check_values(run1(make_node("Floor", 1), {f32({2}, {-1.5f, 1.5f})}), {2}, {-2, 1});
  check_values(run1(make_node("Ceil", 1), {f32({2}, {-1.5f, 1.5f})}), {2}, {-1, 2});
  // Softplus = log(1 + e^x): no overflow at 100.
  check_values(run1(make_node("Softplus", 1), {f32({3}, {0, 100, -100})}), {3}, {0.69314718, 100, 3.7200759e-44}, 1e-4);
  check_values(run1(make_node("Softsign", 1), {f32({2}, {1, -3})}), {2}, {0.5, -0.75});
  // Integer Neg and Abs wrap at the most negative value instead of overflowing.
  const int32_t min32 = std::numeric_limits<int32_t>::min();
  check_values(run1(make_node("Neg", 1), {tensor<int32_t>({3}, {5, -2, min32})}), {3}, {-5, 2, min32});
  check_values(run1(make_node("Abs", 1), {tensor<int8_t>({3}, {-5, 2, -128})}), {3}, {5, 2, -128});
  check_values(run1(make_node("Sign", 1), {f32({4}, {-2, 0, 3, NAN})}), {4}, {-1, 0, 1, kNaN});
  CHECK(error_code(make_node("Neg", 1), {tensor<uint8_t>({1}, {1})}) == Errc::invalid_input);
  CHECK(error_code(make_node("Exp", 1), {tensor<int32_t>({1}, {1})}) == Errc::invalid_input);
}

TEST_CASE("elementwise ops: parametric activations") {
  const Tensor x = f32({3}, {-1, 0, 2});
  // Elu: alpha (e^x - 1) below 0.
  check_values(run1(make_node("Elu", 1, {{"alpha", float_attr(2)}}), {x}), {3}, {2 * (std::exp(-1.0) - 1), 0, 2});
  // Selu with the defaults: gamma x above 0, gamma alpha (e^x - 1) below.
  check_values(run1(make_node("Selu", 1), {x}), {3},
               {1.0507009873554805 * 1.6732632423543772 * (std::exp(-1.0) - 1), 0, 2 * 1.0507009873554805});
  // Celu: max(0, x) + min(0, alpha (e^(x/alpha) - 1)).
  check_values(run1(make_node("Celu", 1, {{"alpha", float_attr(2)}}), {x}), {3}, {2 * (std::exp(-0.5) - 1), 0, 2});
  check_values(run1(make_node("ThresholdedRelu", 1, {{"alpha", float_attr(0.5f)}}), {f32({3}, {0.5f, 0.6f, -1})}), {3},
               {0, 0.6, 0});
  // Shrink: x + bias below -lambd, x - bias above lambd.
  check_values(run1(make_node("Shrink", 1, {{"bias", float_attr(1)}, {"lambd", float_attr(1.5f)}}),
                    {f32({5}, {-2, -1, 0, 1, 2})}),
               {5}, {-1, 0, 0, 0, 1});
  check_values(run1(make_node("Shrink", 1, {{"lambd", float_attr(1.5f)}}), {tensor<int32_t>({3}, {-2, 1, 2})}), {3},
               {-2, 0, 2});
}

TEST_CASE("elementwise ops: IsNaN, IsInf, Not") {
  const Tensor x = f32({4}, {1, NAN, kInf, -kInf});
  const Tensor nan = run1(make_node("IsNaN", 1), {x});
  CHECK(nan.dtype() == DType::boolean);
  CHECK(bools(nan) == std::vector<bool>{false, true, false, false});
  CHECK(bools(run1(make_node("IsInf", 1), {x})) == std::vector<bool>{false, false, true, true});
  CHECK(bools(run1(make_node("IsInf", 1, {{"detect_negative", int_attr(0)}}), {x})) ==
        std::vector<bool>{false, false, true, false});
  CHECK(bools(run1(make_node("Not", 1), {tensor<bool>({2}, {true, false})})) == std::vector<bool>{false, true});
  CHECK(error_code(make_node("Not", 1), {f32({1}, {1})}) == Errc::invalid_input);
}

TEST_CASE("elementwise ops: comparisons and logic broadcast to bool") {
  const Tensor a = f32({2, 2}, {1, 2, 3, 4});
  const Tensor b = f32({2}, {2, 3});
  CHECK(bools(run1(make_node("Equal", 2), {a, b})) == std::vector<bool>{false, false, false, false});
  CHECK(bools(run1(make_node("Less", 2), {a, b})) == std::vector<bool>{true, true, false, false});
  CHECK(bools(run1(make_node("LessOrEqual", 2), {a, b})) == std::vector<bool>{true, true, false, false});
  CHECK(bools(run1(make_node("Greater", 2), {a, b})) == std::vector<bool>{false, false, true, true});
  CHECK(bools(run1(make_node("GreaterOrEqual", 2), {a, f32({1}, {3})})) == std::vector<bool>{false, false, true, true});
  CHECK(bools(run1(make_node("Equal", 2), {tensor<int64_t>({3}, {1, 2, 3}), tensor<int64_t>({}, {2})})) ==
        std::vector<bool>{false, true, false});
  const Tensor p = tensor<bool>({2, 2}, {true, true, false, false});
  const Tensor q = tensor<bool>({2}, {true, false});
  CHECK(bools(run1(make_node("And", 2), {p, q})) == std::vector<bool>{true, false, false, false});
  CHECK(bools(run1(make_node("Or", 2), {p, q})) == std::vector<bool>{true, true, true, false});
  CHECK(bools(run1(make_node("Xor", 2), {p, q})) == std::vector<bool>{false, true, true, false});
  CHECK(bools(run1(make_node("Equal", 2), {p, q})) == std::vector<bool>{true, false, false, true});
  CHECK(error_code(make_node("Less", 2), {a, tensor<int32_t>({1}, {1})}) == Errc::invalid_input);
  CHECK(error_code(make_node("And", 2), {a, a}) == Errc::invalid_input);
  CHECK(error_code(make_node("Less", 2), {a, f32({3}, {1, 2, 3})}) == Errc::invalid_input);
}

TEST_CASE("elementwise ops: Mod and BitShift") {
  const Tensor a = tensor<int32_t>({4}, {-7, 7, -7, 7});
  const Tensor b = tensor<int32_t>({4}, {3, -3, -3, 0});
  // fmod=0: the divisor's sign (Python); a zero divisor gives 0.
  check_values(run1(make_node("Mod", 2), {a, b}), {4}, {2, -2, -1, 0});
  // fmod=1: the dividend's sign (C).
  check_values(run1(make_node("Mod", 2, {{"fmod", int_attr(1)}}), {a, b}), {4}, {-1, 1, -1, 0});
  check_values(run1(make_node("Mod", 2, {{"fmod", int_attr(1)}}), {f32({2}, {-4.5f, 5}), f32({1}, {2})}), {2},
               {-0.5, 1});
  CHECK(error_code(make_node("Mod", 2), {f32({1}, {1}), f32({1}, {1})}) == Errc::invalid_input);
  const Tensor x = tensor<uint8_t>({3}, {1, 16, 255});
  const Tensor s = tensor<uint8_t>({3}, {3, 2, 8});
  check_values(run1(make_node("BitShift", 2, {{"direction", str("LEFT")}}), {x, s}), {3}, {8, 64, 0});
  check_values(run1(make_node("BitShift", 2, {{"direction", str("RIGHT")}}), {x, s}), {3}, {0, 4, 0});
  CHECK(error_code(make_node("BitShift", 2, {{"direction", str("UP")}}), {x, s}) == Errc::invalid_input);
  CHECK(error_code(make_node("BitShift", 2, {{"direction", str("LEFT")}}), {a, a}) == Errc::invalid_input);
  const Tensor x64 = tensor<uint64_t>({2}, {1, uint64_t{1} << 63});
  const Tensor s64 = tensor<uint64_t>({2}, {63, 1});
  const Tensor left64 = run1(make_node("BitShift", 2, {{"direction", str("LEFT")}}), {x64, s64});
  CHECK(left64.data<uint64_t>()[0] == uint64_t{1} << 63);
  CHECK(left64.data<uint64_t>()[1] == 0);
}

TEST_CASE("elementwise ops: PRelu, Where, Sum, Mean") {
  // Slope per channel of [1, 2, 2], broadcast from [2, 1].
  check_values(run1(make_node("PRelu", 2), {f32({1, 2, 2}, {-1, 2, -3, 4}), f32({2, 1}, {0.5f, 0.25f})}), {1, 2, 2},
               {-0.5, 2, -0.75, 4});
  CHECK(error_code(make_node("PRelu", 2), {f32({2}, {1, 2}), f32({2, 2}, {1, 2, 3, 4})}) == Errc::invalid_input);
  // Before opset 7 a 1-D slope is per channel (axis 1), not numpy-aligned.
  check_values(run1(at_opset(make_node("PRelu", 2), 6), {f32({1, 2, 3}, {-1, -1, 1, -1, -1, 1}), f32({2}, {0.5f, 2})}),
               {1, 2, 3}, {-0.5, -0.5, 1, -2, -2, 1});
  const Tensor c = tensor<bool>({2, 1}, {true, false});
  check_values(run1(make_node("Where", 3), {c, f32({2}, {1, 2}), f32({1}, {9})}), {2, 2}, {1, 2, 9, 9});
  check_values(run1(make_node("Where", 3), {c, tensor<int64_t>({1}, {1}), tensor<int64_t>({1}, {2})}), {2, 1}, {1, 2});
  CHECK(error_code(make_node("Where", 3), {f32({1}, {1}), f32({1}, {1}), f32({1}, {1})}) == Errc::invalid_input);
  const Tensor a = f32({2}, {1, 2});
  const Tensor b = f32({2, 1}, {10, 20});
  check_values(run1(make_node("Sum", 3), {a, b, f32({}, {100})}), {2, 2}, {111, 112, 121, 122});
  check_values(run1(make_node("Mean", 2), {a, b}), {2, 2}, {5.5, 6, 10.5, 11});
  check_values(run1(make_node("Sum", 1), {a}), {2}, {1, 2});
}

TEST_CASE("elementwise ops: CastLike, Size, Range") {
  const Tensor cast = run1(make_node("CastLike", 2), {f32({3}, {1.7f, -2.2f, 0}), tensor<int32_t>({1}, {0})});
  CHECK(cast.dtype() == DType::i32);
  check_values(cast, {3}, {1, -2, 0});
  const Tensor size = run1(make_node("Size", 1), {f32({2, 3}, {1, 2, 3, 4, 5, 6})});
  CHECK(size.dtype() == DType::i64);
  check_values(size, {}, {6});
  // ceil((10 - 1) / 3) = 3 elements.
  const std::vector<bool> constant{true, true, true};
  check_values(run1(make_node("Range", 3), {f32({}, {1}), f32({}, {10}), f32({}, {3})}, constant), {3}, {1, 4, 7});
  check_values(run1(make_node("Range", 3),
                    {tensor<int64_t>({}, {10}), tensor<int64_t>({}, {6}), tensor<int64_t>({}, {-3})}, constant),
               {2}, {10, 7});
  check_values(run1(make_node("Range", 3), {f32({}, {5}), f32({}, {1}), f32({}, {1})}, constant), {0}, {});
  CHECK(error_code(make_node("Range", 3), {f32({}, {1}), f32({}, {2}), f32({}, {0})}) == Errc::invalid_input);
  auto dynamic = run_node(make_node("Range", 3), {f32({}, {1}), f32({}, {10}), f32({}, {3})}, {false, true, true});
  CHECK(dynamic.status().code() == Errc::unsupported);
}

TEST_CASE("elementwise ops: legacy broadcasting of opsets < 7") {
  const Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  // broadcast=1 with B aligned to A's trailing dims: numpy's result.
  const Node add = at_opset(make_node("Add", 2, {{"broadcast", int_attr(1)}, {"axis", int_attr(1)}}), 6);
  check_values(run1(add, {a, f32({3}, {10, 20, 30})}), {2, 3}, {11, 22, 33, 14, 25, 36});
  // Aligned from axis 0 ([2] against [2, 3]): would need a trailing 1.
  const Node add0 = at_opset(make_node("Add", 2, {{"broadcast", int_attr(1)}, {"axis", int_attr(0)}}), 6);
  CHECK(error_code(add0, {a, f32({2}, {1, 2})}) == Errc::unsupported);
  // broadcast=0 needs equal shapes.
  CHECK(error_code(at_opset(make_node("Mul", 2), 6), {a, f32({3}, {1, 2, 3})}) == Errc::invalid_input);
  check_values(run1(at_opset(make_node("Mul", 2), 6), {a, a}), {2, 3}, {1, 4, 9, 16, 25, 36});
  // From opset 7 numpy broadcasting applies without the attribute.
  check_values(run1(at_opset(make_node("Mul", 2), 7), {a, f32({3}, {1, 0, 1})}), {2, 3}, {1, 0, 3, 4, 0, 6});
}
