#pragma once
// QoS predictors and cost models for `caliprox tune`, as in ApproxTuner:
// both predictors are built from one empirical run per (layer, knob) with
// only that layer approximated, and then cost no network run at all.
//   p2: qos(config) = qos(exact) + sum over layers of (qos(layer alone) - qos(exact))
//   p1: outputs(config) = outputs(exact) + sum over layers of (outputs(layer alone)
//       - outputs(exact)); the metric is then computed on the predicted outputs
// Cost models give a configuration's cost; speedup = exact cost / cost.
//   nominal:  sum over layers of FLOPs / layer_nominal_speedup, plus the rest
//             of the network as a fixed share of the exact time, minus the
//             FLOPs reshape knobs remove
//   measured: per-(layer, knob) milliseconds from profile.json's cost table,
//             plus the measured rest of the network, plus per reshape knob
//             the change of the whole network's time it measured
// Indices follow the SearchSpace: [layer][knob position], position 0 = exact.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ops/conv_geometry.h"
#include "tune/search.h"
#include "util/status.h"

namespace caliprox {

// ------------------------------------------------------------------------ p2

class QosDeltaPredictor {
 public:
  QosDeltaPredictor(const SearchSpace& space, double exact_qos);
  // The QoS measured with only `layer` approximated by its knob `knob`.
  Status set_single(size_t layer, size_t knob, double qos);
  bool complete() const;  // every non-exact (layer, knob) has a value
  // invalid_input when a needed single result is missing.
  Result<double> predict(const Candidate& c) const;
  double exact_qos() const { return exact_; }

 private:
  std::vector<std::string> nodes_;
  double exact_;
  std::vector<std::vector<std::optional<double>>> delta_;
};

// ------------------------------------------------------------------------ p1

class OutputDeltaPredictor {
 public:
  struct Options {
    // Keep the deltas of at most this many samples (0 = all): a deterministic
    // subsample (drawn with Rng(seed), then sorted) bounds the memory, which is
    // layers x knobs x samples x outputs floats.
    int64_t max_samples = 0;
    uint64_t seed = 0;
  };
  // exact: the exact network's outputs on the tune split, [samples, width] row-major.
  static Result<OutputDeltaPredictor> create(const SearchSpace& space, const std::vector<float>& exact,
                                             int64_t samples, int64_t width, const Options& options);

  // The outputs of the run with only `layer` approximated by `knob`, same
  // layout as the exact outputs (all samples; the subsample is taken here).
  Status set_single(size_t layer, size_t knob, const float* outputs, int64_t samples, int64_t width);
  bool complete() const;

  // Predicted outputs of the kept samples, [kept, width]; summed in float in
  // layer order, so the result is the same on every run.
  Status predict_outputs(const Candidate& c, std::vector<float>& out) const;
  // Runs `metric` on the predicted outputs. Compare it with
  // metric(exact_kept()) on the same samples, not with the full split's
  // value, so that the subsample does not bias the loss.
  using OutputMetric = std::function<Result<double>(const std::vector<float>& outputs)>;
  Result<double> predict(const Candidate& c, const OutputMetric& metric) const;

  const std::vector<int64_t>& kept_samples() const { return kept_; }  // ascending indices into the split
  const std::vector<float>& exact_kept() const { return exact_kept_; }
  int64_t width() const { return width_; }
  size_t memory_bytes() const;  // bytes held by the stored deltas and exact outputs

 private:
  OutputDeltaPredictor() = default;
  std::vector<std::string> nodes_;
  int64_t samples_ = 0;
  int64_t width_ = 0;
  std::vector<int64_t> kept_;
  std::vector<float> exact_kept_;
  std::vector<std::vector<std::vector<float>>> delta_;  // [layer][knob] -> [kept, width], empty until set
};

// ---------------------------------------------------------------- cost models

class CostModel {
 public:
  CostModel() = default;
  // layer_cost[l][k]: cost of layer l under its knob k (k = 0: exact);
  // rest: the cost of everything that is not a tunable layer.
  CostModel(std::vector<std::vector<double>> layer_cost, double rest, std::string unit);
  double cost(const Candidate& c) const;
  double exact_cost() const { return exact_; }
  double speedup(const Candidate& c) const { return exact_ / cost(c); }
  const std::string& unit() const { return unit_; }  // "GFLOP" or "ms"
  // Speedup of each single (layer, knob) approximation, [layer][knob], as
  // the greedy strategy's ranking input.
  std::vector<std::vector<double>> single_speedups() const;

 private:
  std::vector<std::vector<double>> layer_cost_;
  double rest_ = 0;
  double exact_ = 0;
  std::string unit_;
};

// geometries[l]: the Conv geometry of space.layers[l] (at the batch size the
// speedup refers to); non_conv_share in [0, 1): the part of the exact
// network's time spent outside these layers. A reshape entry's knobs cost
// minus the FLOPs they remove from the network, flops_saved[l][knob]
// (KnobSite::flops_saved); the sum is additive, floored at 1 % of the
// exact cost (rewrites that narrow one layer from both sides overlap).
Result<CostModel> nominal_cost_model(const SearchSpace& space, const std::vector<ConvGeometry>& geometries,
                                     double non_conv_share,
                                     const std::vector<std::map<std::string, double>>& flops_saved = {});

// The cost table of a profile.json (schemas/profile.schema.json).
struct ProfileCosts {
  std::string fingerprint;
  double baseline_ms = 0;  // whole exact network
  double rest_ms = 0;      // the exact network minus its profiled layers
  std::map<std::string, std::map<std::string, double>> layer_ms;  // node -> knob -> median ms
  // node -> reshape knob -> median ms of the whole network under it alone
  std::map<std::string, std::map<std::string, double>> reshape_ms;
};
// invalid_input naming `source` and the key for malformed files, and for a
// fingerprint other than `expected_fingerprint` (a profile of another network
// or target) when that is not empty.
Result<ProfileCosts> parse_profile_costs(std::string_view text, std::string_view source,
                                         std::string_view expected_fingerprint);
// invalid_input naming the node and knob the profile lacks.
Result<CostModel> measured_cost_model(const SearchSpace& space, const ProfileCosts& costs, std::string_view source);

}  // namespace caliprox
