// The pipeline's context: workers, splits, knob space, records, empirical
// runs and the exact network's baselines (tune/pipeline.h).
#include "tune/pipeline.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "eval/interrupt.h"
#include "util/atomic_file.h"

namespace caliprox {

namespace {

PipelineReporter& silent_reporter() {
  static PipelineReporter none;
  return none;
}

}  // namespace

double absolute_max_loss(const QosSpec& qos, double baseline) {
  if (qos.goal.kind == GoalKind::absolute) return qos.goal.max_loss;
  return qos.goal.max_loss * std::fabs(baseline);
}

Result<std::unique_ptr<PipelineContext>> open_pipeline(PipelineSetup setup, PipelineReporter* reporter) {
  auto c = std::make_unique<PipelineContext>();
  c->exp = std::move(setup.experiment);
  c->backend = std::move(setup.backend);
  c->threads = setup.threads;
  c->dir = std::move(setup.dir);
  c->job_name = std::move(setup.job_name);
  c->reporter = reporter ? reporter : &silent_reporter();
  c->pool = std::make_unique<LocalWorkerPool>(setup.jobs);

  // Workers share the target's threads; each has its own sessions.
  const int jobs = c->pool->workers();
  c->worker_threads = std::max(1, c->threads / jobs);
  PipelineReporter* r = c->reporter;
  const Evaluator::Notice notice = [r](const std::string& text) { r->info(text); };
  for (int w = 0; w < jobs; ++w) {
    CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(c->exp, c->backend, c->worker_threads, w == 0, notice));
    c->evaluators.push_back(std::move(ev));
  }
  Evaluator& main = c->main();
  CP_ASSIGN_OR_RETURN(c->tune_range, main.dataset().split("tune"));
  CP_ASSIGN_OR_RETURN(c->test_range, main.dataset().split("test"));
  c->predictor_range = c->tune_range;
  if (c->exp.tune.predictor_samples > 0)
    c->predictor_range.end = std::min(c->tune_range.end, c->tune_range.begin + c->exp.tune.predictor_samples);
  CP_ASSIGN_OR_RETURN(const std::vector<KnobSite>* sites, main.knob_sites());
  CP_ASSIGN_OR_RETURN(Session * first, main.session(c->batch()));
  CP_ASSIGN_OR_RETURN(c->ks, make_knob_space(c->exp, *sites, main.backend(), EmulatedKnobs::leave_out, first));
  return c;
}

Result<std::string> open_records(PipelineContext& c, const nlohmann::json& identity) {
  const std::string fingerprint = fingerprint_of(identity.dump());
  CP_TRY(ensure_directory(c.dir));
  const std::string path = (std::filesystem::path(c.dir) / "records.jsonl").string();
  CP_ASSIGN_OR_RETURN(RecordStore store, RecordStore::open(path, fingerprint, identity.dump()));
  c.records.emplace(std::move(store));
  return fingerprint;
}

std::optional<EvalRecord> find_record(PipelineContext& c, std::string_view phase, int64_t iteration) {
  std::lock_guard<std::mutex> lock(c.records_mu);
  const EvalRecord* r = c.records->find(phase, iteration);
  if (!r) return std::nullopt;
  return *r;
}

Status append_record(PipelineContext& c, const EvalRecord& record) {
  std::lock_guard<std::mutex> lock(c.records_mu);
  return c.records->append(record);
}

Status interrupted(const PipelineContext& c) {
  if (!c.records) return interrupted_status(c.job_name);
  return interrupted_status(c.job_name, c.records->path(), c.records->records().size());
}

Status run_phase(PipelineContext& c, PipelinePhase phase, size_t count, const WorkerPool::Job& job) {
  const Status st = c.pool->run(count, job, interrupt_requested);
  c.reporter->progress_done(phase);
  if (interrupt_requested()) return interrupted(c);
  return st;
}

Result<SplitResult> empirical(PipelineContext& c, int worker, const KnobConfig& config, SplitRange range,
                              std::vector<float>* outputs) {
  Evaluator& ev = *c.evaluators[static_cast<size_t>(worker)];
  CP_TRY(ev.configure(config));
  return ev.run_range(range.begin, range.end, outputs);
}

Status run_baselines(PipelineContext& c, bool keep_predictor_outputs) {
  CP_ASSIGN_OR_RETURN(SplitResult tune, empirical(c, 0, {}, c.tune_range));
  CP_ASSIGN_OR_RETURN(SplitResult test, empirical(c, 0, {}, c.test_range));
  c.base.qos_tune = tune.qos;
  c.base.qos_test = test.qos;
  c.base.max_loss = absolute_max_loss(c.exp.qos, tune.qos);
  c.base.predictor_outputs.clear();
  CP_ASSIGN_OR_RETURN(SplitResult pred, empirical(c, 0, {}, c.predictor_range,
                                                  keep_predictor_outputs ? &c.base.predictor_outputs : nullptr));
  c.base.qos_predictor = pred.qos;
  return {};
}

SingleRuns no_single_runs(const PipelineContext& c) {
  SingleRuns s;
  s.single.resize(c.ks.space.layers.size());
  return s;
}

}  // namespace caliprox
