// Phase "validate": the finalists of a search re-run empirically on the
// tune and test splits, and their speedup measured (tune/pipeline.h).
#include <chrono>
#include <cmath>

#include "tune/pipeline.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

// The recorded validation of finalist `i`, if it is this finalist's.
std::optional<Validated> replayed(PipelineContext& c, size_t i, const Finalist& f) {
  const std::optional<EvalRecord> rec = find_record(c, "validate", static_cast<int64_t>(i));
  if (!rec || rec->knobs != f.knobs || !rec->speedup_measured || !rec->qos.count("tune")) return std::nullopt;
  Validated v;
  v.qos_tune = rec->qos.at("tune");
  v.qos_test = rec->qos.count("test") ? rec->qos.at("test") : NAN;
  v.speedup = *rec->speedup_measured;
  return v;
}

// Runs finalist `i` on worker w: QoS on tune, on test only when tune is
// within the goal, then the measured speedup; records the result.
Result<Validated> validate_one(PipelineContext& c, int w, size_t i, const Finalist& f) {
  const auto ts = Clock::now();
  Validated v;
  CP_ASSIGN_OR_RETURN(SplitResult t, empirical(c, w, f.knobs, c.tune_range));
  v.qos_tune = t.qos;
  v.qos_test = NAN;
  if (goal_met(c.exp.qos, c.base.qos_tune, t.qos)) {
    CP_ASSIGN_OR_RETURN(SplitResult s, empirical(c, w, f.knobs, c.test_range));
    v.qos_test = s.qos;
  }
  CP_ASSIGN_OR_RETURN(v.speedup, measured_speedup(*c.evaluators[static_cast<size_t>(w)], f.knobs, c.batch()));
  EvalRecord er;
  er.phase = "validate";
  er.iteration = static_cast<int64_t>(i);
  er.knobs = f.knobs;
  er.qos["tune"] = v.qos_tune;
  er.qos["test"] = v.qos_test;
  er.qos_loss = f.predicted.qos_loss;
  er.speedup_predicted = f.predicted.speedup;
  er.speedup_measured = v.speedup;
  er.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
  er.origin = f.origin;
  CP_TRY(append_record(c, er));
  return v;
}

}  // namespace

Result<std::vector<Validated>> validate_finalists(PipelineContext& c, const std::vector<Finalist>& finalists) {
  std::vector<Validated> validated(finalists.size());
  std::mutex mu;  // guards `validated` and the progress reports
  auto job = [&](size_t i, int w) -> Status {
    const Finalist& f = finalists[i];
    std::optional<Validated> v = replayed(c, i, f);
    if (!v) {
      CP_ASSIGN_OR_RETURN(v, validate_one(c, w, i, f));
    }
    v->kept = !std::isnan(v->qos_test) && goal_met(c.exp.qos, c.base.qos_tune, v->qos_tune) &&
              goal_met(c.exp.qos, c.base.qos_test, v->qos_test);
    std::lock_guard<std::mutex> lock(mu);
    validated[i] = *v;
    c.reporter->progress(PipelinePhase::validate, i, finalists.size());
    return {};
  };
  CP_TRY(run_phase(c, PipelinePhase::validate, finalists.size(), job));
  return validated;
}

}  // namespace caliprox
