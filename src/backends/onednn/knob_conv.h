#pragma once
// Approximated 2-D convolutions on the oneDNN backend (knobs/knobs.h gives
// the semantics; the reference backend's nn_knob_conv.cc is the oracle).
// Three kernel families, chosen by the knob's kind:
//
//   * perforation and sampling (fp32 or with IEEE-half rounding): a compact
//     convolution over only the computed output positions and only the kept
//     filter elements (knob_conv_compact*, driving the project's own loops
//     in src/kernels/: a register-tiled kernel, Winograd rows or tiles for
//     perforated 3x3 layers, oneDNN's 1x1 convolution on packed pixels,
//     im2col + sgemm, or a direct loop for depthwise layers), and where the
//     loops run without AVX-512, fp32 perforation as strided oneDNN
//     convolutions too (knob_conv_strided.cc), timed against them;
//   * bf16 and int8: oneDNN convolutions on bfloat16 / 8-bit data with the
//     fused bias, residual and activation as post-ops (knob_conv_lowp.cc),
//     and for bf16 also the compact kernel's tiles on bfloat16 pairs
//     (AVX512-BF16), timed against them;
//   * emulated precision (knob_conv_emulated.cc): the exact oneDNN
//     convolution run on the operands the knob defines -- fp16 always
//     (half-rounded inputs, weights and bias, output rounded to half: no
//     kernel here computes in half precision), bf16 on CPUs without
//     AVX512-BF16 (oneDNN 2.6 has no bf16 convolution there), int8 on CPUs
//     without AVX512-VNNI (oneDNN's int8 convolution there sums pairs of
//     u8 x s8 products in saturating 16-bit arithmetic: wrong results).
//     The accuracy effect is the knob's; the speed is fp32's.
//
// Every kernel is built at prepare time; run() never allocates.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/onednn/common.h"
#include "ir/ops/activation.h"
#include "ir/ops/conv_geometry.h"
#include "kernels/knob_plan.h"
#include "kernels/knob_simd.h"

namespace caliprox::onednn {

// The project's own knob kernels (src/kernels/), by their short names.
namespace simd = kernels::simd;
namespace compact = kernels::compact;

// What every knob kernel reads from the node, validated once.
struct KnobConvSetup {
  const Knob* knob = nullptr;
  ConvGeometry g;                 // 2-D: in/out/kernel vectors have 2 entries
  Layout layout = Layout::nchw;   // of X, Y and the residual
  bool residual = false;          // caliprox.residual: input #3 added before the activation
  bool has_bias = false;
  act::Activation act;      // fused activation (kind none without one)
  std::vector<EltwiseOp> act_ops; // the same as oneDNN eltwise steps (bf16 / int8 post-ops)
  bool act_ops_ok = false;        // false when oneDNN cannot express the activation exactly
  const Tensor* weights = nullptr;  // constant W (kernels need it at prepare time)
  const Tensor* bias = nullptr;     // constant B, or null (absent, or fed at run time)
  std::optional<ValueRange> input_range;  // int8 calibration of X
  simd::KernelIsa isa = simd::KernelIsa::portable;  // the variant of the compact loops to run (best_kernel_isa())
};

// How this CPU (cpu::features()) runs each knob kind on this backend:
// natively (a kernel that computes in the knob's precision, or skips the
// knob's work), or emulated (the knob's accuracy effect at fp32 speed), and
// why (kept short: it is printed by `caliprox knobs`).
KnobSupport onednn_knob_support(KnobKind kind);
// True when the knob kind runs on oneDNN's bf16 / int8 kernels here
// (else knob_conv_emulated.cc runs it).
bool lowp_native(KnobKind kind);

// Validates the node for a knob kernel: a 2-D float32 Conv the knob applies
// to, with constant weights, (int8) a finite calibrated range, and
// (NodeContext::output_codes) an int8 or bf16 knob.
// Errc::unsupported for what this backend leaves to the reference one,
// Errc::invalid_input for inputs no backend can run.
Result<KnobConvSetup> knob_conv_setup(const NodeContext& ctx);

// Perforation and sampling, fp32 or half (knob_conv_compact.cc). On the
// tiled path (AVX-512, NHWC, one group) layers of 4+ MFLOP time their
// candidates on scratch tensors and keep the fastest (conv.h's timing,
// remembered per node shape and knob for the process; off with the Conv
// tuner's CALIPROX_ONEDNN_TUNE=0): tile shapes when the computed rows are
// shorter than 14, Winograd rows and tiles (below) for perforation of 3x3
// stride-1 layers, and the pointwise path (below) for 1x1 layers.
Result<std::unique_ptr<Kernel>> make_compact_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                                  std::shared_ptr<const Runtime> rt, int threads);
// The compact kernel's paths: the register-tiled kernel (or, off AVX-512
// and NHWC, gather + GEMM and the direct loops); Winograd rows (perforation
// of 3x3 stride-1 NHWC layers: 1-D F(4,3) along each computed row or
// column); Winograd tiles (the same at rate 3 or 4: 2-D F(rate - 1, 3) x
// F(4,3) over each run of computed rows or columns); the pointwise path
// (fp32 perforation and sampling of unpadded, ungrouped 1x1 NHWC layers:
// the computed pixels' kept channels packed, then oneDNN's own 1x1
// convolution).
// strided: not the compact kernel but make_strided_perforation, which
// make_compact_conv times as one more candidate.
enum class CompactPath { tiled, winograd_rows, winograd_tiles, pointwise, strided };
// The same with a forced path and tile (tests): tile_n channels (64, 48 or
// 32) by tile_m positions (0: as many as the registers hold).
// Errc::unsupported where the path does not apply.
Result<std::unique_ptr<Kernel>> make_compact_conv_shaped(const KnobConvSetup& s, std::shared_ptr<const Runtime> rt,
                                                         int threads, int64_t tile_n, int64_t tile_m,
                                                         CompactPath path = CompactPath::tiled);

// The compact kernel's multiply-adds (FLOPs) over the computed positions
// and kept taps.
double compact_flops(const KnobConvSetup& s);

// fp32 row (column) perforation as rate - 1 oneDNN convolutions, one per
// computed residue class, with the stride times the rate, then one pass
// that places the rows, interpolates the skipped ones, adds the residual
// and applies the activation (knob_conv_strided.cc). make_compact_conv
// times it against the compact kernel. Errc::unsupported for other knobs,
// half variants, and weights or bias fed at run time.
Status check_strided_perforation(const KnobConvSetup& s);
Result<std::unique_ptr<Kernel>> make_strided_perforation(const NodeContext& ctx, const KnobConvSetup& s,
                                                         std::shared_ptr<const Runtime> rt, int threads);

// bf16 on the compact kernel's tiled path (compact::Plan::bf16): X and W
// rounded to bfloat16 (nearest even), pairs of channels multiplied by
// vdpbf16ps into fp32 accumulators, bias, residual and activation fused;
// X taken as bfloat16 codes or converted from floats; codes_out: the
// output written as bfloat16 codes (NodeContext::output_codes). tile_n by
// tile_m as for make_compact_conv_shaped. Errc::unsupported for other
// knobs, on CPUs without AVX512-BF16, off NHWC layers of one group and an
// even channel count, and, writing codes, with a residual or a sigmoid or
// tanh.
Status check_compact_bf16(const KnobConvSetup& s, bool codes_out);
// The team of a bf16 / int8 layer of `threads`, sized by the layer's FLOPs,
// for oneDNN's kernels and the compact tiles alike (make_lowp_conv times
// them against each other).
int lowp_team(const KnobConvSetup& s, int threads);
Result<std::unique_ptr<Kernel>> make_compact_bf16(const KnobConvSetup& s, std::shared_ptr<const Runtime> rt,
                                                  int threads, bool codes_out, int64_t tile_n = 64,
                                                  int64_t tile_m = 0);

// bf16 and int8 (knob_conv_lowp.cc). check_* builds the primitive
// descriptors only (supports()). make_lowp_conv times the implementations
// lowp_conv_impls lists (layers of 1+ MFLOP) and keeps the fastest.
Status check_lowp_conv(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt);
Result<std::unique_ptr<Kernel>> make_lowp_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                               std::shared_ptr<const Runtime> rt, int threads);
// One of oneDNN's implementations of a bf16 / int8 layer, for a source in
// the layout oneDNN prefers or, with src_host, in the host layout (which
// some implementations need to write an NHWC destination). oneDNN may list
// an implementation twice, so it is known by its name and the layouts it
// reads, not by its place in the list. An empty name is oneDNN's own pick.
// compact (bf16): instead the compact kernel's tiles (make_compact_bf16),
// tile_n by tile_m.
struct LowpImpl {
  bool src_host = false;
  std::string name;
  dnnl::memory::desc src, wei;
  bool compact = false;
  int64_t tile_n = 0, tile_m = 0;
};
// The implementations worth timing for the layer: oneDNN's own pick first,
// the others it lists for the pick's ISA, GEMM-based ones left out; then,
// for bf16 where they apply, the compact kernel's tiles (64 channels wide,
// and 32 on layers of more than 32 output channels).
Result<std::vector<LowpImpl>> lowp_conv_impls(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt,
                                              int threads);
// The kernel on that implementation; Errc::unsupported when the layer has
// none there.
Result<std::unique_ptr<Kernel>> make_lowp_conv_impl(const NodeContext& ctx, const KnobConvSetup& s,
                                                    std::shared_ptr<const Runtime> rt, int threads,
                                                    const LowpImpl& impl);

// fp16, and bf16 / int8 where !lowp_native (knob_conv_emulated.cc): wraps
// the exact Conv kernel of conv.cc. Such kernels neither read nor write
// low-precision codes (NodeContext::output_codes is refused).
Status check_emulated_conv(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt);
bool emulated_conv_nhwc(const NodeContext& ctx, const Runtime& rt);
Result<std::unique_ptr<Kernel>> make_emulated_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                                   std::shared_ptr<const Runtime> rt, int threads);

// out[i] = half_to_float(float_to_half(in[i])) (IEEE half, round to nearest
// even), vectorised with F16C / AVX-512 where the CPU has it. in == out is fine.
void round_to_half(const float* in, float* out, int64_t n);
// The same split across an OpenMP team (for_slices).
void round_to_half_parallel(const float* in, float* out, int64_t n, int threads);

// fn(begin, end) over slices of whole 16-float vectors of [0, n), across an
// OpenMP team of team_for_elements(threads, n) (the caller's thread alone
// for small n): for element-wise passes.
template <class Fn>
void for_slices(int64_t n, int threads, Fn&& fn) {
  const int team = team_for_elements(threads, n);
  if (team <= 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(team)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t units = (n + 15) / 16;
    fn(std::min(n, units * t / nt * 16), std::min(n, units * (t + 1) / nt * 16));
  }
}

}  // namespace caliprox::onednn
