// How well the calibration searches (tune/calibrate_search.h) find an
// application's valid region, against a test application whose region is
// known in closed form:
//   2-D: a network's error model N(b, s), b in [0, 1.5], s in [0, 1]; the
//        application is valid iff P(|N(b, s)| > 1) <= 5 %;
//   4-D: two networks (b1, s1, b2, s2); valid iff the two probabilities sum
//        to at most 5 %.
// The application estimates the probability from K samples, so it is noisy
// near the boundary, as a real stochastic application is. For each search,
// budget and seed: the fraction of the box misclassified against the truth
// (the region: points dominated by a valid one; the rest counts as
// outside), the fraction left unknown, and the application runs spent.
//
//   calibrate_bench [--seeds 5] [--samples 400]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tune/calibrate_search.h"
#include "tune/rng.h"
#include "util/process_policy.h"
#include "util/stats.h"

using namespace caliprox;

namespace {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// P(|N(b, s)| > 1).
double exceed(double b, double s) {
  if (s <= 0) return std::fabs(b) > 1 ? 1 : 0;
  return normal_cdf((-1 - b) / s) + 1 - normal_cdf((1 - b) / s);
}

double truth_p(const std::vector<double>& x) {
  return x.size() == 2 ? exceed(x[0], x[1]) : exceed(x[0], x[1]) + exceed(x[2], x[3]);
}

struct App {
  int samples;
  uint64_t calls = 0;
  uint64_t seed;
  // The noisy application: the probability estimated from `samples` draws.
  Verdict operator()(const std::vector<double>& x) {
    Rng rng(seed * 1000003 + ++calls);
    int over = 0;
    for (size_t k = 0; k + 1 < x.size(); k += 2)
      for (int i = 0; i < samples; ++i) {
        const double u1 = std::max(rng.uniform(), 1e-300), u2 = rng.uniform();
        const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
        over += std::fabs(x[k] + x[k + 1] * z) > 1;
      }
    // The sum of the per-network rates (each estimated from `samples` draws).
    const double p = static_cast<double>(over) / samples;
    return p <= 0.05 ? Verdict::valid : Verdict::invalid;
  }
};

struct Score {
  double misclassified = 0, unknown = 0;
  int runs = 0;
};

Score score(const CalibrationRegion& region, int runs, uint64_t seed) {
  Rng rng(seed ^ 0x5eed);
  const int n = 40000;
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<double> x;
    for (const auto& a : region.axes()) x.push_back(a.lo + rng.uniform() * (a.hi - a.lo));
    const bool valid = truth_p(x) <= 0.05;
    wrong += valid != (region.classify(x) == Verdict::valid);
  }
  return {static_cast<double>(wrong) / n, region.unknown_fraction(), runs};
}

std::vector<CalibrationAxis> axes(int dims) {
  std::vector<CalibrationAxis> a;
  for (int k = 0; k < dims / 2; ++k) {
    a.push_back({"bias" + std::to_string(k + 1), 0, 1.5});
    a.push_back({"std" + std::to_string(k + 1), 0, 1.0});
  }
  return a;
}

void report(const char* what, int budget, const std::vector<Score>& s) {
  std::vector<double> mis, unk, runs;
  for (const auto& x : s) {
    mis.push_back(100 * x.misclassified);
    unk.push_back(100 * x.unknown);
    runs.push_back(x.runs);
  }
  std::printf("%-28s budget %4d  runs %5.0f  misclassified %5.2f %% (min %5.2f, max %5.2f)  unknown %5.2f %%\n",
              what, budget, median_of(runs), median_of(mis), *std::min_element(mis.begin(), mis.end()),
              *std::max_element(mis.begin(), mis.end()), median_of(unk));
}

}  // namespace

int main(int argc, char** argv) {
  apply_process_policy(argv);
  int seeds = 5, samples = 400;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seeds") seeds = std::atoi(argv[i + 1]);
    else if (a == "--samples") samples = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: calibrate_bench [--seeds N] [--samples K]\n");
      return 2;
    }
  }
  std::printf("closed-form application: valid iff P(|N(b, s)| > 1) <= 5 %% (summed over networks), estimated "
              "from %d samples per run; medians over %d seeds\n",
              samples, seeds);
  for (int budget : {30, 60, 100}) {
    std::vector<Score> adaptive, batched, bisect3, bisect4, bisect5;
    for (int seed = 1; seed <= seeds; ++seed) {
      auto run = [&](auto search, std::vector<Score>& out) {
        auto region = CalibrationRegion::create(axes(2), 4096, static_cast<uint64_t>(seed));
        App app{samples, 0, static_cast<uint64_t>(seed)};
        const int runs = search(*region, app);
        out.push_back(score(*region, runs, static_cast<uint64_t>(seed)));
      };
      run([&](CalibrationRegion& r, App& app) { return run_adaptive(r, std::ref(app), budget); }, adaptive);
      run([&](CalibrationRegion& r, App& app) { return run_adaptive(r, std::ref(app), budget, 4); }, batched);
      for (auto [steps, out] : {std::pair{3, &bisect3}, std::pair{4, &bisect4}, std::pair{5, &bisect5}})
        run([&](CalibrationRegion& r, App& app) { return *run_bisection(r, std::ref(app), budget, steps); }, *out);
    }
    std::printf("2-D, budget %d\n", budget);
    report("  adaptive", budget, adaptive);
    report("  adaptive, rounds of 4", budget, batched);
    report("  bisection (3 per diagonal)", budget, bisect3);
    report("  bisection (4 per diagonal)", budget, bisect4);
    report("  bisection (5 per diagonal)", budget, bisect5);
  }
  for (int budget : {100, 200, 400}) {
    std::vector<Score> adaptive, batched;
    for (int seed = 1; seed <= seeds; ++seed) {
      for (auto [batch, out] : {std::pair{1, &adaptive}, std::pair{4, &batched}}) {
        auto region = CalibrationRegion::create(axes(4), 4096, static_cast<uint64_t>(seed));
        App app{samples, 0, static_cast<uint64_t>(seed)};
        const int runs = run_adaptive(*region, std::ref(app), budget, batch);
        out->push_back(score(*region, runs, static_cast<uint64_t>(seed)));
      }
    }
    std::printf("4-D, budget %d\n", budget);
    report("  adaptive", budget, adaptive);
    report("  adaptive, rounds of 4", budget, batched);
  }
  return 0;
}
