#pragma once
// Structured channel pruning of a convolution (a graph rewrite, rewrite.h):
// the output channels whose filters have the smallest L1 norms are removed,
// with everything that carries them:
//   - every convolution whose output meets this one's at an Add (a residual
//     group): they keep the same channels, ranked by their summed norms;
//   - the Conv's weight rows and bias entries;
//   - through channel-wise nodes (BatchNormalization: its four vectors;
//     activations; pooling), which keep their names and lose the channels;
//   - at the consumers that end the channels: a Conv (group 1) loses the
//     matching input channels of its weight; a Gemm after Flatten loses the
//     matching blocks of features (the channel's spatial positions).
// The pruned network computes exactly what the original computes when the
// removed channels are zero where the consumers read them (the reference the
// tests hold it to); training-free repair of the consumers (least squares on
// calibration activations) is a later step.
//
// Not pruned, with an error naming the node: a group that reaches the
// graph input (an identity shortcut from it), channels that reach a Concat,
// a grouped or depthwise consumer, any other op on the way, a graph output,
// a weight shared with other nodes, a fraction outside (0, 1), or one that
// would remove every channel.
#include <string>
#include <vector>

#include "knobs/rewrite.h"

namespace caliprox {

// What pruning `node` at a fraction removes and where the channels end
// (node names), as ChannelPrune applies it; repair (eval/prune_repair.h)
// re-fits the ends.
struct PrunePlan {
  std::vector<int64_t> keep;           // output channels kept, increasing
  int64_t channels = 0;                // output channels before pruning
  std::vector<std::string> members;    // convolutions pruned together (the node first)
  std::vector<std::string> batch_norms;  // BatchNormalizations the channels pass through
  std::vector<std::string> conv_ends;  // convolutions that lose input channels
  std::vector<std::string> gemm_ends;  // Gemms (after Flatten) that lose feature blocks
};
Result<PrunePlan> plan_prune(const Graph& graph, const std::string& node, double fraction);

class ChannelPrune final : public GraphRewrite {
 public:
  ChannelPrune(std::string node, double fraction) : node_(std::move(node)), fraction_(fraction) {}
  std::string key() const override;
  Result<Graph> apply(const Graph& graph) const override;

 private:
  std::string node_;
  double fraction_;
};

// The output channels a prune of `fraction` keeps: the largest L1 norms of
// the filters (weight [O, I, kh, kw] rows), in increasing channel order;
// ties keep the lower channel. invalid_input for a fraction outside (0, 1)
// or one that would keep none.
Result<std::vector<int64_t>> channels_to_keep(const Tensor& weight, double fraction, const std::string& node);

}  // namespace caliprox
