#pragma once
// Conv / ConvTranspose on oneDNN: how a convolution is laid out and which
// algorithm runs it. Exposed so tests and benchmarks can force each variant
// and compare it with the heuristic's pick.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/onednn/common.h"
#include "ir/ops/conv_geometry.h"

namespace caliprox::onednn {

// Where the primitive reads and writes its activations. The host tensors
// are NCHW, or NHWC for a node prepared channels-last (ctx.layout).
enum class ConvLayout {
  // oneDNN's preferred layout (brgconv picks NHWC); reorders around it
  // unless that is the host layout.
  any,
  // nChw16c (nCw16c / nCdhw16c): the NCHW <-> 16-channel-block reorders
  // measured 2.5-3x faster than NCHW <-> NHWC, the direct kernel as fast;
  // NHWC <-> blocks is faster still.
  channels16,
  // The host tensors directly, no reorders. On NCHW that is oneDNN's
  // im2col + GEMM implementation (wins for pointwise layers); on NHWC the
  // brgconv kernels (GEMM-based for nodes where brgconv is unsafe).
  plain,
  // Host source read directly, destination in oneDNN's preferred layout:
  // on NCHW the direct kernel for few input channels (first layers) needs
  // no input reorder and beats GEMM 1.3-2x.
  plain_src,
};

struct ConvVariant {
  ConvLayout layout = ConvLayout::any;
  dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;
  // OpenMP width; tiny convolutions run faster on one thread than paying
  // the team's fork/join.
  int threads = 1;
  // How a fused residual is added: false, oneDNN's sum post-op (the residual
  // is first copied into the destination); true, a binary add post-op that
  // reads the residual tensor where it is (no copy; only some
  // implementations have it, e.g. jit_1x1 on NHWC).
  bool binary_residual = false;
  // Past oneDNN's brgemm-based implementations (its first choice on NHWC)
  // to the direct JIT kernel listed after them (jit / jit_1x1), where there
  // is one.
  bool jit = false;
  bool operator==(const ConvVariant&) const = default;
};
const char* layout_name(ConvLayout layout);

// Heuristic pick for a Conv of geometry g on `threads` threads with host
// tensors in `host` layout (rules from measurements on this backend's
// target, see conv_select.cc). residual_sum: the fused residual runs as a
// sum post-op.
ConvVariant choose_conv_variant(const ConvGeometry& g, int threads, bool residual_sum, Layout host = Layout::nchw);

// Some output position's window lies entirely in the padding.
bool has_padding_only_outputs(const ConvGeometry& g);
// Multiply-adds times two.
double conv_flops(const ConvGeometry& g);

// Variants worth timing for this geometry, the heuristic's pick first.
// residual_in_place: the executor hands the residual in the output's buffer
// (NodeContext::residual_in_place), so the sum post-op needs no copy and the
// binary-residual variant, which would need one, is not offered.
std::vector<ConvVariant> conv_candidates(const ConvGeometry& g, int threads, bool residual_sum,
                                         Layout host = Layout::nchw, bool residual_in_place = false);

// Prepare-time timing (conv_tune.cc), shared by the Conv tuner below and the
// knob kernels' choice of kernel (knob_conv_compact.cc, knob_conv_lowp.cc).
//
// Everything that changes which variant of a node wins: op, shapes,
// attributes (fused ones included), which inputs are constants, host layout,
// thread count (and, for NodeContext::residual_in_place, whether the
// residual is lent to the output).
std::string tuning_key(const NodeContext& ctx, int threads);
// The index of the kernel to keep among candidate kernels of the node.
// Each is timed on scratch tensors of the node's shapes (constants used as
// they are; output #0 in the type of NodeContext::output_codes when the
// kernels write codes; with residual_in_output, input #3 handed in output
// #0's buffer): one warm-up run each, then three rounds in turn of about
// round_seconds of runs per kernel (at least min_reps), the minimum per
// kernel. The first keeps its place unless another is clearly (5 %)
// faster, since near-ties are noise and a stable choice is easier to
// reason about. Each label and time, and the pick, go to the debug log.
Result<size_t> pick_fastest(const NodeContext& ctx, const std::vector<Kernel*>& kernels,
                            const std::vector<std::string>& labels, bool residual_in_output, double round_seconds,
                            int min_reps);
// Winners remembered for the process, by tuning key.
template <class V>
class TuningCache {
 public:
  std::optional<V> find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = winners_.find(key);
    if (it == winners_.end()) return std::nullopt;
    return it->second;
  }
  void remember(const std::string& key, const V& v) {
    std::lock_guard<std::mutex> lock(mutex_);
    winners_.emplace(key, v);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, V> winners_;
};

// Prepare-time tuning (conv_tune.cc): builds the kernel of every candidate,
// times it on scratch tensors of the node's shapes and keeps the fastest.
// The winner is remembered for the process, keyed by the node's shapes,
// attributes, host layout and thread count, so later sessions build it
// directly.
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
