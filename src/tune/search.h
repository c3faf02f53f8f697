#pragma once
// Search strategies over per-layer knob assignments (`caliprox tune`), and
// the driver loop that feeds them. The search sees the network only through
// callbacks: the caller evaluates candidates (empirically, or with a p1/p2
// predictor and a cost model) and returns a QoS loss and a speedup.
//
// Reproducibility contract:
// - A strategy proposes candidates in batches (at most batch_size, fixed in
//   the settings) and is told the results of a whole batch, in proposal
//   order. Everything it proposes next depends only on the seed, the
//   settings and those results, so results do not depend on how many
//   workers evaluate a batch or in which order they finish.
// - Resuming: run_search asks the `recorded` hook for each iteration before
//   evaluating it; feeding recorded results (records.jsonl) instead of
//   evaluating reproduces exactly the proposals an uninterrupted run makes.
// - Randomness comes from Rng (tune/rng.h), identical on every platform.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "experiment/tune_modes.h"  // StrategyKind
#include "knobs/knobs.h"
#include "tune/rng.h"
#include "tune/worker_pool.h"
#include "util/status.h"

namespace caliprox {

// The knobs a layer may take: knobs[0] is the exact knob ("fp32"), the rest
// ordered from least to most aggressive (e.g. by nominal speedup); the
// differential-evolution move treats that order as a numeric axis.
// A node that takes reshape knobs (prune-*, lowrank-*) has a second entry,
// with `reshape` set, whose knobs after the first are reshape knobs: the
// search picks its shape and its kernel knob independently, and the
// configuration joins them ("prune-0.5+int8", knobs.h KnobChoice).
struct LayerChoices {
  std::string node;
  std::vector<std::string> knobs;
  bool reshape = false;
};

// Per layer, an index into that layer's LayerChoices::knobs (0 = exact).
using Candidate = std::vector<int>;

struct SearchSpace {
  std::vector<LayerChoices> layers;

  // invalid_input when there are no layers, a layer has no knobs, knobs[0] is
  // not exact, a knob is unknown or repeated or of the wrong family for the
  // entry (reshape or kernel), a node has two entries of one family, or no
  // layer has any knob other than exact ("empty knob space").
  Status validate() const;
  bool contains(const Candidate& c) const;
  KnobConfig to_config(const Candidate& c) const;  // exact layers omitted
  // invalid_input naming the node for nodes outside the space or knobs a
  // layer does not allow.
  Result<Candidate> from_config(const KnobConfig& config) const;
  Candidate exact() const { return Candidate(layers.size(), 0); }
};

// What the caller measured or predicted for one candidate.
struct Evaluation {
  double qos_loss = 0;  // same unit as SearchSettings::max_loss; NaN = failed run (never feasible)
  double speedup = 1;   // over the exact network
};
inline bool feasible(const Evaluation& e, double max_loss) { return e.qos_loss <= max_loss; }  // false for NaN

struct Proposal {
  Candidate candidate;
  std::string origin;  // "random", "seed", "greedy", "mutation", "crossover", "differential-evolution"
};

struct SearchSettings {
  StrategyKind kind = StrategyKind::evolutionary;
  uint64_t seed = 0;
  int batch_size = 8;     // part of the records fingerprint: changing it changes the search
  double max_loss = 1.0;  // the goal as an absolute loss (relative goals converted by the caller)

  // greedy (required): single[l][k] = the result of approximating layer l
  // alone with knob k (single[l][0], the exact knob, is not read).
  std::vector<std::vector<Evaluation>> single;
  int greedy_refine_sweeps = 2;  // refinement passes after the first pass over the layers

  // evolutionary: candidates evaluated first (e.g. a greedy result), then
  // `initial_random` random ones (0: 2 * batch_size), then bandit-chosen moves.
  std::vector<Candidate> seeds;
  int initial_random = 0;
  double bandit_c = 0.05;    // exploration weight (OpenTuner's default)
  int bandit_window = 500;   // sliding window of operator uses the credit is computed over
};

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  // The next batch (1..batch_size proposals); empty when the strategy has
  // nothing left to propose (greedy finished, random exhausted the space).
  virtual std::vector<Proposal> propose() = 0;
  // Results of the whole last batch, in proposal order.
  virtual Status observe(const std::vector<Evaluation>& results) = 0;
  virtual std::string_view name() const = 0;
  virtual double max_loss() const = 0;
  // True when the strategy stops on its own (greedy), so it needs no budget.
  virtual bool ends_by_itself() const { return false; }
  // One line for logs (e.g. operator use counts of the bandit).
  virtual std::string summary() const { return std::string(); }
};

Result<std::unique_ptr<SearchStrategy>> make_strategy(const SearchSpace& space, const SearchSettings& settings);

// The multi-armed bandit OpenTuner uses to pick search techniques, with
// area-under-the-curve credit assignment: over the last `window` uses of all
// arms, an arm's exploitation term is sum(j * win_j) / (n (n + 1) / 2) over its
// own n uses in chronological order j = 1..n (recent wins weigh more), its
// exploration term sqrt(2 ln N / n) with N the uses of all arms in the window,
// and score = exploitation + c * exploration (unused arms first). Uses
// announced with add_pending() count in the exploration term until
// clear_pending(), so a batch does not pile onto one arm.
class AucBandit {
 public:
  AucBandit(size_t arms, double c = 0.05, size_t window = 500);
  size_t select(Rng& rng) const;  // highest score; ties broken with rng
  double score(size_t arm) const;
  void add_pending(size_t arm);
  void clear_pending();
  void record(size_t arm, bool win);
  size_t uses_in_window(size_t arm) const;
  size_t total_uses(size_t arm) const { return total_[arm]; }
  size_t total_wins(size_t arm) const { return wins_[arm]; }

 private:
  double c_;
  size_t window_;
  std::deque<std::pair<size_t, bool>> history_;
  std::vector<size_t> pending_;
  std::vector<size_t> total_;
  std::vector<size_t> wins_;
};

// ----------------------------------------------------------------- driver

struct SearchBudget {
  std::optional<int64_t> max_evaluations;  // counts replayed ones too, so a resumed run ends where the first would have
  std::optional<double> max_seconds;       // wall time of this run (replayed evaluations take none)
};

struct RecordedEvaluation {
  Candidate candidate;
  Evaluation evaluation;
};

struct SearchProgress {
  int64_t evaluations = 0;  // done so far, replayed included
  int64_t replayed = 0;
  std::optional<int64_t> max_evaluations;
  double elapsed_seconds = 0;
  std::optional<double> max_seconds;
  double evaluations_per_second = 0;  // fresh evaluations only
  std::optional<double> best_feasible_speedup;
};

struct SearchHooks {
  // Required. Evaluates one candidate; called from the pool's workers at
  // once (worker in [0, workers) says which worker's session to use).
  std::function<Result<Evaluation>(const Proposal& proposal, int64_t iteration, int worker)> evaluate;
  // Optional: the recorded result of an iteration (resume), or nullopt. A
  // recorded candidate that differs from the proposal is an error.
  std::function<std::optional<RecordedEvaluation>(int64_t iteration)> recorded;
  // Optional: called once per fresh evaluation as soon as it finishes (in
  // completion order, never concurrently) — append to records.jsonl here.
  // `worker` is the one that evaluated it (a record names its host).
  std::function<Status(int64_t iteration, const Proposal& proposal, const Evaluation& result, double seconds,
                       int worker)>
      on_evaluated;
  std::function<void(const SearchProgress&)> on_progress;  // after each batch
  std::function<bool()> should_stop;                      // polled before each evaluation (SIGINT)
  std::function<double()> clock;                          // seconds; default steady_clock
};

struct SearchResult {
  int64_t iteration = 0;
  Proposal proposal;
  Evaluation evaluation;
  bool replayed = false;
};

// Why a search ended: its iteration budget, its time budget, the strategy
// had nothing more to propose, or should_stop (evaluations in flight were
// finished and reported).
enum class StopReason { iterations, time, exhausted, interrupted };
std::string_view stop_reason_name(StopReason reason);  // "iterations", "time", "exhausted", "interrupted"

struct SearchOutcome {
  std::vector<SearchResult> results;  // in iteration order
  int64_t replayed = 0;
  int64_t fresh = 0;
  StopReason stop_reason = StopReason::iterations;
};

// Runs propose / evaluate / observe until the budget, the strategy or
// should_stop ends it, each batch's fresh evaluations on the pool's workers
// (SearchHooks::evaluate's `worker`). invalid_input for a budget of zero or
// no budget for a strategy that never ends on its own.
Result<SearchOutcome> run_search(SearchStrategy& strategy, const SearchBudget& budget, WorkerPool& pool,
                                 const SearchHooks& hooks);
// The same on `jobs` threads of this process (LocalWorkerPool);
// invalid_input for jobs < 1.
Result<SearchOutcome> run_search(SearchStrategy& strategy, const SearchBudget& budget, int jobs,
                                 const SearchHooks& hooks);

}  // namespace caliprox
