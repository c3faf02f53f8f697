// Quantized ops: shape inference (ir/ops/quant_ops.cc) and the reference
// kernels (backends/reference/quant_*.cc). Expected values are worked out by
// hand in the comments; integer results are exact.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Every input but #0 is a constant, as scales and zero points are in
// quantized models.
Result<std::vector<Tensor>> run_q(const Node& node, const std::vector<Tensor>& inputs) {
  std::vector<bool> constant(inputs.size(), true);
  constant[0] = false;
  return run_node(node, inputs, constant);
}

Tensor run1(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_q(node, inputs);
  if (!r.ok()) FAIL(r.status().message());
  return r.value()[0];
}

Errc error_of(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_q(node, inputs);
  return r.ok() ? Errc::ok : r.status().code();
}

Tensor u8(Shape s, std::vector<uint8_t> v) { return tensor<uint8_t>(std::move(s), std::move(v)); }
Tensor i8(Shape s, std::vector<int8_t> v) { return tensor<int8_t>(std::move(s), std::move(v)); }
Tensor i32(Shape s, std::vector<int32_t> v) { return tensor<int32_t>(std::move(s), std::move(v)); }
Tensor scalar(float v) { return f32({}, {v}); }

Node with_opset(Node n, int64_t opset) {
  n.opset = opset;
  return n;
}

}  // namespace

TEST_CASE("quant ops: QuantizeLinear rounds half to even and saturates") {
  // x / 2 = 0, 1, 1.5, 500, -127, -500 -> 0, 1, 2, 500, -127, -500; + 128, clamped to [0, 255].
  const Tensor y =
      run1(make_node("QuantizeLinear", 3), {f32({6}, {0, 2, 3, 1000, -254, -1000}), scalar(2), u8({}, {128})});
  CHECK(y.dtype() == DType::u8);
  check_values(y, {6}, {128, 129, 130, 255, 1, 0});
  // Halves go to the even neighbour: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2.
  check_values(run1(make_node("QuantizeLinear", 3), {f32({5}, {1, 3, 5, -1, -3}), scalar(2), i8({}, {0})}), {5},
               {0, 2, 2, 0, -2});
  // int8 saturation; int32 input.
  check_values(run1(make_node("QuantizeLinear", 3), {i32({3}, {-300, 300, 7}), scalar(1), i8({}, {0})}), {3},
               {-128, 127, 7});
  // Without a zero point the output is uint8 with zero point 0.
  const Tensor no_zp = run1(make_node("QuantizeLinear", 2), {f32({3}, {-1, 0.4f, 0.6f}), scalar(1)});
  CHECK(no_zp.dtype() == DType::u8);
  check_values(no_zp, {3}, {0, 0, 1});
}

TEST_CASE("quant ops: QuantizeLinear per axis (opset 13)") {
  // x [2, 3], scale per column [1, 2, 4], zero point [0, 10, 20].
  const std::vector<Tensor> in{f32({2, 3}, {4, 4, 4, 8, -8, 16}), f32({3}, {1, 2, 4}), u8({3}, {0, 10, 20})};
  check_values(run1(make_node("QuantizeLinear", 3), in), {2, 3}, {4, 12, 21, 8, 6, 24});
  check_values(run1(make_node("QuantizeLinear", 3, {{"axis", int_attr(-1)}}), in), {2, 3}, {4, 12, 21, 8, 6, 24});
  // Axis 0 of a [3, 2] tensor: rows scaled 1, 2, 4.
  check_values(run1(make_node("QuantizeLinear", 3, {{"axis", int_attr(0)}}),
                    {f32({3, 2}, {4, 8, 4, -8, 4, 16}), f32({3}, {1, 2, 4}), u8({3}, {0, 10, 20})}),
               {3, 2}, {4, 8, 12, 6, 21, 24});
  // Before opset 13 the scale is a scalar.
  CHECK(error_of(with_opset(make_node("QuantizeLinear", 3), 10), in) == Errc::invalid_input);
  // The scale must match the axis; the zero point the scale.
  CHECK(error_of(make_node("QuantizeLinear", 3, {{"axis", int_attr(0)}}), in) == Errc::invalid_input);
  CHECK(error_of(make_node("QuantizeLinear", 3, {{"axis", int_attr(2)}}), in) == Errc::invalid_input);
  CHECK(error_of(make_node("QuantizeLinear", 3), {in[0], in[1], u8({}, {0})}) == Errc::invalid_input);
  // Wrong types: a float64 x, an int32 scale, an int32 zero point.
  CHECK(error_of(make_node("QuantizeLinear", 2), {tensor<double>({1}, {1}), scalar(1)}) == Errc::invalid_input);
  CHECK(error_of(make_node("QuantizeLinear", 2), {f32({1}, {1}), i32({}, {1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("QuantizeLinear", 3), {f32({1}, {1}), scalar(1), i32({}, {1})}) == Errc::invalid_input);
}

TEST_CASE("quant ops: DequantizeLinear per tensor and per axis") {
  // (x - 128) * 2.
  check_values(run1(make_node("DequantizeLinear", 3), {u8({4}, {0, 3, 128, 255}), scalar(2), u8({}, {128})}), {4},
               {-256, -250, 0, 254});
  // int32 input (zero point absent, i.e. 0).
  check_values(run1(make_node("DequantizeLinear", 2), {i32({2}, {-5, 7}), scalar(0.5f)}), {2}, {-2.5, 3.5});
  // Per row of an int8 [2, 2]: scale [2, 0.5], zero point [1, -2].
  const Tensor y = run1(make_node("DequantizeLinear", 3, {{"axis", int_attr(0)}}),
                        {i8({2, 2}, {-1, 2, 3, -4}), f32({2}, {2, 0.5f}), i8({2}, {1, -2})});
  CHECK(y.dtype() == DType::f32);
  check_values(y, {2, 2}, {-4, 2, 2.5, -1});
  // The zero point has x's type.
  CHECK(error_of(make_node("DequantizeLinear", 3), {u8({1}, {1}), scalar(1), i8({}, {0})}) == Errc::invalid_input);
  CHECK(error_of(make_node("DequantizeLinear", 2), {f32({1}, {1}), scalar(1)}) == Errc::invalid_input);
}

TEST_CASE("quant ops: DynamicQuantizeLinear") {
  // Range [0, 2.55]: scale 0.01, zero point 0.
  auto r = run_q(make_node("DynamicQuantizeLinear", 1, {}, 3), {f32({4}, {0, 2.55f, 1, 0.01f})});
  REQUIRE(r.ok());
  check_values(r.value()[0], {4}, {0, 255, 100, 1});
  check_values(r.value()[1], {}, {0.01});
  check_values(r.value()[2], {}, {0});
  // Range [-1.02, 0]: scale 0.004, zero point 1.02 / 0.004 = 255; -0.4 -> -100 + 255.
  r = run_q(make_node("DynamicQuantizeLinear", 1, {}, 3), {f32({3}, {-1.02f, -0.4f, 0})});
  REQUIRE(r.ok());
  check_values(r.value()[0], {3}, {0, 155, 255});
  check_values(r.value()[1], {}, {0.004});
  check_values(r.value()[2], {}, {255});
  // All zeros: scale 0, every code the zero point 0.
  r = run_q(make_node("DynamicQuantizeLinear", 1, {}, 3), {f32({2}, {0, 0})});
  REQUIRE(r.ok());
  check_values(r.value()[0], {2}, {0, 0});
  check_values(r.value()[1], {}, {0});
  CHECK(error_of(make_node("DynamicQuantizeLinear", 1, {}, 3), {u8({1}, {1})}) == Errc::invalid_input);
}

TEST_CASE("quant ops: MatMulInteger") {
  const Tensor a = u8({2, 3}, {11, 7, 3, 10, 6, 2});
  const Tensor b = u8({3, 2}, {1, 4, 2, 5, 3, 6});
  // A - 12 = [[-1, -5, -9], [-2, -6, -10]] times B.
  const Tensor y = run1(make_node("MatMulInteger", 4), {a, b, u8({}, {12}), u8({}, {0})});
  CHECK(y.dtype() == DType::i32);
  check_values(y, {2, 2}, {-38, -83, -44, -98});
  // Per-row zero points of A [12, 10], per-column ones of B [1, 0]:
  // [[-1, -5, -9], [0, -4, -8]] times [[0, 4], [1, 5], [2, 6]].
  check_values(run1(make_node("MatMulInteger", 4), {a, b, u8({2}, {12, 10}), u8({2}, {1, 0})}), {2, 2},
               {-23, -83, -20, -68});
  // No zero points; int8 A [2, 1, 2] broadcast against B [2, 1].
  check_values(run1(make_node("MatMulInteger", 2), {i8({2, 1, 2}, {1, 2, 3, -4}), i8({2, 1}, {5, 6})}), {2, 1, 1},
               {17, -9});
  CHECK(error_of(make_node("MatMulInteger", 2), {f32({1, 1}, {1}), u8({1, 1}, {1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("MatMulInteger", 3), {a, b, i8({}, {0})}) == Errc::invalid_input);
  CHECK(error_of(make_node("MatMulInteger", 2), {a, u8({2, 2}, {1, 2, 3, 4})}) == Errc::invalid_input);
  CHECK(error_of(make_node("MatMulInteger", 3), {a, b, u8({3}, {1, 2, 3})}) == Errc::unsupported);
}

TEST_CASE("quant ops: QLinearMatMul requantizes") {
  // A [[2, 4]] (scale 0.5, zp 0); B - 1 = [[2, 3], [0, 1]] (scale 1): sums [4, 10];
  // * 0.5 * 1 / 0.5 = [4, 10]; + 120 saturates to int8: [124, 127].
  const std::vector<Tensor> in{u8({1, 2}, {2, 4}), scalar(0.5f), u8({}, {0}),  u8({2, 2}, {3, 4, 1, 2}),
                               scalar(1),          u8({}, {1}),  scalar(0.5f), i8({}, {120})};
  const Tensor y = run1(make_node("QLinearMatMul", 8), in);
  CHECK(y.dtype() == DType::i8);
  check_values(y, {1, 2}, {124, 127});
  // y_scale 8: [0.5, 1.25] -> [0, 1] (half to even) + 120.
  std::vector<Tensor> coarse = in;
  coarse[6] = scalar(8);
  check_values(run1(make_node("QLinearMatMul", 8), coarse), {1, 2}, {120, 121});
  // Per-column B scale [1, 2]: [4, 20] * 0.5 / 8 = [0.25, 1.25] -> [0, 1].
  coarse[4] = f32({2}, {1, 2});
  check_values(run1(make_node("QLinearMatMul", 8), coarse), {1, 2}, {120, 121});
  CHECK(error_of(make_node("QLinearMatMul", 7), {in.begin(), in.end() - 1}) == Errc::invalid_input);
  std::vector<Tensor> bad = in;
  bad[6] = f32({2}, {1, 1});  // y_scale must be a scalar
  CHECK(error_of(make_node("QLinearMatMul", 8), bad) == Errc::invalid_input);
}

TEST_CASE("quant ops: ConvInteger pads with the zero point") {
  // x = 2..10 (zp 1) convolved with a 2x2 kernel of ones, pads 1: padding adds 0.
  const Tensor x = u8({1, 1, 3, 3}, {2, 3, 4, 5, 6, 7, 8, 9, 10});
  const Node conv = make_node("ConvInteger", 3, {{"pads", ints({1, 1, 1, 1})}});
  const Tensor y = run1(conv, {x, u8({1, 1, 2, 2}, {1, 1, 1, 1}), u8({}, {1})});
  CHECK(y.dtype() == DType::i32);
  check_values(y, {1, 1, 4, 4}, {1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9});
  // Per-output-channel weight zero points: w - [1, 2] = [2, 3] on x [4, 6].
  check_values(run1(make_node("ConvInteger", 4),
                    {u8({1, 1, 1, 2}, {4, 6}), i8({2, 1, 1, 1}, {3, 5}), u8({}, {0}), i8({2}, {1, 2})}),
               {1, 2, 1, 2}, {8, 12, 12, 18});
  CHECK(error_of(make_node("ConvInteger", 4), {u8({1, 1, 1, 2}, {4, 6}), i8({2, 1, 1, 1}, {3, 5}), u8({}, {0}),
                                               i8({3}, {1, 2, 3})}) == Errc::invalid_input);
  CHECK(error_of(make_node("ConvInteger", 2), {f32({1, 1, 1, 2}, {4, 6}), i8({2, 1, 1, 1}, {3, 5})}) ==
        Errc::invalid_input);
}

TEST_CASE("quant ops: QLinearConv adds the bias and requantizes per channel") {
  // x - 10 = [0, 10] (scale 0.5); w [2, -3] with scales [1, 0.5]; B [4, -2].
  // oc 0: [0, 20] + 4 = [4, 24] * 0.5 = [2, 12] + 100.
  // oc 1: [0, -30] - 2 = [-2, -32] * 0.25 = [-0.5, -8] -> [0, -8] + 100.
  std::vector<Tensor> in{u8({1, 1, 1, 2}, {10, 20}), scalar(0.5f),    u8({}, {10}), i8({2, 1, 1, 1}, {2, -3}),
                         f32({2}, {1, 0.5f}),        i8({2}, {0, 0}), scalar(1),    u8({}, {100}),
                         i32({2}, {4, -2})};
  const Tensor y = run1(make_node("QLinearConv", 9), in);
  CHECK(y.dtype() == DType::u8);
  check_values(y, {1, 2, 1, 2}, {102, 112, 100, 92});
  // Without the bias: [0, 10], [0, -7.5 -> -8].
  in.pop_back();
  check_values(run1(make_node("QLinearConv", 8), in), {1, 2, 1, 2}, {100, 110, 100, 92});
  in.push_back(i32({3}, {1, 2, 3}));
  CHECK(error_of(make_node("QLinearConv", 9), in) == Errc::invalid_input);
}
