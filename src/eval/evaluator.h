#pragma once
// The network as the search engines see it (DESIGN "Search engines see the
// network only through the runtime API and the QoS API"): one experiment,
// one backend, sessions per batch shape, a knob configuration applied to all
// of them, and QoS of a dataset split under the current configuration.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/session.h"
#include "eval/model_io.h"
#include "eval/reshape.h"
#include "experiment/experiment.h"
#include "knobs/knobs.h"
#include "knobs/rewrite.h"
#include "qos/metrics.h"

namespace caliprox {

struct SplitResult {
  double qos = 0;                         // the experiment's metric
  std::map<std::string, double> metrics;  // the metric plus top1/top5 with class labels
  std::vector<double> batch_ms;           // wall time of each full batch after the first
  int64_t samples = 0;
};

class Evaluator {
 public:
  // Told what the evaluator does on its own initiative, for the caller to
  // log (the int8 calibration pass). The evaluator itself prints nothing.
  using Notice = std::function<void(const std::string& text)>;

  // Loads model and dataset of `exp`; nothing is run yet.
  // collect_timings: sessions record per-node times (Session::timings).
  static Result<std::unique_ptr<Evaluator>> create(const Experiment& exp, const std::string& backend, int threads,
                                                   bool collect_timings = false, Notice notice = {});
  ~Evaluator();

  const Experiment& experiment() const { return exp_; }
  const Graph& graph() const { return variants_->base(); }  // the network as loaded
  // The graph sessions run: graph() rewritten by the current configuration's
  // reshape knobs (eval/reshape.h), graph() itself when it has none.
  const Graph& current_graph() const { return current_ ? *current_ : graph(); }
  const ModelIo& io() const { return io_; }
  const Dataset& dataset() const { return data_; }
  Backend& backend() { return *backend_; }
  int threads() const { return threads_; }

  // The knob sites of the network as loaded (from a session at the
  // experiment's batch), with the reshape knobs each layer takes.
  Result<const std::vector<KnobSite>*> knob_sites();

  // Applies `config` to every session, present and future. Reshape knobs
  // switch the sessions to the rewritten graph (built once per variant;
  // pruned layers are repaired on the calibration split's first samples).
  // int8 knobs trigger the calibration of input ranges on the `calibrate`
  // split first (once per variant). Errors leave the previous configuration
  // active.
  Status configure(const KnobConfig& config);
  // The reshape steps of the current configuration in the order they apply
  // (eval/reshape.h), each with the graph it applied to: graph() for the
  // first, then the variants after each step (from the cache).
  struct AppliedReshape {
    ReshapeStep step;
    std::shared_ptr<const Graph> before;
  };
  Result<std::vector<AppliedReshape>> applied_reshapes();
  // Runs `graph` in place of current_graph(): a retrained copy of it, such
  // as a fine-tune hook returns (the caller checks that it has the same
  // structure), under the current kernel knobs, with int8 input ranges
  // calibrated again for it when those need them. configure() (and a
  // detached_session() that must calibrate another variant) goes back to the
  // variants the rewrites build, the same configuration given again
  // included. Errors leave the current graph.
  Status replace_current_graph(Graph graph);
  const KnobConfig& configuration() const { return config_; }
  // Its kernel knobs, which the sessions on current_graph() run.
  const KnobConfig& kernel_configuration() const { return kernels_; }
  // Frees the knob kernels the current configuration does not run, in every
  // session (Session::release_idle_kernels).
  void release_idle_kernels() {
    for (auto& [n, s] : sessions_) s->release_idle_kernels();
  }

  // Calibrated input ranges of the current variant's layers (runs it with
  // no kernel knob over the calibrate split on first use, or over `tune` /
  // the whole dataset when there is no such split; says which in
  // `calibration_split()`).
  Result<const std::map<std::string, ValueRange>*> calibrated_ranges();
  const std::string& calibration_split() const { return calibration_split_; }

  // Runs the split under the current configuration. `on_batch(done, total)`
  // is called after each batch (progress). When `outputs` is given, the
  // network outputs of every sample are appended to it ([samples, ...] f32
  // flattened). The exact outputs needed by agreement metrics are computed
  // once per split and cached.
  Result<SplitResult> run_split(const std::string& split, std::vector<float>* outputs = nullptr,
                                const std::function<void(int64_t, int64_t)>& on_batch = {});

  // The same over samples [begin, end) of the dataset (e.g. a subsample of a split).
  Result<SplitResult> run_range(int64_t begin, int64_t end, std::vector<float>* outputs = nullptr,
                                const std::function<void(int64_t, int64_t)>& on_batch = {});

  // A session for batch size `n` under the current configuration. A later
  // configure() that changes the reshape knobs drops it.
  Result<Session*> session(int64_t n);
  // A session of the caller's own for batch size `n` under `config` (its
  // variant graph, kernel knobs and calibrated ranges), which no later
  // configure() touches: for measurements that alternate configurations
  // with different reshape knobs. The evaluator's configuration is unchanged
  // (its sessions are rebuilt only when `config` puts int8 on a variant not
  // calibrated yet).
  Result<std::unique_ptr<Session>> detached_session(const KnobConfig& config, int64_t n);

 private:
  Evaluator(const Experiment& exp);
  Result<std::vector<Tensor>*> exact_outputs(int64_t begin, int64_t end);
  // A session for batch `n` on `graph`, the variant keyed `variant` (whose
  // calibrated ranges it gets), running `kernels`.
  Result<std::unique_ptr<Session>> new_session(const Graph& graph, const std::string& variant, int64_t n,
                                               const KnobConfig& kernels);
  Status configure_sessions(const KnobConfig& kernels);
  // Switches the sessions to the variant `chain` builds (dropping them when
  // it differs from the current one).
  Status use_variant(const RewriteChain& chain);
  SplitRange calibration_range();
  Result<Tensor> repair_inputs();

  Experiment exp_;
  ModelIo io_;
  Dataset data_;
  std::unique_ptr<Backend> backend_;
  int threads_ = 1;
  bool collect_timings_ = false;
  Notice notice_;
  std::map<int64_t, std::unique_ptr<Session>> sessions_;  // on current_graph()
  KnobConfig config_;   // as given to configure()
  KnobConfig kernels_;  // its kernel knobs, which the sessions run
  std::unique_ptr<RewriteCache> variants_;  // holds the network as loaded
  std::shared_ptr<const Graph> current_;  // null: graph()
  std::string variant_;             // the current chain's key ("" for graph_)
  std::map<std::string, std::map<std::string, ValueRange>> ranges_;  // by variant
  std::optional<std::vector<KnobSite>> sites_;
  std::optional<Tensor> repair_inputs_;
  std::string calibration_split_;
  std::map<std::pair<int64_t, int64_t>, std::vector<Tensor>> exact_cache_;
};

}  // namespace caliprox
