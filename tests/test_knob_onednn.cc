// The oneDNN backend's knob kernels (src/backends/onednn/knob_conv*.cc)
// against the reference backend's (the oracle), one Conv node at a time,
// with the same ctx.knob, in both activation layouts (NHWC inputs are made
// from the NCHW ones, the NHWC output converted back), on randomized
// geometries (seed printed; CALIPROX_TEST_SEED=<n> replays one).
//
// Tolerances, as max |onednn - reference| / (1 + max |reference|):
//   perforation, sampling, bf16: 1e-4. Both sum the same products in float32
//     (bf16: of bfloat16-rounded factors, whose products are exact in
//     float32), in different orders: K-term sums with |terms| <= 1 and
//     K <= ~600 differ by a few K * 2^-24 (observed ~1e-6).
//   fp16 and the -fp16 variants: 2e-3. The output is rounded to half; where
//     the float32 results differ in the last bits, rounding can land one
//     half ulp (2^-11 relative) apart.
//   int8: 1e-4 when every input lies on the quantisation grid +- 0.3 codes
//     (then the codes cannot differ, and only the final float scaling
//     rounds differently); with arbitrary inputs the reorder's x * (1/sx)
//     may round an input lying within ~1e-7 of a code boundary the other
//     way, so the bound adds 2 * sx * max|W| (two such flips per output).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backends/backend.h"
#include "backends/onednn/knob_conv.h"
#include "cpu_needs.h"
#include "ir/op_registry.h"
#include "kernels/knob_simd.h"
#include "knob_cases.h"
#include "knobs/knobs.h"
#include "node_harness.h"
#include "onednn_cases.h"
#include "util/cpu.h"

using namespace caliprox;
using namespace knob_test;

TEST_CASE("knob onednn: every perforation and sampling knob matches the reference on random geometries") {
  std::mt19937 rng(test_seed("perforation/sampling"));
  std::vector<const Knob*> knobs = knobs_of(KnobKind::perforation);
  for (const Knob* k : knobs_of(KnobKind::sampling)) knobs.push_back(k);
  for (const Knob* knob : knobs) {
    // Batch 1 shares one image across the team; batch 3 gives each thread images.
    for (int64_t n : {1, 3}) {
      ConvCase c = random_conv(rng, n);
      if (!knob_applies(*knob, c.node, c.inputs[0].shape(), c.inputs[1].shape()).ok()) continue;
      check_knob(c, *knob);
    }
  }
}

TEST_CASE("knob onednn: fused residual and activations under knobs") {
  std::mt19937 rng(test_seed("fusion"));
  const char* knob_names[] = {"perf-row-2-0", "perf-col-3-2-fp16", "samp-2-1", "samp-3-0-fp16", "fp16", "bf16"};
  for (const char* name : knob_names) {
    const Knob* knob = find_knob(name);
    REQUIRE(knob != nullptr);
    for (const char* act : kActivations) {
      ConvCase c = network_layer(rng, 2, 8, 9, 16, 3, 1, 1);
      add_fusion(c, rng, rand_int(rng, 0, 1) == 1, act);
      check_knob(c, *knob);
    }
  }
}

TEST_CASE("knob onednn: network-sized layers (blocked paths, both batch modes)") {
  std::mt19937 rng(test_seed("network layers"));
  struct Geometry {
    int64_t c, hw, oc, k, stride, group;
  };
  // 1x1 layers have no padding: the tiled kernel reads X in place.
  const Geometry layers[] = {{32, 28, 32, 3, 1, 1}, {32, 28, 64, 3, 2, 1}, {64, 7, 128, 1, 1, 1},
                             {32, 28, 64, 1, 2, 1}, {48, 14, 48, 3, 1, 48}, {1, 28, 16, 3, 1, 1},
                             {40, 10, 24, 3, 1, 2}};
  const char* knob_names[] = {"perf-row-2-1", "perf-col-4-0", "perf-row-3-2-fp16", "samp-2-0", "samp-4-3",
                              "samp-3-1-fp16"};
  for (const Geometry& l : layers)
    for (int64_t n : {1, 4}) {
      ConvCase c = network_layer(rng, n, l.c, l.hw, l.oc, l.k, l.stride, l.group);
      add_fusion(c, rng, true, "Relu");
      for (const char* name : knob_names) check_knob(c, *find_knob(name));
    }
}

// oneDNN declines a few odd geometries of the precision knobs (unoptimized
// implementations only; the reference backend then runs them): a case
// counts the layers it ran, and a third must run (native bf16 declined 5
// of 12 random layers in one run), so that a kernel family that stopped
// claiming layers fails instead of passing on nothing.
void require_most_ran(int ran, int cases) {
  MESSAGE(ran << " of " << cases << " layers ran on oneDNN");
  CHECK(ran * 3 >= cases);
}

TEST_CASE("knob onednn: fp16 and bf16 on random geometries") {
  std::mt19937 rng(test_seed("fp16/bf16"));
  for (const char* name : {"fp16", "bf16"}) {
    int ran = 0;
    for (int i = 0; i < 12; ++i) {
      ConvCase c = random_conv(rng, rand_int(rng, 1, 3));
      if (rand_int(rng, 0, 1) == 1) add_fusion(c, rng, true, kActivations[rand_int(rng, 0, 6)]);
      const NodeContext ctx = context_for(c, find_knob(name), Layout::nchw, std::nullopt);
      if (!onednn_backend().supports(ctx)) continue;
      ++ran;
      check_knob(c, *find_knob(name));
    }
    require_most_ran(ran, 12);
  }
}

// X's values within 0.3 of a step of an int8 code of the returned
// calibrated range, so that no rounding of X / sx is near a tie: unsigned
// (post-activation-like) or signed. The range is narrower than the data on
// one side so that saturation shows.
ValueRange put_on_int8_grid(ConvCase& c, bool is_unsigned, std::mt19937& rng) {
  const ValueRange range = is_unsigned ? ValueRange{0.0f, 0.8f} : ValueRange{-0.9f, 0.6f};
  const float sx = is_unsigned ? range.max / 255.0f : 0.9f / 127.0f;
  const int lo = is_unsigned ? -20 : -150, hi = is_unsigned ? 290 : 150;
  std::uniform_int_distribution<int> code(lo, hi);
  std::uniform_real_distribution<float> off(-0.3f, 0.3f);
  for (float& v : c.inputs[0].span<float>()) v = (static_cast<float>(code(rng)) + off(rng)) * sx;
  return range;
}

TEST_CASE("knob onednn: int8 on the quantisation grid matches the reference") {
  std::mt19937 rng(test_seed("int8 grid"));
  const Knob& int8 = *find_knob("int8");
  int ran = 0;
  for (int i = 0; i < 16; ++i) {
    ConvCase c = i < 4 ? network_layer(rng, 2, 16, 9, 24, 3, 1 + i % 2, 1) : random_conv(rng, rand_int(rng, 1, 3));
    if (rand_int(rng, 0, 1) == 1) add_fusion(c, rng, true, kActivations[rand_int(rng, 0, 6)]);
    const ValueRange range = put_on_int8_grid(c, i % 2 == 0, rng);
    const NodeContext ctx = context_for(c, &int8, Layout::nchw, range);
    if (!onednn_backend().supports(ctx)) continue;
    ++ran;
    check_knob(c, int8, range);
  }
  require_most_ran(ran, 16);
}

TEST_CASE("knob onednn: int8 on arbitrary inputs and ranges") {
  std::mt19937 rng(test_seed("int8 random"));
  const Knob& int8 = *find_knob("int8");
  int ran = 0;
  for (int i = 0; i < 12; ++i) {
    ConvCase c = random_conv(rng, rand_int(rng, 1, 3));
    const ValueRange range = i % 3 == 0 ? ValueRange{0.0f, 0.0f} : i % 3 == 1 ? ValueRange{0.0f, 0.7f}
                                                                             : ValueRange{-1.0f, 0.5f};
    const float sx = range.min >= 0 ? (range.max > 0 ? range.max / 255.0f : 1.0f) : 1.0f / 127.0f;
    const NodeContext ctx = context_for(c, &int8, Layout::nchw, range);
    if (!onednn_backend().supports(ctx)) continue;
    ++ran;
    check_knob(c, int8, range, 2.0 * sx * max_abs(c.inputs[1]));
  }
  require_most_ran(ran, 12);
}

// Every implementation the bf16 or int8 tuning times, against the reference.
void check_lowp_impls(const char* name) {
  // make_lowp_conv times the implementations lowp_conv_impls lists (oneDNN's
  // and, for bf16, the compact kernel's tiles) and keeps the fastest; each
  // is forced here, on NHWC layers like the bundled networks' (strided 1x1
  // shortcuts, 1x1 and 3x3 layers on 7x7 maps, one input channel), with
  // fused activations and residuals.
  std::mt19937 rng(test_seed((std::string("lowp impls ") + name).c_str()));
  const LayerGeometry layers[] = {{32, 14, 64, 1, 2}, {64, 7, 128, 1, 1}, {32, 7, 48, 3, 1}, {1, 12, 32, 3, 1},
                             {16, 9, 32, 3, 2}};
  auto rt = std::make_shared<const onednn::Runtime>();
  int index = 0, alternatives = 0;
  for (const LayerGeometry& l : layers) {
    {
      const Knob* knob = find_knob(name);
      ConvCase c = network_layer(rng, 2, l.c, l.hw, l.oc, l.k, l.stride, 1);
      add_fusion(c, rng, index % 2 == 0, kActivations[index % 7]);
      ++index;
      std::optional<ValueRange> range;
      if (knob->kind == KnobKind::int8) range = put_on_int8_grid(c, index % 3 != 0, rng);
      const NodeContext ctx = context_for(c, knob, Layout::nhwc, range);
      REQUIRE(onednn_backend().supports(ctx));
      auto setup = onednn::knob_conv_setup(ctx);
      REQUIRE_MESSAGE(setup.ok(), setup.status().message());
      auto impls = onednn::lowp_conv_impls(ctx, *setup, *rt, kThreads);
      REQUIRE_MESSAGE(impls.ok(), impls.status().message());
      REQUIRE_FALSE(impls->empty());
      CHECK_FALSE(impls->front().src_host);  // oneDNN's pick first
      alternatives += static_cast<int>(impls->size()) - 1;
      const Tensor want = run_on(reference_backend(), c, knob, Layout::nchw, range);
      const double bound = tolerance_for(*knob) * (1 + max_abs(want));
      for (const onednn::LowpImpl& impl : *impls) {
        INFO("case " << describe(c) << ", knob " << std::string(name) << ", implementation " << impl.name
                     << std::string(impl.src_host ? " (host-layout source)" : ""));
        auto kernel = onednn::make_lowp_conv_impl(ctx, *setup, rt, kThreads, impl);
        REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
        const double err = max_diff(run_kernel(**kernel, c, ctx, Layout::nhwc), want);
        CHECK_MESSAGE(err <= bound, "max |diff| " << err << " > " << bound);
      }
      // A place with no implementation is refused, not run on another one.
      auto none = onednn::make_lowp_conv_impl(ctx, *setup, rt, kThreads, {false, "no such implementation", {}, {}});
      CHECK(none.status().code() == Errc::unsupported);
    }
  }
  MESSAGE("alternatives to oneDNN's pick: " << alternatives);
}

TEST_CASE("knob onednn: every implementation the bf16 tuning times matches the reference" *
          CP_NEEDS(onednn::lowp_native(KnobKind::bf16), "bf16 is emulated on this CPU (no AVX512-BF16, or not x86)")) {
  check_lowp_impls("bf16");
}

TEST_CASE("knob onednn: every implementation the int8 tuning times matches the reference" *
          CP_NEEDS(onednn::lowp_native(KnobKind::int8), "int8 is emulated on this CPU (no AVX512-VNNI, or not x86)")) {
  check_lowp_impls("int8");
}

TEST_CASE("knob onednn: int8 without a calibrated range is an input error") {
  std::mt19937 rng(test_seed("int8 no range"));
  ConvCase c = network_layer(rng, 1, 4, 6, 4, 3, 1, 1);
  const NodeContext ctx = context_for(c, find_knob("int8"), Layout::nchw, std::nullopt);
  CHECK_FALSE(onednn_backend().supports(ctx));
  auto kernel = onednn_backend().prepare(ctx);
  REQUIRE_FALSE(kernel.ok());
  CHECK(kernel.status().code() == Errc::invalid_input);
  CHECK(kernel.status().message().find("int8") != std::string::npos);
}

namespace {
// The vector variants of the compact loops (those with the tiled kernel)
// that this CPU runs.
std::vector<onednn::simd::KernelIsa> tiled_variants() {
  std::vector<onednn::simd::KernelIsa> out;
  for (onednn::simd::KernelIsa isa : onednn::simd::compiled_kernel_isas())
    if (onednn::simd::has_tiles(isa) && onednn::simd::kernel_isa_runs(isa)) out.push_back(isa);
  return out;
}
}  // namespace

TEST_CASE("knob onednn: every tile shape of the tiled kernel, and Winograd rows and tiles, match the reference" *
          CP_NEEDS(!tiled_variants().empty(), "no vector variant of the compact loops runs on this CPU")) {
  // make_compact_conv times these candidates and keeps one; each is forced
  // here, in every vector variant this CPU runs (the plan narrows a shape
  // to what the variant's registers hold: 64 x 6 becomes 16 x 6 with
  // AVX2). Winograd rows (columns) apply to the perforation of the 3x3
  // stride-1 layers, Winograd tiles to it at rates 3 and 4.
  std::mt19937 rng(test_seed("tile shapes"));
  // 7-wide maps (rows shorter than a tile), 1x1 read in place, padded 3x3,
  // channel counts that leave partial 16-channel vectors and blocks.
  const LayerGeometry layers[] = {{24, 7, 72, 3, 1}, {20, 9, 40, 1, 1}, {16, 14, 100, 1, 2}, {3, 10, 48, 3, 1},
                             {32, 13, 32, 3, 1}};
  const char* knob_names[] = {"perf-row-2-1", "perf-col-3-0", "samp-2-0", "samp-4-3", "perf-col-2-1-fp16",
                              "perf-row-3-2-fp16", "perf-row-4-0", "perf-col-4-3"};
  auto rt = std::make_shared<const onednn::Runtime>();
  for (onednn::simd::KernelIsa isa : tiled_variants())
    for (const LayerGeometry& l : layers)
      for (int64_t n : {1, 3}) {
        ConvCase c = network_layer(rng, n, l.c, l.hw, l.oc, l.k, l.stride, 1);
        add_fusion(c, rng, true, "HardSwish");
        for (const char* name : knob_names) {
          const Knob* knob = find_knob(name);
          const NodeContext ctx = context_for(c, knob, Layout::nhwc, std::nullopt);
          auto setup = onednn::knob_conv_setup(ctx);
          REQUIRE_MESSAGE(setup.ok(), setup.status().message());
          setup->isa = isa;
          const Tensor want = run_on(reference_backend(), c, knob, Layout::nchw, std::nullopt);
          const double bound = tolerance_for(*knob) * (1 + max_abs(want));
          const int64_t row = l.hw / l.stride;  // >= the kept columns
          // tile_m -1: Winograd rows (columns), -2: Winograd tiles, with 64-
          // or 32-channel tiles.
          for (auto [tile_n, tile_m] : {std::pair<int64_t, int64_t>{64, 0},
                                        {48, 0},
                                        {32, 0},
                                        {32, row},
                                        {16, 5},
                                        {8, 0},
                                        {8, 7},
                                        {64, -1},
                                        {32, -1},
                                        {64, -2},
                                        {32, -2},
                                        {8, -2}}) {
            INFO("variant " << onednn::simd::kernel_isa_name(isa) << ", case " << describe(c) << ", knob "
                            << std::string(name) << ", tile " << tile_n << " x " << tile_m);
            const bool winograd = tile_m < 0;
            const onednn::CompactPath path = tile_m == -1   ? onednn::CompactPath::winograd_rows
                                             : tile_m == -2 ? onednn::CompactPath::winograd_tiles
                                                            : onednn::CompactPath::tiled;
            auto kernel = onednn::make_compact_conv_shaped(*setup, rt, kThreads, tile_n, winograd ? 0 : tile_m, path);
            const bool applies = l.k == 3 && l.stride == 1 && knob->kind == KnobKind::perforation &&
                                 (path != onednn::CompactPath::winograd_tiles || knob->rate >= 3);
            if (winograd && !applies) {
              CHECK(kernel.status().code() == Errc::unsupported);
              continue;
            }
            REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
            const double err = max_diff(run_kernel(**kernel, c, ctx, Layout::nhwc), want);
            CHECK_MESSAGE(err <= bound, "max |diff| " << err << " > " << bound);
          }
        }
      }
}

// The bfloat16 codes of a float (round to nearest even; finite values).
uint16_t bf16_code(float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, 4);
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

TEST_CASE("knob onednn: the compact kernel's bf16 tiles match the reference, on floats and on codes" *
          CP_NEEDS(onednn::simd::kernel_isa_runs(onednn::simd::KernelIsa::avx512) && cpu::features().avx512_bf16,
                   "the bf16 tiles need the avx512 loops and AVX512-BF16")) {
  // make_lowp_conv times them against oneDNN's bf16 implementations
  // (lowp_conv_impls lists them, and the test above runs those); forced
  // here with every tile shape: 1x1 layers read in place (one strided),
  // padded 3x3 layers (read from a staged copy), partial 16-channel vectors
  // and blocks, one image and several (the last two layers, on one image,
  // are large enough for a team of two splitting its positions), every
  // activation (and none), with and without a residual. Each kernel also
  // runs on X's codes from its own quantize_input (the same output, bit for
  // bit) and, where it can write codes, writes the bfloat16 rounding of
  // that output, from floats and from codes.
  std::mt19937 rng(test_seed("compact bf16"));
  const LayerGeometry layers[] = {{20, 9, 40, 1, 1},  {16, 14, 100, 1, 2}, {24, 7, 72, 3, 1},
                                  {32, 13, 32, 3, 1}, {64, 16, 128, 3, 1}, {128, 16, 256, 1, 1}};
  const char* activations[] = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", nullptr};
  const Knob& bf16 = *find_knob("bf16");
  auto rt = std::make_shared<const onednn::Runtime>();
  int index = 0;
  for (const LayerGeometry& l : layers)
    for (int64_t n : {1, 3}) {
      ConvCase c = network_layer(rng, n, l.c, l.hw, l.oc, l.k, l.stride, 1);
      // (Sigmoid with a residual and without, HardSwish and Tanh without,
      // no activation with one; both large one-image cases with one.)
      add_fusion(c, rng, (index / 8 + index) % 2 == 1, activations[index % 8]);
      ++index;
      const NodeContext ctx = context_for(c, &bf16, Layout::nhwc, std::nullopt);
      auto setup = onednn::knob_conv_setup(ctx);
      REQUIRE_MESSAGE(setup.ok(), setup.status().message());
      setup->isa = onednn::simd::KernelIsa::avx512;
      REQUIRE_MESSAGE(onednn::check_compact_bf16(*setup, false).ok(), onednn::check_compact_bf16(*setup, false).message());
      const Tensor want = run_on(reference_backend(), c, &bf16, Layout::nchw, std::nullopt);
      const double bound = tolerance_for(bf16) * (1 + max_abs(want));
      const bool writes_codes = onednn::check_compact_bf16(*setup, true).ok();
      const bool residual = c.inputs.size() > 3;
      const std::string act = c.node.attrs.count(kAttrActivation) > 0 ? c.node.attrs.at(kAttrActivation).s : "";
      CHECK(writes_codes == (!residual && act != "Sigmoid" && act != "Tanh"));
      const int64_t row = (l.hw - 1) / l.stride + 1;
      for (auto [tile_n, tile_m] : {std::pair<int64_t, int64_t>{64, 0}, {48, 0}, {32, 0}, {32, row}, {16, 5}}) {
        INFO("case " << describe(c) << ", tile " << tile_n << " x " << tile_m);
        auto kernel = onednn::make_compact_bf16(*setup, rt, kThreads, false, tile_n, tile_m);
        REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
        const Tensor got = run_kernel(**kernel, c, ctx, Layout::nhwc);
        const double err = max_diff(got, want);
        CHECK_MESSAGE(err <= bound, "max |diff| " << err << " > " << bound);

        // The same kernel on X's codes; their input for a codes writer.
        REQUIRE((*kernel)->input_codes().has_value());
        CHECK((*kernel)->input_codes()->type == DType::bf16);
        const Tensor x = to_nhwc(c.inputs[0]);
        Tensor codes(DType::bf16, x.shape());
        REQUIRE((*kernel)->quantize_input(x, codes).ok());
        std::vector<Tensor> held = c.inputs;
        if (residual) held[3] = to_nhwc(c.inputs[3]);
        std::vector<const Tensor*> in;
        for (const Tensor& t : held) in.push_back(t.empty() ? nullptr : &t);
        in[0] = &codes;
        Tensor out(DType::f32, ctx.output_types[0].shape);
        Tensor* outs[1] = {&out};
        REQUIRE((*kernel)->run(in, outs).ok());
        const Tensor on_codes = to_nchw(out);
        CHECK(std::equal(on_codes.span<float>().begin(), on_codes.span<float>().end(), got.span<float>().begin()));
        if (residual) {
          // Tiles that finish in registers read the residual from the
          // output's own buffer (Kernel::residual_in_place).
          CHECK((*kernel)->residual_in_place() == (act != "Sigmoid" && act != "Tanh"));
          if ((*kernel)->residual_in_place()) {
            Tensor shared = to_nhwc(c.inputs[3]);
            std::vector<const Tensor*> in_place = in;
            in_place[0] = &x;
            in_place[3] = &shared;
            Tensor* shared_out[1] = {&shared};
            REQUIRE((*kernel)->run(in_place, shared_out).ok());
            const Tensor lent = to_nchw(shared);
            CHECK(std::equal(lent.span<float>().begin(), lent.span<float>().end(), got.span<float>().begin()));
          }
        }

        auto writer = onednn::make_compact_bf16(*setup, rt, kThreads, true, tile_n, tile_m);
        if (!writes_codes) {
          CHECK(writer.status().code() == Errc::unsupported);
          continue;
        }
        REQUIRE_MESSAGE(writer.ok(), writer.status().message());
        for (const Tensor* x_in : {static_cast<const Tensor*>(&codes), &x}) {
          INFO("writer's input: " << dtype_name(x_in->dtype()));
          in[0] = x_in;
          Tensor written(DType::bf16, ctx.output_types[0].shape);
          Tensor* wouts[1] = {&written};
          REQUIRE((*writer)->run(in, wouts).ok());
          const uint16_t* w = static_cast<const uint16_t*>(written.raw());
          int64_t wrong = 0;
          for (int64_t i = 0; i < out.numel(); ++i) wrong += w[i] != bf16_code(out.data<float>()[i]) ? 1 : 0;
          CHECK_MESSAGE(wrong == 0, wrong << " of " << out.numel() << " codes differ from the rounded output");
        }
      }
    }
  // Where they do not apply: an odd channel count, NCHW, grouped layers,
  // another knob.
  ConvCase odd = network_layer(rng, 1, 3, 6, 16, 3, 1, 1);
  ConvCase even = network_layer(rng, 1, 8, 6, 16, 1, 1, 1);
  ConvCase grouped = network_layer(rng, 1, 8, 6, 16, 3, 1, 2);
  const Knob* samp = find_knob("samp-2-0");
  const std::tuple<const ConvCase*, Layout, const Knob*> refused[] = {
      {&odd, Layout::nhwc, &bf16}, {&even, Layout::nchw, &bf16}, {&grouped, Layout::nhwc, &bf16},
      {&even, Layout::nhwc, samp}};
  for (const auto& [cc, layout, knob] : refused) {
    const NodeContext ctx = context_for(*cc, knob, layout, std::nullopt);
    auto setup = onednn::knob_conv_setup(ctx);
    REQUIRE(setup.ok());
    INFO("case " << describe(*cc) << ", knob " << knob->name);
    CHECK(onednn::make_compact_bf16(*setup, rt, kThreads, false).status().code() == Errc::unsupported);
  }
}

TEST_CASE("knob onednn: a bf16 layer writing codes is tuned on kernels writing codes" *
          CP_NEEDS(onednn::lowp_native(KnobKind::bf16), "bf16 is emulated on this CPU (no AVX512-BF16, or not x86): no codes")) {
  // A layer of 1+ MFLOP times its candidates at prepare (make_lowp_conv);
  // writing the next layer's codes, each is timed writing codes (the
  // compact tiles refuse a float output, so timing them on one would fail
  // the prepare). The codes are then the reference's output, rounded.
  std::mt19937 rng(test_seed("bf16 codes writer"));
  ConvCase c = network_layer(rng, 4, 34, 11, 48, 1, 1, 1);  // 3.2 MFLOP, a shape no other test tunes
  add_fusion(c, rng, false, "HardSwish");
  const Knob& bf16 = *find_knob("bf16");
  NodeContext ctx = context_for(c, &bf16, Layout::nhwc, std::nullopt);
  ctx.output_codes = ActivationCodes{DType::bf16, 1.0f};
  REQUIRE(onednn_backend().supports(ctx));
  auto kernel = onednn_backend().prepare(ctx);
  REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
  const Tensor x = to_nhwc(c.inputs[0]);
  const Tensor* in[3] = {&x, &c.inputs[1], &c.inputs[2]};
  Tensor written(DType::bf16, ctx.output_types[0].shape);
  Tensor* outs[1] = {&written};
  REQUIRE((*kernel)->run(in, outs).ok());
  Tensor decoded(DType::f32, written.shape());
  for (int64_t i = 0; i < written.numel(); ++i) decoded.data<float>()[i] = static_cast<float>(written.at_double(i));
  const Tensor want = run_on(reference_backend(), c, &bf16, Layout::nchw, std::nullopt);
  // bfloat16 keeps 8 significant bits: half an ulp is 2^-9 of the value.
  const double bound = tolerance_for(bf16) * (1 + max_abs(want)) + max_abs(want) / 256;
  CHECK(max_diff(to_nchw(decoded), want) <= bound);
}

TEST_CASE("knob onednn: the pointwise path (packed pixels, oneDNN's 1x1 convolution) matches the reference") {
  // make_compact_conv times it against the tiled kernel on 1x1 layers; it is
  // forced here. Channel counts leave partial 16-channel blocks for the
  // sampling mask; stride 2 packs every other pixel; the runs hand the
  // residual in a buffer of its own, and the bias both as a constant and at
  // run time (a second run with new inputs checks that nothing is kept).
  std::mt19937 rng(test_seed("pointwise"));
  struct Geometry {
    int64_t c, hw, oc, stride;
  };
  // The last, with 3 images, is large enough for a team of two (the whole
  // batch per pass, each pass split across the team).
  const Geometry layers[] = {{20, 7, 72, 1}, {37, 9, 40, 2}, {16, 14, 32, 1}, {64, 6, 128, 2}, {64, 14, 128, 1}};
  const char* knob_names[] = {"perf-row-2-0", "perf-row-3-1", "perf-col-2-1", "perf-col-4-3",
                              "samp-2-0",     "samp-2-1",     "samp-3-2",     "samp-4-3"};
  auto rt = std::make_shared<const onednn::Runtime>();
  int index = 0;
  for (const Geometry& l : layers)
    for (int64_t n : {1, 3}) {
      ConvCase c = network_layer(rng, n, l.c, l.hw, l.oc, 1, l.stride, 1);
      const bool residual = index % 2 == 0;
      add_fusion(c, rng, residual, kActivations[index % 7]);
      c.bias_constant = index % 3 != 0;
      ++index;
      std::vector<Tensor> second = c.inputs;
      second[0] = random_tensor(c.inputs[0].shape(), rng);
      if (!c.bias_constant) second[2] = random_tensor(c.inputs[2].shape(), rng);
      if (residual) second[3] = random_tensor(c.inputs[3].shape(), rng);
      ConvCase expect = c;
      expect.inputs = second;
      for (const char* name : knob_names) {
        INFO("case " << describe(c) << ", knob " << std::string(name));
        const Knob* knob = find_knob(name);
        const NodeContext ctx = context_for(c, knob, Layout::nhwc, std::nullopt);
        auto setup = onednn::knob_conv_setup(ctx);
        REQUIRE_MESSAGE(setup.ok(), setup.status().message());
        auto kernel = onednn::make_compact_conv_shaped(*setup, rt, kThreads, 64, 0, onednn::CompactPath::pointwise);
        REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
        const Tensor want = run_on(reference_backend(), expect, knob, Layout::nchw, std::nullopt);
        const double err = max_diff(run_kernel(**kernel, c, ctx, Layout::nhwc, &second), want);
        CHECK_MESSAGE(err <= tolerance_for(*knob) * (1 + max_abs(want)), "max |diff| " << err);
      }
    }
  // Where it does not apply: 3x3 layers, half knobs, NCHW.
  ConvCase c3 = network_layer(rng, 1, 8, 6, 16, 3, 1, 1);
  ConvCase c1 = network_layer(rng, 1, 8, 6, 16, 1, 1, 1);
  const std::tuple<const ConvCase*, const char*, Layout> refused[] = {
      {&c3, "samp-2-0", Layout::nhwc}, {&c1, "perf-row-2-0-fp16", Layout::nhwc}, {&c1, "samp-2-0", Layout::nchw}};
  for (const auto& [cc, name, layout] : refused) {
    const NodeContext ctx = context_for(*cc, find_knob(name), layout, std::nullopt);
    auto setup = onednn::knob_conv_setup(ctx);
    REQUIRE(setup.ok());
    auto kernel = onednn::make_compact_conv_shaped(*setup, rt, kThreads, 64, 0, onednn::CompactPath::pointwise);
    CHECK_MESSAGE(kernel.status().code() == Errc::unsupported, name);
  }
}

TEST_CASE("knob onednn: perforation by hand (identity 1x1 conv)") {
  // y = x, so the output shows the interpolation directly: rows 0 and 2 of
  // 4 are skipped by perf-row-2-0; row 0 copies row 1 (edge), row 2 is the
  // mean of rows 1 and 3. Columns: perf-col-3-1 skips column 1 of 3, the
  // mean of columns 0 and 2.
  ConvCase c = make_conv({Tensor::copy_of(DType::f32, {1, 1, 4, 3},
                                          std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}.data()),
                          Tensor::copy_of(DType::f32, {1, 1, 1, 1}, std::vector<float>{1}.data()),
                          Tensor::copy_of(DType::f32, {1}, std::vector<float>{0.5f}.data())},
                         {});
  const std::vector<float> rows{4.5f, 5.5f, 6.5f, 4.5f, 5.5f, 6.5f, 7.5f, 8.5f, 9.5f, 10.5f, 11.5f, 12.5f};
  const std::vector<float> cols{1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f, 8.5f, 9.5f, 10.5f, 11.5f, 12.5f};
  for (Layout layout : {Layout::nchw, Layout::nhwc}) {
    const Tensor r = run_on(onednn_backend(), c, find_knob("perf-row-2-0"), layout, std::nullopt);
    CHECK(std::vector<float>(r.span<float>().begin(), r.span<float>().end()) == rows);
    const Tensor q = run_on(onednn_backend(), c, find_knob("perf-col-3-1"), layout, std::nullopt);
    CHECK(std::vector<float>(q.span<float>().begin(), q.span<float>().end()) == cols);
  }
}

TEST_CASE("knob onednn: kernels keep no state between runs") {
  std::mt19937 rng(test_seed("state"));
  for (const char* name : {"perf-row-3-1", "samp-2-0-fp16", "fp16", "bf16", "int8"}) {
    const Knob* knob = find_knob(name);
    ConvCase c = network_layer(rng, 2, 8, 8, 8, 3, 1, 1);
    add_fusion(c, rng, true, "HardSwish");
    c.bias_constant = false;
    std::vector<Tensor> second = c.inputs;
    second[0] = random_tensor(c.inputs[0].shape(), rng);
    second[2] = random_tensor(c.inputs[2].shape(), rng);
    second[3] = random_tensor(c.inputs[3].shape(), rng);
    const std::optional<ValueRange> range = ValueRange{-1.0f, 1.0f};
    ConvCase expect = c;
    expect.inputs = second;
    const Tensor want = run_on(reference_backend(), expect, knob, Layout::nchw, range);
    const double extra = knob->kind == KnobKind::int8 ? 2.0 / 127.0 * max_abs(c.inputs[1]) : 0.0;
    for (Layout layout : {Layout::nchw, Layout::nhwc}) {
      const Tensor got = run_on(onednn_backend(), c, knob, layout, range, &second);
      CHECK_MESSAGE(max_diff(got, want) <= tolerance_for(*knob) * (1 + max_abs(want)) + extra, name);
    }
  }
}

TEST_CASE("knob onednn: kernels that sum the residual in place read it from their own output") {
  // The executor lends a dying residual's buffer to the output and skips
  // its copy when the kernel says residual_in_place(): every output value
  // must then be written only after its residual value was read.
  std::mt19937 rng(test_seed("in-place residual"));
  const LayerGeometry layers[] = {{32, 14, 64, 1, 1}, {16, 9, 40, 1, 2}, {8, 9, 24, 3, 1}};
  const char* knob_names[] = {"samp-2-0", "samp-3-1-fp16", "perf-col-2-0", "perf-row-3-1", "perf-col-2-1-fp16"};
  int in_place = 0;
  for (const LayerGeometry& l : layers)
    for (int64_t n : {1, 3})
      for (const char* act : {"Relu", "Tanh"}) {
        ConvCase c = network_layer(rng, n, l.c, l.hw, l.oc, l.k, l.stride, 1);
        add_fusion(c, rng, true, act);
        for (const char* name : knob_names) {
          const Knob* knob = find_knob(name);
          const Tensor want = run_on(reference_backend(), c, knob, Layout::nchw, std::nullopt);
          for (Layout layout : {Layout::nchw, Layout::nhwc}) {
            INFO("case " << describe(c) << ", knob " << std::string(name) << (layout == Layout::nhwc ? " nhwc" : " nchw"));
            NodeContext ctx = context_for(c, knob, layout, std::nullopt);
            ctx.residual_in_place = true;
            auto kernel = onednn_backend().prepare(ctx);
            REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
            if (!(*kernel)->residual_in_place()) continue;
            ++in_place;
            Tensor x = layout == Layout::nhwc ? to_nhwc(c.inputs[0]) : c.inputs[0];
            Tensor out = layout == Layout::nhwc ? to_nhwc(c.inputs[3]) : c.inputs[3];
            const Tensor* in[4] = {&x, &c.inputs[1], &c.inputs[2], &out};
            Tensor* outs[1] = {&out};
            const Status st = (*kernel)->run(in, outs);
            REQUIRE_MESSAGE(st.ok(), st.message());
            const double err = max_diff(layout == Layout::nhwc ? to_nchw(out) : out, want);
            CHECK_MESSAGE(err <= tolerance_for(*knob) * (1 + max_abs(want)), "max |diff| " << err);
          }
        }
      }
  // The tiles that start from bias + residual (AVX-512, NHWC, no half
  // rounding, a vector activation: Relu here) claim it, perforated or not.
  if (onednn::simd::best_kernel_isa() == onednn::simd::KernelIsa::avx512) CHECK(in_place == 3 * 2 * 3);
}
