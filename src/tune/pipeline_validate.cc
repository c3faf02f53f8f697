// Phase "validate": the finalists of a search re-run empirically on the
// tune and test splits, and their speedup measured (tune/pipeline.h).
#include <chrono>
#include <cmath>

#include "eval/interrupt.h"
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

// Runs finalist `i` on worker w: QoS on tune, and on test only when tune
// is within the goal. Its speedup is measured afterwards, on this process.
Result<Validated> run_qos(PipelineContext& c, int w, const Finalist& f) {
  Validated v;
  CP_ASSIGN_OR_RETURN(SplitResult t, empirical(c, w, f.knobs, c.tune_range));
  v.qos_tune = t.qos;
  v.qos_test = NAN;
  if (goal_met(c.exp.qos, c.base.qos_tune, t.qos)) {
    CP_ASSIGN_OR_RETURN(SplitResult s, empirical(c, w, f.knobs, c.test_range));
    v.qos_test = s.qos;
  }
  return v;
}

// Measures finalist `i`'s speedup on worker 0 (this process: the target
// host, with no other evaluation running) and records the validation.
Status measure_and_record(PipelineContext& c, size_t i, const Finalist& f, Validated& v, double qos_seconds,
                          const std::string& host) {
  const auto ts = Clock::now();
  CP_ASSIGN_OR_RETURN(v.speedup, measured_speedup(c.main(), f.knobs, c.batch()));
  EvalRecord er;
  er.phase = "validate";
  er.iteration = static_cast<int64_t>(i);
  er.knobs = f.knobs;
  er.qos["tune"] = v.qos_tune;
  er.qos["test"] = v.qos_test;
  er.qos_loss = f.predicted.qos_loss;
  er.speedup_predicted = f.predicted.speedup;
  er.speedup_measured = v.speedup;
  er.seconds = qos_seconds + std::chrono::duration<double>(Clock::now() - ts).count();
  er.origin = f.origin;
  er.host = host;
  if (host != c.pool->host(0)) er.data = {{"qos_host", host}, {"speedup_host", c.pool->host(0)}};
  return append_record(c, er);
}

}  // namespace

Result<std::vector<Validated>> validate_finalists(PipelineContext& c, const std::vector<Finalist>& finalists) {
  // The QoS runs on the pool's workers (any rank); then every speedup on
  // worker 0 in turn, so that speed is measured on one machine, alone.
  std::vector<Validated> validated(finalists.size());
  std::vector<bool> fresh(finalists.size(), false);
  std::vector<double> seconds(finalists.size(), 0);
  std::vector<std::string> hosts(finalists.size());
  std::mutex mu;  // guards the vectors and the progress reports
  auto job = [&](size_t i, int w) -> Status {
    const Finalist& f = finalists[i];
    std::optional<Validated> v = replayed(c, i, f);
    const auto ts = Clock::now();
    const bool run = !v;
    if (run) {
      CP_ASSIGN_OR_RETURN(v, run_qos(c, w, f));
    }
    std::lock_guard<std::mutex> lock(mu);
    validated[i] = *v;
    fresh[i] = run;
    seconds[i] = std::chrono::duration<double>(Clock::now() - ts).count();
    hosts[i] = c.pool->host(w);
    c.reporter->progress(PipelinePhase::validate, i, finalists.size());
    return {};
  };
  CP_TRY(run_phase(c, PipelinePhase::validate, finalists.size(), job));
  for (size_t i = 0; i < finalists.size(); ++i) {
    if (interrupt_requested()) return interrupted(c);
    Validated& v = validated[i];
    if (fresh[i]) CP_TRY(measure_and_record(c, i, finalists[i], v, seconds[i], hosts[i]));
    v.kept = !std::isnan(v.qos_test) && goal_met(c.exp.qos, c.base.qos_tune, v.qos_tune) &&
             goal_met(c.exp.qos, c.base.qos_test, v.qos_test);
  }
  return validated;
}

}  // namespace caliprox
