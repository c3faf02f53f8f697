// Reference Conv under approximation knobs (backends/reference/nn_knob_conv.cc),
// against the semantics in knobs/knobs.h. Hand-computed cases state their
// arithmetic in the comments (the fp16 / bf16 / int8 numbers were worked out
// with numpy float16 / float32 step by step). The randomized cases restate
// each knob through the exact reference Conv: perforation = exact conv on the
// computed rows plus interpolation, sampling = exact conv with masked and
// rescaled weights, precision knobs = exact conv on rounded / dequantised
// operands (seed printed, tolerances stated there).
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "knobs/knobs.h"
#include "node_harness.h"

namespace caliprox {
namespace {

using namespace test;

const Knob& knob(std::string_view name) {
  const Knob* k = find_knob(name);
  REQUIRE_MESSAGE(k != nullptr, "no knob " << std::string(name));
  return *k;
}

NodeContext context_for(const Node& node, const std::vector<Tensor>& inputs, const std::vector<bool>& constant,
                        const std::vector<TensorType>& types, const Knob& k, std::optional<ValueRange> range) {
  NodeContext ctx{node, {}, {}, types, 1};
  for (size_t i = 0; i < inputs.size(); ++i) {
    ctx.input_types.push_back(inputs[i].empty() ? TensorType{} : inputs[i].type());
    ctx.constants.push_back(inputs[i].empty() || !constant[i] ? nullptr : &inputs[i]);
  }
  ctx.knob = &k;
  ctx.input_range = range;
  return ctx;
}

// run_node with ctx.knob (and the int8 range) set: the reference backend's
// supports(), prepare() and run(); output #0.
Result<Tensor> run_knob(const Node& node, const std::vector<Tensor>& inputs, const std::vector<bool>& constant,
                        const Knob& k, std::optional<ValueRange> range = std::nullopt) {
  CP_ASSIGN_OR_RETURN(std::vector<TensorType> types, infer_node(node, inputs, constant));
  auto backend = make_reference_backend({});
  const NodeContext ctx = context_for(node, inputs, constant, types, k, range);
  if (!backend->supports(ctx)) return unsupported("{}: knob '{}' not supported", node.describe(), k.name);
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> kernel, backend->prepare(ctx));
  std::vector<const Tensor*> in_ptrs;
  for (const Tensor& t : inputs) in_ptrs.push_back(t.empty() ? nullptr : &t);
  Tensor out(types[0].dtype, types[0].shape);
  std::vector<Tensor*> out_ptrs{&out};
  CP_TRY(kernel->run(in_ptrs, out_ptrs));
  return out;
}

std::vector<bool> weights_constant(size_t inputs) {
  std::vector<bool> c(inputs, false);
  for (size_t i = 1; i < std::min<size_t>(inputs, 3); ++i) c[i] = true;
  return c;
}

Tensor knob1(const Node& node, const std::vector<Tensor>& inputs, std::string_view name,
             std::optional<ValueRange> range = std::nullopt) {
  auto r = run_knob(node, inputs, weights_constant(inputs.size()), knob(name), range);
  if (!r.ok()) FAIL(r.status().message());
  return r.value();
}

Tensor exact1(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_node(node, inputs, weights_constant(inputs.size()));
  if (!r.ok()) FAIL(r.status().message());
  return r.value()[0];
}

void check_exact(const Tensor& t, const std::vector<float>& expected) {
  const std::vector<double> got = t.to_double_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == static_cast<double>(expected[i]));
  }
}

Node fused_conv(size_t inputs, const std::string& act, float alpha = 0) {
  std::map<std::string, Attribute> attrs{{kAttrResidual, int_attr(1)}, {kAttrActivation, str(act)}};
  if (act == "LeakyRelu") attrs[kAttrAlpha] = float_attr(alpha);
  return make_node("Conv", inputs, attrs);
}

// 1x1 conv with weight 2 and bias 1 maps x to 2x + 1, so the interpolation
// is visible directly. X rows: [1,0] [3,5] [0,0] [7,1] [2,2];
// exact rows: [3,1] [7,11] [1,1] [15,3] [5,5].
TEST_CASE("knob Conv: perforated rows are exact, skipped rows interpolate, edges copy") {
  const Node conv = make_node("Conv", 3);
  const Tensor x = f32({1, 1, 5, 2}, {1, 0, 3, 5, 0, 0, 7, 1, 2, 2});
  const Tensor w = f32({1, 1, 1, 1}, {2});
  const Tensor b = f32({1}, {1});
  const Shape y_shape{1, 1, 5, 2};
  // perf-row-2-0 skips 0, 2, 4: row 0 copies row 1, row 2 = mean(rows 1, 3) = [11, 7], row 4 copies row 3.
  check_values(knob1(conv, {x, w, b}, "perf-row-2-0"), y_shape, {7, 11, 7, 11, 11, 7, 15, 3, 15, 3});
  // perf-row-2-1 skips 1, 3: mean([3,1],[1,1]) = [2,1], mean([1,1],[5,5]) = [3,3].
  check_values(knob1(conv, {x, w, b}, "perf-row-2-1"), y_shape, {3, 1, 2, 1, 1, 1, 3, 3, 5, 5});
  // perf-row-3-1: row 0 is before the offset (computed); skips 1 and 4 (bottom edge copies row 3).
  check_values(knob1(conv, {x, w, b}, "perf-row-3-1"), y_shape, {3, 1, 2, 1, 1, 1, 15, 3, 15, 3});
  // perf-row-4-3: rows 0..2 before the offset; skips 3 only.
  check_values(knob1(conv, {x, w, b}, "perf-row-4-3"), y_shape, {3, 1, 7, 11, 1, 1, 3, 3, 5, 5});
}

// X [1,1,2,5], same 2x + 1 conv: exact row 0 [3,7,1,15,5], row 1 [1,11,1,3,5].
TEST_CASE("knob Conv: perforated columns") {
  const Node conv = make_node("Conv", 3);
  const Tensor x = f32({1, 1, 2, 5}, {1, 3, 0, 7, 2, 0, 5, 0, 1, 2});
  const Tensor w = f32({1, 1, 1, 1}, {2});
  const Tensor b = f32({1}, {1});
  const Shape y_shape{1, 1, 2, 5};
  // Skips 0, 2, 4: col 0 copies col 1, col 2 = mean(cols 1, 3), col 4 copies col 3.
  check_values(knob1(conv, {x, w, b}, "perf-col-2-0"), y_shape, {7, 7, 11, 15, 15, 11, 11, 7, 3, 3});
  // Skips 1, 3: mean(3,1) = 2, mean(1,1) = 1; mean(1,5) = 3, mean(1,5) = 3.
  check_values(knob1(conv, {x, w, b}, "perf-col-2-1"), y_shape, {3, 2, 1, 3, 5, 1, 1, 1, 3, 5});
  // Cols 0, 1 before the offset; skips 2: mean(7,15) = 11, mean(11,3) = 7.
  check_values(knob1(conv, {x, w, b}, "perf-col-3-2"), y_shape, {3, 7, 11, 15, 5, 1, 11, 7, 3, 5});
}

// y = relu(interp(conv + bias) + residual). X rows [-4] [100] [2], W 1, bias
// 0.5, residual [1, 5, 1], perf-row-2-1 (skips row 1): conv+bias rows 0, 2 =
// -3.5, 2.5; row 1 = -0.5; + residual = -2.5, 4.5, 3.5; relu = 0, 4.5, 3.5.
// Interpolating after the residual would give row 1 = mean(-2.5, 3.5) = 0.5,
// after the activation mean(0, 3.5) = 1.75.
TEST_CASE("knob Conv: perforation interpolates before the fused residual and activation") {
  const Node conv = fused_conv(4, "Relu");
  const Tensor x = f32({1, 1, 3, 1}, {-4, 100, 2});
  const Tensor r = f32({1, 1, 3, 1}, {1, 5, 1});
  check_values(knob1(conv, {x, f32({1, 1, 1, 1}, {1}), f32({1}, {0.5f}), r}, "perf-row-2-1"), {1, 1, 3, 1},
               {0, 4.5, 3.5});
  // Without a bias input (allowed next to a fused residual): rows -4, -1, 2 -> +r -> relu = 0, 4, 3.
  check_values(knob1(conv, {x, f32({1, 1, 1, 1}, {1}), Tensor(), r}, "perf-row-2-1"), {1, 1, 3, 1}, {0, 4, 3});
}

// Two input channels, 2x2 kernel: KH*KW = 4 is divisible by 2 and 4, so the
// dropped offset rotates per channel. X c0 [1,2,3,4], c1 [5,6,7,8];
// W c0 [1,-1,2,3], c1 [-2,1,1,4]; bias 0.5. Tolerance 1e-6 relative.
TEST_CASE("knob Conv: sampling with KH*KW divisible by the rate rotates the offset per channel") {
  const Node conv = make_node("Conv", 3);
  const Tensor x = f32({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor w = f32({1, 2, 2, 2}, {1, -1, 2, 3, -2, 1, 1, 4});
  const Tensor b = f32({1}, {0.5f});
  // samp-2-0: c0 drops t 0,2 (keeps -1*2 + 3*4 = 10); c1 drops t 1,3 (keeps -2*5 + 1*7 = -3); 2 * 7 + 0.5.
  check_values(knob1(conv, {x, w, b}, "samp-2-0"), {1, 1, 1, 1}, {14.5}, 1e-6);
  // samp-4-3: c0 drops t 3 (1 - 2 + 6 = 5); c1 drops t 0 (6 + 7 + 32 = 45); 50 * 4/3 + 0.5.
  check_values(knob1(conv, {x, w, b}, "samp-4-3"), {1, 1, 1, 1}, {50.0 * 4 / 3 + 0.5}, 1e-6);
}

// Two channels, 3x3 kernel: 9 is not divisible by 2 or 4, so the flattened
// index over both channels counts. X c0 all 1, c1 all 2; W c0 1..9, c1 10..18.
TEST_CASE("knob Conv: sampling with KH*KW not divisible by the rate uses the flattened index") {
  const Node conv = make_node("Conv", 2);
  std::vector<float> xv(9, 1.0f), wv(18);
  xv.resize(18, 2.0f);
  for (size_t i = 0; i < wv.size(); ++i) wv[i] = static_cast<float>(i + 1);
  const Tensor x = f32({1, 2, 3, 3}, xv);
  const Tensor w = f32({1, 2, 3, 3}, wv);
  // samp-2-1 drops odd flat indices: c0 keeps 1+3+5+7+9 = 25, c1 (flat 9..17) keeps 11+13+15+17 = 56;
  // (25 + 2 * 56) * 2 = 274. A per-channel rotation would keep 10+12+...+18 in c1 instead.
  check_values(knob1(conv, {x, w}, "samp-2-1"), {1, 1, 1, 1}, {274}, 1e-6);
  // samp-4-2 drops flat 2, 6, 10, 14: c0 loses 3 and 7 (35), c1 loses 11 and 15 (100); (35 + 200) * 4/3.
  check_values(knob1(conv, {x, w}, "samp-4-2"), {1, 1, 1, 1}, {235.0 * 4 / 3}, 1e-6);
}

TEST_CASE("knob Conv: sampling on grouped, depthwise and strided convolutions") {
  // Depthwise (C_in/group = 1), 2x2 kernel, samp-2-0 keeps t 1, 3 of every filter, scale 2.
  // X c0 [1,2,3,4], c1 [5,6,7,8]; W oc0 [1,1,1,1], oc1 [1,2,3,4]; bias [1,-1].
  // oc0: 2*(2 + 4) + 1 = 13; oc1: 2*(2*6 + 4*8) - 1 = 87.
  const Node depthwise = make_node("Conv", 3, {{"group", int_attr(2)}});
  check_values(knob1(depthwise, {f32({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}),
                                 f32({2, 1, 2, 2}, {1, 1, 1, 1, 1, 2, 3, 4}), f32({2}, {1, -1})},
                     "samp-2-0"),
               {1, 2, 1, 1}, {13, 87}, 1e-6);
  // Two groups of two channels, 1x2 kernel, samp-2-0: in-group channel 0 drops t 0, channel 1 drops t 1.
  // X ch [1,2] [3,4] [5,6] [7,8]; W oc0 [1,2][3,4], oc1 [5,6][7,8].
  // oc0 (ch 0,1): 2*(2*2 + 3*3) = 26; oc1 (ch 2,3): 2*(6*6 + 7*7) = 170.
  const Node grouped = make_node("Conv", 2, {{"group", int_attr(2)}});
  check_values(knob1(grouped, {f32({1, 4, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8}),
                               f32({2, 2, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8})},
                     "samp-2-0"),
               {1, 2, 1, 1}, {26, 170}, 1e-6);
  // Stride 2, 2x2 kernel over X = 0..15 (4x4); samp-2-1 keeps t 0, 2 (the left column of each
  // window): W [1,5,2,7] -> 2*x[2i][2j] + 4*x[2i+1][2j]: 0+16, 4+24, 16+48, 20+56.
  const Node strided = make_node("Conv", 2, {{"strides", ints({2, 2})}});
  check_values(knob1(strided, {iota({1, 1, 4, 4}), f32({1, 1, 2, 2}, {1, 5, 2, 7})}, "samp-2-1"), {1, 1, 2, 2},
               {16, 28, 64, 76}, 1e-6);
}

// 1x1 conv, W = 1/3 (half 0.333251953125), bias 0.1 (half 0.0999755859375);
// X = 1+2^-11 (a tie: half 1.0), 0.1, 2049 (a tie: half 2048), -3.3.
// Expected = half(half(x) * half(w) + half(b)), worked out with numpy.float16.
TEST_CASE("knob Conv: fp16 rounds inputs, weights, bias, residual and output to IEEE half") {
  const Tensor x = f32({1, 1, 2, 2}, {1.0f + 0x1p-11f, 0.1f, 2049.0f, -3.3f});
  const Tensor w = f32({1, 1, 1, 1}, {1.0f / 3.0f});
  const Tensor b = f32({1}, {0.1f});
  // Without rounding: 0.43349609, 0.13333334, 683.1, -1.0000. Tolerance: exact.
  check_exact(knob1(make_node("Conv", 3), {x, w, b}, "fp16"), {0.43310546875f, 0.13330078125f, 682.5f, -1.0f});
  // + half(residual [0.2, -700.3, 0.3, 5.05]), relu, half.
  const Tensor r = f32({1, 1, 2, 2}, {0.2f, -700.3f, 0.3f, 5.05f});
  check_exact(knob1(fused_conv(4, "Relu"), {x, w, b, r}, "fp16"), {0.63330078125f, 0.0f, 683.0f, 4.05078125f});
}

// samp-3-0-fp16 on a 1x3 kernel drops t 0 and scales by 1.5; the layer's
// weights are half(w * 1.5): half(0.1 * 1.5) = 0.1500244140625, whereas
// half(w) * 1.5 and half(half(w) * 1.5) would both end as 0.14990234375.
TEST_CASE("knob Conv: half variants of sampling round the scaled weights to half") {
  const Node conv = make_node("Conv", 2);
  check_exact(knob1(conv, {f32({1, 1, 1, 3}, {5, 1, 0}), f32({1, 1, 1, 3}, {9, 0.1f, 7})}, "samp-3-0-fp16"),
              {0.1500244140625f});
}

// bf16 rounds X and W only; bias, residual and output stay fp32.
// X = 1+2^-8 (a tie: 1.0), 1+3*2^-9 (1.0078125), 0.1 (0.10009765625), -300.7 (-300);
// W = 1/3 (0.333984375); bias 0.1; residual [0.1, 0.2, -0.3, 0.4]; LeakyRelu 0.1.
// Expected = leaky(bf(x) * bf(w) + 0.1f + r) in float32 (numpy). Tolerance 1e-6 relative.
TEST_CASE("knob Conv: bf16 rounds input and weights, keeps bias and output in fp32") {
  const Tensor x = f32({1, 1, 2, 2}, {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-9f, 0.1f, -300.7f});
  const Tensor r = f32({1, 1, 2, 2}, {0.1f, 0.2f, -0.3f, 0.4f});
  check_values(knob1(fused_conv(4, "LeakyRelu", 0.1f), {x, f32({1, 1, 1, 1}, {1.0f / 3.0f}), f32({1}, {0.1f}), r},
                     "bf16"),
               {1, 1, 2, 2}, {0.533984363079071, 0.6365936398506165, -0.016656896099448204, -9.969531059265137},
               1e-6);
}

// 1x1 conv, 2 -> 3 channels. X ch0 [2.5, 3.5, 300, -200], ch1 [-1, 0.5, 1.5, -2.5].
// W oc0 [127, -63.5] (scale 1, codes 127, -64: a tie to even), oc1 [0, 0]
// (max 0: scale 1), oc2 [2.54, 1] (scale 2.54f/127 = 0.019999999552965164,
// codes 127, 50); bias [0.5, -1, 0]. Tolerance 1e-6 relative.
TEST_CASE("knob Conv: int8 matches a hand-quantised computation") {
  const Node conv = make_node("Conv", 3);
  const std::vector<Tensor> in{f32({1, 2, 1, 4}, {2.5f, 3.5f, 300, -200, -1, 0.5f, 1.5f, -2.5f}),
                               f32({3, 2, 1, 1}, {127, -63.5f, 0, 0, 2.54f, 1}), f32({3}, {0.5f, -1, 0})};
  SUBCASE("unsigned: range [0, 255], scale 1, codes clamp to [0, 255]") {
    // ch0 codes [2, 4, 255, 0], ch1 [0, 0, 2, 0] (2.5 -> 2, 3.5 -> 4, 0.5 -> 0, 1.5 -> 2: ties to even).
    // oc0: 254, 508, 32385 - 128, 0 (+0.5); oc2: 254, 508, 32385 + 100, 0 (* 0.02).
    check_values(knob1(conv, in, "int8", ValueRange{0, 255}), {1, 3, 1, 4},
                 {254.5, 508.5, 32257.5, 0.5, -1, -1, -1, -1, 5.079999923706055, 10.15999984741211,
                  649.7000122070312, 0},
                 1e-6);
  }
  SUBCASE("signed: range [-127, 63], scale max(|min|, |max|) / 127 = 1, codes clamp to [-128, 127]") {
    // ch0 codes [2, 4, 127, -128], ch1 [-1, 0, 2, -2].
    // oc0: 254 + 64, 508, 16129 - 128, -16256 + 128 (+0.5); oc2: 254 - 50, 508, 16129 + 100, -16256 - 100.
    check_values(knob1(conv, in, "int8", ValueRange{-127, 63}), {1, 3, 1, 4},
                 {318.5, 508.5, 16001.5, -16127.5, -1, -1, -1, -1, 4.079999923706055, 10.15999984741211,
                  324.5799865722656, -327.1199951171875},
                 1e-6);
  }
}

TEST_CASE("knob Conv: int8 without a calibrated input range is invalid input") {
  const Node conv = make_node("Conv", 2);
  auto r = run_knob(conv, {iota({1, 1, 3, 3}), iota({1, 1, 2, 2})}, {false, true}, knob("int8"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::invalid_input);
  CHECK(r.status().message().find("int8") != std::string::npos);
  CHECK(r.status().message().find("t_Conv") != std::string::npos);
}

TEST_CASE("knob Conv: knobs apply to 2-D Conv only") {
  const auto supported = [](const Node& node, const std::vector<Tensor>& inputs, std::string_view name) {
    auto types = infer_node(node, inputs, std::vector<bool>(inputs.size(), false));
    REQUIRE(types.ok());
    const NodeContext ctx =
        context_for(node, inputs, std::vector<bool>(inputs.size(), false), types.value(), knob(name), ValueRange{0, 1});
    CHECK(reference::supports_knob_conv(ctx) == make_reference_backend({})->supports(ctx));
    return reference::supports_knob_conv(ctx);
  };
  CHECK_FALSE(supported(make_node("Relu", 1), {iota({1, 1, 4, 4})}, "perf-row-2-0"));
  CHECK_FALSE(supported(make_node("MaxPool", 1, {{"kernel_shape", ints({2, 2})}}), {iota({1, 1, 4, 4})}, "int8"));
  CHECK_FALSE(supported(make_node("ConvTranspose", 2), {iota({1, 1, 4, 4}), iota({1, 1, 2, 2})}, "samp-2-0"));
  CHECK_FALSE(supported(make_node("Conv", 2), {iota({1, 1, 8}), iota({1, 1, 3})}, "fp16"));  // 1-D
  // A one-row output leaves perf-row-2-0 nothing to compute.
  CHECK_FALSE(supported(make_node("Conv", 2), {iota({1, 1, 3, 4}), iota({1, 1, 3, 3})}, "perf-row-2-0"));
  CHECK(supported(make_node("Conv", 2), {iota({1, 1, 3, 4}), iota({1, 1, 3, 3})}, "perf-row-2-1"));
  CHECK(supported(make_node("Conv", 2), {iota({1, 1, 4, 4}), iota({1, 1, 3, 3})}, "int8"));
}


// ---- Randomized: every knob restated through the exact reference Conv ----

struct ConvCase {
  const char* label;
  Shape x, w;
  std::map<std::string, Attribute> attrs;
  bool bias;
  std::string act;  // empty: no fusion; "Relu" / "LeakyRelu" (alpha 0.2): fused residual + activation
};

std::vector<ConvCase> conv_cases() {
  return {
      {"3x3 pad 1, batch 2", {2, 3, 7, 6}, {4, 3, 3, 3}, {{"pads", ints({1, 1, 1, 1})}}, true, ""},
      {"grouped, strided, dilated, asymmetric pads",
       {1, 4, 9, 8},
       {4, 2, 3, 2},
       {{"group", int_attr(2)}, {"strides", ints({2, 1})}, {"dilations", ints({1, 2})}, {"pads", ints({1, 0, 2, 1})}},
       false,
       ""},
      {"depthwise, stride 2, residual + Relu",
       {1, 3, 7, 7},
       {3, 1, 3, 3},
       {{"group", int_attr(3)}, {"strides", ints({2, 2})}, {"pads", ints({1, 1, 1, 1})}},
       true,
       "Relu"},
      {"dilated 2x2, no bias, residual + LeakyRelu", {1, 2, 6, 5}, {3, 2, 2, 2}, {{"dilations", ints({2, 2})}}, false,
       "LeakyRelu"},
  };
}

struct CaseData {
  Node node;               // with the fused residual / activation when the case has them
  Node plain;              // the same conv without them
  std::vector<Tensor> in;  // X, W, B (empty when absent), and the residual when fused
  std::string act;
};

Tensor random_tensor(Shape shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& e : v) e = u(rng);
  return f32(std::move(shape), v);
}

CaseData make_case(const ConvCase& c, std::mt19937& rng) {
  CaseData d;
  d.plain = make_node("Conv", 3, c.attrs);
  d.node = d.plain;
  d.act = c.act;
  d.in = {random_tensor(c.x, rng), random_tensor(c.w, rng), c.bias ? random_tensor({c.w[0]}, rng) : Tensor()};
  if (!c.act.empty()) {
    d.node.inputs.push_back("in3");
    d.node.attrs[kAttrResidual] = int_attr(1);
    d.node.attrs[kAttrActivation] = str(c.act);
    if (c.act == "LeakyRelu") d.node.attrs[kAttrAlpha] = float_attr(0.2f);
    d.in.push_back(random_tensor(exact1(d.plain, d.in).shape(), rng));
  }
  return d;
}

float activate(const std::string& act, float v) {
  if (act == "Relu") return v > 0 ? v : 0;
  if (act == "LeakyRelu") return v >= 0 ? v : 0.2f * v;
  return v;
}

template <typename F> Tensor map_values(const Tensor& t, F f) {
  if (t.empty()) return t;
  std::vector<float> v(t.span<float>().begin(), t.span<float>().end());
  for (float& e : v) e = f(e);
  return f32(t.shape(), v);
}
float to_half(float v) { return half_to_float(float_to_half(v)); }
float to_bf16(float v) {  // round to nearest even on the upper 16 bits (finite inputs here)
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  return std::bit_cast<float>((bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u);
}

// W with sampling's mask and scale applied (zeros where dropped), optionally
// rounded to half: the weights an exact conv needs to reproduce the knob.
Tensor sampled_weights(const Tensor& w, const Knob& k, bool half) {
  const Shape& s = w.shape();
  const std::vector<bool> keep = sampling_mask(k, s[1], s[2], s[3]);
  const size_t filter = keep.size();
  std::vector<float> v(w.span<float>().begin(), w.span<float>().end());
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = keep[i % filter] ? v[i] * sampling_scale(k) : 0.0f;
    if (half) v[i] = to_half(v[i]);
  }
  return f32(s, v);
}

// act(interp(pre) + residual), where pre = the exact conv + bias.
std::vector<float> perforation_expected(const Tensor& pre, const Tensor* residual, const std::string& act,
                                        const Knob& k) {
  const Shape& s = pre.shape();
  const int64_t h = s[2], w = s[3], extent = k.rows ? h : w, other = k.rows ? w : h;
  std::vector<bool> computed(static_cast<size_t>(extent), false);
  for (int64_t p : perforation_kept(k, extent)) computed[static_cast<size_t>(p)] = true;
  std::vector<float> v(pre.span<float>().begin(), pre.span<float>().end());
  for (int64_t plane = 0; plane < s[0] * s[1]; ++plane) {
    const auto at = [&](int64_t p, int64_t q) -> float& {
      return v[static_cast<size_t>(plane * h * w + (k.rows ? p * w + q : q * w + p))];
    };
    for (int64_t p = 0; p < extent; ++p) {
      if (computed[static_cast<size_t>(p)]) continue;
      for (int64_t q = 0; q < other; ++q) {
        if (p == 0) at(p, q) = at(p + 1, q);
        else if (p == extent - 1) at(p, q) = at(p - 1, q);
        else at(p, q) = (at(p - 1, q) + at(p + 1, q)) / 2;
      }
    }
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (residual != nullptr) v[i] += residual->span<float>()[i];
    v[i] = activate(act, v[i]);
  }
  return v;
}

void check_close(const Tensor& got, const std::vector<float>& expected, double abs_tol, double rel_tol) {
  const auto g = got.span<float>();
  REQUIRE(g.size() == expected.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", expected " << expected[i]);
    CHECK(std::fabs(g[i] - expected[i]) <= abs_tol + rel_tol * std::fabs(expected[i]));
  }
}
std::vector<float> values(const Tensor& t) { return {t.span<float>().begin(), t.span<float>().end()}; }

// Runs every case under `k` with constant weights/bias and with run-time ones,
// comparing with expected(case) within the tolerances.
template <typename Expected>
void check_knob_on_cases(const Knob& k, std::optional<ValueRange> range, Expected expected, double abs_tol,
                         double rel_tol) {
  std::mt19937 rng(20240611);
  for (const ConvCase& c : conv_cases()) {
    const CaseData d = make_case(c, rng);
    const std::vector<float> want = expected(d);
    for (bool constant : {true, false}) {
      INFO("knob " << k.name << ", case '" << c.label << "', weights " << (constant ? "constant" : "run-time"));
      std::vector<bool> flags = constant ? weights_constant(d.in.size()) : std::vector<bool>(d.in.size(), false);
      auto got = run_knob(d.node, d.in, flags, k, range);
      REQUIRE_MESSAGE(got.ok(), got.status().message());
      check_close(got.value(), want, abs_tol, rel_tol);
    }
  }
}

std::vector<Tensor> with_inputs(const CaseData& d, const Tensor& x, const Tensor& w, const Tensor& b,
                                const Tensor& residual) {
  std::vector<Tensor> in{x, w, b};
  if (d.in.size() > 3) in.push_back(residual);
  return in;
}
const Tensor& residual_of(const CaseData& d) {
  static const Tensor none;
  return d.in.size() > 3 ? d.in[3] : none;
}

// Tolerance: 1e-6 relative + 1e-6 absolute (the same fp32 operations in the
// same order as the exact kernel, so in practice equal).
TEST_CASE("knob Conv randomized: perforation = exact conv on computed rows/columns, interpolated elsewhere") {
  MESSAGE("seed 20240611");
  for (const Knob& k : knob_catalogue()) {
    if (k.kind != KnobKind::perforation || k.half) continue;
    check_knob_on_cases(k, std::nullopt, [&k](const CaseData& d) {
      const Tensor pre = exact1(d.plain, {d.in[0], d.in[1], d.in[2]});
      return perforation_expected(pre, d.in.size() > 3 ? &d.in[3] : nullptr, d.act, k);
    }, 1e-6, 1e-6);
  }
}

TEST_CASE("knob Conv randomized: sampling = exact conv with masked, rescaled weights") {
  MESSAGE("seed 20240611; tolerance 1e-6 relative + 1e-6 absolute");
  for (const Knob& k : knob_catalogue()) {
    if (k.kind != KnobKind::sampling || k.half) continue;
    check_knob_on_cases(k, std::nullopt, [&k](const CaseData& d) {
      return values(exact1(d.node, with_inputs(d, d.in[0], sampled_weights(d.in[1], k, false), d.in[2], residual_of(d))));
    }, 1e-6, 1e-6);
  }
}

// Half knobs = half(the fp32 knob on half-rounded x, weights, bias, residual).
// Tolerance: exact (the same fp32 operations, then the same rounding).
TEST_CASE("knob Conv randomized: half knobs are their fp32 twins on half operands, output rounded") {
  MESSAGE("seed 20240611");
  for (const Knob& k : knob_catalogue()) {
    if (!k.half) continue;
    check_knob_on_cases(k, std::nullopt, [&k](const CaseData& d) {
      const Tensor hx = map_values(d.in[0], to_half), hb = map_values(d.in[2], to_half);
      const Tensor hr = map_values(residual_of(d), to_half);
      Tensor y;
      if (k.kind == KnobKind::sampling) {
        y = exact1(d.node, with_inputs(d, hx, sampled_weights(d.in[1], k, true), hb, hr));
      } else {
        const std::vector<Tensor> in = with_inputs(d, hx, map_values(d.in[1], to_half), hb, hr);
        if (k.kind == KnobKind::fp16) {
          y = exact1(d.node, in);
        } else {
          const std::string twin = k.name.substr(0, k.name.size() - std::string("-fp16").size());
          y = knob1(d.node, in, twin);
        }
      }
      std::vector<float> v = values(map_values(y, to_half));
      return v;
    }, 0, 0);
  }
}

// bf16 = exact conv on bf16-rounded x and W, fp32 bias and residual.
TEST_CASE("knob Conv randomized: bf16 = exact conv on bfloat16-rounded input and weights") {
  MESSAGE("seed 20240611; tolerance 1e-6 relative + 1e-6 absolute");
  check_knob_on_cases(knob("bf16"), std::nullopt, [](const CaseData& d) {
    return values(exact1(d.node, with_inputs(d, map_values(d.in[0], to_bf16), map_values(d.in[1], to_bf16), d.in[2],
                                             residual_of(d))));
  }, 1e-6, 1e-6);
}

// int8 = exact conv on the dequantised codes (qx * sx, qw * sw[oc]), with
// the quantisation restated here from the knob's definition. Tolerance
// 2e-5 absolute + 1e-5 relative: float rounding of the dequantised products
// (an off-by-one code moves the output by about sx * |w| >= 1e-3 here).
TEST_CASE("knob Conv randomized: int8 = exact conv on dequantised input and weights") {
  MESSAGE("seed 20240611");
  const auto code = [](float v, float scale, float lo, float hi) {
    return std::clamp(std::nearbyint(v / scale), lo, hi);
  };
  for (const ValueRange range : {ValueRange{-1, 1}, ValueRange{-0.5f, 0.25f}, ValueRange{0, 0.6f}}) {
    INFO("range [" << range.min << ", " << range.max << "]");
    const bool is_unsigned = range.min >= 0;
    const float sx = is_unsigned ? range.max / 255.0f : std::max(std::fabs(range.min), std::fabs(range.max)) / 127.0f;
    check_knob_on_cases(knob("int8"), range, [&](const CaseData& d) {
      const Tensor x = map_values(d.in[0], [&](float v) {
        return is_unsigned ? code(v, sx, 0, 255) * sx : code(v, sx, -128, 127) * sx;
      });
      const Tensor& w = d.in[1];
      const int64_t filter = w.numel() / w.dim(0);
      std::vector<float> wq = values(w);
      for (int64_t oc = 0; oc < w.dim(0); ++oc) {
        float max_abs = 0;
        for (int64_t i = 0; i < filter; ++i) max_abs = std::max(max_abs, std::fabs(wq[oc * filter + i]));
        const float sw = max_abs > 0 ? max_abs / 127.0f : 1.0f;
        for (int64_t i = 0; i < filter; ++i) wq[oc * filter + i] = code(wq[oc * filter + i], sw, -127, 127) * sw;
      }
      return values(exact1(d.node, with_inputs(d, x, f32(w.shape(), wq), d.in[2], residual_of(d))));
    }, 2e-5, 1e-5);
  }
}

}  // namespace
}  // namespace caliprox
