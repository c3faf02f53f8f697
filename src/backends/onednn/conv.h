#pragma once
// Conv / ConvTranspose on oneDNN: how a convolution is laid out and which
// algorithm runs it. Exposed so the micro-benchmark (bench/onednn_conv_micro.cc)
// can force each variant and compare it with the heuristic's pick.
#include <memory>
#include <string>
#include <vector>

#include "backends/onednn/common.h"
#include "engine/ops/conv_geometry.h"

namespace caliprox::onednn {

// Where the primitive reads and writes its activations.
enum class ConvLayout {
  // oneDNN's preferred layout (brgconv picks NHWC); reorders around it.
  any,
  // nChw16c (nCw16c / nCdhw16c): the NCHW <-> 16-channel-block reorders
  // measured 2.5-3x faster than NCHW <-> NHWC, the direct kernel as fast.
  channels16,
  // The host NCHW tensors directly: oneDNN's im2col + GEMM implementation,
  // no reorders (wins for pointwise layers).
  plain,
  // NCHW source read directly, destination in oneDNN's preferred layout:
  // the direct kernel for few input channels (first layers) needs no input
  // reorder and beats GEMM 1.3-2x.
  plain_src,
};

struct ConvVariant {
  ConvLayout layout = ConvLayout::any;
  dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;
  // OpenMP width; tiny convolutions run faster on one thread than paying
  // the team's fork/join.
  int threads = 1;
  bool operator==(const ConvVariant&) const = default;
};
const char* layout_name(ConvLayout layout);

// Heuristic pick for a Conv of geometry g on `threads` threads (rules from
// measurements on this backend's target, see conv_select.cc).
// residual_sum: the fused residual runs as a sum post-op.
ConvVariant choose_conv_variant(const ConvGeometry& g, int threads, bool residual_sum);

// Some output position's window lies entirely in the padding.
bool has_padding_only_outputs(const ConvGeometry& g);
// Multiply-adds times two.
double conv_flops(const ConvGeometry& g);

// Variants worth timing for this geometry, the heuristic's pick first.
std::vector<ConvVariant> conv_candidates(const ConvGeometry& g, int threads, bool residual_sum);

// Prepare-time tuning (conv_tune.cc): builds the kernel of every candidate,
// times it on scratch tensors of the node's shapes and keeps the fastest.
// The winner is remembered for the process, keyed by the node's shapes,
// attributes and thread count, so later sessions build it directly.
// Disabled (heuristic pick only) when CALIPROX_ONEDNN_TUNE=0.
bool conv_tuning_enabled();
Result<std::unique_ptr<Kernel>> fastest_conv_kernel(const NodeContext& ctx, std::shared_ptr<const Runtime> rt,
                                                    int threads, const std::vector<ConvVariant>& candidates);

// The Conv kernel with a forced variant (nullptr: the heuristic's pick).
// Errc::unsupported when oneDNN has no implementation for that variant.
Result<std::unique_ptr<Kernel>> make_conv_kernel(const NodeContext& ctx, std::shared_ptr<const Runtime> rt,
                                                 int threads, const ConvVariant* forced);

// Name of the oneDNN implementation a kernel made by make_conv_kernel uses
// ("brgconv:avx512_core", ...), for benchmarks and logs.
std::string conv_impl_name(const Kernel& kernel);

}  // namespace caliprox::onednn
