#pragma once
// Training-free repair of a pruned network (in the spirit of He et al.
// 2017 and ThiNet): every convolution where pruned channels end is re-fitted
// by least squares, on calibration inputs, so that from the channels that
// remain it best reproduces the output the original network computed with
// all of them. The kept channels' activations are the same in both networks
// (the filters that make them are untouched), so the original network's
// activations serve as the regression data.
#include <string>

#include "backends/backend.h"
#include "ir/graph.h"
#include "knobs/prune.h"

namespace caliprox {

struct RepairOptions {
  int64_t max_rows = 8192;   // output positions sampled per layer (all when fewer)
  double ridge = 1e-6;       // relative Tikhonov term: each diagonal entry of P^T P grows by this fraction
  uint64_t seed = 1;         // which positions are sampled
};

struct RepairReport {
  // Per re-fitted layer: mean squared error of its output against the
  // original, before and after the re-fit, on the calibration rows.
  struct Layer {
    std::string node;
    double mse_before = 0, mse_after = 0;
    int64_t rows = 0;  // regression rows: sampled output positions (Conv), samples (Gemm)
  };
  std::vector<Layer> layers;
};

// `pruned` is `original` after ChannelPrune with `plan`; `inputs` a batch of
// calibration inputs for the graph's single input. Re-fits the 2-D Conv
// ends of `plan` (their weights and, unchanged, their biases), and its Gemm
// ends (after Flatten; rows are samples, often fewer than the kept
// features, so the fit is a ridge towards the pruned weights with its
// strength picked on every fourth sample held out, and the pruned weights
// stay when no strength beats them there). A Gemm with transA, alpha or
// beta other than the defaults is left as pruned (absent from the report).
// Errors: a convolution with auto_pad, or a session that cannot run.
Result<Graph> repair_pruned(const Graph& original, const Graph& pruned, const PrunePlan& plan, const Tensor& inputs,
                            Backend& backend, const RepairOptions& options = {}, RepairReport* report = nullptr);

}  // namespace caliprox
