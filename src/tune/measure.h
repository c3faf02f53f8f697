#pragma once
// Measurement hygiene for `caliprox profile` (issue 4): medians with a 95 %
// confidence interval, interleaved repetition (A B A B ...) until a minimum
// count and a minimum total time, energy from Linux powercap RAPL counters,
// and the context a measurement was taken in (threads, CPU affinity,
// OMP_WAIT_POLICY). Knows nothing about networks: what is measured are
// callables.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/stats.h"
#include "util/status.h"

namespace caliprox {

// ---------------------------------------------------------------- statistics

enum class CiMethod { order_statistics, bootstrap };
std::string_view ci_method_name(CiMethod m);  // "order-statistics", "bootstrap"

// A median with its confidence interval [lo, hi].
struct MedianCi {
  double median = 0;
  double lo = 0;
  double hi = 0;
  // Coverage the interval actually has: for order statistics the exact
  // binomial probability (>= the requested level, the discreteness makes it
  // larger); for the bootstrap the requested level.
  double coverage = 0;
  size_t count = 0;
  CiMethod method = CiMethod::order_statistics;
  // False when there are too few samples for an interval at the requested
  // level (order statistics need n >= 6 for 95 %); lo/hi are then min/max.
  bool has_interval = false;
};

// 1-based ranks (lower, upper) of the order statistics x_(lower) <= median <=
// x_(upper) forming the narrowest symmetric distribution-free interval whose
// coverage P(lower <= B <= n - lower), B ~ Binomial(n, 1/2), is at least
// `level`. nullopt when even (1, n) covers less than `level`.
struct OrderStatisticRanks {
  size_t lower = 0;
  size_t upper = 0;
  double coverage = 0;
};
std::optional<OrderStatisticRanks> median_ci_ranks(size_t n, double level = 0.95);

MedianCi median_ci_order_statistics(std::vector<double> samples, double level = 0.95);
// Percentile bootstrap of the median: `resamples` resamples drawn with the
// platform-independent Rng seeded with `seed`, so the interval is reproducible.
MedianCi median_ci_bootstrap(const std::vector<double>& samples, double level = 0.95, int resamples = 2000,
                             uint64_t seed = 1);

// {"median", "ci_low", "ci_high", "coverage", "method", "count", "min", "max",
// "mad"} in the unit of the samples times `scale` (e.g. 1000 for s -> ms), as
// in schemas/profile.schema.json ("$defs/stat").
nlohmann::json stat_json(const std::vector<double>& samples, double scale = 1.0,
                         CiMethod method = CiMethod::order_statistics, uint64_t bootstrap_seed = 1);

// ------------------------------------------------------ interleaved repetition

struct RepeatPolicy {
  int warmup_rounds = 2;            // rounds run first and thrown away
  int min_rounds = 10;              // every callable runs at least this often
  double min_seconds = 1.0;         // ... and for at least this long in total
  int max_rounds = 100000;          // hard caps, whatever the minimums say
  double max_seconds = 600.0;       // on the summed time of all callables
};

// One measured unit of work; an error stops the measurement.
using MeasuredFn = std::function<Status()>;

class EnergyMeter;

struct InterleavedSamples {
  // seconds[i][r]: duration of callable i in round r.
  std::vector<std::vector<double>> seconds;
  // joules[i][r] when an available EnergyMeter was given, else empty. RAPL
  // counters update about once a millisecond: single runs much shorter than
  // that give quantised samples, so prefer total_joules / rounds for them.
  std::vector<std::vector<double>> joules;
  std::vector<double> total_joules;
  int rounds = 0;
  int warmup_rounds = 0;
  bool hit_cap = false;  // stopped by max_rounds / max_seconds before the minimums were met
};

// Runs round after round; in each round every callable once, in the order
// given (A B A B ...), so slow drift (thermal, frequency, other tenants) hits
// all of them alike. Stops after the first round at which every callable has
// run min_rounds times and for min_seconds in total, or at a cap. `clock`
// returns seconds (default: std::chrono::steady_clock); `energy` may be null.
// `setups`, when given (one per callable, or empty), run untimed right before
// every run of their callable, warm-up runs included: e.g. switch to a
// configuration and run it once, so that the timed run sees the steady state
// a configuration reaches when it runs batch after batch, not the cold
// caches of the switch.
Result<InterleavedSamples> measure_interleaved(const std::vector<MeasuredFn>& fns, const RepeatPolicy& policy,
                                               EnergyMeter* energy = nullptr,
                                               const std::function<double()>& clock = {},
                                               const std::vector<MeasuredFn>& setups = {});

// ------------------------------------------------------------------- energy

// Package energy from Linux powercap RAPL: the top-level domains
// <root>/intel-rapl:<N>/ (one per CPU package; their sub-domains
// intel-rapl:<N>:<M> are parts of the package and are not added again),
// counters energy_uj that wrap around at max_energy_range_uj.
class EnergyMeter {
 public:
  // Looks for readable package domains under `powercap_root`. When there are
  // none, available() is false and unavailable_reason() says why (no powercap
  // directory, no RAPL package domain, permission denied on energy_uj, ...).
  explicit EnergyMeter(std::string powercap_root = "/sys/class/powercap");

  bool available() const { return !domains_.empty(); }
  const std::string& unavailable_reason() const { return reason_; }
  std::string source() const;  // e.g. "rapl:package-0+package-1"

  // Counter values (micro-joules) of every domain, in domain order.
  Result<std::vector<uint64_t>> read() const;
  // Joules spent between two readings, each counter allowed to wrap once.
  double joules_between(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after) const;

 private:
  struct Domain {
    std::string dir;
    std::string name;
    uint64_t max_range_uj = 0;
  };
  std::vector<Domain> domains_;
  std::string reason_;
};

// after - before for a counter that wraps at `max_range` (exclusive upper
// bound of its values); when max_range is 0 (unknown) a wrap cannot be undone
// and the difference is taken as 0.
uint64_t counter_delta(uint64_t before, uint64_t after, uint64_t max_range);

// ------------------------------------------------------------------ context

struct MeasurementContext {
  int threads = 0;                          // worker threads the runtime was told to use
  std::vector<int> cpu_affinity;            // CPUs this process may run on (sched_getaffinity)
  std::optional<std::string> omp_wait_policy;  // OMP_WAIT_POLICY, absent when unset
  std::optional<std::string> omp_num_threads;  // OMP_NUM_THREADS, absent when unset
  std::string energy_source;                // EnergyMeter::source() or empty
  std::string energy_unavailable_reason;    // why there is no energy, or empty
};

MeasurementContext current_measurement_context(int threads, const EnergyMeter* energy = nullptr);
// "0-3,6,8-9" (the kernel's cpulist format).
std::string format_cpu_list(const std::vector<int>& cpus);
nlohmann::json context_json(const MeasurementContext& ctx);

// Peak resident set size of this process in bytes (getrusage), 0 if unknown.
uint64_t peak_rss_bytes();

}  // namespace caliprox
