#pragma once
// The phases a search engine runs over one network (issue 18), as functions
// over one context and without printing, so that `tune`, and later
// `calibrate` and `adapt-sim`, share them: workers with their own
// Evaluators, records.jsonl, the exact network's baselines, empirical runs,
// single-knob runs, validation of finalists on the tune and test splits, and
// measured speedups. The app layer opens the context, calls the phases in
// order and prints what they return; progress comes back through a
// PipelineReporter it implements. The phases of `tune` alone are in
// tune/tune_pipeline.h.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "eval/evaluator.h"
#include "tune/knob_space.h"
#include "tune/predict.h"
#include "tune/records.h"
#include "tune/search.h"
#include "tune/worker_pool.h"

namespace caliprox {

// Phases that report progress job by job.
enum class PipelinePhase { single, search, validate };

// What a pipeline tells its driver while it runs. Called from worker
// threads: progress reports one at a time, info() possibly from several
// workers at once (each Evaluator calibrates its own int8 ranges). Every
// method does nothing by default.
class PipelineReporter {
 public:
  virtual ~PipelineReporter() = default;
  // A line for the log that the runtime produced on its own (the int8
  // calibration pass of an Evaluator).
  virtual void info(const std::string& text) { (void)text; }
  // Job `index` (0-based) of the `total` of a phase has finished.
  virtual void progress(PipelinePhase phase, size_t index, size_t total) {
    (void)phase, (void)index, (void)total;
  }
  // After each batch of the search (tune/search.h).
  virtual void search_progress(const SearchProgress& progress) { (void)progress; }
  // The phase's progress reports are over (successfully or not).
  virtual void progress_done(PipelinePhase phase) { (void)phase; }
};

// What a pipeline runs on: plain values, no CLI types.
struct PipelineSetup {
  Experiment experiment;  // with any overrides of the caller already applied
  std::string backend;
  int threads = 1;        // of the target: the workers share them
  int jobs = 1;           // workers, each with its own Evaluator and sessions
  std::string dir;        // the run directory (records.jsonl and the artifacts)
  std::string job_name = "tune";  // in messages: "interrupted during tune; ..."
  // An MPI job's ranks (ClusterWorkerPool) in place of `jobs` threads: the
  // evaluations of worker r > 0 run on rank r (run_empirical_task there).
  std::unique_ptr<WorkerPool> pool;
};

// The exact network on the splits the phases compare against.
struct Baselines {
  double qos_tune = 0;
  double qos_test = 0;
  double qos_predictor = 0;  // on PipelineContext::predictor_range
  double max_loss = 0;       // the goal as an absolute loss against qos_tune
  std::vector<float> predictor_outputs;  // exact outputs on predictor_range, when asked for
};

struct PipelineContext {
  Experiment exp;
  std::string backend;
  int threads = 1;
  int worker_threads = 1;  // threads of each worker's sessions
  std::string dir;
  std::string job_name;
  PipelineReporter* reporter = nullptr;  // never null once opened
  std::unique_ptr<WorkerPool> pool;
  // [worker]: never shared between workers; only worker 0's when the pool
  // is an MPI job's (the other workers' are on their ranks).
  std::vector<std::unique_ptr<Evaluator>> evaluators;
  KnobSpace ks;
  SplitRange tune_range;
  SplitRange test_range;
  SplitRange predictor_range;  // the part of the tune split single-knob runs use
  std::optional<RecordStore> records;
  std::mutex records_mu;       // records is appended to from the workers
  Baselines base;

  Evaluator& main() { return *evaluators.front(); }
  int64_t batch() const { return exp.dataset.batch; }
  int64_t predictor_samples() const { return predictor_range.end - predictor_range.begin; }
};

// Creates the pool and one Evaluator per worker (the first collects
// per-node timings), reads the tune and test splits, and builds the knob
// space from the first worker's session (emulated knobs left out: a speed
// search). `reporter` may be null (nothing is reported) and must outlive the
// context.
Result<std::unique_ptr<PipelineContext>> open_pipeline(PipelineSetup setup, PipelineReporter* reporter);

// Opens (or resumes) <dir>/records.jsonl for the job `identity` describes:
// its fingerprint covers everything that changes what the job evaluates.
// Returns the fingerprint.
Result<std::string> open_records(PipelineContext& c, const nlohmann::json& identity);
// Thread-safe access to the open records (a copy: workers append meanwhile).
std::optional<EvalRecord> find_record(PipelineContext& c, std::string_view phase, int64_t iteration);
Status append_record(PipelineContext& c, const EvalRecord& record);
// Errc::interrupted naming what records.jsonl keeps (everything finished so far).
Status interrupted(const PipelineContext& c);

// Runs job(i, worker) for i in [0, count) on the pool, stopping on a
// signal; then ends the phase's progress reports. interrupted(c) after a
// signal (even when a job failed because of it), else the first error.
Status run_phase(PipelineContext& c, PipelinePhase phase, size_t count, const WorkerPool::Job& job);

// One empirical QoS run of `config` on samples [range.begin, range.end) on
// worker w (outputs appended when given); `once`: a configuration run only
// this time, whose kernels are released after it.
// `flops`: also the nominal FLOPs of what it ran (current_flops).
Result<SplitResult> empirical(PipelineContext& c, int worker, const KnobConfig& config, SplitRange range,
                              std::vector<float>* outputs = nullptr, bool once = false, double* flops = nullptr);
// The same as a task for another rank: {"kind": "empirical", "network",
// "config", "begin", "end", "outputs", "once", "flops_batch"?} in; {"qos",
// "metrics", "samples", "outputs"?, "flops"?} out, run on `ev` (the named
// network's evaluator there) by run_empirical_task.
Result<nlohmann::json> run_empirical_task(Evaluator& ev, const nlohmann::json& task);
// The nominal FLOPs of what the evaluator runs now, at `batch`.
Result<double> current_flops(Evaluator& ev, int64_t batch);

// The goal of `qos` as an absolute loss in the metric's unit, for an exact
// network whose QoS is `baseline` (a relative goal scales with it).
double absolute_max_loss(const QosSpec& qos, double baseline);

// The exact network on the tune split, the test split and the predictor
// range (keeping its outputs in c.base when `keep_predictor_outputs`), and
// the goal as an absolute loss; fills c.base.
Status run_baselines(PipelineContext& c, bool keep_predictor_outputs);

// Median milliseconds of one batch of `batch` samples (at most the dataset)
// under the worker's current configuration: one warm-up run, then
// `repeats` timed ones (measure_interleaved).
Result<double> median_batch_ms(Evaluator& ev, int64_t batch, int repeats);
// Speedup of `config` over the exact network on one batch, measured with
// measure_interleaved: `rounds` rounds, each timing the exact network and
// then `config`, each timed run after a switch and one untimed run. Leaves
// `config` applied.
Result<double> measured_speedup(Evaluator& ev, const KnobConfig& config, int64_t batch, int rounds = 7);

// ------------------------------------------------------- single-knob runs

struct SingleRuns {
  // single[l][k]: loss (against the exact network on the predictor range)
  // and cost-model speedup of layer l alone under its knob k; [l][0] unused.
  std::vector<std::vector<Evaluation>> single;
  std::optional<QosDeltaPredictor> p2;
  std::optional<OutputDeltaPredictor> p1;  // when built with outputs
  size_t runs = 0;
  int64_t fresh = 0;  // runs not replayed from records.jsonl
  double seconds = 0;
};

// No single-knob runs: `single` has an empty row per layer.
SingleRuns no_single_runs(const PipelineContext& c);

// Phase "single": one empirical run per (layer, knob) on the predictor
// range, on the pool, replayed from records when recorded. Builds the p2
// predictor, and the p1 predictor from c.base.predictor_outputs when
// `with_outputs`. speedups[l][k]: the cost model's single speedups.
Result<SingleRuns> run_single_knobs(PipelineContext& c, const std::vector<std::vector<double>>& speedups,
                                    bool with_outputs, uint64_t seed);

// ------------------------------------------------------------- validation

// A configuration a search chose, with what the search saw.
struct Finalist {
  size_t result = 0;  // index into the search's results
  KnobConfig knobs;
  Evaluation predicted;
  std::string origin;
};

struct Validated {
  double qos_tune = 0;
  double qos_test = 0;  // NaN when the tune split already missed the goal
  double speedup = 0;   // measured_speedup
  bool kept = false;    // within the goal on both splits
};

// Phase "validate": empirical QoS on the tune split, then (when within the
// goal there) on the test split, and the measured speedup, on the pool;
// replayed from records when recorded. validated[i] is finalists[i]'s.
Result<std::vector<Validated>> validate_finalists(PipelineContext& c, const std::vector<Finalist>& finalists);

}  // namespace caliprox
