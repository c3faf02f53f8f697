// caliprox tune: per-layer knob search within the experiment's QoS goal,
// validated on the tune and test splits, thinned into approximation levels
// (pareto.json). Every finished evaluation goes to records.jsonl, and a
// re-run of the same command resumes from it.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "eval/evaluator.h"
#include "tune/knob_space.h"
#include "tune/measure.h"
#include "tune/pareto.h"
#include "tune/predict.h"
#include "tune/records.h"
#include "tune/search.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The goal as an absolute loss in the metric's unit.
double absolute_max_loss(const QosSpec& qos, double baseline) {
  if (qos.goal.kind == GoalKind::absolute) return qos.goal.max_loss;
  return qos.goal.max_loss * std::fabs(baseline);
}

struct TuneContext {
  Experiment exp;
  ResolvedTarget target;
  std::string dir;
  KnobSpace ks;
  std::vector<std::unique_ptr<Evaluator>> workers;  // one session set per job
  SplitRange tune_range;
  SplitRange predictor_range;  // the part of the tune split the single runs use
  double baseline_tune = 0;
  double baseline_predictor = 0;
  double max_loss = 0;
  std::optional<RecordStore> records;
  std::mutex records_mu;
  bool progress = false;
};

Status append_record(TuneContext& c, const EvalRecord& r) {
  std::lock_guard<std::mutex> lock(c.records_mu);
  return c.records->append(r);
}

// One empirical QoS run of `config` on [begin, end) on worker w.
Result<SplitResult> empirical(TuneContext& c, int w, const KnobConfig& config, int64_t begin, int64_t end,
                              std::vector<float>* outputs = nullptr) {
  Evaluator& ev = *c.workers[static_cast<size_t>(w)];
  CP_TRY(ev.configure(config));
  return ev.run_range(begin, end, outputs);
}

// Runs work(w) on `jobs` workers (w = 0 on the calling thread) and joins them.
template <typename F>
void run_workers(int jobs, F& work) {
  std::vector<std::thread> threads;
  for (int w = 1; w < jobs; ++w) threads.emplace_back([&work, w] { work(w); });
  work(0);
  for (auto& t : threads) t.join();
}

// Exit 130 naming what records.jsonl keeps (everything finished so far).
Status interrupted(const TuneContext& c) {
  if (!c.records) return interrupted_status("tune");
  return interrupted_status("tune", c.records->path(), c.records->records().size());
}

void progress_line(const TuneContext& c, const std::string& text) {
  if (c.progress) fmt::print(stderr, "\r\033[K{}", text);
}

}  // namespace

Status run_tune(const TuneSettings& settings) {
  TuneContext c;
  CP_ASSIGN_OR_RETURN(c.exp, load_experiment(settings.experiment_path));
  TuneSpec& spec = c.exp.tune;
  CP_TRY(apply_tune_overrides(spec, {settings.iterations, settings.time_s, settings.strategy, settings.qos_mode,
                                     settings.seed}));
  if (settings.jobs < 1) return invalid_input("--jobs must be at least 1, got {}", settings.jobs);
  if (spec.iterations <= 0 && spec.time_limit_s <= 0 && spec.strategy != StrategyKind::greedy)
    return invalid_input("the tuning budget is zero: set tune.iterations or tune.time_limit (or --iterations / "
                         "--time) above 0");
  c.target = resolve_target(c.exp, settings.common);
  c.dir = run_directory(settings.common, c.exp.name);
  c.progress = progress_enabled() && !settings.common.quiet;
  const auto t_start = Clock::now();

  // Workers share the target's threads; each has its own sessions.
  const int worker_threads = std::max(1, c.target.threads / settings.jobs);
  for (int w = 0; w < settings.jobs; ++w) {
    CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(c.exp, c.target.backend, worker_threads, w == 0, log_notice));
    c.workers.push_back(std::move(ev));
  }
  Evaluator& main = *c.workers.front();
  CP_ASSIGN_OR_RETURN(c.tune_range, main.dataset().split("tune"));
  CP_ASSIGN_OR_RETURN(SplitRange test_range, main.dataset().split("test"));
  c.predictor_range = c.tune_range;
  if (spec.predictor_samples > 0)
    c.predictor_range.end = std::min(c.tune_range.end, c.tune_range.begin + spec.predictor_samples);
  CP_ASSIGN_OR_RETURN(const std::vector<KnobSite>* sites, main.knob_sites());
  CP_ASSIGN_OR_RETURN(Session * first, main.session(c.exp.dataset.batch));
  CP_ASSIGN_OR_RETURN(c.ks, make_knob_space(c.exp, *sites, main.backend(), EmulatedKnobs::leave_out, first));
  warn_left_out(c.ks, "tune");
  const SearchSpace& space = c.ks.space;
  const int64_t batch = c.exp.dataset.batch;
  CP_ASSIGN_OR_RETURN(std::string net_fp, network_fingerprint(c.exp, c.target.backend, c.target.threads, batch));

  // Records: the fingerprint covers everything that changes what the
  // search evaluates (not the budget, so a longer budget resumes).
  nlohmann::json identity = {
      {"network", net_fp},
      {"experiment", c.exp.name},
      {"dataset", {{"samples", c.exp.dataset.samples_path}, {"tune", {c.tune_range.begin, c.tune_range.end}},
                   {"test", {test_range.begin, test_range.end}}, {"batch", batch}}},
      {"qos", {{"metric", metric_name(c.exp.qos.metric)}, {"max_loss", c.exp.qos.goal.max_loss},
               {"relative", c.exp.qos.goal.kind == GoalKind::relative}}},
      {"space", [&] {
         nlohmann::json j = nlohmann::json::array();
         for (const auto& l : space.layers) j.push_back({{"node", l.node}, {"knobs", l.knobs}});
         return j;
       }()},
      {"search", {{"strategy", strategy_name(spec.strategy)}, {"qos_mode", qos_mode_name(spec.qos_mode)},
                  {"cost_mode", cost_mode_name(spec.cost_mode)},
                  {"seed", spec.seed}, {"predictor", {c.predictor_range.begin, c.predictor_range.end}},
                  {"finalists", spec.finalists}}},
  };
  const std::string fingerprint = fingerprint_of(identity.dump());
  CP_TRY(ensure_directory(c.dir));
  const std::string records_path = (std::filesystem::path(c.dir) / "records.jsonl").string();
  {
    CP_ASSIGN_OR_RETURN(RecordStore store, RecordStore::open(records_path, fingerprint, identity.dump()));
    c.records.emplace(std::move(store));
  }
  for (const auto& w : c.records->warnings()) log_warn("{}", w);
  if (!c.records->records().empty())
    log_info("resuming from {} ({} evaluations recorded)", records_path, c.records->records().size());

  // Baselines.
  log_info("{}: {} layers, {} knob choices; {} search, {} QoS, {} cost; {} job(s) x {} thread(s)", c.exp.name,
           space.layers.size(),
           [&] {
             size_t n = 0;
             for (const auto& l : space.layers) n += l.knobs.size() - 1;
             return n;
           }(),
           strategy_name(spec.strategy), qos_mode_name(spec.qos_mode), cost_mode_name(spec.cost_mode), settings.jobs,
           worker_threads);
  CP_ASSIGN_OR_RETURN(SplitResult base_tune, empirical(c, 0, {}, c.tune_range.begin, c.tune_range.end));
  CP_ASSIGN_OR_RETURN(SplitResult base_test, empirical(c, 0, {}, test_range.begin, test_range.end));
  c.baseline_tune = base_tune.qos;
  c.max_loss = absolute_max_loss(c.exp.qos, c.baseline_tune);
  std::vector<float> exact_outputs;
  const bool p1 = spec.qos_mode == QosMode::p1;
  CP_ASSIGN_OR_RETURN(SplitResult base_pred, empirical(c, 0, {}, c.predictor_range.begin, c.predictor_range.end,
                                                        p1 ? &exact_outputs : nullptr));
  c.baseline_predictor = base_pred.qos;
  log_info("exact network: {} {:.4f} on tune, {:.4f} on test; goal: loss <= {:.4f} {}", metric_name(c.exp.qos.metric),
           base_tune.qos, base_test.qos, c.max_loss, loss_unit(c.exp.qos.metric));

  ParetoDocument doc;
  doc.experiment = c.exp.name;
  doc.fingerprint = fingerprint;
  doc.metric = c.exp.qos.metric;
  doc.goal = c.exp.qos.goal;
  doc.baseline_qos_tune = base_tune.qos;
  doc.baseline_qos_test = base_test.qos;
  CP_ASSIGN_OR_RETURN(std::vector<double> base_ms, main.time_batch(batch, 15));
  doc.baseline_latency_ms = summarize(base_ms).median;
  ParetoConfiguration exact_conf;
  exact_conf.id = "exact";
  exact_conf.qos_tune = base_tune.qos;
  exact_conf.qos_test = base_test.qos;
  exact_conf.speedup_predicted = 1.0;
  exact_conf.speedup_measured = 1.0;
  doc.configurations.push_back(exact_conf);
  auto write_frontier = [&]() -> Status {
    return write_pareto_json((std::filesystem::path(c.dir) / "pareto.json").string(), doc);
  };
  if (!goal_met(c.exp.qos, base_test.qos, base_test.qos) || c.max_loss < 0) {
    CP_TRY(write_frontier());
    return Status(Errc::goal_not_met, "the goal cannot be met: it allows no loss at all");
  }

  // Cost model.
  CostModel cost;
  if (spec.cost_mode == CostMode::measured) {
    std::ifstream in(*spec.profile, std::ios::binary);
    if (!in) return invalid_input("cannot read the profile {}", *spec.profile);
    std::ostringstream text;
    text << in.rdbuf();
    CP_ASSIGN_OR_RETURN(ProfileCosts costs, parse_profile_costs(text.str(), *spec.profile, net_fp));
    CP_ASSIGN_OR_RETURN(cost, measured_cost_model(space, costs, *spec.profile));
  } else {
    // FLOPs of the tunable layers divided by each knob's nominal speedup:
    // deterministic, so an interrupted and resumed search makes the same
    // proposals as an uninterrupted one. The rest of the network (and the
    // real speed of each knob) is what cost_mode measured accounts for.
    CP_ASSIGN_OR_RETURN(cost, nominal_cost_model(space, c.ks.geometries, 0.0));
  }

  // Phase "single": one empirical run per (layer, knob) on the predictor
  // range (builds p1 / p2 and the greedy strategy's sensitivities).
  const bool need_single = spec.qos_mode != QosMode::empirical || spec.strategy == StrategyKind::greedy;
  std::optional<QosDeltaPredictor> p2;
  std::optional<OutputDeltaPredictor> p1pred;
  std::vector<std::vector<Evaluation>> single(space.layers.size());
  const auto single_speedups = cost.single_speedups();
  const int64_t width = exact_outputs.empty() ? 0 : static_cast<int64_t>(exact_outputs.size()) /
                                                       (c.predictor_range.end - c.predictor_range.begin);
  if (need_single) {
    p2.emplace(space, c.baseline_predictor);
    if (p1) {
      OutputDeltaPredictor::Options o;
      o.seed = spec.seed;
      CP_ASSIGN_OR_RETURN(auto pred, OutputDeltaPredictor::create(space, exact_outputs,
                                                                  c.predictor_range.end - c.predictor_range.begin,
                                                                  width, o));
      p1pred.emplace(std::move(pred));
    }
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t l = 0; l < space.layers.size(); ++l) {
      single[l].resize(space.layers[l].knobs.size());
      for (size_t k = 1; k < space.layers[l].knobs.size(); ++k) pairs.emplace_back(l, k);
    }
    const auto t0 = Clock::now();
    int64_t fresh = 0;
    std::mutex mu;
    std::atomic<size_t> next{0};
    Status failure;
    auto work = [&](int w) {
      for (size_t i = next++; i < pairs.size(); i = next++) {
        if (interrupt_requested()) return;
        auto [l, k] = pairs[i];
        KnobConfig config{{space.layers[l].node, space.layers[l].knobs[k]}};
        const EvalRecord* rec = nullptr;
        {
          std::lock_guard<std::mutex> lock(c.records_mu);
          rec = c.records->find("single", static_cast<int64_t>(i));
        }
        double qos = 0;
        std::vector<float> outs;
        if (rec && !p1 && rec->knobs == config && rec->qos.count("tune")) {
          qos = rec->qos.at("tune");
        } else {
          const auto ts = Clock::now();
          auto r = empirical(c, w, config, c.predictor_range.begin, c.predictor_range.end, p1 ? &outs : nullptr);
          // Each (layer, knob) runs once here: keep only its kernel, so
          // memory does not grow with the size of the knob space.
          c.workers[static_cast<size_t>(w)]->release_idle_kernels();
          std::lock_guard<std::mutex> lock(mu);
          if (!r.ok()) {
            if (failure.ok()) failure = r.status().with_context(fmt::format("{} with {}", config.begin()->first,
                                                                            config.begin()->second));
            return;
          }
          qos = r->qos;
          ++fresh;
          if (!rec) {
            EvalRecord er;
            er.phase = "single";
            er.iteration = static_cast<int64_t>(i);
            er.knobs = config;
            er.qos["tune"] = qos;
            er.qos_loss = qos_loss(c.exp.qos.metric, c.baseline_predictor, qos);
            er.speedup_predicted = single_speedups[l][k];
            er.seconds = seconds_since(ts);
            er.origin = "single";
            Status st = append_record(c, er);
            if (!st.ok() && failure.ok()) failure = st;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        Status st = p2->set_single(l, k, qos);
        if (st.ok() && p1) st = p1pred->set_single(l, k, outs.data(), c.predictor_range.end - c.predictor_range.begin,
                                                   width);
        if (!st.ok() && failure.ok()) failure = st;
        single[l][k] = {qos_loss(c.exp.qos.metric, c.baseline_predictor, qos), single_speedups[l][k]};
        progress_line(c, fmt::format("  single-knob runs {}/{}", i + 1, pairs.size()));
      }
    };
    run_workers(settings.jobs, work);
    if (c.progress) fmt::print(stderr, "\n");
    if (interrupt_requested()) return interrupted(c);
    CP_TRY(failure);
    log_info("single-knob runs: {} ({} fresh) in {:.1f} s on {} samples{}", pairs.size(), fresh, seconds_since(t0),
             c.predictor_range.end - c.predictor_range.begin,
             p1 ? fmt::format("; p1 deltas hold {:.1f} MB", p1pred->memory_bytes() / 1e6) : std::string());
  }

  // Phase "search".
  SearchSettings ss;
  ss.kind = spec.strategy;
  ss.seed = spec.seed;
  ss.max_loss = c.max_loss;
  ss.single = single;
  CP_ASSIGN_OR_RETURN(auto strategy, make_strategy(space, ss));
  SearchBudget budget;
  if (spec.iterations > 0) budget.max_evaluations = spec.iterations;
  if (spec.time_limit_s > 0) budget.max_seconds = spec.time_limit_s;
  double p1_exact_metric = 0;
  QosSpec metric_spec = c.exp.qos;
  auto p1_metric = [&](const std::vector<float>& outs) -> Result<double> {
    const int64_t n = static_cast<int64_t>(outs.size()) / width;
    Tensor y = Tensor::view(DType::f32, {n, width}, const_cast<float*>(outs.data()));
    Tensor exact = Tensor::view(DType::f32, {n, width}, const_cast<float*>(p1pred->exact_kept().data()));
    MetricAccumulator acc(metric_spec);
    std::optional<Tensor> labels;
    if (main.dataset().labels) {
      // Labels of the kept samples, in order.
      const auto& kept = p1pred->kept_samples();
      Tensor lab(main.dataset().labels->dtype(), {n});
      for (int64_t i = 0; i < n; ++i) {
        auto one = main.dataset().label_batch(c.predictor_range.begin + kept[static_cast<size_t>(i)],
                                              c.predictor_range.begin + kept[static_cast<size_t>(i)] + 1);
        std::memcpy(static_cast<char*>(lab.raw()) + i * dtype_size(lab.dtype()), one->raw(), dtype_size(lab.dtype()));
      }
      labels = std::move(lab);
    }
    CP_TRY(acc.add(y, labels ? &*labels : nullptr, &exact));
    return acc.value();
  };
  if (p1) {
    CP_ASSIGN_OR_RETURN(p1_exact_metric, p1_metric(p1pred->exact_kept()));
  }
  SearchHooks hooks;
  std::map<int64_t, double> predicted_qos;
  std::mutex pred_mu;
  hooks.evaluate = [&](const Proposal& p, int64_t, int w) -> Result<Evaluation> {
    const double speedup = cost.speedup(p.candidate);
    double qos = 0, loss = 0;
    if (spec.qos_mode == QosMode::empirical) {
      CP_ASSIGN_OR_RETURN(SplitResult r, empirical(c, w, space.to_config(p.candidate), c.tune_range.begin,
                                                   c.tune_range.end));
      qos = r.qos;
      loss = qos_loss(c.exp.qos.metric, c.baseline_tune, qos);
    } else if (spec.qos_mode == QosMode::p2) {
      CP_ASSIGN_OR_RETURN(qos, p2->predict(p.candidate));
      loss = qos_loss(c.exp.qos.metric, c.baseline_predictor, qos);
    } else {
      CP_ASSIGN_OR_RETURN(qos, p1pred->predict(p.candidate, p1_metric));
      loss = qos_loss(c.exp.qos.metric, p1_exact_metric, qos);
    }
    return Evaluation{loss, speedup};
  };
  hooks.recorded = [&](int64_t it) -> std::optional<RecordedEvaluation> {
    std::lock_guard<std::mutex> lock(c.records_mu);
    const EvalRecord* r = c.records->find("search", it);
    if (!r || !r->qos_loss || !r->speedup_predicted) return std::nullopt;
    auto cand = space.from_config(r->knobs);
    if (!cand.ok()) return std::nullopt;
    return RecordedEvaluation{*cand, {*r->qos_loss, *r->speedup_predicted}};
  };
  hooks.on_evaluated = [&](int64_t it, const Proposal& p, const Evaluation& e, double secs) -> Status {
    EvalRecord r;
    r.phase = "search";
    r.iteration = it;
    r.knobs = space.to_config(p.candidate);
    r.qos_loss = e.qos_loss;
    if (spec.qos_mode == QosMode::empirical) r.qos["tune"] = qos_loss_inverse(c.exp.qos.metric, c.baseline_tune, e.qos_loss);
    else r.qos_predicted = qos_loss_inverse(c.exp.qos.metric, spec.qos_mode == QosMode::p1 ? p1_exact_metric
                                                                                          : c.baseline_predictor,
                                        e.qos_loss);
    r.speedup_predicted = e.speedup;
    r.cost = cost.cost(p.candidate);
    r.seconds = secs;
    r.origin = p.origin;
    return append_record(c, r);
  };
  hooks.on_progress = [&](const SearchProgress& pr) {
    if (!c.progress) return;
    std::string eta;
    if (pr.max_evaluations && pr.evaluations_per_second > 0)
      eta = fmt::format(", ETA {:.0f} s", (*pr.max_evaluations - pr.evaluations) / pr.evaluations_per_second);
    progress_line(c, fmt::format("  search {}/{}: {:.1f} eval/s, best speedup within the goal {}{}", pr.evaluations,
                                 pr.max_evaluations ? fmt::format("{}", *pr.max_evaluations) : std::string("-"),
                                 pr.evaluations_per_second,
                                 pr.best_feasible_speedup ? fmt::format("{:.2f}x", *pr.best_feasible_speedup) : "-",
                                 eta));
  };
  hooks.should_stop = [] { return interrupt_requested(); };
  const auto t_search = Clock::now();
  CP_ASSIGN_OR_RETURN(SearchOutcome outcome, run_search(*strategy, budget, settings.jobs, hooks));
  if (c.progress) fmt::print(stderr, "\n");
  if (outcome.stop_reason == StopReason::interrupted) return interrupted(c);
  const double search_s = seconds_since(t_search);
  log_info("search: {} evaluations ({} replayed) in {:.1f} s, {:.1f} eval/s; stopped by {}; {}",
           outcome.results.size(), outcome.replayed, search_s,
           outcome.fresh > 0 && search_s > 0 ? outcome.fresh / search_s : 0.0, stop_reason_name(outcome.stop_reason),
           strategy->summary());

  // Finalists: the predicted frontier first, then the fastest feasible ones.
  std::vector<LossSpeedup> pts;
  for (const auto& r : outcome.results) pts.push_back({r.evaluation.qos_loss, r.evaluation.speedup});
  std::vector<size_t> order = pareto_frontier(pts);
  std::vector<size_t> by_speed(pts.size());
  for (size_t i = 0; i < by_speed.size(); ++i) by_speed[i] = i;
  std::stable_sort(by_speed.begin(), by_speed.end(), [&](size_t a, size_t b) { return pts[a].speedup > pts[b].speedup; });
  order.insert(order.end(), by_speed.begin(), by_speed.end());
  std::vector<size_t> finalists;
  std::set<KnobConfig> seen;
  for (size_t i : order) {
    if (static_cast<int64_t>(finalists.size()) >= spec.finalists) break;
    const auto& r = outcome.results[i];
    if (!feasible(r.evaluation, c.max_loss) || r.proposal.candidate == space.exact()) continue;
    if (!seen.insert(space.to_config(r.proposal.candidate)).second) continue;
    finalists.push_back(i);
  }
  log_info("validating {} finalists on the tune and test splits", finalists.size());

  // Phase "validate": empirical QoS on tune then test, and measured speedup
  // (exact and candidate timed interleaved).
  struct Validated {
    size_t result;
    double qos_tune = 0, qos_test = 0, speedup = 0;
    bool kept = false;
  };
  std::vector<Validated> validated(finalists.size());
  {
    std::atomic<size_t> next{0};
    std::mutex mu;
    Status failure;
    auto work = [&](int w) {
      for (size_t i = next++; i < finalists.size(); i = next++) {
        if (interrupt_requested()) return;
        const auto& r = outcome.results[finalists[i]];
        const KnobConfig config = space.to_config(r.proposal.candidate);
        Validated v{finalists[i]};
        const EvalRecord* rec = nullptr;
        {
          std::lock_guard<std::mutex> lock(c.records_mu);
          rec = c.records->find("validate", static_cast<int64_t>(i));
        }
        if (rec && rec->knobs == config && rec->speedup_measured && rec->qos.count("tune")) {
          v.qos_tune = rec->qos.at("tune");
          v.qos_test = rec->qos.count("test") ? rec->qos.at("test") : NAN;
          v.speedup = *rec->speedup_measured;
        } else {
          const auto ts = Clock::now();
          auto run = [&]() -> Status {
            CP_ASSIGN_OR_RETURN(SplitResult t, empirical(c, w, config, c.tune_range.begin, c.tune_range.end));
            v.qos_tune = t.qos;
            v.qos_test = NAN;
            if (goal_met(c.exp.qos, c.baseline_tune, t.qos)) {
              CP_ASSIGN_OR_RETURN(SplitResult s, empirical(c, w, config, test_range.begin, test_range.end));
              v.qos_test = s.qos;
            }
            // Speedup: this worker alternates exact and candidate runs.
            Evaluator& ev = *c.workers[static_cast<size_t>(w)];
            std::vector<double> exact_ms, conf_ms;
            for (int rep = 0; rep < 7; ++rep) {
              CP_TRY(ev.configure({}));
              CP_ASSIGN_OR_RETURN(auto e, ev.time_batch(batch, 1));
              CP_TRY(ev.configure(config));
              CP_ASSIGN_OR_RETURN(auto a, ev.time_batch(batch, 1));
              exact_ms.push_back(e[0]);
              conf_ms.push_back(a[0]);
            }
            v.speedup = summarize(exact_ms).median / summarize(conf_ms).median;
            EvalRecord er;
            er.phase = "validate";
            er.iteration = static_cast<int64_t>(i);
            er.knobs = config;
            er.qos["tune"] = v.qos_tune;
            er.qos["test"] = v.qos_test;
            er.qos_loss = r.evaluation.qos_loss;
            er.speedup_predicted = r.evaluation.speedup;
            er.speedup_measured = v.speedup;
            er.seconds = seconds_since(ts);
            er.origin = r.proposal.origin;
            return append_record(c, er);
          };
          Status st = run();
          if (!st.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            if (failure.ok()) failure = st;
            return;
          }
        }
        v.kept = !std::isnan(v.qos_test) && goal_met(c.exp.qos, c.baseline_tune, v.qos_tune) &&
                 goal_met(c.exp.qos, base_test.qos, v.qos_test);
        std::lock_guard<std::mutex> lock(mu);
        validated[i] = v;
        progress_line(c, fmt::format("  validation {}/{}", i + 1, finalists.size()));
      }
    };
    run_workers(settings.jobs, work);
    if (c.progress) fmt::print(stderr, "\n");
    if (interrupt_requested()) return interrupted(c);
    CP_TRY(failure);
  }

  // Frontier over (test loss, measured speedup), thinned into levels.
  std::vector<LossSpeedup> vpts{{0.0, 1.0}};
  std::vector<const Validated*> vref{nullptr};
  for (const auto& v : validated) {
    if (!v.kept) continue;
    vpts.push_back({qos_loss(c.exp.qos.metric, base_test.qos, v.qos_test), v.speedup});
    vref.push_back(&v);
  }
  const auto frontier = pareto_frontier(vpts);
  ThinningRule rule{spec.min_speedup_step, spec.min_loss_step};
  const auto levels = thin_levels(vpts, frontier, 0, rule);
  int level = 0;
  for (size_t idx : levels) {
    if (idx == 0) continue;
    const Validated& v = *vref[idx];
    const auto& r = outcome.results[v.result];
    ParetoConfiguration pc;
    pc.id = fmt::format("c{}", ++level);
    pc.level = level;
    pc.knobs = space.to_config(r.proposal.candidate);
    pc.qos_tune = v.qos_tune;
    pc.qos_test = v.qos_test;
    pc.loss_tune = qos_loss(c.exp.qos.metric, c.baseline_tune, v.qos_tune);
    pc.loss_test = qos_loss(c.exp.qos.metric, base_test.qos, v.qos_test);
    if (spec.qos_mode != QosMode::empirical)
      pc.qos_predicted = qos_loss_inverse(c.exp.qos.metric, spec.qos_mode == QosMode::p1 ? p1_exact_metric
                                                                                    : c.baseline_predictor,
                                          r.evaluation.qos_loss);
    pc.speedup_predicted = r.evaluation.speedup;
    pc.speedup_measured = v.speedup;
    doc.configurations.push_back(pc);
  }
  CP_TRY(write_frontier());
  {
    // How far the QoS and cost models were off on what they chose.
    double qos_err = 0, speed_err = 0;
    int n_qos = 0, n_speed = 0;
    for (const auto& pc : doc.configurations) {
      if (pc.level == 0) continue;
      if (pc.qos_predicted) {
        qos_err += std::fabs(*pc.qos_predicted - pc.qos_tune);
        ++n_qos;
      }
      if (pc.speedup_predicted && pc.speedup_measured) {
        speed_err += std::fabs(*pc.speedup_predicted - *pc.speedup_measured);
        ++n_speed;
      }
    }
    const int64_t predictor_samples = c.predictor_range.end - c.predictor_range.begin;
    const std::string qos_part =
        n_qos > 0 ? fmt::format("QoS {:.3f} {} (predicted on {} samples, measured on the tune split), ",
                                qos_err / n_qos, loss_unit(c.exp.qos.metric), predictor_samples)
                  : std::string();
    if (n_speed > 0)
      log_info("frontier: mean |predicted - measured|: {}speedup {:.2f}x ({} cost model) over {} configuration(s)",
               qos_part, speed_err / n_speed, cost_mode_name(spec.cost_mode), n_speed);
    log_info("peak resident memory: {:.0f} MiB", static_cast<double>(peak_rss_bytes()) / (1 << 20));
  }
  const std::string pareto_path = (std::filesystem::path(c.dir) / "pareto.json").string();
  if (settings.export_hpvm) {
    std::vector<HpvmLayer> layers;
    for (size_t l = 0; l < space.layers.size(); ++l) {
      HpvmLayer hl{space.layers[l].node, {}};
      if (c.ks.fused[l].find("Add") != std::string::npos) hl.fused_ops.push_back("add");
      if (c.ks.fused[l].find("Relu") != std::string::npos) hl.fused_ops.push_back("relu");
      layers.push_back(std::move(hl));
    }
    CP_ASSIGN_OR_RETURN(HpvmExport ex, format_hpvm_confs(doc, layers, "cpu"));
    CP_TRY(write_file_atomic(*settings.export_hpvm, ex.text));
    for (const auto& s : ex.skipped) log_warn("--export-hpvm: {}", s);
  }

  // The frontier as a table.
  if (settings.common.json) {
    nlohmann::json j = nlohmann::json::parse(pareto_json_text(doc));
    j["artifact"] = pareto_path;
    j["seconds"] = seconds_since(t_start);
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("experiment {}: {} level{} within the goal (loss <= {:.3g} {} on tune and test)\n", c.exp.name,
               doc.configurations.size(), doc.configurations.size() == 1 ? "" : "s", c.max_loss,
               loss_unit(c.exp.qos.metric));
    fmt::print("{:<6} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}  knobs\n", "id", "level", "qos tune",
               "qos test", "loss tune", "loss test", "speedup", "predicted");
    for (const auto& pc : doc.configurations) {
      std::string knobs;
      for (const auto& [node, knob] : pc.knobs) knobs += fmt::format("{}{}={}", knobs.empty() ? "" : " ", node, knob);
      fmt::print("{:<6} {:>5} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f} {:>8.2f}x {:>8.2f}x  {}\n", pc.id, pc.level,
                 pc.qos_tune, pc.qos_test, pc.loss_tune, pc.loss_test, pc.speedup_measured.value_or(NAN),
                 pc.speedup_predicted.value_or(NAN), knobs.empty() ? "(exact)" : knobs);
    }
    fmt::print("written: {} (records: {}) in {:.1f} s\n", pareto_path, records_path, seconds_since(t_start));
  }
  if (doc.configurations.size() == 1)
    return Status(Errc::goal_not_met, fmt::format("no approximate configuration met the goal on both the tune and "
                                                  "the test split (the frontier holds the exact network only: {})",
                                                  pareto_path));
  return {};
}

}  // namespace caliprox
