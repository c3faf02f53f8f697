// The pipeline's context: workers, splits, knob space, records, empirical
// runs and the exact network's baselines (tune/pipeline.h).
#include "tune/pipeline.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "eval/interrupt.h"
#include "eval/reshape.h"
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
  c->pool = setup.pool ? std::move(setup.pool) : std::make_unique<LocalWorkerPool>(setup.jobs);

  // Local workers share the target's threads; each has its own sessions.
  // An MPI job's ranks each run with all of them, as `--jobs 1` does
  // locally (reduction order follows the thread count: same threads, same
  // results), one rank per machine or per set of cores.
  const int jobs = c->pool->workers();
  c->worker_threads = c->pool->local(jobs - 1) ? std::max(1, c->threads / jobs) : c->threads;
  PipelineReporter* r = c->reporter;
  const Evaluator::Notice notice = [r](const std::string& text) { r->info(text); };
  for (int w = 0; w < jobs && c->pool->local(w); ++w) {
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
                              std::vector<float>* outputs, bool once, double* flops) {
  if (c.pool->local(worker)) {
    Evaluator& ev = *c.evaluators[static_cast<size_t>(worker)];
    CP_TRY(ev.configure(config));
    Result<SplitResult> r = ev.run_range(range.begin, range.end, outputs);
    if (r.ok() && flops) {
      CP_ASSIGN_OR_RETURN(*flops, current_flops(ev, c.batch()));
    }
    if (once) ev.release_idle_kernels();
    return r;
  }
  nlohmann::json task = {{"kind", "empirical"}, {"network", c.exp.network.name},
                         {"config", config},    {"begin", range.begin},
                         {"end", range.end},    {"outputs", outputs != nullptr},
                         {"once", once}};
  if (flops) task["flops_batch"] = c.batch();
  CP_ASSIGN_OR_RETURN(nlohmann::json done, c.pool->run_task(worker, task, {}));
  // NaN (and infinity) travel as null: a diverged configuration's outputs
  // come back as NaN, as they are for the search (the worst loss).
  auto number = [](const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); };
  SplitResult r;
  try {
    r.qos = number(done.at("qos"));
    for (const auto& [name, v] : done.at("metrics").items()) r.metrics[name] = number(v);
    r.samples = done.at("samples").get<int64_t>();
    if (flops) *flops = done.at("flops").get<double>();
    if (outputs) {
      const auto& outs = done.at("outputs");
      outputs->reserve(outputs->size() + outs.size());
      for (const auto& v : outs) outputs->push_back(static_cast<float>(number(v)));
    }
  } catch (const nlohmann::json::exception& e) {
    return runtime_error("{}: unreadable result of an empirical run: {}", c.pool->host(worker), e.what());
  }
  return r;
}

Result<double> current_flops(Evaluator& ev, int64_t batch) {
  CP_ASSIGN_OR_RETURN(Session * s, ev.session(batch));
  return configured_flops(ev.current_graph(), s->knob_sites(), ev.kernel_configuration(), batch);
}

Result<nlohmann::json> run_empirical_task(Evaluator& ev, const nlohmann::json& task) {
  if (task.value("kind", "") != "empirical") return runtime_error("not an empirical task: {}", task.dump());
  try {
    CP_TRY(ev.configure(task.at("config").get<KnobConfig>()));
    std::vector<float> outputs;
    const bool want = task.value("outputs", false);
    CP_ASSIGN_OR_RETURN(SplitResult r, ev.run_range(task.at("begin").get<int64_t>(), task.at("end").get<int64_t>(),
                                                    want ? &outputs : nullptr));
    nlohmann::json out = {{"qos", r.qos}, {"metrics", r.metrics}, {"samples", r.samples}};
    if (task.contains("flops_batch")) {
      CP_ASSIGN_OR_RETURN(double flops, current_flops(ev, task["flops_batch"].get<int64_t>()));
      out["flops"] = flops;
    }
    if (task.value("once", false)) ev.release_idle_kernels();
    if (want) out["outputs"] = outputs;
    return out;
  } catch (const nlohmann::json::exception& e) {
    return runtime_error("unreadable empirical task: {}", e.what());
  }
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
