// Every compiled copy of the compact knob loops that this CPU can execute
// (portable, avx2, avx512, neon: kernels::simd::KernelIsa, one Highway
// target each), selected explicitly
// per kernel, against the reference backend on the same seeded random
// layers, in the manner of dav1d's checkasm; a copy this CPU cannot run is
// a skipped case with its reason. Tolerances: test_knob_onednn.cc's.
// Also: what the oneDNN backend claims per knob agrees with the kernels it
// prepares.
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <string>

#include "backends/onednn/knob_conv.h"
#include "cpu_needs.h"
#include "kernels/knob_simd.h"
#include "knob_cases.h"
#include "util/cpu.h"

using namespace caliprox;
using namespace knob_test;
using onednn::simd::KernelIsa;

namespace {

// Perforation and sampling (and their -fp16 variants) on random layers in
// both layouts, run by the `isa` copy of the loops.
void check_copy(KernelIsa isa) {
  std::mt19937 rng(test_seed((std::string("compact copy ") + std::string(onednn::simd::kernel_isa_name(isa))).c_str()));
  auto rt = std::make_shared<const onednn::Runtime>();
  std::vector<const Knob*> knobs = knobs_of(KnobKind::perforation);
  for (const Knob* k : knobs_of(KnobKind::sampling)) knobs.push_back(k);
  int ran = 0;
  for (size_t i = 0; i < knobs.size(); ++i) {
    const Knob& knob = *knobs[i];
    ConvCase c = i % 3 == 0 ? network_layer(rng, 2, 16, 9, 24, 3, 1 + i % 2, 1) : random_conv(rng, 1 + i % 3);
    if (!knob_applies(knob, c.node, c.inputs[0].shape(), c.inputs[1].shape()).ok()) continue;
    if (i % 2 == 0) add_fusion(c, rng, i % 4 == 0, kActivations[i % 7]);
    INFO("copy " << onednn::simd::kernel_isa_name(isa) << ", case " << describe(c) << ", knob " << knob.name);
    const Tensor want = run_on(reference_backend(), c, &knob, Layout::nchw, std::nullopt);
    const double bound = tolerance_for(knob) * (1 + max_abs(want));
    for (Layout layout : {Layout::nchw, Layout::nhwc}) {
      const NodeContext ctx = context_for(c, &knob, layout, std::nullopt);
      auto setup = onednn::knob_conv_setup(ctx);
      REQUIRE_MESSAGE(setup.ok(), setup.status().message());
      setup->isa = isa;
      auto kernel = onednn::make_compact_conv_shaped(*setup, rt, kThreads, 64, 0);
      REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
      const double err = max_diff(run_kernel(**kernel, c, ctx, layout), want);
      CHECK_MESSAGE(err <= bound, (layout == Layout::nhwc ? "nhwc" : "nchw") << ": max |diff| " << err << " > " << bound);
      ++ran;
    }
  }
  MESSAGE(ran << " kernels of the " << onednn::simd::kernel_isa_name(isa) << " copy checked");
  CHECK(ran >= static_cast<int>(knobs.size()));
}

}  // namespace

TEST_CASE("knob variants: the portable copy of the compact loops matches the reference") {
  check_copy(KernelIsa::portable);
}

TEST_CASE("knob variants: the avx2 copy of the compact loops matches the reference" *
          CP_NEEDS(onednn::simd::kernel_isa_runs(KernelIsa::avx2),
                   "the avx2 copy is not compiled here, or this CPU lacks AVX2 / FMA / F16C / BMI2")) {
  check_copy(KernelIsa::avx2);
}

TEST_CASE("knob variants: the neon copy of the compact loops matches the reference" *
          CP_NEEDS(onednn::simd::kernel_isa_runs(KernelIsa::neon), "the neon copy is compiled for aarch64 only")) {
  check_copy(KernelIsa::neon);
}

TEST_CASE("knob variants: the avx512 copy of the compact loops matches the reference" *
          CP_NEEDS(onednn::simd::kernel_isa_runs(KernelIsa::avx512),
                   "the avx512 copy is not compiled here, or this CPU lacks AVX-512 F/BW/DQ/VL")) {
  check_copy(KernelIsa::avx512);
}

TEST_CASE("knob variants: a copy this CPU cannot run is refused, not run") {
  std::mt19937 rng(test_seed("refused copy"));
  ConvCase c = network_layer(rng, 1, 8, 6, 8, 3, 1, 1);
  const NodeContext ctx = context_for(c, find_knob("perf-row-2-0"), Layout::nhwc, std::nullopt);
  auto setup = onednn::knob_conv_setup(ctx);
  REQUIRE(setup.ok());
  CHECK(setup->isa == onednn::simd::best_kernel_isa());
  auto rt = std::make_shared<const onednn::Runtime>();
  int refused = 0;
  for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512, KernelIsa::neon}) {
    if (onednn::simd::kernel_isa_runs(isa)) continue;
    setup->isa = isa;
    CHECK(onednn::make_compact_conv_shaped(*setup, rt, kThreads, 64, 0).status().code() == Errc::unsupported);
    ++refused;
  }
  MESSAGE(refused << " copies refused on this CPU");
}

TEST_CASE("knob variants: what the oneDNN backend claims per knob is what it prepares") {
  // Every knob it calls native or emulated is claimed on a plain 3x3 layer in
  // both layouts; int8 and bf16 take low-precision codes as input exactly
  // when they run natively (the emulated kernels compute on floats).
  std::mt19937 rng(test_seed("claims"));
  ConvCase c = network_layer(rng, 2, 16, 8, 16, 3, 1, 1);
  add_fusion(c, rng, false, "Relu");
  const ValueRange range{0.0f, 1.0f};
  for (const char* name : {"perf-row-2-0", "perf-col-3-1-fp16", "samp-2-1", "fp16", "bf16", "int8"}) {
    const Knob& knob = *find_knob(name);
    const KnobSupport claim = onednn_backend().knob_support(knob.kind);
    INFO("knob " << std::string(name) << ": " << knob_run_name(claim.run) << " (" << claim.how << ")");
    REQUIRE(claim.run != KnobRun::unavailable);
    for (Layout layout : {Layout::nchw, Layout::nhwc}) {
      const NodeContext ctx = context_for(c, &knob, layout, range);
      CHECK(onednn_backend().supports(ctx));
      if (layout == Layout::nhwc) CHECK(onednn_backend().supports_nhwc(ctx));
      auto kernel = onednn_backend().prepare(ctx);
      REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
      INFO("layout " << (layout == Layout::nhwc ? "nhwc" : "nchw"));
      // (Native kernels take codes in the layout the executor plans edges in.)
      if ((knob.kind == KnobKind::int8 || knob.kind == KnobKind::bf16) && layout == Layout::nhwc)
        CHECK((*kernel)->input_codes().has_value() == (claim.run == KnobRun::native));
    }
    const Tensor want = run_on(reference_backend(), c, &knob, Layout::nchw, range);
    const Tensor got = run_on(onednn_backend(), c, &knob, Layout::nhwc, range);
    // int8: two codes of X near a rounding boundary may flip (test_knob_onednn.cc).
    const double flips = knob.kind == KnobKind::int8 ? 2.0 * (range.max / 255.0) * max_abs(c.inputs[1]) : 0.0;
    CHECK(max_diff(got, want) <= tolerance_for(knob) * (1 + max_abs(want)) + flips);
  }
}
