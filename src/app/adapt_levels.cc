// adapt-sim's measurements (app/adapt_levels.h): each level's answers on
// the stream split and the calibrate split, and its latency, energy and
// switch cost measured interleaved on the experiment's target, one input at
// a time as a device runs a stream.
#include "app/adapt_levels.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "eval/interrupt.h"
#include "util/log.h"
#include "util/stats.h"

namespace caliprox {

namespace {

// Answers of `ev`'s current configuration on `split`, as observations.
Result<std::vector<Observation>> answers_on(Evaluator& ev, const std::string& split, int64_t classes, int level) {
  std::vector<float> outputs;
  CP_ASSIGN_OR_RETURN(SplitResult r, ev.run_split(split, &outputs));
  if (static_cast<int64_t>(outputs.size()) != r.samples * classes)
    return invalid_input("adapt-sim: the output '{}' has {} values per sample; a classifier of {} classes has {}",
                         ev.io().output, r.samples ? static_cast<int64_t>(outputs.size()) / r.samples : 0, classes,
                         classes);
  return observations(outputs, classes, level);
}

}  // namespace

Result<LevelData> level_data(Evaluator& ev, const std::vector<ParetoConfiguration>& levels, const std::string& split,
                             int64_t classes) {
  LevelData d;
  const std::string cal_split = ev.dataset().splits.count("calibrate") ? "calibrate" : split;
  CP_ASSIGN_OR_RETURN(SplitRange stream_range, ev.dataset().split(split));
  CP_ASSIGN_OR_RETURN(SplitRange cal_range, ev.dataset().split(cal_split));
  d.stream.begin = stream_range.begin;
  d.calibrate.begin = cal_range.begin;
  const std::optional<Tensor> labels = ev.dataset().label_batch(cal_range.begin, cal_range.end);
  if (!labels || labels->dtype() != DType::i64)
    return invalid_input("adapt-sim: the {} split has no class labels", cal_split);
  d.calibrate_labels.assign(labels->span<int64_t>().begin(), labels->span<int64_t>().end());
  for (size_t l = 0; l < levels.size(); ++l) {
    if (interrupt_requested()) return interrupted_status("adapt-sim");
    CP_TRY(ev.configure(levels[l].knobs));  // checked on this network by measure_levels
    CP_ASSIGN_OR_RETURN(auto s, answers_on(ev, split, classes, static_cast<int>(l)));
    d.stream.answers.push_back(std::move(s));
    CP_ASSIGN_OR_RETURN(auto c, answers_on(ev, cal_split, classes, static_cast<int>(l)));
    int64_t right = 0;
    for (size_t i = 0; i < c.size() && i < d.calibrate_labels.size(); ++i) right += c[i].argmax == d.calibrate_labels[i];
    d.calibrate_accuracy.push_back(c.empty() ? 0 : static_cast<double>(right) / static_cast<double>(c.size()));
    d.calibrate.answers.push_back(std::move(c));
    log_info("adapt-sim: level {} ({}): answers on {} and calibrate", levels[l].level, levels[l].id, split);
  }
  CP_TRY(ev.configure({}));
  return d;
}

Result<LevelCosts> measure_levels(Evaluator& ev, const std::vector<ParetoConfiguration>& levels,
                                  const RepeatPolicy& policy, const std::string& pareto_path) {
  // Every level on the evaluator first: a level that names nodes this
  // network lacks comes from a frontier of another network; and int8 levels
  // calibrate their input ranges, so the batch-1 session gets them.
  for (const auto& l : levels)
    CP_TRY(ev.configure(l.knobs).with_context(
        fmt::format("{}: level {} ({}); is it the frontier of another network?", pareto_path, l.level, l.id)));
  CP_TRY(ev.configure({}));
  CP_ASSIGN_OR_RETURN(Session * s, ev.session(1));
  const Tensor x = ev.dataset().sample_batch(0, 1);
  const MeasuredFn run_one = [&]() -> Status { return s->run(std::span<const Tensor>(&x, 1)); };
  std::vector<MeasuredFn> fns, setups;
  for (const auto& l : levels) {
    fns.push_back(run_one);
    setups.push_back([&, knobs = l.knobs]() -> Status {
      CP_TRY(s->configure(knobs));
      return run_one();
    });
  }
  // The switch itself: between the exact network and the top level (the
  // largest change of knobs), timed alone.
  const KnobConfig top = levels.back().knobs;
  bool at_top = false;
  fns.push_back([&]() -> Status {
    at_top = !at_top;
    return s->configure(at_top ? top : KnobConfig{});
  });
  setups.push_back([]() -> Status { return {}; });
  LevelCosts c;
  c.energy = std::make_unique<EnergyMeter>();
  CP_ASSIGN_OR_RETURN(InterleavedSamples m,
                      measure_interleaved(fns, policy, c.energy->available() ? c.energy.get() : nullptr, {}, setups));
  CP_TRY(s->configure({}));
  for (size_t l = 0; l < levels.size(); ++l) {
    LevelCost cost{summarize(m.seconds[l]).median * 1000.0, std::nullopt};
    if (!m.total_joules.empty() && m.rounds > 0) cost.energy_j = m.total_joules[l] / m.rounds;
    c.costs.push_back(cost);
    c.stats.push_back(stat_json(m.seconds[l], 1000.0));
  }
  c.switch_ms = summarize(m.seconds.back()).median * 1000.0;
  if (!m.total_joules.empty() && m.rounds > 0) c.switch_j = m.total_joules.back() / m.rounds;
  c.rounds = m.rounds;
  return c;
}

Result<ThinnedLevels> measure_and_thin(Evaluator& ev, const std::vector<ParetoConfiguration>& levels,
                                       const RepeatPolicy& policy, const ThinningRule& rule,
                                       const std::string& pareto_path) {
  CP_ASSIGN_OR_RETURN(LevelCosts measured, measure_levels(ev, levels, policy, pareto_path));
  std::vector<LossSpeedup> points;
  std::vector<size_t> frontier;
  for (size_t k = 0; k < levels.size(); ++k) {
    points.push_back({levels[k].loss_test, measured.costs[0].latency_ms / measured.costs[k].latency_ms});
    if (k > 0) frontier.push_back(k);
  }
  const std::vector<size_t> kept = thin_levels(points, frontier, 0, rule);
  ThinnedLevels t;
  t.costs.switch_ms = measured.switch_ms;
  t.costs.switch_j = measured.switch_j;
  t.costs.rounds = measured.rounds;
  t.costs.energy = std::move(measured.energy);
  for (size_t k = 0; k < levels.size(); ++k) {
    if (std::find(kept.begin(), kept.end(), k) != kept.end()) {
      t.levels.push_back(levels[k]);
      t.costs.costs.push_back(measured.costs[k]);
      t.costs.stats.push_back(measured.stats[k]);
    } else {
      t.dropped.push_back(fmt::format("level {} ({}) dropped: {:.2f}x measured at batch 1, loss {:.3g}; it does not "
                                      "beat the level before it by tune.min_speedup_step {} and tune.min_loss_step {}",
                                      levels[k].level, levels[k].id, points[k].speedup, points[k].loss,
                                      rule.min_speedup_step, rule.min_loss_step));
    }
  }
  return t;
}

}  // namespace caliprox
