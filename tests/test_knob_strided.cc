// Perforation as strided oneDNN convolutions (src/backends/onednn/
// knob_conv_strided.cc) against the reference backend's knob kernel, forced
// on every fp32 perforation knob, on random geometries (strides, dilations,
// groups, asymmetric pads; seed printed, CALIPROX_TEST_SEED=<n> replays one)
// in both layouts, with fused residuals and activations. make_compact_conv
// times this path against the compact kernel, so each must match the
// reference on its own. Tolerance as for perforation in test_knob_onednn.cc:
// max |onednn - reference| / (1 + max |reference|) <= 1e-4.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <random>
#include <string>

#include "backends/backend.h"
#include "backends/onednn/knob_conv.h"
#include "knob_cases.h"
#include "knobs/knobs.h"
#include "node_harness.h"
#include "onednn_cases.h"

using namespace caliprox;
using namespace knob_test;

TEST_CASE("knob strided: every fp32 perforation knob as strided convolutions matches the reference") {
  const unsigned seed = test_seed("strided perforation");
  std::mt19937 rng(seed);
  auto rt = std::make_shared<const onednn::Runtime>();
  int checked = 0, staged = 0, refused = 0;
  for (const Knob* knob : knobs_of(KnobKind::perforation)) {
    if (knob->half) continue;
    for (int i = 0; i < 6; ++i) {
      ConvCase c = random_conv(rng, i % 2 == 0 ? 1 : 3);
      c.bias_constant = true;
      if (!knob_applies(*knob, c.node, c.inputs[0].shape(), c.inputs[1].shape()).ok()) continue;
      if (i >= 2) add_fusion(c, rng, i % 2 == 1, kActivations[(checked + i) % 7]);
      const Layout layout = i % 2 == 0 ? Layout::nchw : Layout::nhwc;
      INFO("seed " << seed << ", case " << describe(c) << ", knob " << knob->name
                   << (layout == Layout::nhwc ? " (NHWC)" : " (NCHW)"));
      const NodeContext ctx = context_for(c, knob, layout, std::nullopt);
      auto setup = onednn::knob_conv_setup(ctx);
      REQUIRE_MESSAGE(setup.ok(), setup.status().message());
      if (!onednn::check_strided_perforation(*setup).ok()) {
        CHECK(c.inputs[1].shape()[knob->rows ? 2 : 3] == 1);  // only 1-tap kernels along the axis are refused here
        continue;
      }
      auto kernel = onednn::make_strided_perforation(ctx, *setup, rt, kThreads);
      if (!kernel.ok()) {
        // oneDNN has no optimized kernel for some classes (a stride wider
        // than the kernel on a tiny map): refused, and the compact kernel runs.
        CHECK(kernel.status().code() == Errc::unsupported);
        ++refused;
        continue;
      }
      const Tensor want = run_on(reference_backend(), c, knob, Layout::nchw, std::nullopt);
      const double err = max_diff(run_kernel(**kernel, c, ctx, layout), want);
      CHECK_MESSAGE(err <= 1e-4 * (1 + max_abs(want)), "max |diff| " << err);
      // A class that starts past the top (left) padding reads a shifted copy.
      const size_t axis = knob->rows ? 0 : 1;
      const int64_t pad = c.node.attrs.at("pads").ints[axis], stride = c.node.attrs.at("strides").ints[axis];
      const int64_t extent = want.shape()[2 + axis];
      bool shifted = false;
      for (int64_t p : perforation_kept(*knob, extent)) shifted = shifted || (p < knob->rate && p * stride > pad);
      staged += shifted;
      ++checked;
    }
  }
  MESSAGE(checked << " cases, " << staged << " with a staged input, " << refused << " refused");
  CHECK(checked > 15);
  CHECK(refused < checked / 4);
  CHECK(staged > 0);
}

TEST_CASE("knob strided: half variants, sampling, 1x1 layers and run-time bias stay with the compact kernel") {
  std::mt19937 rng(test_seed("strided refusals"));
  ConvCase c = network_layer(rng, 1, 8, 9, 8, 3, 1, 1);
  for (const char* name : {"perf-row-2-0-fp16", "samp-2-0"}) {
    const NodeContext ctx = context_for(c, find_knob(name), Layout::nhwc, std::nullopt);
    auto setup = onednn::knob_conv_setup(ctx);
    REQUIRE(setup.ok());
    CHECK(onednn::check_strided_perforation(*setup).code() == Errc::unsupported);
  }
  // A 1x1 layer: the compact kernel's gather is a plain strided copy there.
  ConvCase pointwise = network_layer(rng, 1, 8, 9, 8, 1, 1, 1);
  const NodeContext pw = context_for(pointwise, find_knob("perf-row-2-0"), Layout::nhwc, std::nullopt);
  auto pw_setup = onednn::knob_conv_setup(pw);
  REQUIRE(pw_setup.ok());
  CHECK(onednn::check_strided_perforation(*pw_setup).code() == Errc::unsupported);
  c.bias_constant = false;
  const NodeContext ctx = context_for(c, find_knob("perf-row-2-0"), Layout::nhwc, std::nullopt);
  auto setup = onednn::knob_conv_setup(ctx);
  REQUIRE(setup.ok());
  CHECK(onednn::check_strided_perforation(*setup).code() == Errc::unsupported);
}
