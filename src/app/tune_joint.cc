// caliprox tune --guide budgets.json / --joint: every network of the
// application tuned together (tune/joint.h), the application run only
// where the budgets cannot decide (guided) or on every finalist (--joint),
// and the fastest configuration the application passed written as
// joint.json plus one configuration file per network. records.jsonl keeps
// every evaluation and application run, and a re-run resumes from it.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "app/common.h"
#include "app/distributed.h"
#include "app/tune_reporter.h"
#include "eval/reshape.h"
#include "tune/joint_walk.h"
#include "tune/tune_pipeline.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

std::string file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// What identifies the job: a change here starts records.jsonl afresh.
Result<nlohmann::json> identity_of(JointTuner& t, const TuneSettings& s) {
  const Experiment& exp = t.setup().experiment;
  const AppSpec& app = *exp.application;
  nlohmann::json j = {{"job", t.guided() ? "tune-guided" : "tune-joint"},
                      {"experiment", exp.name},
                      {"backend", t.networks().front().ctx->backend},
                      {"strategy", strategy_name(exp.tune.strategy)},
                      {"seed", exp.tune.seed},
                      {"finalists", exp.tune.finalists},
                      {"application", {{"command", app.command}, {"env", app.env}, {"repeats", app.repeats}}},
                      {"goal",
                       {{"max_loss", exp.qos.goal.max_loss}, {"relative", exp.qos.goal.kind == GoalKind::relative}}}};
  if (t.guided()) j.update({{"budgets", fingerprint_of(file_text(*s.guide))}, {"margin", t.setup().margin}});
  for (const LayerChoices& l : t.space().layers) j["space"].push_back({l.node, l.knobs});
  for (JointNetwork& n : t.networks()) {
    const Experiment& e = n.ctx->exp;
    // The model's bytes, backend, threads and batch, as tune and profile identify it.
    CP_ASSIGN_OR_RETURN(std::string model, network_fingerprint(e, n.ctx->backend, n.ctx->threads, e.dataset.batch));
    j["models"][n.name] = model;
    j["data"][n.name] = {{"samples", e.dataset.samples_path},
                         {"labels", e.dataset.labels_path.value_or("")},
                         {"range", {n.range.begin, n.range.end}},
                         {"batch", e.dataset.batch},
                         {"metric", metric_name(e.qos.metric)}};
  }
  return j;
}

// Parameters and bytes of each network, exact and under its part.
Result<nlohmann::json> sizes_of(JointTuner& t, const KnobConfig& joint) {
  nlohmann::json out = nlohmann::json::object();
  int64_t exact_total = 0, chosen_total = 0;
  const auto parts = t.split(joint);
  for (JointNetwork& n : t.networks()) {
    Evaluator& ev = n.ctx->main();
    const WeightSize exact = weight_size(ev.graph(), {});
    CP_TRY(ev.configure(parts.at(n.name)));
    const WeightSize chosen = weight_size(ev.current_graph(), ev.kernel_configuration());
    out[n.name] = {{"exact", {{"parameters", exact.parameters}, {"bytes", exact.bytes}}},
                   {"chosen", {{"parameters", chosen.parameters}, {"bytes", chosen.bytes}}}};
    exact_total += exact.bytes;
    chosen_total += chosen.bytes;
  }
  out["reduction"] = chosen_total > 0 ? static_cast<double>(exact_total) / static_cast<double>(chosen_total) : 0.0;
  return out;
}

nlohmann::json finalist_json(JointTuner& t, const JointFinalist& f) {
  nlohmann::json j = {{"configs", t.split(f.config)},        {"placement", placement_name(f.placement)},
                      {"speedup_predicted", f.eval.speedup}, {"speedup_measured", f.speedup},
                      {"speedups_measured", f.measured},     {"loss", f.eval.loss}};
  if (t.guided()) {
    nlohmann::json point = nlohmann::json::object();
    const auto& axes = t.setup().budgets->axes();
    for (size_t k = 0; k < axes.size() && k < f.eval.point.size(); ++k) point[axes[k].name] = f.eval.point[k];
    j.update({{"point", point}, {"slack", f.eval.slack}, {"excess", f.eval.excess}});
  }
  if (f.check) {
    j["application"] = {{"role", f.role},
                        {"verdict", verdict_name(f.check->verdict)},
                        {"passes", f.check->passes},
                        {"runs", f.check->runs}};
  }
  return j;
}

// Each metric the application reported, averaged over a check's runs.
nlohmann::json mean_metrics(const AppCheck& c) {
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& r : c.runs) {
    const nlohmann::json metrics = r.value("metrics", nlohmann::json::object());
    for (const auto& [k, v] : metrics.items())
      if (v.is_number()) sums[k].first += v.get<double>(), ++sums[k].second;
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, s] : sums) out[k] = s.first / s.second;
  return out;
}

void print_summary(JointTuner& t, const PlacementCounts& n, const JointOutcome& o, const nlohmann::json& doc,
                   const std::string& path) {
  fmt::print("{} tune of {}: {} candidates ({} accepted, {} discarded, {} uncertain)\n",
             t.guided() ? "guided" : "joint", fmt::join(doc["networks"].get<std::vector<std::string>>(), " + "),
             n.distinct, n.accepted, n.discarded, n.uncertain);
  fmt::print("  application: {} check(s), {} run(s) ({} fresh)\n", o.checks, o.runs, o.fresh_runs);
  for (size_t i = 0; i < o.finalists.size(); ++i) {
    const JointFinalist& f = o.finalists[i];
    fmt::print("  {:>2} {:<9} {:>6.2f}x measured {:>6.2f}x predicted  {}\n", i + 1, placement_name(f.placement),
               f.speedup, f.eval.speedup,
               f.check ? fmt::format("{}: {} ({}/{})", f.role, verdict_name(f.check->verdict), f.check->passes,
                                     f.check->runs.size())
                       : std::string("not run"));
  }
  if (o.chosen) {
    const nlohmann::json& c = doc["chosen"];
    fmt::print("chosen: finalist {}, {:.2f}x measured, weights {:.2f}x smaller; application: {}\n", *o.chosen + 1,
               c["speedup_measured"].get<double>(), c["size"]["reduction"].get<double>(), c["metrics"].dump());
  } else {
    fmt::print("chosen: none (the application passed no finalist it checked)\n");
  }
  fmt::print("written: {} (records: {})\n", path, t.setup().dir + "/records.jsonl");
}

}  // namespace

Status run_tune_joint(const TuneSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  if (s.common.network) return invalid_input("--guide and --joint tune every network together: no --network");
  if (s.qos_mode) return invalid_input("--qos-mode: --guide and --joint run every candidate (no predictor)");
  if (s.export_hpvm)
    return invalid_input("--export-hpvm writes one network's frontier; --guide and --joint write joint.json");
  CP_TRY(apply_tune_overrides(exp.tune, {s.iterations, s.time_s, s.strategy, std::nullopt, s.seed}));
  if (s.goal) CP_TRY(apply_goal_override(exp, *s.goal));
  JointSetup setup;
  if (Cluster* cl = cluster()) {  // an MPI job: stage the files, then the ranks evaluate
    CP_TRY(check_speed_host(*cl, exp.default_target()));
    CP_TRY(distribute(*cl, exp).status());
    setup.ranks = cl;
  }
  if (s.guide) {
    CP_ASSIGN_OR_RETURN(setup.budgets, BudgetSpace::load(*s.guide));
  }
  if (s.margin) setup.margin = *s.margin;
  const ResolvedTarget target = resolve_target(exp, s.common);
  setup.backend = target.backend;
  setup.threads = target.threads;
  setup.jobs = s.jobs;
  setup.dir = s.common.out_dir ? *s.common.out_dir : run_directory(s.common, exp) + (s.guide ? "/guided" : "/joint");
  setup.checks = s.checks ? *s.checks : s.guide ? 10 : static_cast<int>(exp.tune.finalists);
  setup.experiment = std::move(exp);
  CP_TRY(ensure_directory(setup.dir));
  TuneReporter reporter(progress_enabled() && !s.common.quiet);
  CP_ASSIGN_OR_RETURN(auto tuner, JointTuner::open(std::move(setup), &reporter));
  JointTuner& t = *tuner;
  CP_ASSIGN_OR_RETURN(const nlohmann::json identity, identity_of(t, s));
  CP_ASSIGN_OR_RETURN(RecordStore records, RecordStore::open(t.setup().dir + "/records.jsonl",
                                                             fingerprint_of(identity.dump()), identity.dump()));
  for (const auto& w : records.warnings()) log_warn("{}", w);
  const TuneSpec& spec = t.setup().experiment.tune;
  std::vector<std::string> names;
  for (JointNetwork& n : t.networks()) names.push_back(n.name);
  log_info("{} tune of {}: {} layers; {} search; application checks at most {}", t.guided() ? "guided" : "joint",
           fmt::join(names, " + "), t.space().layers.size(), strategy_name(spec.strategy), t.setup().checks);

  if (t.guided()) {  // where the exact networks sit: a guide that cannot accept them cannot accept much
    CP_ASSIGN_OR_RETURN(JointEval exact, t.evaluate(t.space().exact(), 0));
    const Placement p = t.place(exact);
    if (p != Placement::accepted)
      log_warn("the exact networks themselves are {} by {}: {} (slack {:.3f}, margin {:.3f}), so most candidates will "
               "need the application",
               placement_name(p), *s.guide,
               exact.slack >= 0 ? "inside its region but within the margin of its edge"
                                : "their measured errors lie beyond what the budget found valid",
               exact.slack, t.setup().margin);
  }
  CP_ASSIGN_OR_RETURN(JointSearch search, run_joint_search(t, records, tune_budget(spec), reporter));
  const PlacementCounts counts = count_placements(t, search);
  log_info("search: {} evaluations ({} replayed) in {:.1f} s; {} distinct: {} accepted, {} discarded, {} uncertain",
           search.outcome.results.size(), search.outcome.replayed, search.seconds, counts.distinct, counts.accepted,
           counts.discarded, counts.uncertain);
  ServedApplication served(t.setup().experiment, t.setup().backend, t.setup().threads);
  CP_ASSIGN_OR_RETURN(JointOutcome outcome,
                      walk_finalists(t, search, records, served, spec.finalists, spec.seed, reporter));

  nlohmann::json finalists = nlohmann::json::array();
  for (const JointFinalist& f : outcome.finalists) finalists.push_back(finalist_json(t, f));
  nlohmann::json doc = {{"format", "caliprox-joint-tune"},
                        {"version", 1},
                        {"experiment", t.setup().experiment.name},
                        {"mode", t.guided() ? "guided" : "unguided"},
                        {"networks", names},
                        {"search",
                         {{"evaluations", search.outcome.results.size()},
                          {"distinct", counts.distinct},
                          {"accepted", counts.accepted},
                          {"discarded", counts.discarded},
                          {"uncertain", counts.uncertain},
                          {"stopped_by", stop_reason_name(search.outcome.stop_reason)}}},
                        {"application",
                         {{"checks", outcome.checks},
                          {"checks_allowed", t.setup().checks},
                          {"runs", outcome.runs},
                          {"fresh_runs", outcome.fresh_runs},
                          {"repeats", t.setup().experiment.application->repeats}}},
                        {"finalists", finalists},
                        {"chosen", nullptr}};
  if (t.guided()) doc.update({{"budgets", *s.guide}, {"margin", t.setup().margin}});
  else
    doc["goal"] = {{"max_loss", t.setup().experiment.qos.goal.max_loss},
                   {"relative", t.setup().experiment.qos.goal.kind == GoalKind::relative}};
  if (outcome.chosen) {
    const JointFinalist& f = outcome.finalists[*outcome.chosen];
    CP_ASSIGN_OR_RETURN(nlohmann::json size, sizes_of(t, f.config));
    doc["chosen"] = {{"finalist", *outcome.chosen},
                     {"configs", t.split(f.config)},
                     {"speedup_measured", f.speedup},
                     {"speedups_measured", f.measured},
                     {"size", size},
                     {"metrics", mean_metrics(*f.check)}};
    for (const auto& [network, config] : t.split(f.config))
      CP_TRY(write_json_file(t.setup().dir + "/" + network + ".json", {{"knobs", config}}));
  } else {               // no pick: no configuration files of an earlier run's pick either
    std::error_code ec;  // absent is fine
    for (JointNetwork& n : t.networks()) std::filesystem::remove(t.setup().dir + "/" + n.name + ".json", ec);
  }
  const std::string path = t.setup().dir + "/joint.json";
  CP_TRY(write_json_file(path, doc));
  if (s.common.json)
    fmt::print("{}\n", nlohmann::json{{"joint", path},
                                      {"chosen", doc["chosen"]},
                                      {"application", doc["application"]},
                                      {"search", doc["search"]}}
                           .dump());
  else print_summary(t, counts, outcome, doc, path);
  log_report_hint(t.setup().dir);
  if (!outcome.chosen && outcome.finalists.empty())
    return Status(Errc::goal_not_met,
                  fmt::format("no finalist: the search discarded all {} candidates it evaluated ({}; {})",
                              counts.distinct,
                              t.guided() ? "outside the budgets' region by the margin" : "outside the QoS goal", path));
  if (!outcome.chosen)
    return Status(Errc::goal_not_met, fmt::format("the application passed none of the {} finalist(s) it checked ({})",
                                                  outcome.checks, path));
  return {};
}

}  // namespace caliprox
