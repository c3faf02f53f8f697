#include "tune/measure.h"

#include "util/cpu.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <system_error>

#include <nlohmann/json.hpp>

#include "tune/rng.h"
#include "util/cpu.h"

namespace caliprox {

std::string_view ci_method_name(CiMethod m) {
  return m == CiMethod::bootstrap ? "bootstrap" : "order-statistics";
}

std::optional<OrderStatisticRanks> median_ci_ranks(size_t n, double level) {
  if (n == 0) return std::nullopt;
  // pmf of Binomial(n, 1/2) in log space: 2^-n underflows past n ~ 1074.
  const double nd = static_cast<double>(n);
  auto pmf = [&](size_t i) {
    const double id = static_cast<double>(i);
    return std::exp(std::lgamma(nd + 1) - std::lgamma(id + 1) - std::lgamma(nd - id + 1) - nd * std::log(2.0));
  };
  // coverage(k) = 1 - 2 * P(B <= k - 1); it shrinks as k grows.
  std::optional<OrderStatisticRanks> best;
  double tail = 0;  // P(B <= k - 1)
  for (size_t k = 1; 2 * k <= n + 1; ++k) {
    tail += pmf(k - 1);
    const double coverage = std::max(0.0, 1.0 - 2.0 * tail);
    if (coverage < level) break;
    best = OrderStatisticRanks{k, n + 1 - k, coverage};
  }
  return best;
}

namespace {

MedianCi no_interval(const std::vector<double>& sorted, CiMethod method) {
  MedianCi ci;
  ci.method = method;
  ci.count = sorted.size();
  if (sorted.empty()) return ci;
  ci.median = median_of(sorted);
  ci.lo = sorted.front();
  ci.hi = sorted.back();
  return ci;
}

}  // namespace

MedianCi median_ci_order_statistics(std::vector<double> samples, double level) {
  std::sort(samples.begin(), samples.end());
  MedianCi ci = no_interval(samples, CiMethod::order_statistics);
  auto ranks = median_ci_ranks(samples.size(), level);
  if (!ranks) return ci;
  ci.lo = samples[ranks->lower - 1];
  ci.hi = samples[ranks->upper - 1];
  ci.coverage = ranks->coverage;
  ci.has_interval = true;
  return ci;
}

MedianCi median_ci_bootstrap(const std::vector<double>& samples, double level, int resamples, uint64_t seed) {
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  MedianCi ci = no_interval(sorted, CiMethod::bootstrap);
  if (samples.size() < 2 || resamples < 2) return ci;
  Rng rng(seed);
  std::vector<double> medians;
  medians.reserve(static_cast<size_t>(resamples));
  std::vector<double> draw(samples.size());
  for (int r = 0; r < resamples; ++r) {
    for (double& x : draw) x = samples[rng.index(samples.size())];
    medians.push_back(median_of(draw));
  }
  std::sort(medians.begin(), medians.end());
  // Percentile interval: the (1-level)/2 and (1+level)/2 quantiles, taken as
  // the nearest order statistics of the bootstrap medians.
  const double alpha = (1.0 - level) / 2.0;
  auto at = [&](double q) {
    const double pos = q * static_cast<double>(medians.size() - 1);
    return medians[static_cast<size_t>(std::lround(pos))];
  };
  ci.lo = at(alpha);
  ci.hi = at(1.0 - alpha);
  ci.coverage = level;
  ci.has_interval = true;
  return ci;
}

nlohmann::json stat_json(const std::vector<double>& samples, double scale, CiMethod method, uint64_t bootstrap_seed) {
  std::vector<double> scaled;
  scaled.reserve(samples.size());
  for (double x : samples) scaled.push_back(x * scale);
  const LatencyStats s = summarize(scaled);
  const MedianCi ci = method == CiMethod::bootstrap ? median_ci_bootstrap(scaled, 0.95, 2000, bootstrap_seed)
                                                    : median_ci_order_statistics(scaled, 0.95);
  nlohmann::json j = {{"median", s.median}, {"min", s.min},   {"max", s.max},
                      {"mad", s.mad},       {"count", s.count}, {"method", ci_method_name(method)}};
  if (ci.has_interval) {
    j["ci_low"] = ci.lo;
    j["ci_high"] = ci.hi;
    j["coverage"] = ci.coverage;
  } else {
    j["ci_low"] = nullptr;
    j["ci_high"] = nullptr;
    j["coverage"] = nullptr;
  }
  return j;
}

// ------------------------------------------------------ interleaved repetition

Result<InterleavedSamples> measure_interleaved(const std::vector<MeasuredFn>& fns, const RepeatPolicy& policy,
                                               EnergyMeter* energy, const std::function<double()>& clock,
                                               const std::vector<MeasuredFn>& setups) {
  if (fns.empty()) return invalid_input("nothing to measure: no callables given");
  if (!setups.empty() && setups.size() != fns.size())
    return invalid_input("measurement: {} set-up callables for {} measured ones", setups.size(), fns.size());
  auto set_up = [&](size_t i) { return setups.empty() ? Status() : setups[i](); };
  if (policy.min_rounds < 1 || policy.max_rounds < policy.min_rounds || policy.warmup_rounds < 0)
    return invalid_input("measurement policy: expected 0 <= warmup_rounds and 1 <= min_rounds <= max_rounds, "
                         "found warmup {} min {} max {}",
                         policy.warmup_rounds, policy.min_rounds, policy.max_rounds);
  const auto steady = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  const std::function<double()> now = clock ? clock : std::function<double()>(steady);
  const bool with_energy = energy != nullptr && energy->available();

  InterleavedSamples out;
  out.seconds.resize(fns.size());
  if (with_energy) {
    out.joules.resize(fns.size());
    out.total_joules.assign(fns.size(), 0.0);
  }
  for (int w = 0; w < policy.warmup_rounds; ++w)
    for (size_t i = 0; i < fns.size(); ++i) {
      CP_TRY(set_up(i).with_context(fmt::format("set-up of #{}", i)));
      CP_TRY(fns[i]().with_context(fmt::format("warm-up run of #{}", i)));
    }
  out.warmup_rounds = policy.warmup_rounds;

  std::vector<double> totals(fns.size(), 0.0);
  double grand_total = 0;
  for (;;) {
    for (size_t i = 0; i < fns.size(); ++i) {
      CP_TRY(set_up(i).with_context(fmt::format("set-up of #{}", i)));
      std::vector<uint64_t> e0;
      if (with_energy) {
        CP_ASSIGN_OR_RETURN(e0, energy->read());
      }
      const double t0 = now();
      CP_TRY(fns[i]().with_context(fmt::format("measured run {} of #{}", out.rounds, i)));
      const double dt = now() - t0;
      if (with_energy) {
        CP_ASSIGN_OR_RETURN(auto e1, energy->read());
        const double j = energy->joules_between(e0, e1);
        out.joules[i].push_back(j);
        out.total_joules[i] += j;
      }
      out.seconds[i].push_back(dt);
      totals[i] += dt;
      grand_total += dt;
    }
    ++out.rounds;
    bool done = out.rounds >= policy.min_rounds;
    for (double t : totals) done = done && t >= policy.min_seconds;
    if (done) break;
    if (out.rounds >= policy.max_rounds || grand_total >= policy.max_seconds) {
      out.hit_cap = true;
      break;
    }
  }
  return out;
}

// ------------------------------------------------------------------- energy

uint64_t counter_delta(uint64_t before, uint64_t after, uint64_t max_range) {
  if (after >= before) return after - before;
  if (max_range == 0 || before >= max_range) return 0;
  return (max_range - before) + after;
}

namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Reads one unsigned decimal from a sysfs file; the error names the file.
Result<uint64_t> read_counter(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    if (err == EACCES || err == EPERM)
      return runtime_error("permission denied reading {} (RAPL counters are root-only on Linux >= 5.10; "
                           "run as root or make energy_uj readable)",
                           path);
    return runtime_error("cannot read {}: {}", path, errno_text(err));
  }
  std::string text;
  in >> text;
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return runtime_error("{}: expected an unsigned decimal counter, found '{}'", path, text);
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE) return runtime_error("{}: counter '{}' does not fit 64 bits", path, text);
  return static_cast<uint64_t>(v);
}

}  // namespace

EnergyMeter::EnergyMeter(std::string powercap_root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(powercap_root, ec)) {
    reason_ = fmt::format("no powercap directory {} (kernel without CONFIG_POWERCAP / intel_rapl, or not Linux)",
                          powercap_root);
    return;
  }
  // Only package domains "intel-rapl:<N>": sub-domains (core, uncore, dram
  // "intel-rapl:<N>:<M>") are already counted in their package or are not
  // part of the CPU package, and intel-rapl-mmio duplicates the package.
  static const std::regex package_re("intel-rapl:[0-9]+");
  std::vector<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(powercap_root, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, package_re)) dirs.push_back(entry.path().string());
  }
  if (ec) {
    reason_ = fmt::format("cannot list {}: {}", powercap_root, ec.message());
    return;
  }
  if (dirs.empty()) {
    reason_ = fmt::format("no RAPL package domain (intel-rapl:N) under {}", powercap_root);
    return;
  }
  std::sort(dirs.begin(), dirs.end());
  std::vector<Domain> found;
  for (const std::string& dir : dirs) {
    auto value = read_counter(dir + "/energy_uj");
    if (!value.ok()) {
      reason_ = value.status().message();
      return;
    }
    Domain d;
    d.dir = dir;
    auto range = read_counter(dir + "/max_energy_range_uj");
    d.max_range_uj = range.ok() ? *range : 0;  // without it a wrap-around reads as 0 J, never as garbage
    std::ifstream name_in(dir + "/name");
    if (!(name_in >> d.name)) d.name = fs::path(dir).filename().string();
    found.push_back(std::move(d));
  }
  domains_ = std::move(found);
}

std::string EnergyMeter::source() const {
  if (domains_.empty()) return "";
  std::string s = "rapl:";
  for (size_t i = 0; i < domains_.size(); ++i) s += (i ? "+" : "") + domains_[i].name;
  return s;
}

Result<std::vector<uint64_t>> EnergyMeter::read() const {
  std::vector<uint64_t> v;
  v.reserve(domains_.size());
  for (const Domain& d : domains_) {
    CP_ASSIGN_OR_RETURN(uint64_t x, read_counter(d.dir + "/energy_uj"));
    v.push_back(x);
  }
  return v;
}

double EnergyMeter::joules_between(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after) const {
  double uj = 0;
  const size_t n = std::min({before.size(), after.size(), domains_.size()});
  for (size_t i = 0; i < n; ++i)
    uj += static_cast<double>(counter_delta(before[i], after[i], domains_[i].max_range_uj));
  return uj * 1e-6;
}

// ------------------------------------------------------------------ context

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::vector<int> v = cpus;
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", v[i]) : fmt::format("{}-{}", v[i], v[j]);
    i = j + 1;
  }
  return out;
}

MeasurementContext current_measurement_context(int threads, const EnergyMeter* energy) {
  MeasurementContext ctx;
  ctx.threads = threads;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) ctx.cpu_affinity.push_back(c);
  if (const char* p = std::getenv("OMP_WAIT_POLICY")) ctx.omp_wait_policy = p;
  if (const char* p = std::getenv("OMP_NUM_THREADS")) ctx.omp_num_threads = p;
  if (energy) {
    ctx.energy_source = energy->source();
    ctx.energy_unavailable_reason = energy->available() ? "" : energy->unavailable_reason();
  }
  return ctx;
}

nlohmann::json context_json(const MeasurementContext& ctx) {
  nlohmann::json j = {{"threads", ctx.threads},
                      {"cpu_affinity", ctx.cpu_affinity},
                      {"cpu_list", format_cpu_list(ctx.cpu_affinity)},
                      {"cpu", cpu::describe(cpu::features())}};
  j["omp_wait_policy"] = ctx.omp_wait_policy ? nlohmann::json(*ctx.omp_wait_policy) : nlohmann::json(nullptr);
  j["omp_num_threads"] = ctx.omp_num_threads ? nlohmann::json(*ctx.omp_num_threads) : nlohmann::json(nullptr);
  return j;
}

uint64_t peak_rss_bytes() {
  struct rusage ru;
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace caliprox
