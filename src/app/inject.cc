// caliprox inject: the errors approximations put on the network's outputs,
// measured on a dataset split (the calibrate split by default) against the
// exact network and the ground truth, with the error models that fit them
// (qos/error_stats.h), so that each candidate can be placed in the
// parameter space `calibrate` searched. Writes errors.json; every finished
// candidate goes to records.jsonl and is replayed on a re-run.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "app/common.h"
#include "eval/evaluator.h"
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

}  // namespace

Status run_inject(const InjectSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  CP_TRY(select_network(exp, s.common.network, "inject"));
  const ResolvedTarget target = resolve_target(exp, s.common);
  CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
  CP_TRY(ev->dataset().split(s.split).status());
  CP_ASSIGN_OR_RETURN(std::vector<InjectCandidate> candidates, candidates_of(s, *ev));

  const std::string dir = run_directory(s.common, exp, true);
  CP_TRY(ensure_directory(dir));
  nlohmann::json identity = {{"job", "inject"}, {"experiment", exp.name}, {"model", exp.network.model_path},
                             {"split", s.split}, {"backend", target.backend}};
  for (const auto& c : candidates) identity["candidates"].push_back({c.name, nlohmann::json(c.config)});
  CP_ASSIGN_OR_RETURN(RecordStore records, RecordStore::open(dir + "/inject-records.jsonl",
                                                             fingerprint_of(identity.dump()), identity.dump()));
  for (const auto& w : records.warnings()) log_warn("{}", w);

  std::vector<float> exact;
  CP_ASSIGN_OR_RETURN(SplitResult base, ev->run_split(s.split, &exact));
  const int64_t row = base.samples > 0 ? static_cast<int64_t>(exact.size()) / base.samples : 0;
  const Dataset& data = ev->dataset();
  CP_ASSIGN_OR_RETURN(SplitRange range, data.split(s.split));
  const std::optional<Tensor> labels = data.label_batch(range.begin, range.end);  // class labels or targets
  log_info("inject: {} candidate(s) on the {} split ({} samples, rows of {})", candidates.size(), s.split,
           base.samples, row);
  nlohmann::json results = nlohmann::json::array();
  int replayed = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (interrupt_requested()) return interrupted_status("inject", records.path(), records.records().size());
    const InjectCandidate& c = candidates[i];
    nlohmann::json errors;
    if (const EvalRecord* rec = records.find("inject", static_cast<int64_t>(i))) {
      errors = rec->data.at("errors");
      ++replayed;
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      CP_TRY(ev->configure(c.config).with_context(c.name));
      std::vector<float> approx;
      CP_ASSIGN_OR_RETURN(SplitResult r, ev->run_split(s.split, &approx));
      errors = output_errors(approx, exact, row, labels ? &*labels : nullptr);
      errors["qos"] = {{"metric", metric_name(exp.qos.metric)}, {"value", r.qos}, {"exact", base.qos}};
      ev->release_idle_kernels();
      EvalRecord fresh;
      fresh.phase = "inject";
      fresh.iteration = static_cast<int64_t>(i);
      fresh.knobs = c.config;
      fresh.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      fresh.data = {{"candidate", c.name}, {"errors", errors}};
      CP_TRY(records.append(fresh));
    }
    results.push_back({{"name", c.name}, {"config", nlohmann::json(c.config)}, {"errors", errors}});
  }
  // The exact network's own errors against the ground truth: where it
  // sits in the budget space before any approximation.
  nlohmann::json exact_errors = output_errors(exact, exact, row, labels ? &*labels : nullptr);
  exact_errors["qos"] = {{"metric", metric_name(exp.qos.metric)}, {"value", base.qos}, {"exact", base.qos}};
  const nlohmann::json doc = {{"format", "caliprox-errors"},       {"version", 1},
                              {"experiment", exp.name},            {"network", exp.network.name},
                              {"split", s.split},                  {"samples", base.samples},
                              {"output", ev->io().output},         {"exact", exact_errors},
                              {"candidates", results}};
  CP_TRY(write_json_file(dir + "/errors.json", doc));
  if (s.common.json) {
    fmt::print("{}\n", nlohmann::json{{"errors", dir + "/errors.json"},
                                      {"candidates", candidates.size()},
                                      {"replayed", replayed}}
                           .dump());
  } else {
    fmt::print("{}: {} candidate(s) ({} replayed) on {} samples of the {} split\n", dir + "/errors.json",
               candidates.size(), replayed, base.samples, s.split);
  }
  log_report_hint(dir);
  return {};
}

}  // namespace caliprox
