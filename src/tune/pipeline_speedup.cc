// Speed measurements of the pipeline, all through measure_interleaved
// (tune/measure.h), the same repetition code `caliprox profile` uses.
#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include "tune/measure.h"
#include "tune/pipeline.h"

namespace caliprox {

namespace {

// Exactly `rounds` rounds after `warmup` untimed ones, whatever they last.
RepeatPolicy fixed_rounds(int warmup, int rounds) {
  RepeatPolicy p;
  p.warmup_rounds = warmup;
  p.min_rounds = rounds;
  p.max_rounds = rounds;
  p.min_seconds = 0;
  p.max_seconds = std::numeric_limits<double>::infinity();
  return p;
}

// Integer nanoseconds since the measurement began, as measure_interleaved's
// clock: each duration it records is then an exact count of nanoseconds,
// reported in ms as N / 1e6, the value a std::chrono milliseconds duration
// of those nanoseconds has (the precision pareto.json and the records had).
std::function<double()> nanosecond_clock() {
  const auto origin = std::chrono::steady_clock::now();
  return [origin] {
    return static_cast<double>(std::chrono::nanoseconds(std::chrono::steady_clock::now() - origin).count());
  };
}

double median_ms(const std::vector<double>& nanoseconds) { return summarize(nanoseconds).median / 1e6; }

}  // namespace

Result<double> median_batch_ms(Evaluator& ev, int64_t batch, int repeats) {
  const int64_t n = std::min(batch, ev.dataset().size());
  CP_ASSIGN_OR_RETURN(Session * s, ev.session(n));
  const Tensor x = ev.dataset().sample_batch(0, n);
  const MeasuredFn run = [&]() -> Status { return s->run(std::span<const Tensor>(&x, 1)); };
  CP_ASSIGN_OR_RETURN(InterleavedSamples m, measure_interleaved({run}, fixed_rounds(1, repeats), nullptr,
                                                                nanosecond_clock()));
  return median_ms(m.seconds[0]);
}

Result<double> measured_speedup(Evaluator& ev, const KnobConfig& config, int64_t batch, int rounds) {
  const int64_t n = std::min(batch, ev.dataset().size());
  // One session each (the configuration may reshape the graph), alternated;
  // each timed run follows one untimed run of the same session (steady state).
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Session> exact, ev.detached_session({}, n));
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Session> approx, ev.detached_session(config, n));
  const Tensor x = ev.dataset().sample_batch(0, n);
  const MeasuredFn run_exact = [&]() -> Status { return exact->run(std::span<const Tensor>(&x, 1)); };
  const MeasuredFn run_approx = [&]() -> Status { return approx->run(std::span<const Tensor>(&x, 1)); };
  const std::vector<MeasuredFn> runs{run_exact, run_approx};
  CP_ASSIGN_OR_RETURN(InterleavedSamples m,
                      measure_interleaved(runs, fixed_rounds(0, rounds), nullptr, nanosecond_clock(), runs));
  return median_ms(m.seconds[0]) / median_ms(m.seconds[1]);
}

}  // namespace caliprox
