#pragma once
// Joint tuning of the networks of one application (`caliprox tune --guide
// budgets.json` and `--joint`), in the spirit of ApproxCaliper's guided
// tuning: one search over the knobs of every network at once, each
// candidate judged without the application where that is safe, and the
// application run only where nothing cheaper decides.
//
// Guided (a BudgetSpace from calibrate): a candidate's networks run on the
// calibrate split, their output errors (qos/error_stats.h) give a point in
// the budgets' space, and the point's slack decides: inside with margin:
// accepted; outside with margin: discarded; else uncertain (the
// application decides). The search maximises the predicted speedup among
// accepted candidates (search loss = -slack, feasible at slack >= margin).
//
// Unguided (no budgets): each network's own QoS goal on the tune split,
// the application-agnostic tuning guided tuning is compared with; every
// candidate within the goals needs the application to know whether it is
// good enough.
//
// A candidate's predicted speedup is each network's nominal FLOP ratio
// (eval/reshape.h configured_flops, on the graph the configuration runs, so
// pruning and factorisation are counted as they are), and speedups combine
// the networks' own by their exact latencies: an
// application that runs each network once per step gets
//   sum_n t_n / sum_n (t_n / s_n).
// The search and its finalists are in tune/joint_walk.h.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tune/budget_space.h"
#include "tune/pipeline.h"

namespace caliprox {

struct JointSetup {
  Experiment experiment;  // overrides applied
  std::string backend;
  int threads = 1;
  int jobs = 1;
  std::string dir;                     // records.jsonl and the artifacts
  std::optional<BudgetSpace> budgets;  // guided; none: each network's QoS goal
  double margin = 0.05;                // guided: in units of each axis's range
  int checks = 10;                     // application checks at most
  // An MPI job (dist/cluster.h): the candidates' network runs and the
  // application checks' repeats go to its ranks (worker r: rank r).
  Cluster* ranks = nullptr;
};

// One network of a joint tune: its own pipeline (workers, knob space).
struct JointNetwork {
  std::string name;
  std::unique_ptr<PipelineContext> ctx;
  double exact_flops = 0;    // configured_flops of the exact network at the batch
  size_t first = 0;          // its layers in the joint space: [first, first + ctx->ks.space.layers.size())
  double exact_ms = 0;       // one batch, exact
  SplitRange range;          // where candidates are measured
  std::vector<float> exact;  // the exact outputs there
  int64_t row = 0;
  std::optional<Tensor> labels;
  double exact_qos = 0;
  double max_loss = 0;  // the network's QoS goal as an absolute loss (unguided)
  nlohmann::json exact_errors;
};

// What a candidate does, network by network, and where that lands.
struct JointEval {
  std::map<std::string, double> loss;  // per network: QoS loss on its range
  std::vector<double> point;           // guided: in the budgets' space
  double slack = 0, excess = 0;        // guided
  double search_loss = 0;              // guided: -slack; else max_n loss_n / max_loss_n - 1
  double speedup = 1;                  // predicted: the networks' nominal FLOP ratios combined
};

class JointTuner {
 public:
  // invalid_input: budgets for another experiment, an axis naming a network
  // the experiment lacks, budgets without a valid point, a margin outside
  // [0, 1), checks < 1, no application section; goal_not_met: unguided,
  // a QoS goal that allows no loss.
  static Result<std::unique_ptr<JointTuner>> open(JointSetup setup, PipelineReporter* reporter);

  const JointSetup& setup() const { return setup_; }
  bool guided() const { return setup_.budgets.has_value(); }
  std::vector<JointNetwork>& networks() { return networks_; }
  const SearchSpace& space() const { return space_; }
  WorkerPool& pool() { return *networks_.front().ctx->pool; }
  // The search's feasibility bound on search_loss.
  double max_search_loss() const { return guided() ? -setup_.margin : 0.0; }

  // Network name -> its part of a joint configuration (exact networks
  // included, with an empty configuration).
  std::map<std::string, KnobConfig> split(const KnobConfig& joint) const;

  // Runs each network's part on worker `worker` (parts seen before come
  // from a cache) and places the result.
  Result<JointEval> evaluate(const Candidate& c, int worker);
  // guided: the budgets' placement; unguided: uncertain within every
  // network's goal (the application decides), discarded otherwise.
  Placement place(const JointEval& e) const;
  double combine(const std::map<std::string, double>& speedups) const;

 private:
  explicit JointTuner(JointSetup setup) : setup_(std::move(setup)) {}
  Status open_network(const std::string& name, PipelineReporter* reporter);
  struct Part {
    nlohmann::json errors;
    double loss = 0;
    double speedup = 1;  // exact_flops / configured_flops
  };
  Result<Part> run_part(JointNetwork& n, const KnobConfig& config, int worker);

  JointSetup setup_;
  std::vector<JointNetwork> networks_;
  SearchSpace space_;
  std::mutex cache_mu_;
  std::map<std::string, Part> cache_;  // "<network>\n<config json>" -> part
};

}  // namespace caliprox
