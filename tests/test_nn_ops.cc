// nn op family: shape inference (ir/ops/nn_ops.cc, conv_geometry.cc) and
// the reference kernels (backends/reference/nn_*.cc). Expected values are
// computed by hand in the comments; the randomized cases compare the kernels
// against a naive loop written straight from the ONNX definition (tolerance
// stated there, seed printed).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "ir/ops/conv_geometry.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Every input is a run-time input here (as the weights of the ONNX
// conformance cases are): inference sees only types.
std::vector<bool> no_constants(const std::vector<Tensor>& inputs) { return std::vector<bool>(inputs.size(), false); }

Result<std::vector<TensorType>> infer(const Node& node, const std::vector<Tensor>& inputs) {
  return infer_node(node, inputs, no_constants(inputs));
}

Result<std::vector<Tensor>> run_node(const Node& node, const std::vector<Tensor>& inputs) {
  return test::run_node(node, inputs, no_constants(inputs));
}

// Runs the node and returns output #0 (REQUIREs success).
Tensor run1(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_node(node, inputs);
  if (!r.ok()) FAIL(r.status().message());
  return r.value()[0];
}

std::string error_of(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = infer(node, inputs);
  return r.ok() ? std::string("(no error)") : r.status().message();
}

}  // namespace

TEST_CASE("Conv: padding, stride and dilation") {
  // x = 1..9 as 3x3; a 2x2 kernel of ones sums each 2x2 block.
  const Tensor x = iota({1, 1, 3, 3}, 1);
  check_values(run1(make_node("Conv", 2), {x, f32({1, 1, 2, 2}, {1, 1, 1, 1})}), {1, 1, 2, 2}, {12, 16, 24, 28});

  // 3x3 ones, pads 1, stride 2: windows centred on the corners see 2x2 blocks.
  Node padded = make_node("Conv", 2, {{"pads", ints({1, 1, 1, 1})}, {"strides", ints({2, 2})}});
  check_values(run1(padded, {x, f32({1, 1, 3, 3}, std::vector<float>(9, 1))}), {1, 1, 2, 2}, {12, 16, 24, 28});

  // x = 0..15 as 4x4; 2x2 ones dilated by 2: (0,0) sums x[0,0]+x[0,2]+x[2,0]+x[2,2] = 0+2+8+10.
  Node dilated = make_node("Conv", 2, {{"dilations", ints({2, 2})}});
  check_values(run1(dilated, {iota({1, 1, 4, 4}), f32({1, 1, 2, 2}, {1, 1, 1, 1})}), {1, 1, 2, 2}, {20, 24, 36, 40});

  // 3-D: a 2x2x2 box of ones over ones gives 8; with bias 0.5.
  Node conv3d = make_node("Conv", 3);
  check_values(run1(conv3d, {f32({1, 1, 2, 2, 2}, std::vector<float>(8, 1)), f32({1, 1, 2, 2, 2}, std::vector<float>(8, 1)),
                             f32({1}, {0.5f})}),
               {1, 1, 1, 1, 1}, {8.5});
}

TEST_CASE("Conv: groups and depthwise") {
  // Channels [1, 2 | 3, 4], group 2: out0 = 1*1 + 2*1 = 3, out1 = 3*1 + 4*(-1) = -1; bias 10, 20.
  Node grouped = make_node("Conv", 3, {{"group", int_attr(2)}});
  check_values(run1(grouped, {f32({1, 4, 1, 1}, {1, 2, 3, 4}), f32({2, 2, 1, 1}, {1, 1, 1, -1}), f32({2}, {10, 20})}),
               {1, 2, 1, 1}, {13, 19});

  // Depthwise, channel multiplier 2: channel 0 = [1 2; 3 4] feeds outputs 0 and 1,
  // channel 1 = [5 6; 7 8] feeds outputs 2 and 3.
  Node depthwise = make_node("Conv", 2, {{"group", int_attr(2)}});
  const Tensor w = f32({4, 1, 2, 2}, {1, 1, 1, 1,  /* sum 10 */ 1, 0, 0, 0, /* 1 */
                                      1, 0, 0, -1, /* 5-8 */ 0, 0, 0, 2 /* 16 */});
  check_values(run1(depthwise, {iota({1, 2, 2, 2}, 1), w}), {1, 4, 1, 1}, {10, 1, -3, 16});
}

TEST_CASE("Conv: auto_pad SAME_UPPER and SAME_LOWER put the odd pad on opposite sides") {
  // 1-D, x = [1 2 3 4], w = [1 10], total padding 1.
  const Tensor x = f32({1, 1, 4}, {1, 2, 3, 4});
  const Tensor w = f32({1, 1, 2}, {1, 10});
  Node upper = make_node("Conv", 2, {{"auto_pad", str("SAME_UPPER")}});
  Node lower = make_node("Conv", 2, {{"auto_pad", str("SAME_LOWER")}});
  auto gu = conv_geometry(upper, x.shape(), w.shape());
  auto gl = conv_geometry(lower, x.shape(), w.shape());
  REQUIRE(gu.ok());
  REQUIRE(gl.ok());
  CHECK(gu->pads_begin == std::vector<int64_t>{0});
  CHECK(gu->pads_end == std::vector<int64_t>{1});
  CHECK(gl->pads_begin == std::vector<int64_t>{1});
  CHECK(gl->pads_end == std::vector<int64_t>{0});
  // Upper: y[i] = x[i] + 10 x[i+1]; lower: y[i] = x[i-1] + 10 x[i].
  check_values(run1(upper, {x, w}), {1, 1, 4}, {21, 32, 43, 4});
  check_values(run1(lower, {x, w}), {1, 1, 4}, {10, 21, 32, 43});

  // Stride 2 on 5 positions: out = ceil(5/2) = 3; VALID: (5-2)/2+1 = 2.
  Node strided = make_node("Conv", 2, {{"auto_pad", str("SAME_UPPER")}, {"strides", ints({2})}});
  CHECK(infer(strided, {f32({1, 1, 5}, {1, 2, 3, 4, 5}), w})->at(0).shape == Shape{1, 1, 3});
  Node valid = make_node("Conv", 2, {{"auto_pad", str("VALID")}, {"strides", ints({2})}});
  CHECK(infer(valid, {f32({1, 1, 5}, {1, 2, 3, 4, 5}), w})->at(0).shape == Shape{1, 1, 2});
}

TEST_CASE("Conv: attribute and shape errors name the node") {
  Node grouped = make_node("Conv", 2, {{"group", int_attr(2)}});
  const std::string e1 = error_of(grouped, {iota({1, 3, 4, 4}), iota({2, 1, 1, 1})});
  CHECK(e1.find("node 't_Conv'") != std::string::npos);
  CHECK(e1.find("divisible by group") != std::string::npos);

  const std::string e2 = error_of(make_node("Conv", 2), {iota({1, 1, 2, 2}), iota({1, 1, 3, 3})});
  CHECK(e2.find("larger than the padded input") != std::string::npos);

  Node bad_pad = make_node("Conv", 2, {{"auto_pad", str("SAME")}});
  CHECK(error_of(bad_pad, {iota({1, 1, 4, 4}), iota({1, 1, 3, 3})}).find("auto_pad") != std::string::npos);

  Node bad_strides = make_node("Conv", 2, {{"strides", ints({1})}});
  CHECK(error_of(bad_strides, {iota({1, 1, 4, 4}), iota({1, 1, 3, 3})}).find("strides must have 2 values") !=
        std::string::npos);

  CHECK(error_of(make_node("Conv", 3), {iota({1, 1, 4, 4}), iota({2, 1, 3, 3}), iota({3})}).find("bias B") !=
        std::string::npos);
}

TEST_CASE("Conv: fused activation and residual (bias, then residual, then activation)") {
  // 1x1 kernel of 1, bias -5, residual of ones: pre-activation = x - 4 for x = 1..9.
  const Tensor x = iota({1, 1, 3, 3}, 1);
  const Tensor w = f32({1, 1, 1, 1}, {1});
  const Tensor b = f32({1}, {-5});
  const Tensor ones = f32({1, 1, 3, 3}, std::vector<float>(9, 1));
  Node relu = make_node("Conv", 4, {{kAttrActivation, str("Relu")}, {kAttrResidual, int_attr(1)}});
  check_values(run1(relu, {x, w, b, ones}), {1, 1, 3, 3}, {0, 0, 0, 0, 1, 2, 3, 4, 5});

  Node leaky = make_node("Conv", 4,
                         {{kAttrActivation, str("LeakyRelu")}, {kAttrAlpha, float_attr(0.1f)}, {kAttrResidual, int_attr(1)}});
  check_values(run1(leaky, {x, w, b, ones}), {1, 1, 3, 3}, {-0.3, -0.2, -0.1, 0, 1, 2, 3, 4, 5});

  // Clip to [0, 3] without residual: x - 5 clipped.
  Node clip = make_node("Conv", 3,
                        {{kAttrActivation, str("Clip")}, {kAttrAlpha, float_attr(0)}, {kAttrBeta, float_attr(3)}});
  check_values(run1(clip, {x, w, b}), {1, 1, 3, 3}, {0, 0, 0, 0, 0, 1, 2, 3, 3});

  // Bias omitted next to a residual: x + 1, then HardSigmoid(0.2 x + 0.5) = 0.2 (x + 1) + 0.5, clipped at 1.
  Node hs = make_node("Conv", 4, {{kAttrActivation, str("HardSigmoid")}, {kAttrResidual, int_attr(1)}});
  hs.inputs[2] = "";
  check_values(run1(hs, {x, w, Tensor(), ones}), {1, 1, 3, 3}, {0.9, 1, 1, 1, 1, 1, 1, 1, 1});

  Node sig = make_node("Conv", 2, {{kAttrActivation, str("Sigmoid")}});
  check_values(run1(sig, {f32({1, 1, 1, 2}, {0, 2}), w}), {1, 1, 1, 2}, {0.5, 1 / (1 + std::exp(-2.0))});

  Node unknown = make_node("Conv", 2, {{kAttrActivation, str("Gelu")}});
  CHECK(error_of(unknown, {x, w}).find("caliprox.activation") != std::string::npos);
  Node short_res = make_node("Conv", 3, {{kAttrResidual, int_attr(1)}});
  CHECK_FALSE(infer(short_res, {x, w, b}).ok());
  CHECK(error_of(relu, {x, w, b, f32({1, 1, 1, 1}, {1})}).find("residual") != std::string::npos);
}

TEST_CASE("ConvTranspose: stride, output_padding, pads, output_shape, auto_pad, groups") {
  // 1-D, x = [1 2], w = [1 1], stride 2: x0 -> positions 0,1; x1 -> 2,3.
  const Tensor x = f32({1, 1, 2}, {1, 2});
  const Tensor w2 = f32({1, 1, 2}, {1, 1});
  Node plain = make_node("ConvTranspose", 2, {{"strides", ints({2})}});
  check_values(run1(plain, {x, w2}), {1, 1, 4}, {1, 1, 2, 2});

  // output_padding 1 adds a position at the end that gets only the bias.
  Node out_pad = make_node("ConvTranspose", 3, {{"strides", ints({2})}, {"output_padding", ints({1})}});
  check_values(run1(out_pad, {x, w2, f32({1}, {0.5f})}), {1, 1, 5}, {1.5, 1.5, 2.5, 2.5, 0.5});

  // Stride 1: [1 3 2]; pads [1, 0] crop the first position.
  Node cropped = make_node("ConvTranspose", 2, {{"pads", ints({1, 0})}});
  check_values(run1(cropped, {x, w2}), {1, 1, 2}, {3, 2});

  // output_shape longer than the full result: zeros at the end.
  Node longer = make_node("ConvTranspose", 2, {{"strides", ints({2})}, {"output_shape", ints({6})}});
  check_values(run1(longer, {x, w2}), {1, 1, 6}, {1, 1, 2, 2, 0, 0});

  // Kernel 3, stride 2: full = [1 1 3 2 2]; SAME_* asks for 2*2 = 4 positions,
  // total padding 1: UPPER crops at the end, LOWER at the start.
  const Tensor w3 = f32({1, 1, 3}, {1, 1, 1});
  Node upper = make_node("ConvTranspose", 2, {{"strides", ints({2})}, {"auto_pad", str("SAME_UPPER")}});
  Node lower = make_node("ConvTranspose", 2, {{"strides", ints({2})}, {"auto_pad", str("SAME_LOWER")}});
  check_values(run1(upper, {x, w3}), {1, 1, 4}, {1, 1, 3, 2});
  check_values(run1(lower, {x, w3}), {1, 1, 4}, {1, 3, 2, 2});

  // Dilation 2, kernel 2: x0 -> 0,2; x1 -> 1,3 => [1 2 1 2].
  Node dilated = make_node("ConvTranspose", 2, {{"dilations", ints({2})}});
  check_values(run1(dilated, {x, w2}), {1, 1, 4}, {1, 2, 1, 2});

  // group 2, one output channel per group: [1*3, 2*4].
  Node grouped = make_node("ConvTranspose", 2, {{"group", int_attr(2)}});
  check_values(run1(grouped, {f32({1, 2, 1}, {1, 2}), f32({2, 1, 1}, {3, 4})}), {1, 2, 1}, {3, 8});

  // 2-D, 1x1 input, 2x2 kernel, two output channels: each channel is the kernel times x.
  check_values(run1(make_node("ConvTranspose", 2), {f32({1, 1, 1, 1}, {2}), iota({1, 2, 2, 2}, 1)}), {1, 2, 2, 2},
               {2, 4, 6, 8, 10, 12, 14, 16});

  Node bad = make_node("ConvTranspose", 2, {{"output_padding", ints({1})}});
  CHECK(error_of(bad, {x, w2}).find("output_padding") != std::string::npos);
  CHECK(error_of(make_node("ConvTranspose", 2), {x, f32({2, 1, 2}, {1, 1, 1, 1})}).find("C_in") != std::string::npos);
}

TEST_CASE("Gemm: transposes, alpha/beta and broadcast C") {
  // A = [1 2 3; 4 5 6], B = [1 0; 0 1; 1 1] => AB = [4 5; 10 11].
  const Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor at = f32({3, 2}, {1, 4, 2, 5, 3, 6});
  const Tensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  const Tensor bt = f32({2, 3}, {1, 0, 1, 0, 1, 1});
  const Tensor c_row = f32({2}, {10, 20});
  // 2 AB + 0.5 [10 20] = [13 20; 25 32].
  const std::map<std::string, Attribute> scaled = {{"alpha", float_attr(2)}, {"beta", float_attr(0.5f)}};
  const std::vector<double> expected{13, 20, 25, 32};
  check_values(run1(make_node("Gemm", 3, scaled), {a, b, c_row}), {2, 2}, expected);
  auto with = [&](const char* key) {
    auto attrs = scaled;
    attrs[key] = int_attr(1);
    return attrs;
  };
  check_values(run1(make_node("Gemm", 3, with("transA")), {at, b, c_row}), {2, 2}, expected);
  check_values(run1(make_node("Gemm", 3, with("transB")), {a, bt, c_row}), {2, 2}, expected);
  auto both = with("transA");
  both["transB"] = int_attr(1);
  check_values(run1(make_node("Gemm", 3, both), {at, bt, c_row}), {2, 2}, expected);

  // C as a column [M, 1], as a scalar, and omitted.
  check_values(run1(make_node("Gemm", 3), {a, b, f32({2, 1}, {1, 2})}), {2, 2}, {5, 6, 12, 13});
  check_values(run1(make_node("Gemm", 3), {a, b, f32({}, {1})}), {2, 2}, {5, 6, 11, 12});
  check_values(run1(make_node("Gemm", 2), {a, b}), {2, 2}, {4, 5, 10, 11});

  CHECK(error_of(make_node("Gemm", 2), {a, a}).find("inner dimensions") != std::string::npos);
  CHECK(error_of(make_node("Gemm", 3), {a, b, f32({3}, {1, 2, 3})}).find("broadcast") != std::string::npos);
}

TEST_CASE("MatMul: 1-D operands and batch broadcasting") {
  // Vector . vector = 1*4 + 2*5 + 3*6 = 32, a scalar.
  check_values(run1(make_node("MatMul", 2), {f32({3}, {1, 2, 3}), f32({3}, {4, 5, 6})}), {}, {32});
  // [1 2] x [1 2 3; 4 5 6] = [9 12 15].
  const Tensor m23 = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  check_values(run1(make_node("MatMul", 2), {f32({2}, {1, 2}), m23}), {3}, {9, 12, 15});
  // [1 2 3; 4 5 6] x [1 1 1] = [6 15].
  check_values(run1(make_node("MatMul", 2), {m23, f32({3}, {1, 1, 1})}), {2}, {6, 15});

  // A [2, 1, 2, 2] with A[i] = (i+1) I, B [3, 2, 2] with B[j] = iota + 4j:
  // out [2, 3, 2, 2] with out[i, j] = (i+1) B[j].
  const Tensor a = f32({2, 1, 2, 2}, {1, 0, 0, 1, 2, 0, 0, 2});
  const Tensor b = iota({3, 2, 2});
  std::vector<double> expected;
  for (int i = 0; i < 2; ++i)
    for (int v = 0; v < 12; ++v) expected.push_back((i + 1) * v);
  check_values(run1(make_node("MatMul", 2), {a, b}), {2, 3, 2, 2}, expected);

  // Batched A against one shared matrix.
  check_values(run1(make_node("MatMul", 2), {iota({2, 1, 2}), f32({2, 1}, {1, 10})}), {2, 1, 1}, {10, 32});

  CHECK(error_of(make_node("MatMul", 2), {iota({2, 2, 3}), iota({3, 3, 1})}).find("do not broadcast") !=
        std::string::npos);
  CHECK(error_of(make_node("MatMul", 2), {iota({2, 3}), iota({2, 3})}).find("inner dimensions") != std::string::npos);
}

TEST_CASE("BatchNormalization: inference mode") {
  // Channel 0: (x - 1) / sqrt(4) * 1 + 0; channel 1: (x - 3) / sqrt(1) * 2 + 1.
  Node bn = make_node("BatchNormalization", 5, {{"epsilon", float_attr(0)}});
  const std::vector<Tensor> in{iota({1, 2, 1, 2}, 1), f32({2}, {1, 2}), f32({2}, {0, 1}), f32({2}, {1, 3}),
                               f32({2}, {4, 1})};
  check_values(run1(bn, in), {1, 2, 1, 2}, {0, 0.5, 1, 3});

  Node training = make_node("BatchNormalization", 5, {{"training_mode", int_attr(1)}});
  auto r = infer(training, in);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::unsupported);
  Node stats = make_node("BatchNormalization", 5, {}, 3);
  CHECK(infer(stats, in).status().code() == Errc::unsupported);
  Node omitted = make_node("BatchNormalization", 5, {}, 3);
  omitted.outputs[1] = omitted.outputs[2] = "";
  CHECK(infer(omitted, in).ok());
  CHECK(error_of(bn, {in[0], f32({3}, {1, 1, 1}), in[2], in[3], in[4]}).find("scale") != std::string::npos);
}

TEST_CASE("MaxPool: ceil_mode, Indices with both storage orders, pads and dilation") {
  // x = 0..15 as 4x4, kernel 3, stride 2: floor mode keeps one window (max 10);
  // ceil mode adds the windows hanging over the edge: maxima 11, 14, 15.
  const Tensor x = iota({1, 1, 4, 4});
  std::map<std::string, Attribute> attrs{{"kernel_shape", ints({3, 3})}, {"strides", ints({2, 2})}};
  check_values(run1(make_node("MaxPool", 1, attrs), {x}), {1, 1, 1, 1}, {10});
  attrs["ceil_mode"] = int_attr(1);
  auto r = run_node(make_node("MaxPool", 1, attrs, 2), {x});
  REQUIRE(r.ok());
  check_values(r.value()[0], {1, 1, 2, 2}, {10, 11, 14, 15});
  CHECK(r.value()[1].dtype() == DType::i64);
  check_values(r.value()[1], {1, 1, 2, 2}, {10, 11, 14, 15});
  // Column-major: (h, w) -> w * 4 + h: (2,2)=10, (2,3)=14, (3,2)=11, (3,3)=15.
  attrs["storage_order"] = int_attr(1);
  r = run_node(make_node("MaxPool", 1, attrs, 2), {x});
  REQUIRE(r.ok());
  check_values(r.value()[1], {1, 1, 2, 2}, {10, 14, 11, 15});

  // Indices count the batch and channel planes too: the second plane starts at 16.
  r = run_node(make_node("MaxPool", 1, {{"kernel_shape", ints({4, 4})}}, 2), {iota({1, 2, 4, 4})});
  REQUIRE(r.ok());
  check_values(r.value()[1], {1, 2, 1, 1}, {15, 31});

  // 1-D x = [1 5 2 4 3], kernel 2 dilated by 2, pads 1: windows {-1,1} {0,2} {1,3} {2,4} {3,5}.
  Node dil = make_node("MaxPool", 1, {{"kernel_shape", ints({2})}, {"dilations", ints({2})}, {"pads", ints({1, 1})}});
  check_values(run1(dil, {f32({1, 1, 5}, {1, 5, 2, 4, 3})}), {1, 1, 5}, {5, 2, 5, 3, 4});

  // SAME_UPPER, kernel 2: the padding goes at the end: [2 3 4 4].
  Node same = make_node("MaxPool", 1, {{"kernel_shape", ints({2})}, {"auto_pad", str("SAME_UPPER")}});
  check_values(run1(same, {f32({1, 1, 4}, {1, 2, 3, 4})}), {1, 1, 4}, {2, 3, 4, 4});
  // Negative values with padding: pads never win a max.
  Node pad_neg = make_node("MaxPool", 1, {{"kernel_shape", ints({2})}, {"pads", ints({1, 1})}});
  check_values(run1(pad_neg, {f32({1, 1, 2}, {-3, -1})}), {1, 1, 3}, {-3, -1, -1});

  CHECK(error_of(make_node("MaxPool", 1), {x}).find("kernel_shape") != std::string::npos);
  Node big = make_node("MaxPool", 1, {{"kernel_shape", ints({5, 5})}});
  CHECK(error_of(big, {x}).find("larger than the padded input") != std::string::npos);
}

TEST_CASE("AveragePool: count_include_pad, ceil_mode, auto_pad; GlobalAveragePool") {
  // x = [1 2 3 4], kernel 3, pads 1: windows {-1..1} {0..2} {1..3} {2..4}.
  const Tensor x = f32({1, 1, 4}, {1, 2, 3, 4});
  std::map<std::string, Attribute> attrs{{"kernel_shape", ints({3})}, {"pads", ints({1, 1})}};
  check_values(run1(make_node("AveragePool", 1, attrs), {x}), {1, 1, 4}, {1.5, 2, 3, 3.5});
  attrs["count_include_pad"] = int_attr(1);
  check_values(run1(make_node("AveragePool", 1, attrs), {x}), {1, 1, 4}, {1, 2, 3, 7.0 / 3});

  // x = [1..5], kernel 2, stride 2: floor mode [1.5 3.5]; ceil mode adds the
  // overhanging window {4, 5} which only sees 5 (and counts only it, even with
  // count_include_pad, since it lies beyond the padded input).
  const Tensor x5 = f32({1, 1, 5}, {1, 2, 3, 4, 5});
  std::map<std::string, Attribute> ceil{{"kernel_shape", ints({2})}, {"strides", ints({2})}};
  check_values(run1(make_node("AveragePool", 1, ceil), {x5}), {1, 1, 2}, {1.5, 3.5});
  ceil["ceil_mode"] = int_attr(1);
  check_values(run1(make_node("AveragePool", 1, ceil), {x5}), {1, 1, 3}, {1.5, 3.5, 5});
  ceil["count_include_pad"] = int_attr(1);
  check_values(run1(make_node("AveragePool", 1, ceil), {x5}), {1, 1, 3}, {1.5, 3.5, 5});

  // SAME_LOWER, kernel 2: the pad goes first: windows {-1,0} {0,1} {1,2} {2,3};
  // the first averages only x0 unless pads count.
  Node lower = make_node("AveragePool", 1, {{"kernel_shape", ints({2})}, {"auto_pad", str("SAME_LOWER")}});
  check_values(run1(lower, {x}), {1, 1, 4}, {1, 1.5, 2.5, 3.5});
  lower.attrs["count_include_pad"] = int_attr(1);
  check_values(run1(lower, {x}), {1, 1, 4}, {0.5, 1.5, 2.5, 3.5});

  // 2-D 3x3 over x = 0..15 (4x4), stride 1: the mean of each 3x3 block is its centre.
  check_values(run1(make_node("AveragePool", 1, {{"kernel_shape", ints({3, 3})}}), {iota({1, 1, 4, 4})}),
               {1, 1, 2, 2}, {5, 6, 9, 10});

  // GlobalAveragePool: planes [1..4] and [5..8].
  check_values(run1(make_node("GlobalAveragePool", 1), {iota({1, 2, 2, 2}, 1)}), {1, 2, 1, 1}, {2.5, 6.5});
  check_values(run1(make_node("GlobalMaxPool", 1), {iota({2, 1, 3}, 1)}), {2, 1, 1}, {3, 6});
  CHECK(error_of(make_node("GlobalAveragePool", 1), {iota({2, 3})}).find("rank >= 3") != std::string::npos);
}

namespace {

struct RandomConvCase {
  int64_t n, group, cin_g, cout_g, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};

RandomConvCase random_case(std::mt19937& rng) {
  auto pick = [&rng](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  RandomConvCase c{};
  c.n = pick(1, 2), c.group = pick(1, 3), c.cin_g = pick(1, 3), c.cout_g = pick(1, 3);
  c.h = pick(1, 9), c.w = pick(1, 9), c.kh = pick(1, 3), c.kw = pick(1, 3);
  c.sh = pick(1, 3), c.sw = pick(1, 3), c.dh = pick(1, 2), c.dw = pick(1, 2);
  c.pt = pick(0, 2), c.pl = pick(0, 2), c.pb = pick(0, 2), c.pr = pick(0, 2);
  return c;
}

Tensor random_tensor(Shape shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& e : v) e = dist(rng);
  return f32(std::move(shape), v);
}

unsigned test_seed() {
  const unsigned seed = std::random_device{}();
  std::printf("test_nn_ops: random seed %u\n", seed);
  return seed;
}

}  // namespace

// Oracle: the ONNX Conv definition as a naive loop with double accumulation.
// Tolerance: 1e-4 relative (float accumulation of at most 27 products).
TEST_CASE("Conv matches a naive loop on random geometries") {
  const unsigned seed = test_seed();
  std::mt19937 rng(seed);
  int checked = 0;
  while (checked < 60) {
    const RandomConvCase c = random_case(rng);
    const int64_t ekh = (c.kh - 1) * c.dh + 1, ekw = (c.kw - 1) * c.dw + 1;
    if (c.h + c.pt + c.pb < ekh || c.w + c.pl + c.pr < ekw) continue;
    const int64_t cin = c.group * c.cin_g, cout = c.group * c.cout_g;
    const int64_t oh_n = (c.h + c.pt + c.pb - ekh) / c.sh + 1, ow_n = (c.w + c.pl + c.pr - ekw) / c.sw + 1;
    const Tensor x = random_tensor({c.n, cin, c.h, c.w}, rng);
    const Tensor w = random_tensor({cout, c.cin_g, c.kh, c.kw}, rng);
    const Tensor b = random_tensor({cout}, rng);
    Node node = make_node("Conv", 3,
                          {{"group", int_attr(c.group)},
                           {"strides", ints({c.sh, c.sw})},
                           {"dilations", ints({c.dh, c.dw})},
                           {"pads", ints({c.pt, c.pl, c.pb, c.pr})}});
    const Tensor y = run1(node, {x, w, b});
    std::vector<double> expected;
    const float* xd = x.data<float>();
    const float* wd = w.data<float>();
    for (int64_t n = 0; n < c.n; ++n)
      for (int64_t oc = 0; oc < cout; ++oc)
        for (int64_t oh = 0; oh < oh_n; ++oh)
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            double acc = b.data<float>()[oc];
            const int64_t g = oc / c.cout_g;
            for (int64_t icg = 0; icg < c.cin_g; ++icg)
              for (int64_t kh = 0; kh < c.kh; ++kh)
                for (int64_t kw = 0; kw < c.kw; ++kw) {
                  const int64_t ih = oh * c.sh - c.pt + kh * c.dh, iw = ow * c.sw - c.pl + kw * c.dw;
                  if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
                  acc += double(xd[((n * cin + g * c.cin_g + icg) * c.h + ih) * c.w + iw]) *
                         wd[((oc * c.cin_g + icg) * c.kh + kh) * c.kw + kw];
                }
            expected.push_back(acc);
          }
    INFO("seed " << seed << " case " << checked);
    check_values(y, {c.n, cout, oh_n, ow_n}, expected, 1e-4);
    ++checked;
  }
}

// Oracle: the ConvTranspose definition (input i and tap k land on
// i * stride + k * dilation - pad_begin) as a naive scatter in double.
TEST_CASE("ConvTranspose matches a naive scatter on random geometries") {
  const unsigned seed = test_seed();
  std::mt19937 rng(seed);
  int checked = 0;
  while (checked < 60) {
    const RandomConvCase c = random_case(rng);
    const int64_t oph = std::uniform_int_distribution<int64_t>(0, std::max(c.sh, c.dh) - 1)(rng);
    const int64_t opw = std::uniform_int_distribution<int64_t>(0, std::max(c.sw, c.dw) - 1)(rng);
    const int64_t oh_n = c.sh * (c.h - 1) + oph + (c.kh - 1) * c.dh + 1 - c.pt - c.pb;
    const int64_t ow_n = c.sw * (c.w - 1) + opw + (c.kw - 1) * c.dw + 1 - c.pl - c.pr;
    if (oh_n < 1 || ow_n < 1) continue;
    const int64_t cin = c.group * c.cin_g, cout = c.group * c.cout_g;
    const Tensor x = random_tensor({c.n, cin, c.h, c.w}, rng);
    const Tensor w = random_tensor({cin, c.cout_g, c.kh, c.kw}, rng);
    const Tensor b = random_tensor({cout}, rng);
    Node node = make_node("ConvTranspose", 3,
                          {{"group", int_attr(c.group)},
                           {"strides", ints({c.sh, c.sw})},
                           {"dilations", ints({c.dh, c.dw})},
                           {"output_padding", ints({oph, opw})},
                           {"pads", ints({c.pt, c.pl, c.pb, c.pr})}});
    const Tensor y = run1(node, {x, w, b});
    std::vector<double> expected(static_cast<size_t>(c.n * cout * oh_n * ow_n));
    for (int64_t n = 0; n < c.n; ++n)
      for (int64_t oc = 0; oc < cout; ++oc)
        for (int64_t i = 0; i < oh_n * ow_n; ++i) expected[static_cast<size_t>((n * cout + oc) * oh_n * ow_n + i)] = b.data<float>()[oc];
    const float* xd = x.data<float>();
    const float* wd = w.data<float>();
    for (int64_t n = 0; n < c.n; ++n)
      for (int64_t ic = 0; ic < cin; ++ic)
        for (int64_t ocg = 0; ocg < c.cout_g; ++ocg)
          for (int64_t ih = 0; ih < c.h; ++ih)
            for (int64_t iw = 0; iw < c.w; ++iw)
              for (int64_t kh = 0; kh < c.kh; ++kh)
                for (int64_t kw = 0; kw < c.kw; ++kw) {
                  const int64_t oh = ih * c.sh + kh * c.dh - c.pt, ow = iw * c.sw + kw * c.dw - c.pl;
                  if (oh < 0 || oh >= oh_n || ow < 0 || ow >= ow_n) continue;
                  const int64_t oc = (ic / c.cin_g) * c.cout_g + ocg;
                  expected[static_cast<size_t>(((n * cout + oc) * oh_n + oh) * ow_n + ow)] +=
                      double(xd[((n * cin + ic) * c.h + ih) * c.w + iw]) * wd[((ic * c.cout_g + ocg) * c.kh + kh) * c.kw + kw];
                }
    INFO("seed " << seed << " case " << checked);
    check_values(y, {c.n, cout, oh_n, ow_n}, expected, 1e-4);
    ++checked;
  }
}

TEST_CASE("MaxPool on uint8 (opset 12)") {
  const std::vector<uint8_t> v{3, 250, 7, 9};
  const Tensor x = Tensor::copy_of(DType::u8, {1, 1, 4}, v.data());
  const Tensor y = run1(make_node("MaxPool", 1, {{"kernel_shape", ints({2})}, {"pads", ints({0, 1})}}), {x});
  CHECK(y.dtype() == DType::u8);
  check_values(y, {1, 1, 4}, {250, 250, 9, 9});
}

TEST_CASE("float64 runs through the same kernels") {
  auto f64 = [](Shape shape, std::vector<double> v) { return Tensor::copy_of(DType::f64, std::move(shape), v.data()); };
  const Tensor x = f64({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Tensor y = run1(make_node("Conv", 2), {x, f64({1, 1, 2, 2}, {1, 1, 1, 1})});
  CHECK(y.dtype() == DType::f64);
  check_values(y, {1, 1, 2, 2}, {12, 16, 24, 28}, 1e-12);
  check_values(run1(make_node("Gemm", 2, {{"transB", int_attr(1)}}), {f64({1, 2}, {1, 2}), f64({1, 2}, {3, 4})}), {1, 1},
               {11}, 1e-12);
  check_values(run1(make_node("MatMul", 2), {f64({2}, {1, 2}), f64({2}, {3, 4})}), {}, {11}, 1e-12);
  check_values(run1(make_node("AveragePool", 1, {{"kernel_shape", ints({3, 3})}}), {x}), {1, 1, 1, 1}, {5}, 1e-12);
  // Mixed dtypes are outside the reference kernels: unsupported, not a crash.
  auto mixed = run_node(make_node("Conv", 2), {x, f32({1, 1, 2, 2}, {1, 1, 1, 1})});
  CHECK_FALSE(mixed.ok());
}
