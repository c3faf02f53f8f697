// tensor op family: shape inference (ir/ops/tensor_ops*.cc) and the
// reference kernels (backends/reference/tensor_*.cc). Expected values are
// worked out by hand in the comments (float comparisons: relative 1e-5 unless
// stated). The randomized broadcast case compares against a naive
// multi-index loop and prints its seed.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "ir/ops/tensor_ops_util.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// The inputs of a node under test. Input #0 is fed at run time (inference
// sees only its type); the others are constants, as shape/parameter inputs
// are in real models. `dynamic_all` makes every input a run-time input.
struct Inputs {
  std::vector<Tensor> values;
  bool dynamic_all = false;
};

Result<std::vector<Tensor>> run_node(const Node& node, const Inputs& inputs) {
  return run_rest_constant(node, inputs.values, inputs.dynamic_all);
}

Tensor run1(const Node& node, const Inputs& inputs) {
  auto r = run_node(node, inputs);
  if (!r.ok()) FAIL(r.status().message());
  return r.value()[0];
}

Status error_of(const Node& node, const Inputs& inputs) {
  auto r = run_node(node, inputs);
  return r.ok() ? Status() : r.status();
}

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

}  // namespace

TEST_CASE("tensor ops: activations") {
  const Tensor x = f32({5}, {-3, -1, 0, 1, 3});
  check_values(run1(make_node("Relu", 1), {{x}}), {5}, {0, 0, 0, 1, 3});
  check_values(run1(make_node("Relu", 1), {{tensor<int32_t>({3}, {-5, 0, 7})}}), {3}, {0, 0, 7});
  check_values(run1(make_node("LeakyRelu", 1, {{"alpha", float_attr(0.1f)}}), {{x}}), {5}, {-0.3, -0.1, 0, 1, 3});
  check_values(run1(make_node("LeakyRelu", 1), {{x}}), {5}, {-0.03, -0.01, 0, 1, 3});
  // 1 / (1 + e^-x); large |x| must not give NaN.
  check_values(run1(make_node("Sigmoid", 1), {{f32({4}, {0, 1, -200, 200})}}), {4}, {0.5, 0.7310586, 0, 1});
  // HardSigmoid: clamp(0.2 x + 0.5, 0, 1).
  check_values(run1(make_node("HardSigmoid", 1), {{x}}), {5}, {0, 0.3, 0.5, 0.7, 1});
  check_values(run1(make_node("HardSigmoid", 1, {{"alpha", float_attr(0.5f)}, {"beta", float_attr(0.f)}}), {{x}}),
               {5}, {0, 0, 0, 0.5, 1});
  // HardSwish: x * clamp(x / 6 + 0.5, 0, 1); at 1: 1 * (2/3).
  check_values(run1(make_node("HardSwish", 1), {{x}}), {5}, {0, -1.0 / 3, 0, 2.0 / 3, 3});
  check_values(run1(make_node("Tanh", 1), {{f32({2}, {0.5f, -2})}}), {2}, {0.46211716, -0.96402758});
  check_values(run1(make_node("Sqrt", 1), {{f32({3}, {4, 2, -1})}}), {3}, {2, 1.41421356, NAN});
  check_values(run1(make_node("Identity", 1), {{x}}), {5}, {-3, -1, 0, 1, 3});
}

TEST_CASE("tensor ops: Clip bounds from inputs (opset 11+) and attributes (before)") {
  const Tensor x = f32({4}, {-2, 0.5f, 3, 9});
  const Tensor lo = f32({}, {0});
  const Tensor hi = f32({}, {6});
  check_values(run1(make_node("Clip", 3), {{x, lo, hi}}), {4}, {0, 0.5, 3, 6});
  // Only max: min omitted ("" input).
  Node only_max = make_node("Clip", 3);
  only_max.inputs[1] = "";
  check_values(run1(only_max, {{x, Tensor(), hi}}), {4}, {-2, 0.5, 3, 6});
  check_values(run1(make_node("Clip", 1), {{x}}), {4}, {-2, 0.5, 3, 9});
  check_values(run1(make_node("Clip", 1, {{"min", float_attr(-1)}, {"max", float_attr(1)}}), {{x}}), {4},
               {-1, 0.5, 1, 1});
  // int8 with the data type's own limits as defaults.
  check_values(run1(make_node("Clip", 2), {{tensor<int8_t>({3}, {-128, 5, 127}), tensor<int8_t>({}, {0})}}), {3},
               {0, 5, 127});
  // min > max: everything becomes max.
  check_values(run1(make_node("Clip", 3), {{x, hi, lo}}), {4}, {0, 0, 0, 0});
}

TEST_CASE("tensor ops: Softmax axis semantics before and after opset 13") {
  check_values(run1(make_node("Softmax", 1), {{f32({3}, {1, 2, 3})}}), {3}, {0.09003057, 0.24472847, 0.66524096});
  // x = [[[0, 1], [2, 3]]], axis 1.
  const Tensor x = iota({1, 2, 2});
  // Opset 13: along axis 1 only, pairs (0, 2) and (1, 3): e^0 / (e^0 + e^2) = 0.1192.
  check_values(run1(make_node("Softmax", 1, {{"axis", int_attr(1)}}), {{x}}), {1, 2, 2},
               {0.11920292, 0.11920292, 0.88079708, 0.88079708});
  // Opset 11: coerced to 2-D [1, 4] at axis 1, so all four values compete.
  Node legacy = make_node("Softmax", 1, {{"axis", int_attr(1)}});
  legacy.opset = 11;
  const std::vector<double> all4 = {0.0320586, 0.08714432, 0.23688282, 0.64391426};
  check_values(run1(legacy, {{x}}), {1, 2, 2}, all4);
  // Default axis: -1 from opset 13 (pairs (0,1), (2,3)); 1 before.
  check_values(run1(make_node("Softmax", 1), {{x}}), {1, 2, 2}, {0.26894142, 0.73105858, 0.26894142, 0.73105858});
  Node legacy_default = make_node("Softmax", 1);
  legacy_default.opset = 12;
  check_values(run1(legacy_default, {{x}}), {1, 2, 2}, all4);
  // Large inputs do not overflow.
  check_values(run1(make_node("Softmax", 1), {{f32({2}, {10000, 10000})}}), {2}, {0.5, 0.5});
}

TEST_CASE("tensor ops: binary arithmetic broadcasts multidirectionally") {
  // [2, 3] + [3]: the row is added to each row.
  check_values(run1(make_node("Add", 2), {{iota({2, 3}), f32({3}, {10, 20, 30})}}), {2, 3}, {10, 21, 32, 13, 24, 35});
  // [2, 1] - [1, 3] -> [2, 3]: a[i] - b[j].
  check_values(run1(make_node("Sub", 2), {{f32({2, 1}, {10, 20}), f32({1, 3}, {1, 2, 3})}}), {2, 3},
               {9, 8, 7, 19, 18, 17});
  // Scalar on the left.
  check_values(run1(make_node("Mul", 2), {{f32({}, {2}), iota({2, 2})}}), {2, 2}, {0, 2, 4, 6});
  check_values(run1(make_node("Div", 2), {{f32({2}, {1, 3}), f32({2}, {4, 2})}}), {2}, {0.25, 1.5});
  // Integers: division truncates toward zero, arithmetic wraps.
  check_values(run1(make_node("Div", 2), {{i64({4}, {7, -7, 7, -7}), i64({4}, {2, 2, -2, -2})}}), {4}, {3, -3, -3, 3});
  check_values(run1(make_node("Add", 2), {{tensor<uint8_t>({2}, {250, 1}), tensor<uint8_t>({2}, {10, 2})}}), {2},
               {4, 3});
  check_values(run1(make_node("Mul", 2), {{tensor<int32_t>({2, 1}, {2, -3}), tensor<int32_t>({2}, {5, 7})}}), {2, 2},
               {10, 14, -15, -21});
}

TEST_CASE("tensor ops: Pow with mixed types") {
  check_values(run1(make_node("Pow", 2), {{f32({3}, {1, 2, 3}), f32({3}, {4, 5, 6})}}), {3}, {1, 32, 729});
  check_values(run1(make_node("Pow", 2), {{f32({2, 2}, {1, 2, 3, 4}), f32({}, {2})}}), {2, 2}, {1, 4, 9, 16});
  const Tensor y = run1(make_node("Pow", 2), {{tensor<int32_t>({3}, {1, 2, 3}), f32({3}, {4, 5, 6})}});
  CHECK(y.dtype() == DType::i32);
  check_values(y, {3}, {1, 32, 729});
  check_values(run1(make_node("Pow", 2), {{f32({2}, {2, 9}), i64({2}, {-1, 0})}}), {2}, {0.5, 1});
}

TEST_CASE("tensor ops: Max and Min are variadic with broadcasting") {
  const Tensor a = f32({3}, {3, 2, 1});
  const Tensor b = f32({3}, {1, 4, 4});
  const Tensor c = f32({2, 1}, {2, 0});
  check_values(run1(make_node("Max", 1), {{a}}), {3}, {3, 2, 1});
  check_values(run1(make_node("Max", 3), {{a, b, c}}), {2, 3}, {3, 4, 4, 3, 4, 4});
  check_values(run1(make_node("Min", 3), {{a, b, c}}), {2, 3}, {1, 2, 1, 0, 0, 0});
  check_values(run1(make_node("Max", 2), {{f32({2}, {NAN, 1}), f32({2}, {0, NAN})}}), {2}, {NAN, NAN});
  check_values(run1(make_node("Min", 2), {{i64({3}, {-5, 0, 9}), i64({1}, {1})}}), {3}, {-5, 0, 1});
}

TEST_CASE("tensor ops: Concat, Reshape, Flatten, Transpose") {
  const Tensor a = iota({2, 2});
  const Tensor b = iota({2, 1}, 10);
  check_values(run1(make_node("Concat", 2, {{"axis", int_attr(-1)}}), {{a, b}}), {2, 3}, {0, 1, 10, 2, 3, 11});
  check_values(run1(make_node("Concat", 2, {{"axis", int_attr(0)}}), {{a, iota({1, 2}, 7)}}), {3, 2},
               {0, 1, 2, 3, 7, 8});
  check_values(run1(make_node("Concat", 2, {{"axis", int_attr(0)}}), {{i64({2}, {1, 2}), i64({1}, {3})}}), {3}, {1, 2, 3});

  // 0 copies the input dimension, -1 takes the rest.
  const Tensor x = iota({2, 3, 4});
  CHECK(run1(make_node("Reshape", 2), {{x, i64({2}, {0, -1})}}).shape() == Shape{2, 12});
  CHECK(run1(make_node("Reshape", 2), {{x, i64({3}, {-1, 2, 2})}}).shape() == Shape{6, 2, 2});
  check_values(run1(make_node("Reshape", 2), {{iota({2, 2}), i64({1}, {4})}}), {4}, {0, 1, 2, 3});
  // allowzero: a 0 in the shape is a real 0 dimension.
  CHECK(run1(make_node("Reshape", 2, {{"allowzero", int_attr(1)}}), {{iota({0, 3}), i64({2}, {3, 0})}}).shape() ==
        Shape{3, 0});
  // Without allowzero the 0 copies input dimension 1 (3): 9 elements, not 0.
  CHECK(error_of(make_node("Reshape", 2), {{iota({0, 3}), i64({2}, {3, 0})}}).code() == Errc::invalid_input);

  CHECK(run1(make_node("Flatten", 1), {{x}}).shape() == Shape{2, 12});
  CHECK(run1(make_node("Flatten", 1, {{"axis", int_attr(0)}}), {{x}}).shape() == Shape{1, 24});
  CHECK(run1(make_node("Flatten", 1, {{"axis", int_attr(-1)}}), {{x}}).shape() == Shape{6, 4});
  CHECK(run1(make_node("Flatten", 1, {{"axis", int_attr(3)}}), {{x}}).shape() == Shape{24, 1});

  // Default: reversed axes.
  check_values(run1(make_node("Transpose", 1), {{iota({2, 3})}}), {3, 2}, {0, 3, 1, 4, 2, 5});
  // [2, 3, 4] with perm (1, 2, 0): y[j, k, i] = x[i, j, k] = 12 i + 4 j + k.
  const Tensor t = run1(make_node("Transpose", 1, {{"perm", ints({1, 2, 0})}}), {{x}});
  REQUIRE(t.shape() == Shape{3, 4, 2});
  const std::vector<double> tv = t.to_double_vector();
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t i = 0; i < 2; ++i) CHECK(tv[static_cast<size_t>((j * 4 + k) * 2 + i)] == 12 * i + 4 * j + k);
  // Any dtype moves by bytes.
  check_values(run1(make_node("Transpose", 1), {{tensor<bool>({1, 2}, {true, false})}}), {2, 1}, {1, 0});
}

TEST_CASE("tensor ops: Squeeze and Unsqueeze with attribute (< 13) and input (13+) axes") {
  const Tensor x = iota({1, 3, 1, 2});
  CHECK(run1(make_node("Squeeze", 1), {{x}}).shape() == Shape{3, 2});
  CHECK(run1(make_node("Squeeze", 1, {{"axes", ints({-2})}}), {{x}}).shape() == Shape{1, 3, 2});
  CHECK(run1(make_node("Squeeze", 2), {{x, i64({1}, {0})}}).shape() == Shape{3, 1, 2});
  check_values(run1(make_node("Squeeze", 2), {{x, i64({2}, {0, 2})}}), {3, 2}, {0, 1, 2, 3, 4, 5});

  const Tensor y = iota({3, 2});
  CHECK(run1(make_node("Unsqueeze", 1, {{"axes", ints({0})}}), {{y}}).shape() == Shape{1, 3, 2});
  CHECK(run1(make_node("Unsqueeze", 2), {{y, i64({2}, {-1, 1})}}).shape() == Shape{3, 1, 2, 1});
  CHECK(run1(make_node("Unsqueeze", 2), {{y, i64({3}, {4, 0, 2})}}).shape() == Shape{1, 3, 1, 2, 1});
  check_values(run1(make_node("Unsqueeze", 2), {{f32({}, {5}), i64({1}, {0})}}), {1}, {5});
}

TEST_CASE("tensor ops: Slice with negative indices and steps, clamping and INT64 limits") {
  const Tensor x = iota({10});
  // Whole axis reversed: start -1, end INT64_MIN, step -1 (with step 1 it is empty).
  CHECK(run1(make_node("Slice", 4), {{x, i64({1}, {-1}), i64({1}, {kInt64Min}), i64({1}, {0})}}).shape() == Shape{0});
  check_values(run1(make_node("Slice", 5), {{x, i64({1}, {-1}), i64({1}, {kInt64Min}), i64({1}, {0}), i64({1}, {-1})}}),
               {10}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
  check_values(run1(make_node("Slice", 5), {{x, i64({1}, {8}), i64({1}, {1}), i64({1}, {0}), i64({1}, {-3})}}), {3},
               {8, 5, 2});
  // Out-of-range starts/ends clamp; INT64_MAX end means "to the end".
  check_values(run1(make_node("Slice", 3), {{x, i64({1}, {-100}), i64({1}, {100})}}), {10},
               {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  check_values(run1(make_node("Slice", 5), {{x, i64({1}, {7}), i64({1}, {kInt64Max}), i64({1}, {0}), i64({1}, {2})}}),
               {2}, {7, 9});
  // Empty result when start is past end.
  CHECK(run1(make_node("Slice", 3), {{x, i64({1}, {5}), i64({1}, {2})}}).shape() == Shape{0});
  // 2-D: rows 0 and 2 (step 2), columns 3 and 1 (from -1 down to -5 exclusive, step -2).
  check_values(run1(make_node("Slice", 5), {{iota({3, 4}), i64({2}, {0, -1}), i64({2}, {kInt64Max, -5}),
                                              i64({2}, {0, -1}), i64({2}, {2, -2})}}),
               {2, 2}, {3, 1, 11, 9});
  // Opset < 10: attributes, axes default to the first ones; int32 data.
  Node legacy = make_node("Slice", 1, {{"starts", ints({1})}, {"ends", ints({-1})}, {"axes", ints({1})}});
  check_values(run1(legacy, {{tensor<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6})}}), {2, 1}, {2, 5});
}

TEST_CASE("tensor ops: Gather with negative indices on any axis") {
  const Tensor data = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  check_values(run1(make_node("Gather", 2), {{data, i64({1, 2}, {0, -1})}}), {1, 2, 2}, {1, 2, 5, 6});
  check_values(run1(make_node("Gather", 2, {{"axis", int_attr(1)}}), {{data, i64({1}, {-1})}}), {3, 1}, {2, 4, 6});
  check_values(run1(make_node("Gather", 2, {{"axis", int_attr(-1)}}), {{data, tensor<int32_t>({}, {0})}}), {3},
               {1, 3, 5});
  check_values(run1(make_node("Gather", 2), {{i64({3}, {7, 8, 9}), i64({2, 2}, {2, 0, -2, 1})}}), {2, 2}, {9, 7, 8, 8});
  // Out of range: caught by inference for constant indices, by the kernel otherwise.
  Status s1 = error_of(make_node("Gather", 2), {{data, i64({1}, {3})}});
  CHECK(s1.code() == Errc::invalid_input);
  CHECK(s1.message().find("out of range") != std::string::npos);
  Status s2 = error_of(make_node("Gather", 2), {{data, i64({1}, {-4})}, true});
  CHECK(s2.code() == Errc::invalid_input);
  CHECK(s2.message().find("node 't_Gather'") != std::string::npos);
}

TEST_CASE("tensor ops: Shape with start/end (opset 15)") {
  const Tensor x = iota({2, 3, 4});
  check_values(run1(make_node("Shape", 1), {{x}}), {3}, {2, 3, 4});
  check_values(run1(make_node("Shape", 1, {{"start", int_attr(1)}}), {{x}}), {2}, {3, 4});
  check_values(run1(make_node("Shape", 1, {{"end", int_attr(-1)}}), {{x}}), {2}, {2, 3});
  check_values(run1(make_node("Shape", 1, {{"start", int_attr(-10)}, {"end", int_attr(1)}}), {{x}}), {1}, {2});
  CHECK(run1(make_node("Shape", 1, {{"start", int_attr(2)}, {"end", int_attr(1)}}), {{x}}).shape() == Shape{0});
  CHECK(run1(make_node("Shape", 1), {{x}}).dtype() == DType::i64);
}

TEST_CASE("tensor ops: ConstantOfShape fills a constant shape with its value") {
  auto run_const = [](const Node& node, const Tensor& shape) { return test::run_node(node, {shape}, {true}); };
  auto value_attr = [](Tensor t) {
    Attribute a;
    a.kind = Attribute::Kind::t;
    a.t = std::move(t);
    return a;
  };
  auto zeros = run_const(make_node("ConstantOfShape", 1), tensor<int64_t>({2}, {2, 3}));
  REQUIRE(zeros.ok());
  CHECK(zeros.value()[0].dtype() == DType::f32);
  check_values(zeros.value()[0], {2, 3}, {0, 0, 0, 0, 0, 0});
  auto sevens = run_const(make_node("ConstantOfShape", 1, {{"value", value_attr(tensor<int32_t>({1}, {7}))}}),
                          tensor<int64_t>({1}, {3}));
  REQUIRE(sevens.ok());
  CHECK(sevens.value()[0].dtype() == DType::i32);
  check_values(sevens.value()[0], {3}, {7, 7, 7});
  auto empty = run_const(make_node("ConstantOfShape", 1), tensor<int64_t>({2}, {0, 4}));
  REQUIRE(empty.ok());
  CHECK(empty.value()[0].shape() == Shape{0, 4});
  // The output shape must be known when the session is planned.
  auto dynamic = test::run_node(make_node("ConstantOfShape", 1), {tensor<int64_t>({1}, {3})}, {false});
  CHECK(dynamic.status().code() == Errc::unsupported);
  CHECK(run_const(make_node("ConstantOfShape", 1), tensor<int64_t>({1}, {-1})).status().code() == Errc::invalid_input);
  auto two =
      run_const(make_node("ConstantOfShape", 1, {{"value", value_attr(f32({2}, {1, 2}))}}), tensor<int64_t>({1}, {3}));
  CHECK(two.status().code() == Errc::invalid_input);
  CHECK(two.status().message().find("one element") != std::string::npos);
}

TEST_CASE("tensor ops: Cast between the supported types") {
  const Tensor x = f32({4}, {1.7f, -1.7f, 0, 300});
  auto cast = [](DType to) { return make_node("Cast", 1, {{"to", int_attr(static_cast<int64_t>(to))}}); };
  Tensor i = run1(cast(DType::i32), {{x}});
  CHECK(i.dtype() == DType::i32);
  check_values(i, {4}, {1, -1, 0, 300});
  check_values(run1(cast(DType::boolean), {{x}}), {4}, {1, 1, 0, 1});
  check_values(run1(cast(DType::f64), {{x}}), {4}, {1.7f, -1.7f, 0, 300});
  // 0.1 is not representable in float16: nearest is 0.0999755859375.
  Tensor h = run1(cast(DType::f16), {{f32({2}, {0.1f, 65504})}});
  CHECK(h.dtype() == DType::f16);
  check_values(run1(cast(DType::f32), {{h}}), {2}, {0.0999755859375, 65504}, 1e-12);
  check_values(run1(cast(DType::u8), {{tensor<int8_t>({2}, {5, 100})}}), {2}, {5, 100});
  check_values(run1(cast(DType::f32), {{tensor<bool>({2}, {true, false})}}), {2}, {1, 0});
  check_values(run1(cast(DType::i64), {{tensor<double>({2}, {-2.5, 1e10})}}), {2}, {-2, 1e10});
  // bfloat16 rounds to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7.
  Tensor bf = run1(cast(DType::bf16), {{f32({3}, {1.00390625f, 1.01171875f, -3})}});
  CHECK(bf.dtype() == DType::bf16);
  check_values(run1(cast(DType::f32), {{bf}}), {3}, {1, 1.015625, -3}, 1e-12);
  check_values(run1(cast(DType::u16), {{tensor<int32_t>({2}, {7, 65535})}}), {2}, {7, 65535});
  CHECK(error_of(make_node("Cast", 1, {{"to", int_attr(8)}}), {{x}}).code() == Errc::unsupported);
}

TEST_CASE("tensor ops: Resize nearest, linear and coordinate modes") {
  const Tensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor up2 = f32({4}, {1, 1, 2, 2});
  Node resize_scales = make_node("Resize", 3, {{"mode", str("nearest")}});
  resize_scales.inputs[1] = "";
  // half_pixel + round_prefer_floor: sources -0.25, 0.25, 0.75, 1.25 -> 0, 0, 1, 1.
  check_values(run1(resize_scales, {{x, Tensor(), up2}}), {1, 1, 4, 4},
               {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // Linear, half_pixel (the ONNX example).
  Node linear = make_node("Resize", 3, {{"mode", str("linear")}});
  linear.inputs[1] = "";
  check_values(run1(linear, {{x, Tensor(), up2}}), {1, 1, 4, 4},
               {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4});
  // align_corners: sources 0, 1/3, 2/3, 1.
  Node corners = make_node("Resize", 3, {{"mode", str("linear")}, {"coordinate_transformation_mode", str("align_corners")}});
  corners.inputs[1] = "";
  check_values(run1(corners, {{x, Tensor(), up2}}), {1, 1, 4, 4},
               {1, 4.0 / 3, 5.0 / 3, 2, 5.0 / 3, 2, 7.0 / 3, 8.0 / 3, 7.0 / 3, 8.0 / 3, 3, 10.0 / 3, 3, 10.0 / 3, 11.0 / 3, 4});

  // Downsample 2x4 -> 1x2 by sizes. half_pixel sources: row 0.5, columns 0.5 and 2.5.
  const Tensor wide = iota({1, 1, 2, 4}, 1);
  const Tensor sizes = i64({4}, {1, 1, 1, 2});
  auto nearest_sizes = [&](std::map<std::string, Attribute> attrs) {
    Node n = make_node("Resize", 4, std::move(attrs));
    n.inputs[1] = n.inputs[2] = "";
    return run1(n, {{wide, Tensor(), Tensor(), sizes}});
  };
  check_values(nearest_sizes({}), {1, 1, 1, 2}, {1, 3});  // ties go down
  check_values(nearest_sizes({{"nearest_mode", str("round_prefer_ceil")}}), {1, 1, 1, 2}, {6, 8});
  check_values(nearest_sizes({{"nearest_mode", str("ceil")}, {"coordinate_transformation_mode", str("asymmetric")}}),
               {1, 1, 1, 2}, {1, 3});  // asymmetric sources 0, 2 are integral
  check_values(nearest_sizes({{"nearest_mode", str("floor")}, {"coordinate_transformation_mode", str("tf_half_pixel_for_nn")}}),
               {1, 1, 1, 2}, {6, 8});  // sources 1 and (1.5 / 0.5) = 3 -> row 1, columns 1, 3

  // A 1x1 output: pytorch_half_pixel reads the first element (source -0.5),
  // half_pixel the centre (average of all four).
  const Tensor one = i64({4}, {1, 1, 1, 1});
  Node pytorch = make_node("Resize", 4, {{"mode", str("linear")}, {"coordinate_transformation_mode", str("pytorch_half_pixel")}});
  pytorch.inputs[1] = pytorch.inputs[2] = "";
  check_values(run1(pytorch, {{x, Tensor(), Tensor(), one}}), {1, 1, 1, 1}, {1});
  Node half = make_node("Resize", 4, {{"mode", str("linear")}});
  half.inputs[1] = half.inputs[2] = "";
  check_values(run1(half, {{x, Tensor(), Tensor(), one}}), {1, 1, 1, 1}, {2.5});

  // Opset 10 form (X, scales): asymmetric, floor; nearest works on any rank and dtype.
  check_values(run1(make_node("Resize", 2), {{i64({3}, {1, 2, 3}), f32({1}, {2})}}), {6}, {1, 1, 2, 2, 3, 3});
  // Fractional scales: output floor(3 * 0.5) = 1.
  CHECK(run1(make_node("Resize", 2), {{iota({3}), f32({1}, {0.5f})}}).shape() == Shape{1});

  // Scales that are not constant cannot give a shape.
  Status s = error_of(resize_scales, {{x, Tensor(), up2}, true});
  CHECK(s.code() == Errc::unsupported);
  CHECK(s.message().find("'scales'") != std::string::npos);
}

TEST_CASE("tensor ops: Pad modes, negative pads and the opset 11 change") {
  const Tensor x = f32({3}, {1, 2, 3});
  const Tensor pads = i64({2}, {2, 1});
  check_values(run1(make_node("Pad", 3), {{x, pads, f32({}, {9})}}), {6}, {9, 9, 1, 2, 3, 9});
  check_values(run1(make_node("Pad", 2), {{x, pads}}), {6}, {0, 0, 1, 2, 3, 0});
  check_values(run1(make_node("Pad", 2, {{"mode", str("reflect")}}), {{x, pads}}), {6}, {3, 2, 1, 2, 3, 2});
  check_values(run1(make_node("Pad", 2, {{"mode", str("edge")}}), {{x, pads}}), {6}, {1, 1, 1, 2, 3, 3});
  // Reflect further than the axis is long folds again (numpy): period 4.
  check_values(run1(make_node("Pad", 2, {{"mode", str("reflect")}}), {{x, i64({2}, {4, 0})}}), {7}, {1, 2, 3, 2, 1, 2, 3});
  // Negative pads crop.
  check_values(run1(make_node("Pad", 2), {{x, i64({2}, {-1, 1})}}), {3}, {2, 3, 0});
  // 2-D reflect on columns only (the ONNX example).
  check_values(run1(make_node("Pad", 2, {{"mode", str("reflect")}}),
                    {{f32({3, 2}, {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f}), i64({4}, {0, 2, 0, 0})}}),
               {3, 4}, {1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7});
  // Opset < 11: pads and value as attributes; int64 data.
  Node legacy = make_node("Pad", 1, {{"pads", ints({1, 0, 0, 1})}, {"value", float_attr(-1)}});
  check_values(run1(legacy, {{i64({1, 2}, {5, 6})}}), {2, 3}, {-1, -1, -1, 5, 6, -1});
  CHECK(error_of(make_node("Pad", 2, {{"mode", str("wrap")}}), {{x, pads}}).code() == Errc::unsupported);
}

TEST_CASE("tensor ops: Dropout at inference") {
  const Tensor x = f32({2}, {1, -2});
  auto r = run_node(make_node("Dropout", 1, {}, 2), {{x}});
  REQUIRE(r.ok());
  check_values(r.value()[0], {2}, {1, -2});
  CHECK(r.value()[1].dtype() == DType::boolean);
  check_values(r.value()[1], {2}, {1, 1});
  // Opset 12+ inputs: training_mode false, or true with ratio 0, is the identity.
  check_values(run1(make_node("Dropout", 3), {{x, f32({}, {0.5f}), tensor<bool>({}, {false})}}), {2}, {1, -2});
  check_values(run1(make_node("Dropout", 3), {{x, f32({}, {0}), tensor<bool>({}, {true})}}), {2}, {1, -2});
  CHECK(error_of(make_node("Dropout", 3), {{x, f32({}, {0.5f}), tensor<bool>({}, {true})}}).code() == Errc::unsupported);
  CHECK(error_of(make_node("Dropout", 3), {{x, f32({}, {0.5f}), tensor<bool>({}, {true})}, true}).code() ==
        Errc::unsupported);
}

TEST_CASE("tensor ops: invalid attributes and inputs name the node") {
  auto expect_invalid = [](const Node& node, const Inputs& inputs, const std::string& fragment) {
    Status s = error_of(node, inputs);
    INFO(s.message());
    CHECK(s.code() == Errc::invalid_input);
    CHECK(s.message().find(node.describe()) != std::string::npos);
    CHECK(s.message().find(fragment) != std::string::npos);
  };
  const Tensor x = iota({2, 3});
  expect_invalid(make_node("Concat", 2, {{"axis", int_attr(2)}}), {{x, x}}, "out of range");
  expect_invalid(make_node("Softmax", 1, {{"axis", int_attr(-3)}}), {{x}}, "'axis' -3");
  expect_invalid(make_node("Gather", 2, {{"axis", int_attr(5)}}), {{x, i64({1}, {0})}}, "out of range");
  expect_invalid(make_node("Flatten", 1, {{"axis", int_attr(3)}}), {{x}}, "out of range");
  expect_invalid(make_node("Transpose", 1, {{"perm", ints({0, 0})}}), {{x}}, "permutation");
  expect_invalid(make_node("Squeeze", 2), {{x, i64({1}, {0})}}, "cannot squeeze axis 0");
  expect_invalid(make_node("Unsqueeze", 2), {{x, i64({2}, {1, -3})}}, "more than once");
  expect_invalid(make_node("Add", 2), {{x, iota({2})}}, "cannot be broadcast");
  expect_invalid(make_node("Add", 2), {{x, i64({1}, {1})}}, "same type");
  expect_invalid(make_node("Reshape", 2), {{x, i64({2}, {-1, -1})}}, "more than one -1");
  expect_invalid(make_node("Reshape", 2), {{x, i64({2}, {4, 2})}}, "cannot reshape");
  expect_invalid(make_node("Slice", 5), {{x, i64({1}, {0}), i64({1}, {1}), i64({1}, {0}), i64({1}, {0})}}, "'steps'");
  expect_invalid(make_node("Pad", 2), {{x, i64({2}, {1, 1})}}, "'pads' must hold 4 values");
  expect_invalid(make_node("Relu", 2), {{x, x}}, "expects 1 input");
  expect_invalid(make_node("Concat", 1, {{"axis", str("one")}}), {{x}}, "attribute 'axis' must be of kind int");
  // A shape input that is not constant: unsupported, naming the input.
  Status s = error_of(make_node("Reshape", 2), {{x, i64({1}, {6})}, true});
  CHECK(s.code() == Errc::unsupported);
  CHECK(s.message().find("'shape' must be a constant") != std::string::npos);
}

TEST_CASE("tensor ops: broadcasting matches a naive multi-index loop") {
  const unsigned seed = std::random_device{}();
  std::printf("test_tensor_ops: random seed %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> rank_dist(0, 4), dim_dist(1, 4), coin(0, 2);
  for (int trial = 0; trial < 50; ++trial) {
    INFO("seed " << seed << " trial " << trial);
    // Output shape, then each input drops leading axes and sets some to 1.
    Shape out(static_cast<size_t>(rank_dist(rng)));
    for (auto& d : out) d = dim_dist(rng);
    auto derive = [&]() {
      Shape s(out.begin() + std::uniform_int_distribution<size_t>(0, out.size())(rng), out.end());
      for (auto& d : s)
        if (coin(rng) == 0) d = 1;
      return s;
    };
    const Shape sa = derive(), sb = derive();
    std::uniform_real_distribution<float> val(-5, 5);
    std::vector<float> va(static_cast<size_t>(shape_numel(sa))), vb(static_cast<size_t>(shape_numel(sb)));
    for (auto& v : va) v = val(rng);
    for (auto& v : vb) v = val(rng);
    const Tensor y = run1(make_node("Sub", 2), {{f32(sa, va), f32(sb, vb)}});
    const Shape& so = y.shape();
    // Naive: decompose each output index, map to each input by numpy rules.
    auto source = [&](const Shape& s, int64_t flat) {
      int64_t offset = 0, stride = 1, rest = flat;
      for (size_t k = so.size(); k-- > 0;) {
        const int64_t idx = rest % so[k];
        rest /= so[k];
        const size_t from_end = so.size() - 1 - k;
        if (from_end < s.size()) {
          const size_t ks = s.size() - 1 - from_end;
          if (s[ks] != 1) offset += idx * stride;
          stride *= s[ks];
        }
      }
      return offset;
    };
    const std::vector<double> got = y.to_double_vector();
    for (int64_t i = 0; i < shape_numel(so); ++i)
      CHECK(got[static_cast<size_t>(i)] ==
            doctest::Approx(va[static_cast<size_t>(source(sa, i))] - vb[static_cast<size_t>(source(sb, i))]));
  }
}
