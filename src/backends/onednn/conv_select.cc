// Which layout, algorithm and thread count a convolution runs with: a
// heuristic pick (rules from measurements on this backend's target, a 2-core
// AVX-512 Zen 5) and the candidate list the prepare-time tuner times.
#include "backends/onednn/conv.h"
#include "knobs/knobs.h"

namespace caliprox::onednn {

namespace {

bool is_depthwise(const ConvGeometry& g) { return g.group > 1 && g.c_in_per_group() == 1; }

bool is_pointwise(const ConvGeometry& g) {
  for (size_t d = 0; d < g.rank(); ++d)
    if (g.kernel[d] != 1 || g.strides[d] != 1 || g.pads_begin[d] != 0 || g.pads_end[d] != 0) return false;
  return true;
}

// oneDNN's Winograd kernels cover dense 2-D 3x3, stride 1, no dilation.
bool winograd_shape(const ConvGeometry& g) {
  if (g.rank() != 2 || g.group != 1) return false;
  for (size_t d = 0; d < 2; ++d)
    if (g.kernel[d] != 3 || g.strides[d] != 1 || g.dilations[d] != 1) return false;
  return true;
}

}  // namespace

double conv_flops(const ConvGeometry& g) { return conv_layer_flops(g); }

bool has_padding_only_outputs(const ConvGeometry& g) {
  for (size_t d = 0; d < g.rank(); ++d) {
    const int64_t ek = g.effective_kernel(d);
    if (g.pads_begin[d] >= ek || g.pads_end[d] >= ek) return true;
  }
  return false;
}

const char* layout_name(ConvLayout layout) {
  switch (layout) {
    case ConvLayout::any: return "any";
    case ConvLayout::channels16: return "channels16";
    case ConvLayout::plain: return "plain";
    case ConvLayout::plain_src: return "plain_src";
  }
  return "?";
}

ConvVariant choose_conv_variant(const ConvGeometry& g, int threads, bool residual_sum, Layout host) {
  // Small convolutions: one thread (common.h, single_thread_flops).
  const int team = team_for_flops(threads, conv_flops(g));
  const auto direct = dnnl::algorithm::convolution_direct;
  // oneDNN 2.6's brgconv gets a sum post-op wrong when some output
  // positions see only padding (their "outwork" kernel): it writes wrong
  // values, or crashes in its JIT code when an eltwise post-op follows.
  // Found by fuzzing blocked against plain results; the GEMM-based
  // implementation behind the plain layout handles these geometries.
  if (residual_sum && has_padding_only_outputs(g)) return {ConvLayout::plain, direct, team};
  if (host == Layout::nhwc) {
    // NHWC is brgconv's own layout: the host tensors are read and written
    // directly (measured as fast as with oneDNN's free choice, 1.1-1.2x the
    // blocked direct kernel at batch 64). Winograd still wins for 3x3
    // stride-1 layers of 16+ channels (1.5-1.9x brgconv at batch 64 on
    // 32-128 channels), and NHWC <-> 16-channel-block reorders are cheap
    // (~5 % of its time).
    if (winograd_shape(g) && g.c_in >= 16 && g.c_out >= 16)
      return {ConvLayout::any, dnnl::algorithm::convolution_winograd, team};
    return {ConvLayout::plain, direct, team};
  }
  // Pointwise on NCHW is one GEMM per image: no reorders at all (as fast as
  // 16-channel blocks at batch 64 and near at batch 1; strided ones gather
  // their input first and lose to the blocked kernel, see is_pointwise).
  if (is_pointwise(g) && g.group == 1) return {ConvLayout::plain, direct, team};
  // Few input channels (first layers, LeNet's 6): the direct kernel reads NCHW as it
  // is; measured 1.3-2x faster than GEMM and than reordering the input.
  if (g.group == 1 && g.c_in < 8) return {ConvLayout::plain_src, direct, team};
  // Winograd (F(2x2,3x3) / F(4x4,3x3)) measured 1.3-2.5x faster than the
  // direct kernel for 16+ channels at batch 1 and 64 alike.
  if (winograd_shape(g) && g.c_in >= 16 && g.c_out >= 16) return {ConvLayout::any, dnnl::algorithm::convolution_winograd, team};
  return {ConvLayout::channels16, direct, team};
}

std::vector<ConvVariant> conv_candidates(const ConvGeometry& g, int threads, bool residual_sum, Layout host,
                                         bool residual_in_place) {
  const auto direct = dnnl::algorithm::convolution_direct;
  std::vector<ConvVariant> out{choose_conv_variant(g, threads, residual_sum, host)};
  auto add = [&](ConvVariant v) {
    for (const ConvVariant& c : out)
      if (c == v) return;
    out.push_back(v);
  };
  // A one-thread team is timed only where the team's fork/join could be a
  // visible share of the work. Above ~50 MFLOP (a quarter millisecond of one
  // core) one thread wins only while another process holds the second core,
  // and the winner is kept for the whole process: a transient load must not
  // pin a large convolution to one core.
  // The work-proportional team (common.h) is the default; the whole
  // machine is timed too, so a layer that scales past it still gets it.
  const int sized = team_for_flops(threads, conv_flops(g));
  std::vector<int> teams{sized};
  if (sized < threads) teams.push_back(threads);
  if (sized > 1 && conv_flops(g) < 50e6) teams.push_back(1);
  const bool blocked_ok = !(residual_sum && has_padding_only_outputs(g));
  if (host == Layout::nhwc) {
    // oneDNN's free choice is NHWC itself here (the plain layout), and
    // reading NHWC directly is what plain_src would add.
    for (int t : teams) {
      add({ConvLayout::plain, direct, t});
      if (!blocked_ok) continue;
      // The residual read where it is (jit_1x1 has it on NHWC): no copy into
      // the destination first, measured 1.3x faster for strided 1x1
      // shortcuts whose residual is not already in the destination. Never on
      // the GEMM-based implementation (conv.cc, conv_pd_with).
      if (residual_sum && !residual_in_place) add({ConvLayout::plain, direct, t, true});
      // oneDNN's direct JIT kernels on NHWC, which it ranks after brgconv:
      // 1.15x brgconv_1x1 on strided 1x1 layers in isolation (4 images of
      // 32 -> 64 channels, 28x28 stride 2: 15.9 against 18.4 us).
      add({ConvLayout::plain, direct, t, false, true});
      add({ConvLayout::channels16, direct, t});
      if (winograd_shape(g)) add({ConvLayout::any, dnnl::algorithm::convolution_winograd, t});
    }
    return out;
  }
  for (int t : teams) {
    if (blocked_ok) {
      add({ConvLayout::channels16, direct, t});
      add({ConvLayout::any, direct, t});
      if (winograd_shape(g)) add({ConvLayout::any, dnnl::algorithm::convolution_winograd, t});
    }
    // GEMM on NCHW is never competitive for depthwise layers.
    if (!is_depthwise(g)) add({ConvLayout::plain, direct, t});
    // Reading NCHW directly exists for few input channels only.
    if (blocked_ok && g.c_in_per_group() < 16) add({ConvLayout::plain_src, direct, t});
  }
  return out;
}

}  // namespace caliprox::onednn
