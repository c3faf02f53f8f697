// oneDNN backend (src/backends/onednn/) against the reference backend, one
// node at a time through Backend::supports / prepare / Kernel::run, on
// randomized cases (seed printed; CALIPROX_TEST_SEED=<n> replays one).
// Tolerances: see onednn_cases.h.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/onednn/conv.h"
#include "ir/op_registry.h"
#include "cpu_needs.h"
#include "onednn_cases.h"
#include "util/cpu.h"

namespace {
// oneDNN's optimized element-wise, softmax and binary kernels are x86 ones.
const bool kOptimizedEltwise = caliprox::cpu::features().arch == caliprox::cpu::Arch::x86_64;
constexpr const char* kEltwiseReason = "oneDNN 2.6 implements these ops on aarch64 with reference kernels only, which the backend does not claim: the reference backend runs them";
}  // namespace

using namespace caliprox;
using namespace caliprox::onednn_test;

TEST_CASE("onednn: Conv matches the reference on random geometries") {
  const unsigned seed = test_seed("conv");
  std::mt19937 rng(seed);
  for (int i = 0; i < 60; ++i) {
    const NodeCase c = random_conv(rng, rand_int(rng, 1, 3));
    INFO("seed " << seed << " case " << i << ": " << describe(c));
    check_against_reference(c, 1e-4);
  }
}

TEST_CASE("onednn: Conv with fused residual and activation") {
  const unsigned seed = test_seed("conv fused");
  std::mt19937 rng(seed);
  int i = 0;
  for (const char* act : kActivations) {
    for (bool residual : {false, true}) {
      NodeCase c = random_conv(rng, rand_int(rng, 1, 2));
      add_fusion(c, rng, residual, act);
      INFO("seed " << seed << " case " << i++ << ": " << describe(c));
      check_against_reference(c, 1e-4);
    }
  }
  // Residual alone, with and without bias.
  for (int k = 0; k < 4; ++k) {
    NodeCase c = random_conv(rng, 2);
    add_fusion(c, rng, true, nullptr);
    INFO("seed " << seed << " residual-only case " << k << ": " << describe(c));
    check_against_reference(c, 1e-4);
  }
}

TEST_CASE("onednn: Conv at batch 1 and 64 on network-sized layers") {
  const unsigned seed = test_seed("conv batch");
  std::mt19937 rng(seed);
  struct Layer {
    int64_t cin, h, cout, k, stride, group;
  };
  // LeNet, ResNet-style and MobileNet-style Fashion-MNIST layers.
  const Layer layers[] = {{1, 28, 32, 3, 1, 1},  {32, 14, 32, 3, 1, 1}, {32, 28, 64, 3, 2, 1},
                          {64, 7, 64, 3, 1, 1},  {64, 14, 64, 3, 1, 64}, {64, 14, 128, 1, 1, 1},
                          {6, 14, 16, 5, 1, 1}};
  for (int64_t n : {1, 64}) {
    for (const Layer& l : layers) {
      const int64_t pad = l.k / 2;
      std::vector<Tensor> in{random_tensor({n, l.cin, l.h, l.h}, rng), random_tensor({l.cout, l.cin / l.group, l.k, l.k}, rng),
                             random_tensor({l.cout}, rng)};
      NodeCase c = make_case("Conv", std::move(in),
                             {{"group", int_attr(l.group)},
                              {"strides", ints({l.stride, l.stride})},
                              {"pads", ints({pad, pad, pad, pad})}},
                             {false, true, true});
      add_fusion(c, rng, l.stride == 1 && l.cin == l.cout, "Relu");
      INFO("seed " << seed << ": " << describe(c));
      check_against_reference(c, 1e-4);
    }
  }
}

TEST_CASE("onednn: every Conv variant agrees with the reference") {
  const unsigned seed = test_seed("conv variants");
  std::mt19937 rng(seed);
  using onednn::ConvLayout;
  const onednn::ConvVariant variants[] = {
      {ConvLayout::any, dnnl::algorithm::convolution_direct, 1},
      {ConvLayout::any, dnnl::algorithm::convolution_direct, kThreads},
      {ConvLayout::channels16, dnnl::algorithm::convolution_direct, kThreads},
      {ConvLayout::plain, dnnl::algorithm::convolution_direct, kThreads},
      {ConvLayout::plain_src, dnnl::algorithm::convolution_direct, kThreads},
      {ConvLayout::any, dnnl::algorithm::convolution_winograd, kThreads},
  };
  auto rt = std::make_shared<const onednn::Runtime>();
  for (int i = 0; i < 18; ++i) {
    // Random geometries, and 3x3 stride-1 layers where Winograd applies.
    NodeCase c = random_conv(rng, rand_int(rng, 1, 4));
    // Fused activation and residual on some (the plain variant runs the
    // activation as separate primitives).
    if (i % 3 != 0) add_fusion(c, rng, i % 3 == 2, kActivations[rand_int(rng, 0, 6)]);
    if (i >= 12) {
      const int64_t cin = 16 << rand_int(rng, 0, 2), cout = 16 << rand_int(rng, 0, 2), h = 7 << rand_int(rng, 0, 2);
      c = make_case("Conv", {random_tensor({rand_int(rng, 1, 4), cin, h, h}, rng), random_tensor({cout, cin, 3, 3}, rng),
                             random_tensor({cout}, rng)},
                    {{"pads", ints({1, 1, 1, 1})}}, {false, true, true});
    }
    const NodeContext ctx = context_for(c);
    const std::vector<Tensor> want = run_on(reference_backend(), c);
    for (const auto& v : variants) {
      auto kernel = onednn::make_conv_kernel(ctx, rt, kThreads, &v);
      // Winograd exists for 3x3, stride 1, dense convolutions only; 16-channel
      // blocks need whole blocks per group (or depthwise); blocked layouts are
      // refused for a residual on padding-only outputs.
      if (!kernel.ok() && kernel.status().code() == Errc::unsupported &&
          (v.algorithm == dnnl::algorithm::convolution_winograd || v.layout == ConvLayout::channels16 ||
           v.layout == ConvLayout::plain_src ||
           (v.layout != ConvLayout::plain && c.node.has(kAttrResidual))))
        continue;
      REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
      const std::vector<Tensor> got = run_kernel(**kernel, c, ctx);
      INFO("seed " << seed << " case " << i << " layout " << std::string(onednn::layout_name(v.layout)) << " threads "
                   << v.threads << ": " << describe(c) << " impl " << onednn::conv_impl_name(**kernel));
      const double err = relative_error(got[0], want[0]);
      if (std::getenv("CALIPROX_TEST_VERBOSE"))
        std::fprintf(stderr, "variant %s/%d/%d err %.3g impl %s\n", onednn::layout_name(v.layout), static_cast<int>(v.algorithm), v.threads, err,
                     onednn::conv_impl_name(**kernel).c_str());
      CHECK(err <= 1e-4);
    }
  }
}

TEST_CASE("onednn: 1-D and 3-D Conv") {
  const unsigned seed = test_seed("conv rank");
  std::mt19937 rng(seed);
  for (int i = 0; i < 6; ++i) {
    const int64_t cin = rand_int(rng, 1, 8), cout = rand_int(rng, 1, 8), k = rand_int(rng, 1, 3);
    NodeCase c1 = make_case("Conv", {random_tensor({2, cin, 17}, rng), random_tensor({cout, cin, k}, rng)},
                            {{"strides", ints({2})}, {"pads", ints({1, 0})}}, {false, true});
    INFO("seed " << seed << ": " << describe(c1));
    check_against_reference(c1, 1e-4);
    NodeCase c3 = make_case("Conv", {random_tensor({1, cin, 5, 6, 7}, rng), random_tensor({cout, cin, k, k, k}, rng),
                                     random_tensor({cout}, rng)},
                            {{"pads", ints({1, 0, 1, 0, 1, 1})}}, {false, coin(rng), true});
    INFO("seed " << seed << ": " << describe(c3));
    check_against_reference(c3, 1e-4);
  }
}

TEST_CASE("onednn: ConvTranspose on random geometries") {
  const unsigned seed = test_seed("conv transpose");
  std::mt19937 rng(seed);
  int checked = 0;
  while (checked < 30) {
    const int64_t group = rand_int(rng, 1, 2), cin_g = rand_int(rng, 1, 8), cout_g = rand_int(rng, 1, 8);
    const int64_t k = rand_int(rng, 1, 4), s = rand_int(rng, 1, 3), d = rand_int(rng, 1, 2);
    const int64_t h = rand_int(rng, 2, 9), w = rand_int(rng, 2, 9);
    const int64_t op = rand_int(rng, 0, std::max(s, d) - 1);
    const int64_t pt = rand_int(rng, 0, 2), pl = rand_int(rng, 0, 2), pb = rand_int(rng, 0, 2), pr = rand_int(rng, 0, 2);
    std::vector<Tensor> in{random_tensor({rand_int(rng, 1, 2), group * cin_g, h, w}, rng),
                           random_tensor({group * cin_g, cout_g, k, k}, rng),
                           coin(rng) ? random_tensor({group * cout_g}, rng) : Tensor()};
    const bool constant_w = coin(rng);
    NodeCase c = make_case("ConvTranspose", std::move(in),
                           {{"group", int_attr(group)},
                            {"strides", ints({s, s})},
                            {"dilations", ints({d, d})},
                            {"output_padding", ints({op, op})},
                            {"pads", ints({pt, pl, pb, pr})}},
                           {false, constant_w, true});
    const int64_t full_h = s * (h - 1) + op + (k - 1) * d + 1, full_w = s * (w - 1) + op + (k - 1) * d + 1;
    if (full_h - pt - pb < 1 || full_w - pl - pr < 1) continue;
    INFO("seed " << seed << " case " << checked << ": " << describe(c));
    // output_padding beyond the end padding is unclaimed (negative oneDNN padding).
    if (pb < op || pr < op) {
      CHECK_FALSE(onednn_claims(c));
    } else {
      check_against_reference(c, 1e-4);
    }
    ++checked;
  }
}

TEST_CASE("onednn: Gemm with transposes, alpha, beta and broadcast C") {
  const unsigned seed = test_seed("gemm");
  std::mt19937 rng(seed);
  for (int i = 0; i < 40; ++i) {
    const int64_t m = rand_int(rng, 1, 70), k = rand_int(rng, 1, 300), n = rand_int(rng, 1, 40);
    const bool ta = coin(rng), tb = coin(rng);
    const int64_t c_kind = rand_int(rng, 0, 5);  // none, [N], [1,N], [M,1], [M,N], scalar
    Tensor c;
    if (c_kind == 1) c = random_tensor({n}, rng);
    if (c_kind == 2) c = random_tensor({1, n}, rng);
    if (c_kind == 3) c = random_tensor({m, 1}, rng);
    if (c_kind == 4) c = random_tensor({m, n}, rng);
    if (c_kind == 5) c = random_tensor({}, rng);
    std::map<std::string, Attribute> attrs{{"transA", int_attr(ta)}, {"transB", int_attr(tb)}};
    const bool scaled = coin(rng);
    if (scaled) {
      attrs["alpha"] = float_attr(0.5f);
      attrs["beta"] = float_attr(2.0f);
    }
    const bool constant_b = coin(rng);
    // beta != 1 with a run-time C is left to the reference backend.
    const bool constant_c = scaled || coin(rng);
    NodeCase g = make_case("Gemm", {random_tensor(ta ? Shape{k, m} : Shape{m, k}, rng),
                                    random_tensor(tb ? Shape{n, k} : Shape{k, n}, rng), c},
                           attrs, {false, constant_b, constant_c});
    INFO("seed " << seed << " case " << i << ": " << describe(g));
    // A per-row or full C has no optimized oneDNN kernel (the backend then
    // declines the node); no C or a row-vector C must always be claimed.
    if (c_kind <= 2) check_against_reference(g, 1e-4);
    else check_if_claimed(g, 1e-4);
  }
}

TEST_CASE("onednn: MatMul with vectors and broadcast batches") {
  const unsigned seed = test_seed("matmul");
  std::mt19937 rng(seed);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{64, 784}, {784, 128}}, {{1, 120}, {120, 84}}, {{3, 5, 7}, {3, 7, 4}}, {{2, 3, 5, 7}, {7, 6}},
      {{7}, {7, 5}},           {{4, 7}, {7}},         {{1, 5, 7}, {3, 7, 2}}, {{2, 1, 4, 7}, {1, 3, 7, 5}},
  };
  for (const auto& [a, b] : shapes) {
    NodeCase c = make_case("MatMul", {random_tensor(a, rng), random_tensor(b, rng)}, {}, {false, coin(rng)});
    INFO("seed " << seed << ": " << describe(c));
    check_against_reference(c, 1e-4);
  }
}

TEST_CASE("onednn: MaxPool and AveragePool on random geometries") {
  const unsigned seed = test_seed("pool");
  std::mt19937 rng(seed);
  int checked = 0, unclaimed = 0;
  while (checked < 80) {
    const bool max_pool = coin(rng);
    const int64_t kh = rand_int(rng, 1, 4), kw = rand_int(rng, 1, 4);
    const int64_t sh = rand_int(rng, 1, 3), sw = rand_int(rng, 1, 3);
    const int64_t dil = max_pool ? rand_int(rng, 1, 2) : 1;
    const int64_t ekh = (kh - 1) * dil + 1, ekw = (kw - 1) * dil + 1;
    const int64_t pt = rand_int(rng, 0, ekh - 1), pb = rand_int(rng, 0, ekh - 1);
    const int64_t pl = rand_int(rng, 0, ekw - 1), pr = rand_int(rng, 0, ekw - 1);
    const int64_t h = rand_int(rng, ekh, 15), w = rand_int(rng, ekw, 15);
    std::map<std::string, Attribute> attrs{{"kernel_shape", ints({kh, kw})},
                                           {"strides", ints({sh, sw})},
                                           {"pads", ints({pt, pl, pb, pr})},
                                           {"ceil_mode", int_attr(coin(rng))}};
    if (max_pool) attrs["dilations"] = ints({dil, dil});
    else attrs["count_include_pad"] = int_attr(coin(rng));
    NodeCase c = make_case(max_pool ? "MaxPool" : "AveragePool", {random_tensor({rand_int(rng, 1, 3), rand_int(rng, 1, 20), h, w}, rng)},
                           std::move(attrs));
    INFO("seed " << seed << " case " << checked << ": " << describe(c));
    if (!onednn_claims(c)) {
      // Left out: the include-padding average over a ceil-mode overhang, and
      // dilated max pooling (oneDNN 2.6 has only its reference kernel).
      const bool overhang =
          !max_pool && c.node.attr_int("ceil_mode", 0) == 1 && c.node.attr_int("count_include_pad", 0) == 1;
      CHECK((overhang || dil > 1));
      ++unclaimed;
    } else {
      check_against_reference(c, 1e-5);
    }
    ++checked;
  }
  CHECK(unclaimed < 50);
}

TEST_CASE("onednn: pooling cases left to the reference") {
  std::mt19937 rng(1);
  // Indices output of MaxPool.
  NodeCase idx = make_case("MaxPool", {random_tensor({1, 2, 6, 6}, rng)}, {{"kernel_shape", ints({2, 2})}}, {}, 2);
  CHECK_FALSE(onednn_claims(idx));
  // Include-padding average whose last window overhangs the padding.
  NodeCase avg = make_case("AveragePool", {random_tensor({1, 2, 6, 6}, rng)},
                           {{"kernel_shape", ints({3, 3})},
                            {"strides", ints({2, 2})},
                            {"pads", ints({1, 1, 1, 1})},
                            {"ceil_mode", int_attr(1)},
                            {"count_include_pad", int_attr(1)}});
  const NodeContext ctx = context_for(avg);
  REQUIRE(ctx.output_types[0].shape == Shape{1, 2, 4, 4});  // last window covers rows 5..7, padding ends at 6
  CHECK_FALSE(onednn_claims(avg));
}

TEST_CASE("onednn: global pooling at batch 1 and 64") {
  const unsigned seed = test_seed("global pool");
  std::mt19937 rng(seed);
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"})
    for (int64_t n : {1, 64}) {
      NodeCase c = make_case(op, {random_tensor({n, 64, 7, 7}, rng)});
      INFO("seed " << seed << ": " << describe(c));
      check_against_reference(c, 1e-5);
    }
}

TEST_CASE("onednn: BatchNormalization (inference)") {
  const unsigned seed = test_seed("batchnorm");
  std::mt19937 rng(seed);
  for (const Shape& x : {Shape{1, 16, 14, 14}, Shape{64, 32, 7, 7}, Shape{50, 30}, Shape{2, 4, 90}}) {
    const int64_t c = x[1];
    const bool constant = coin(rng);
    NodeCase bn = make_case("BatchNormalization",
                            {random_tensor(x, rng), random_tensor({c}, rng), random_tensor({c}, rng),
                             random_tensor({c}, rng), random_tensor({c}, rng, 0.1f, 2.f)},
                            {{"epsilon", float_attr(1e-3f)}}, {false, constant, constant, constant, constant});
    INFO("seed " << seed << ": " << describe(bn));
    check_against_reference(bn, 1e-5);
  }
}

TEST_CASE("onednn: activations" * CP_NEEDS(kOptimizedEltwise, kEltwiseReason)) {
  const unsigned seed = test_seed("eltwise");
  std::mt19937 rng(seed);
  for (const Shape& shape : {Shape{1, 32, 28, 28}, Shape{3, 7, 31}, Shape{64, 16, 14, 14}}) {
    for (const char* op : {"Relu", "Sigmoid", "Tanh", "HardSwish"}) {
      NodeCase c = make_case(op, {random_tensor(shape, rng, -8, 8)});
      INFO("seed " << seed << ": " << describe(c));
      check_against_reference(c, 1e-5);
    }
    NodeCase leaky = make_case("LeakyRelu", {random_tensor(shape, rng, -4, 4)}, {{"alpha", float_attr(0.2f)}});
    check_against_reference(leaky, 1e-5);
    NodeCase hs = make_case("HardSigmoid", {random_tensor(shape, rng, -8, 8)},
                            {{"alpha", float_attr(0.25f)}, {"beta", float_attr(0.4f)}});
    check_against_reference(hs, 1e-5);
    NodeCase sq = make_case("Sqrt", {random_tensor(shape, rng, 0, 9)});
    check_against_reference(sq, 1e-5);
    // Clip: opset 11+ bounds as constant inputs, one omitted; opset 6 attributes.
    Tensor lo(DType::f32, {});
    lo.data<float>()[0] = -0.3f;
    NodeCase clip = make_case("Clip", {random_tensor(shape, rng), lo, Tensor()}, {}, {false, true, false});
    check_against_reference(clip, 1e-5);
    NodeCase clip6 = make_case("Clip", {random_tensor(shape, rng)}, {{"min", float_attr(-0.2f)}, {"max", float_attr(0.6f)}});
    check_against_reference(clip6, 1e-5);
    // Run-time bounds cannot be baked into the primitive.
    NodeCase clip_rt = make_case("Clip", {random_tensor(shape, rng), lo, Tensor()}, {}, {false, false, false});
    CHECK_FALSE(onednn_claims(clip_rt));
  }
}

TEST_CASE("onednn: Softmax in both opset conventions" * CP_NEEDS(kOptimizedEltwise, kEltwiseReason)) {
  const unsigned seed = test_seed("softmax");
  std::mt19937 rng(seed);
  const Shape shape{4, 3, 5, 6};
  for (int64_t axis = -4; axis < 4; ++axis) {
    for (int64_t opset : {11, 13}) {
      NodeCase c = make_case("Softmax", {random_tensor(shape, rng, -5, 5)}, {{"axis", int_attr(axis)}});
      c.node.opset = opset;
      INFO("seed " << seed << ": " << describe(c));
      // Over the innermost elements (the last axis from opset 13, everything
      // from `axis` on before) oneDNN has a jit kernel and the node must be
      // claimed; other axes only have oneDNN's reference kernel.
      const bool innermost = opset < 13 || axis == -1 || axis == 3;
      if (innermost) check_against_reference(c, 1e-5);
      else check_if_claimed(c, 1e-5);
    }
  }
  NodeCase logits = make_case("Softmax", {random_tensor({64, 10}, rng, -5, 5)});
  check_against_reference(logits, 1e-5);
}

TEST_CASE("onednn: Concat of any rank and axis, constants included") {
  const unsigned seed = test_seed("concat");
  std::mt19937 rng(seed);
  const std::vector<std::pair<Shape, int64_t>> cases = {{{300}, 0},        {{20, 30}, 0},     {{20, 30}, 1},
                                                        {{2, 8, 5, 5}, 1}, {{2, 8, 5, 5}, 3}, {{2, 3, 4, 5, 6}, -2}};
  for (const auto& [shape, axis] : cases) {
    Shape other = shape;
    const auto ax = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(shape.size()) : axis);
    other[ax] += 2;
    NodeCase c = make_case("Concat", {random_tensor(shape, rng), random_tensor(other, rng)}, {{"axis", int_attr(axis)}},
                           {false, coin(rng)});
    INFO("seed " << seed << ": " << describe(c));
    CHECK(onednn_claims(c));
    check_against_reference(c, 0);
  }
  // Tiny tensors stay with the reference copy; so do other types.
  CHECK_FALSE(onednn_claims(
      make_case("Concat", {random_tensor({2, 3}, rng), random_tensor({2, 3}, rng)}, {{"axis", int_attr(0)}})));
  CHECK_FALSE(onednn_claims(
      make_case("Concat",
                {test::i64({400}, std::vector<int64_t>(400, 1)), test::i64({400}, std::vector<int64_t>(400, 2))},
                {{"axis", int_attr(0)}})));
}

TEST_CASE("onednn: Resize over height and width, every mode") {
  const unsigned seed = test_seed("resize");
  std::mt19937 rng(seed);
  using Mode = std::tuple<const char*, const char*, const char*, float, float>;
  for (const auto& [mode, coords, nearest, sh, sw] : std::vector<Mode>{
           {"nearest", "asymmetric", "floor", 2.0f, 2.0f},
           {"nearest", "half_pixel", "round_prefer_ceil", 1.5f, 0.75f},
           {"nearest", "tf_half_pixel_for_nn", "round_prefer_floor", 3.0f, 1.0f},
           {"linear", "half_pixel", "", 1.5f, 0.5f},
           {"linear", "align_corners", "", 2.0f, 3.0f},
           {"linear", "pytorch_half_pixel", "", 0.6f, 2.0f},
           {"cubic", "half_pixel", "", 0.6f, 1.7f},
       }) {
    std::map<std::string, Attribute> attrs{{"mode", str(mode)}, {"coordinate_transformation_mode", str(coords)}};
    if (*nearest != 0) attrs["nearest_mode"] = str(nearest);
    NodeCase c = make_case("Resize", {random_tensor({2, 5, 9, 11}, rng), Tensor(), test::f32({4}, {1, 1, sh, sw})},
                           attrs, {false, false, true});
    INFO("seed " << seed << ": " << describe(c));
    CHECK(onednn_claims(c));
    check_against_reference(c, 1e-5);
  }
  // Batch or channels resized, and crop-and-resize: the reference's.
  CHECK_FALSE(
      onednn_claims(make_case("Resize", {random_tensor({2, 5, 9, 11}, rng), Tensor(), test::f32({4}, {1, 2, 1, 1})},
                              {{"mode", str("nearest")}}, {false, false, true})));
}

TEST_CASE("onednn: Add, Sub, Mul, Div with broadcasting" * CP_NEEDS(kOptimizedEltwise, kEltwiseReason)) {
  const unsigned seed = test_seed("binary");
  std::mt19937 rng(seed);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 8, 5, 5}, {2, 8, 5, 5}}, {{2, 8, 5, 5}, {8, 1, 1}}, {{2, 8, 5, 5}, {}},
      {{2, 8, 5, 5}, {1, 8, 1, 1}}, {{8, 1, 1}, {2, 8, 5, 5}}, {{64, 10}, {10}},
      {{30, 40}, {30, 1}},          {{1}, {50, 60}},
  };
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    for (const auto& [a, b] : shapes) {
      const bool b_full = shape_numel(b) > shape_numel(a);
      // Divisors away from zero keep the relative error meaningful.
      NodeCase c = make_case(op, {random_tensor(a, rng, 0.5f, 2.f), random_tensor(b, rng, 0.5f, 2.f)}, {},
                             {false, coin(rng)});
      INFO("seed " << seed << ": " << describe(c));
      if (b_full && std::string(op) == "Div") {
        CHECK_FALSE(onednn_claims(c));
      } else {
        check_against_reference(c, 1e-5);
      }
    }
  }
  // Both inputs broadcast: unclaimed.
  NodeCase both = make_case("Add", {random_tensor({30, 1}, rng), random_tensor({1, 40}, rng)});
  CHECK_FALSE(onednn_claims(both));
  // Tiny tensors stay with the reference loop.
  NodeCase tiny = make_case("Add", {random_tensor({1, 10}, rng), random_tensor({10}, rng)});
  CHECK_FALSE(onednn_claims(tiny));
  NodeCase tiny_act = make_case("Sigmoid", {random_tensor({1, 10}, rng)});
  CHECK_FALSE(onednn_claims(tiny_act));
}
