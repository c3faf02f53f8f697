#pragma once
// The phases of `caliprox tune` on top of the shared pipeline
// (tune/pipeline.h): the records' identity, the cost model, the search with
// empirical, p1 or p2 QoS, the finalists, and the frontier's levels. The
// driver (app/tune.cc) runs them in this order:
//   open_pipeline, open_tune_records, run_baselines, tune_cost_model,
//   run_single_knobs (when needs_single_runs), run_search_phase,
//   pick_finalists, validate_finalists, add_levels.
#include <string>
#include <vector>

#include "tune/pareto.h"
#include "tune/pipeline.h"

namespace caliprox {

struct TuneRecords {
  std::string network_fingerprint;  // model bytes, backend, threads, batch (profile.json agrees on it)
  std::string fingerprint;          // of records.jsonl: network, splits, QoS goal, knob space, search settings
};
// Opens records.jsonl for this tune; the budget is not part of its
// fingerprint, so a longer budget resumes.
Result<TuneRecords> open_tune_records(PipelineContext& c);

// Whether the search needs the single-knob runs (p1 / p2 or greedy).
bool needs_single_runs(const TuneSpec& spec);

// pareto.json with the exact network only (level 0).
ParetoDocument exact_frontier(const PipelineContext& c, const std::string& fingerprint, double baseline_latency_ms);

// The search's cost model: the profile's measured costs (cost_mode
// measured, checked against `network_fingerprint`) or the nominal FLOPs one.
Result<CostModel> tune_cost_model(const PipelineContext& c, const std::string& network_fingerprint);

// The search budget of tune.iterations and tune.time_limit (0: none).
SearchBudget tune_budget(const TuneSpec& spec);

struct SearchPhase {
  SearchOutcome outcome;
  std::string summary;  // the strategy's one line for the logs
  double seconds = 0;
  // The QoS a predicted loss is relative to: the p1 metric of the exact
  // outputs it kept, or the exact network on the predictor range (p2).
  double predicted_reference = 0;
};
// Phase "search": the strategy over the tune budget on the pool, QoS by
// c.exp.tune.qos_mode, every fresh evaluation appended to the records.
// Errc::interrupted (interrupted(c)) when stopped by a signal.
Result<SearchPhase> run_search_phase(PipelineContext& c, const CostModel& cost, const SingleRuns& singles);

// The predicted frontier first, then the fastest feasible configurations,
// without duplicates or the exact one, at most tune.finalists of them.
std::vector<Finalist> pick_finalists(const PipelineContext& c, const SearchOutcome& outcome);

// The frontier over (test loss, measured speedup) of the kept finalists,
// thinned into levels c1, c2, ... appended to `doc`.
void add_levels(const PipelineContext& c, const SearchPhase& search, const std::vector<Finalist>& finalists,
                const std::vector<Validated>& validated, ParetoDocument& doc);

// How far the QoS and cost models were off on the levels they chose: mean
// |predicted - measured| and how many levels had both.
struct ModelErrors {
  double qos = 0;
  int qos_count = 0;
  double speedup = 0;
  int speedup_count = 0;
};
ModelErrors model_errors(const ParetoDocument& doc);

// The knob space's layers as ApproxTuner's confs.txt names them.
std::vector<HpvmLayer> hpvm_layers(const KnobSpace& ks);

}  // namespace caliprox
