// caliprox inject: the errors approximations put on the network's outputs,
// measured on a dataset split (the calibrate split by default) against the
// exact network and the ground truth, with the error models that fit them
// (qos/error_stats.h), so that each candidate can be placed in the
// parameter space `calibrate` searched. Writes errors.json; every finished
// candidate goes to records.jsonl and is replayed on a re-run.
#include <chrono>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "app/common.h"
#include "app/distributed.h"
#include "eval/evaluator.h"
#include "eval/interrupt.h"
#include "qos/error_stats.h"
#include "tune/pareto.h"
#include "tune/records.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

struct InjectCandidate {
  std::string name;
  KnobConfig config;
};

Result<std::vector<InjectCandidate>> candidates_of(const InjectSettings& s, Evaluator& ev) {
  std::vector<InjectCandidate> out;
  for (const std::string& path : s.configs) {
    CP_ASSIGN_OR_RETURN(KnobConfig c, load_knob_config(path));
    out.push_back({std::filesystem::path(path).filename().string(), std::move(c)});
  }
  if (s.pareto_path) {
    CP_ASSIGN_OR_RETURN(ParetoDocument doc, load_pareto_json(*s.pareto_path, "--pareto"));
    for (const auto& c : doc.configurations)
      if (!c.knobs.empty()) out.push_back({fmt::format("level {} ({})", c.level, c.id), c.knobs});
  }
  if (s.each_knob || out.empty()) {
    CP_ASSIGN_OR_RETURN(const std::vector<KnobSite>* sites, ev.knob_sites());
    for (const KnobSite& site : *sites)
      for (const Knob* k : site.knobs)
        if (k->kind != KnobKind::exact) out.push_back({fmt::format("{} {}", site.node, k->name), {{site.node, k->name}}});
  }
  return out;
}

// The exact network's outputs on the split, and each candidate's errors
// against them: what every rank of an MPI job computes alike.
struct InjectEval {
  const Experiment& exp;
  std::string split;
  std::unique_ptr<Evaluator> ev;
  std::vector<float> exact;
  SplitResult base;
  int64_t row = 0;
  std::optional<Tensor> labels;

  static Result<std::unique_ptr<InjectEval>> open(const Experiment& exp, const InjectSettings& s) {
    const ResolvedTarget target = resolve_target(exp, s.common);
    auto e = std::make_unique<InjectEval>(InjectEval{exp, s.split, nullptr, {}, {}, 0, std::nullopt});
    CP_ASSIGN_OR_RETURN(e->ev, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
    CP_ASSIGN_OR_RETURN(SplitRange range, e->ev->dataset().split(s.split));
    CP_ASSIGN_OR_RETURN(e->base, e->ev->run_split(s.split, &e->exact));
    e->row = e->base.samples > 0 ? static_cast<int64_t>(e->exact.size()) / e->base.samples : 0;
    e->labels = e->ev->dataset().label_batch(range.begin, range.end);  // class labels or targets
    return e;
  }

  nlohmann::json errors_of(const std::vector<float>& outputs, double qos) const {
    nlohmann::json errors = output_errors(outputs, exact, row, labels ? &*labels : nullptr);
    errors["qos"] = {{"metric", metric_name(exp.qos.metric)}, {"value", qos}, {"exact", base.qos}};
    return errors;
  }

  // {"kind": "inject-candidate", "name", "config"} -> {"errors", "seconds", "host"}.
  Result<nlohmann::json> run(const nlohmann::json& task) {
    if (task.value("kind", "") != "inject-candidate") return runtime_error("not an inject task: {}", task.dump());
    const auto t0 = std::chrono::steady_clock::now();
    const std::string name = task.value("name", std::string());
    CP_TRY(ev->configure(task.at("config").get<KnobConfig>()).with_context(name));
    std::vector<float> approx;
    CP_ASSIGN_OR_RETURN(SplitResult r, ev->run_split(split, &approx));
    ev->release_idle_kernels();
    return nlohmann::json{{"errors", errors_of(approx, r.qos)},
                          {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                          {"host", this_host_name()}};
  }
};

}  // namespace

Status run_inject(const InjectSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  CP_TRY(select_network(exp, s.common.network, "inject"));
  const ResolvedTarget target = resolve_target(exp, s.common);
  std::unique_ptr<WorkerPool> pool;  // an MPI job's ranks, else this process
  if (Cluster* cl = cluster()) {
    CP_ASSIGN_OR_RETURN(pool, distribute(*cl, exp));
  } else {
    pool = std::make_unique<LocalWorkerPool>(1);
  }
  CP_ASSIGN_OR_RETURN(std::unique_ptr<InjectEval> eval, InjectEval::open(exp, s));
  CP_ASSIGN_OR_RETURN(std::vector<InjectCandidate> candidates, candidates_of(s, *eval->ev));

  const std::string dir = run_directory(s.common, exp, true);
  CP_TRY(ensure_directory(dir));
  nlohmann::json identity = {{"job", "inject"}, {"experiment", exp.name}, {"model", exp.network.model_path},
                             {"split", s.split}, {"backend", target.backend}};
  for (const auto& c : candidates) identity["candidates"].push_back({c.name, nlohmann::json(c.config)});
  CP_ASSIGN_OR_RETURN(RecordStore records, RecordStore::open(dir + "/inject-records.jsonl",
                                                             fingerprint_of(identity.dump()), identity.dump()));
  for (const auto& w : records.warnings()) log_warn("{}", w);
  log_info("inject: {} candidate(s) on the {} split ({} samples, rows of {})", candidates.size(), s.split,
           eval->base.samples, eval->row);
  std::vector<nlohmann::json> errors(candidates.size());
  std::mutex mu;  // records and the counter
  int replayed = 0;
  const WorkerPool::TaskFn local = [&](const nlohmann::json& task) { return eval->run(task); };
  const Status ran = pool->run(
      candidates.size(),
      [&](size_t i, int worker) -> Status {
        const InjectCandidate& c = candidates[i];
        {
          std::lock_guard lock(mu);
          if (const EvalRecord* rec = records.find("inject", static_cast<int64_t>(i))) {
            errors[i] = rec->data.at("errors");
            ++replayed;
            return {};
          }
        }
        const nlohmann::json task = {{"kind", "inject-candidate"}, {"name", c.name}, {"config", c.config}};
        CP_ASSIGN_OR_RETURN(nlohmann::json done, pool->run_task(worker, task, local));
        EvalRecord fresh;
        fresh.phase = "inject";
        fresh.iteration = static_cast<int64_t>(i);
        fresh.knobs = c.config;
        fresh.seconds = done.value("seconds", 0.0);
        fresh.host = done.value("host", std::string());
        fresh.data = {{"candidate", c.name}, {"errors", done.at("errors")}};
        std::lock_guard lock(mu);
        CP_TRY(records.append(fresh));
        errors[i] = std::move(done["errors"]);
        return {};
      },
      interrupt_requested);
  if (interrupt_requested()) return interrupted_status("inject", records.path(), records.records().size());
  CP_TRY(ran);
  nlohmann::json results = nlohmann::json::array();
  for (size_t i = 0; i < candidates.size(); ++i)
    results.push_back(
        {{"name", candidates[i].name}, {"config", nlohmann::json(candidates[i].config)}, {"errors", errors[i]}});
  // The exact network's own errors against the ground truth: where it
  // sits in the budget space before any approximation.
  const nlohmann::json doc = {{"format", "caliprox-errors"},
                              {"version", 1},
                              {"experiment", exp.name},
                              {"network", exp.network.name},
                              {"split", s.split},
                              {"samples", eval->base.samples},
                              {"output", eval->ev->io().output},
                              {"exact", eval->errors_of(eval->exact, eval->base.qos)},
                              {"candidates", results}};
  CP_TRY(write_json_file(dir + "/errors.json", doc));
  if (s.common.json) {
    fmt::print("{}\n", nlohmann::json{{"errors", dir + "/errors.json"},
                                      {"candidates", candidates.size()},
                                      {"replayed", replayed}}
                           .dump());
  } else {
    fmt::print("{}: {} candidate(s) ({} replayed) on {} samples of the {} split\n", dir + "/errors.json",
               candidates.size(), replayed, eval->base.samples, s.split);
  }
  log_report_hint(dir);
  return {};
}

Status run_inject_worker(const InjectSettings& s) {
  Cluster& cl = *cluster();
  CP_ASSIGN_OR_RETURN(Experiment exp, join_experiment(cl));
  CP_TRY(select_network(exp, s.common.network, "inject"));
  CP_ASSIGN_OR_RETURN(std::unique_ptr<InjectEval> eval, InjectEval::open(exp, s));
  return cl.serve([&](const nlohmann::json& task) { return eval->run(task); });
}

}  // namespace caliprox
