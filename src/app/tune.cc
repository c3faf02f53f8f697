// caliprox tune: per-layer knob search within the experiment's QoS goal,
// validated on the tune and test splits, thinned into approximation levels
// (pareto.json). Every finished evaluation goes to records.jsonl, and a
// re-run of the same command resumes from it. The phases are the tuning
// pipeline's (tune/tune_pipeline.h); this driver applies the settings, logs
// what the phases return, writes the artifacts and prints the frontier.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "app/distributed.h"
#include "app/tune_reporter.h"
#include "tune/app_check.h"
#include "tune/measure.h"
#include "tune/tune_pipeline.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

size_t knob_choices(const SearchSpace& space) {
  size_t n = 0;
  for (const auto& l : space.layers) n += l.knobs.size() - 1;
  return n;
}

void log_single_runs(const PipelineContext& c, const SingleRuns& s) {
  log_info("single-knob runs: {} ({} fresh) in {:.1f} s on {} samples{}", s.runs, s.fresh, s.seconds,
           c.predictor_samples(),
           s.p1 ? fmt::format("; p1 deltas hold {:.1f} MB", s.p1->memory_bytes() / 1e6) : std::string());
}

void log_search(const SearchPhase& s) {
  const SearchOutcome& o = s.outcome;
  log_info("search: {} evaluations ({} replayed) in {:.1f} s, {:.1f} eval/s; stopped by {}; {}", o.results.size(),
           o.replayed, s.seconds, o.fresh > 0 && s.seconds > 0 ? o.fresh / s.seconds : 0.0,
           stop_reason_name(o.stop_reason), s.summary);
}

// How far the QoS and cost models were off on what they chose.
void log_model_errors(const PipelineContext& c, const ParetoDocument& doc) {
  const ModelErrors e = model_errors(doc);
  const std::string qos_part =
      e.qos_count > 0 ? fmt::format("QoS {:.3f} {} (predicted on {} samples, measured on the tune split), ", e.qos,
                                    loss_unit(c.exp.qos.metric), c.predictor_samples())
                      : std::string();
  if (e.speedup_count > 0)
    log_info("frontier: mean |predicted - measured|: {}speedup {:.2f}x ({} cost model) over {} configuration(s)",
             qos_part, e.speedup, cost_mode_name(c.exp.tune.cost_mode), e.speedup_count);
  log_info("peak resident memory: {:.0f} MiB", static_cast<double>(peak_rss_bytes()) / (1 << 20));
}

// The frontier as JSON (--json) or as a table.
void print_frontier(const PipelineContext& c, const ParetoDocument& doc, const std::string& pareto_path, bool json,
                    Clock::time_point t_start) {
  if (json) {
    nlohmann::json j = nlohmann::json::parse(pareto_json_text(doc));
    j["artifact"] = pareto_path;
    j["seconds"] = seconds_since(t_start);
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("experiment {}: {} level{} within the goal (loss <= {:.3g} {} on tune and test)\n", c.exp.name,
             doc.configurations.size(), doc.configurations.size() == 1 ? "" : "s", c.base.max_loss,
             loss_unit(c.exp.qos.metric));
  fmt::print("{:<6} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}  knobs\n", "id", "level", "qos tune", "qos test",
             "loss tune", "loss test", "speedup", "predicted");
  for (const auto& pc : doc.configurations) {
    std::string knobs;
    for (const auto& [node, knob] : pc.knobs) knobs += fmt::format("{}{}={}", knobs.empty() ? "" : " ", node, knob);
    fmt::print("{:<6} {:>5} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>8.2f}x {:>8.2f}x  {}\n", pc.id, pc.level,
               pc.qos_tune, pc.qos_test, pc.loss_tune, pc.loss_test, pc.speedup_measured.value_or(NAN),
               pc.speedup_predicted.value_or(NAN), knobs.empty() ? "(exact)" : knobs);
  }
  fmt::print("written: {} (records: {}) in {:.1f} s\n", pareto_path, c.records->path(), seconds_since(t_start));
}

Status export_hpvm(const PipelineContext& c, const ParetoDocument& doc, const std::string& path) {
  CP_ASSIGN_OR_RETURN(HpvmExport ex, format_hpvm_confs(doc, hpvm_layers(c.ks), "cpu"));
  CP_TRY(write_file_atomic(path, ex.text));
  for (const auto& s : ex.skipped) log_warn("--export-hpvm: {}", s);
  return {};
}

// The experiment with the command line's overrides, checked.
Result<Experiment> tune_experiment(const TuneSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  CP_TRY(select_network(exp, settings.common.network, "tune"));
  if (settings.goal) CP_TRY(apply_goal_override(exp, *settings.goal));
  if (settings.checks) return invalid_input("--checks goes with --guide or --joint (the application checks)");
  CP_TRY(apply_tune_overrides(exp.tune, {settings.iterations, settings.time_s, settings.strategy, settings.qos_mode,
                                         settings.seed}));
  const TuneSpec& spec = exp.tune;
  if (settings.jobs < 1) return invalid_input("--jobs must be at least 1, got {}", settings.jobs);
  if (spec.iterations <= 0 && spec.time_limit_s <= 0 && spec.strategy != StrategyKind::greedy)
    return invalid_input("the tuning budget is zero: set tune.iterations or tune.time_limit (or --iterations / "
                         "--time) above 0");
  return exp;
}

}  // namespace

Status run_tune(const TuneSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, tune_experiment(settings));
  const ResolvedTarget target = resolve_target(exp, settings.common);
  const std::string dir = run_directory(settings.common, exp, true);
  std::unique_ptr<WorkerPool> ranks;  // an MPI job's: one worker per rank
  if (Cluster* cl = cluster()) {
    CP_TRY(check_speed_host(*cl, exp.default_target()));
    CP_ASSIGN_OR_RETURN(ranks, distribute(*cl, exp));
    if (settings.jobs != 1) log_info("tune: --jobs {} is for local runs: one worker per MPI rank", settings.jobs);
  }
  TuneReporter reporter(progress_enabled() && !settings.common.quiet);
  const auto t_start = Clock::now();
  CP_ASSIGN_OR_RETURN(auto pipeline, open_pipeline({std::move(exp), target.backend, target.threads, settings.jobs, dir,
                                                    "tune", std::move(ranks)},
                                                   &reporter));
  PipelineContext& c = *pipeline;
  const TuneSpec& spec = c.exp.tune;
  warn_left_out(c.ks, "tune");
  CP_ASSIGN_OR_RETURN(TuneRecords records, open_tune_records(c));
  for (const auto& w : c.records->warnings()) log_warn("{}", w);
  if (!c.records->records().empty())
    log_info("resuming from {} ({} evaluations recorded)", c.records->path(), c.records->records().size());

  // Baselines.
  log_info("{}: {} layers, {} knob choices; {} search, {} QoS, {} cost; {} job(s) x {} thread(s)", c.exp.name,
           c.ks.space.layers.size(), knob_choices(c.ks.space), strategy_name(spec.strategy),
           qos_mode_name(spec.qos_mode), cost_mode_name(spec.cost_mode), c.pool->workers(), c.worker_threads);
  CP_TRY(run_baselines(c, spec.qos_mode == QosMode::p1));
  log_info("exact network: {} {:.4f} on tune, {:.4f} on test; goal: loss <= {:.4f} {}", metric_name(c.exp.qos.metric),
           c.base.qos_tune, c.base.qos_test, c.base.max_loss, loss_unit(c.exp.qos.metric));
  CP_ASSIGN_OR_RETURN(double baseline_ms, median_batch_ms(c.main(), c.batch(), 15));
  ParetoDocument doc = exact_frontier(c, records.fingerprint, baseline_ms);
  const std::string pareto_path = (std::filesystem::path(dir) / "pareto.json").string();
  if (!goal_met(c.exp.qos, c.base.qos_test, c.base.qos_test) || c.base.max_loss < 0) {
    CP_TRY(write_pareto_json(pareto_path, doc));
    return Status(Errc::goal_not_met, "the goal cannot be met: it allows no loss at all");
  }

  // Cost model, single-knob runs, search, validation of the finalists.
  CP_ASSIGN_OR_RETURN(CostModel cost, tune_cost_model(c, records.network_fingerprint));
  SingleRuns singles = no_single_runs(c);
  if (needs_single_runs(spec)) {
    CP_ASSIGN_OR_RETURN(singles, run_single_knobs(c, cost.single_speedups(), spec.qos_mode == QosMode::p1, spec.seed));
    log_single_runs(c, singles);
  }
  CP_ASSIGN_OR_RETURN(SearchPhase search, run_search_phase(c, cost, singles));
  log_search(search);
  const std::vector<Finalist> finalists = pick_finalists(c, search.outcome);
  log_info("validating {} finalists on the tune and test splits", finalists.size());
  CP_ASSIGN_OR_RETURN(std::vector<Validated> validated, validate_finalists(c, finalists));

  // Frontier over (test loss, measured speedup), thinned into levels.
  add_levels(c, search, finalists, validated, doc);
  CP_TRY(write_pareto_json(pareto_path, doc));
  log_model_errors(c, doc);
  if (settings.export_hpvm) CP_TRY(export_hpvm(c, doc, *settings.export_hpvm));
  print_frontier(c, doc, pareto_path, settings.common.json, t_start);
  log_report_hint(dir);
  if (doc.configurations.size() == 1)
    return Status(Errc::goal_not_met, fmt::format("no approximate configuration met the goal on both the tune and "
                                                  "the test split (the frontier holds the exact network only: {})",
                                                  pareto_path));
  return {};
}

Status run_tune_worker(const TuneSettings& settings) {
  Cluster& cl = *cluster();
  CP_ASSIGN_OR_RETURN(Experiment exp, join_experiment(cl));
  const ResolvedTarget target = resolve_target(exp, settings.common);
  // Each network's evaluator with the target's threads, as rank 0's worker
  // has them (open_pipeline); made on its first task.
  std::map<std::string, std::unique_ptr<Evaluator>> evaluators;
  auto evaluator = [&](const std::string& network) -> Result<Evaluator*> {
    auto& ev = evaluators[network];
    if (!ev) {
      Experiment one = exp;
      CP_TRY(select_network(one, network, "tune"));
      CP_ASSIGN_OR_RETURN(ev, Evaluator::create(one, target.backend, target.threads, false, log_notice));
    }
    return ev.get();
  };
  // Guided and joint tunes check candidates with the application: this
  // rank's own server for its repeats.
  std::optional<ServedApplication> served;
  std::unique_ptr<WorkerScratch> scratch;
  if (settings.guide || settings.joint) {
    served.emplace(exp, target.backend, target.threads);
    CP_ASSIGN_OR_RETURN(scratch, worker_scratch(cl));
  }
  return cl.serve([&](const nlohmann::json& task) -> Result<nlohmann::json> {
    if (task.value("kind", "") == "app-check-run" && served)
      return run_app_check_task(exp, *served, task, scratch->path);
    CP_ASSIGN_OR_RETURN(Evaluator * ev, evaluator(task.value("network", exp.network.name)));
    return run_empirical_task(*ev, task);
  });
}

}  // namespace caliprox
