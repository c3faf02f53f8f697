// The search over a joint space and the walk over its finalists
// (tune/joint_walk.h).
#include "tune/joint_walk.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "eval/interrupt.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json eval_json(const JointEval& e) {
  nlohmann::json j = {{"loss", e.loss}};  // non-finite values are written as null
  if (!e.point.empty()) j["point"] = e.point;
  return j;
}

// A number written by eval_json: null (a NaN or infinity) reads as NaN.
double number_of(const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; }

// A recorded evaluation; slack and excess are recomputed from the point
// (the budgets are part of the records' fingerprint).
JointEval eval_of(const JointTuner& t, const EvalRecord& r) {
  JointEval e;
  e.search_loss = r.qos_loss.value_or(NAN);
  e.speedup = r.speedup_predicted.value_or(1);
  const nlohmann::json loss = r.data.value("loss", nlohmann::json::object());  // kept: items() of a temporary dangles
  const nlohmann::json point = r.data.value("point", nlohmann::json::array());
  for (const auto& [network, v] : loss.items()) e.loss[network] = number_of(v);
  for (const auto& v : point) e.point.push_back(number_of(v));
  if (t.guided() && !e.point.empty()) {
    e.slack = t.setup().budgets->slack(e.point);
    e.excess = t.setup().budgets->excess(e.point);
  }
  return e;
}

// One candidate per knob: that knob on every layer that takes it. Over
// many layers random candidates are all aggressive, so that a tight goal
// leaves the evolutionary search without a feasible parent; uniform ones
// (int8 everywhere, prune-0.25 everywhere, ...) span mild to aggressive.
std::vector<Candidate> uniform_candidates(const SearchSpace& space) {
  std::vector<std::string> names;
  for (const LayerChoices& l : space.layers)
    for (size_t k = 1; k < l.knobs.size(); ++k)
      if (std::find(names.begin(), names.end(), l.knobs[k]) == names.end()) names.push_back(l.knobs[k]);
  std::vector<Candidate> out;
  for (const std::string& name : names) {
    Candidate c = space.exact();
    for (size_t l = 0; l < space.layers.size(); ++l) {
      const auto& knobs = space.layers[l].knobs;
      const auto it = std::find(knobs.begin(), knobs.end(), name);
      if (it != knobs.end()) c[l] = static_cast<int>(it - knobs.begin());
    }
    out.push_back(std::move(c));
  }
  return out;
}

SearchSettings search_settings(const JointTuner& t) {
  const TuneSpec& spec = t.setup().experiment.tune;
  SearchSettings ss;
  ss.kind = spec.strategy;
  ss.seed = spec.seed;
  ss.max_loss = t.max_search_loss();
  if (ss.kind == StrategyKind::evolutionary) ss.seeds = uniform_candidates(t.space());
  return ss;
}

}  // namespace

Result<JointSearch> run_joint_search(JointTuner& t, RecordStore& records, const SearchBudget& budget,
                                     PipelineReporter& reporter) {
  if (t.setup().experiment.tune.strategy == StrategyKind::greedy)
    return invalid_input("joint tuning searches with the random or evolutionary strategy (greedy needs single-knob "
                         "runs of one network)");
  const SearchSpace& space = t.space();
  CP_ASSIGN_OR_RETURN(auto strategy, make_strategy(space, search_settings(t)));
  std::mutex mu;
  std::map<int64_t, JointEval> evals;
  SearchHooks hooks;
  hooks.evaluate = [&](const Proposal& p, int64_t it, int w) -> Result<Evaluation> {
    CP_ASSIGN_OR_RETURN(JointEval e, t.evaluate(p.candidate, w));
    std::lock_guard lock(mu);
    evals[it] = e;
    return Evaluation{e.search_loss, e.speedup};
  };
  hooks.recorded = [&](int64_t it) -> std::optional<RecordedEvaluation> {
    std::lock_guard lock(mu);
    const EvalRecord* r = records.find("search", it);
    if (!r || !r->qos_loss || !r->speedup_predicted) return std::nullopt;
    auto cand = space.from_config(r->knobs);
    if (!cand.ok()) return std::nullopt;
    evals[it] = eval_of(t, *r);
    return RecordedEvaluation{*cand, {*r->qos_loss, *r->speedup_predicted}};
  };
  hooks.on_evaluated = [&](int64_t it, const Proposal& p, const Evaluation& e, double secs, int w) -> Status {
    std::lock_guard lock(mu);
    EvalRecord r;
    r.phase = "search";
    r.iteration = it;
    r.knobs = space.to_config(p.candidate);
    r.qos_loss = e.qos_loss;
    r.speedup_predicted = e.speedup;
    r.seconds = secs;
    r.origin = p.origin;
    r.data = eval_json(evals.at(it));
    r.host = t.pool().host(w);
    return records.append(r);
  };
  hooks.on_progress = [&](const SearchProgress& pr) { reporter.search_progress(pr); };
  hooks.should_stop = interrupt_requested;
  JointSearch out;
  const auto t0 = Clock::now();
  CP_ASSIGN_OR_RETURN(out.outcome, run_search(*strategy, budget, t.pool(), hooks));
  reporter.progress_done(PipelinePhase::search);
  if (out.outcome.stop_reason == StopReason::interrupted)
    return interrupted_status("tune", records.path(), records.records().size());
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  out.summary = strategy->summary();
  for (const SearchResult& r : out.outcome.results) out.evals.push_back(evals.at(r.iteration));
  return out;
}

PlacementCounts count_placements(const JointTuner& t, const JointSearch& s) {
  PlacementCounts n;
  std::set<Candidate> seen;
  for (size_t i = 0; i < s.outcome.results.size(); ++i) {
    if (!seen.insert(s.outcome.results[i].proposal.candidate).second) continue;
    ++n.distinct;
    switch (t.place(s.evals[i])) {
      case Placement::accepted: ++n.accepted; break;
      case Placement::discarded: ++n.discarded; break;
      case Placement::uncertain: ++n.uncertain; break;
    }
  }
  return n;
}

namespace {

// Guided: the fastest accepted candidates and the uncertain ones predicted
// faster than all of them; unguided: the fastest within the goals. At most
// `limit` of each kind, never the exact network.
std::vector<JointFinalist> pick(const JointTuner& t, const JointSearch& s, int64_t limit) {
  std::vector<JointFinalist> accepted, uncertain;
  std::set<Candidate> seen;
  for (size_t i = 0; i < s.outcome.results.size(); ++i) {
    const Candidate& c = s.outcome.results[i].proposal.candidate;
    if (c == t.space().exact() || !seen.insert(c).second) continue;
    JointFinalist f;
    f.config = t.space().to_config(c);
    f.eval = s.evals[i];
    f.placement = t.place(f.eval);
    if (f.placement == Placement::accepted) accepted.push_back(std::move(f));
    else if (f.placement == Placement::uncertain) uncertain.push_back(std::move(f));
  }
  auto faster = [](const JointFinalist& a, const JointFinalist& b) { return a.eval.speedup > b.eval.speedup; };
  std::stable_sort(accepted.begin(), accepted.end(), faster);
  std::stable_sort(uncertain.begin(), uncertain.end(), faster);
  const double best_accepted = accepted.empty() ? 0 : accepted.front().eval.speedup;
  std::vector<JointFinalist> out;
  for (auto& f : accepted)
    if (static_cast<int64_t>(out.size()) < limit) out.push_back(std::move(f));
  int64_t taken = 0;
  for (auto& f : uncertain)
    if (taken < limit && (!t.guided() || f.eval.speedup > best_accepted)) out.push_back(std::move(f)), ++taken;
  return out;
}

// The first record of `phase` whose data matches `match`, or null: speedups
// and checks are found by what they are about, not by their position, so a
// re-run whose finalists differ still replays each one it has.
const EvalRecord* find_by(const RecordStore& records, std::string_view phase,
                          const std::function<bool(const nlohmann::json&)>& match) {
  for (const EvalRecord& r : records.records())
    if (r.phase == phase && match(r.data)) return &r;
  return nullptr;
}

// Per network measured speedups (recorded: phase "speedup", by
// configuration), combined.
Status measure(JointTuner& t, RecordStore& records, JointFinalist& f) {
  const std::string key = nlohmann::json(f.config).dump();
  const EvalRecord* rec =
      find_by(records, "speedup", [&](const nlohmann::json& d) { return d.value("key", "") == key; });
  if (rec) {
    f.measured = rec->data.at("measured").get<std::map<std::string, double>>();
  } else {
    const auto t0 = Clock::now();
    const std::map<std::string, KnobConfig> parts = t.split(f.config);
    for (JointNetwork& n : t.networks()) {
      const KnobConfig& part = parts.at(n.name);
      double s = 1;
      if (!part.empty()) {
        CP_ASSIGN_OR_RETURN(s, measured_speedup(n.ctx->main(), part, n.ctx->batch()));
      }
      f.measured[n.name] = s;
    }
    EvalRecord r;
    r.phase = "speedup";
    r.iteration = records.next_iteration("speedup");
    r.knobs = f.config;
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.data = {{"key", key}, {"measured", f.measured}};
    CP_TRY(records.append(r));
  }
  f.speedup = t.combine(f.measured);
  return {};
}

Result<AppCheck> check(JointTuner& t, RecordStore& records, ServedApplication& served, const JointFinalist& f,
                       int index, uint64_t seed) {
  const Experiment& exp = t.setup().experiment;
  const AppSpec& app = *exp.application;
  std::map<std::string, ServedState> states;
  for (const auto& [network, config] : t.split(f.config)) states[network].config = config;
  const std::string key = nlohmann::json(f.config).dump();
  AppCheckHooks hooks;
  hooks.recorded = [&](int repeat) -> std::optional<nlohmann::json> {
    const EvalRecord* r = find_by(records, "check", [&](const nlohmann::json& d) {
      return d.value("key", "") == key && d.value("repeat", -1) == repeat;
    });
    if (!r) return std::nullopt;
    return r->data.at("run");
  };
  hooks.on_run = [&](int repeat, const nlohmann::json& run, double seconds, const std::string& host) -> Status {
    EvalRecord r;
    r.phase = "check";
    r.iteration = records.next_iteration("check");
    r.knobs = f.config;
    r.seconds = seconds;
    r.host = host;
    r.data = {{"key", key}, {"repeat", repeat}, {"run", run}};
    return records.append(r);
  };
  std::unique_ptr<WorkerPool> ranks;  // an MPI job's: the repeats on its ranks
  if (t.setup().ranks) ranks = std::make_unique<ClusterWorkerPool>(*t.setup().ranks);
  return check_application(exp, app, served, states, seed, t.setup().dir + "/requests", fmt::format("check-{}", index),
                           hooks, ranks.get());
}

}  // namespace

Result<JointOutcome> walk_finalists(JointTuner& t, const JointSearch& s, RecordStore& records,
                                    ServedApplication& served, int64_t finalists, uint64_t seed,
                                    PipelineReporter& reporter) {
  JointOutcome out;
  out.finalists = pick(t, s, finalists);
  reporter.info(fmt::format("measuring the speedups of {} finalist(s)", out.finalists.size()));
  for (size_t i = 0; i < out.finalists.size(); ++i) {
    if (interrupt_requested()) return interrupted_status("tune", records.path(), records.records().size());
    CP_TRY(measure(t, records, out.finalists[i]));
  }
  std::stable_sort(out.finalists.begin(), out.finalists.end(),
                   [](const JointFinalist& a, const JointFinalist& b) { return a.speedup > b.speedup; });
  for (size_t i = 0; i < out.finalists.size() && out.checks < t.setup().checks; ++i) {
    JointFinalist& f = out.finalists[i];
    f.role = f.placement == Placement::accepted ? "validation" : "check";
    Result<AppCheck> c = check(t, records, served, f, out.checks, seed);
    if (!c.ok() && c.status().code() == Errc::interrupted)
      return interrupted_status("tune", records.path(), records.records().size());
    CP_TRY(c.status());
    ++out.checks;
    out.runs += static_cast<int>(c->runs.size());
    out.fresh_runs += c->fresh;
    reporter.info(fmt::format("application {} {}/{}: {} candidate, {:.2f}x measured ({:.2f}x predicted): {} ({}/{} "
                              "runs passed{})",
                              f.role, out.checks, t.setup().checks, placement_name(f.placement), f.speedup,
                              f.eval.speedup, verdict_name(c->verdict), c->passes, c->runs.size(),
                              c->fresh < static_cast<int>(c->runs.size()) ? ", replayed" : ""));
    f.check = std::move(*c);
    if (f.check->verdict == Verdict::valid && !out.chosen) {
      out.chosen = i;
      if (t.guided()) break;  // the fastest the application passes: nothing below can beat it
    }
  }
  return out;
}

}  // namespace caliprox
