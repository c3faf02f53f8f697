// The calibration searches (tune/calibrate_search.h) on deterministic
// monotone oracles: what dominance decides, that the adaptive search
// converges on a known boundary without repeating itself, and that
// bisection and bad axes behave. Accuracy against a noisy application is
// measured in bench/calibrate_bench.cc.
#include <doctest/doctest.h>

#include <set>

#include "tune/calibrate_search.h"

using namespace caliprox;

namespace {

std::vector<CalibrationAxis> unit_square() { return {{"bias", 0, 1}, {"std", 0, 1}}; }

// Valid iff x + y <= 1.
Verdict diagonal(const std::vector<double>& x) { return x[0] + x[1] <= 1 ? Verdict::valid : Verdict::invalid; }

// Fraction of a 100 x 100 grid the region gets wrong (unknown counts as outside).
double misclassified(const CalibrationRegion& r) {
  int wrong = 0;
  for (int i = 0; i < 100; ++i)
    for (int j = 0; j < 100; ++j) {
      const std::vector<double> x{(i + 0.5) / 100, (j + 0.5) / 100};
      wrong += (diagonal(x) == Verdict::valid) != (r.classify(x) == Verdict::valid);
    }
  return wrong / 1e4;
}

}  // namespace

TEST_CASE("calibration: dominance decides what evaluated points imply") {
  auto r = CalibrationRegion::create(unit_square());
  REQUIRE(r.ok());
  CHECK(r->unknown_fraction() == 1.0);
  r->add({{0.5, 0.5}, Verdict::valid});
  r->add({{0.7, 0.2}, Verdict::invalid});
  r->add({{0.1, 0.9}, Verdict::uncertain});
  CHECK(r->classify({0.2, 0.3}) == Verdict::valid);    // dominated by a valid point
  CHECK(r->classify({0.8, 0.9}) == Verdict::invalid);  // dominates an invalid point
  CHECK(r->classify({0.6, 0.1}) == Verdict::uncertain);
  CHECK(r->classify({0.05, 0.95}) == Verdict::uncertain);  // an uncertain point implies nothing
  CHECK(r->valid_fraction() == doctest::Approx(0.25).epsilon(0.05));
  CHECK(r->unknown_fraction() == doctest::Approx(1 - 0.25 - 0.3 * 0.8).epsilon(0.05));
}

TEST_CASE("calibration: the adaptive search closes in on the boundary and never repeats a point") {
  auto r = CalibrationRegion::create(unit_square(), 4096, 3);
  REQUIRE(r.ok());
  double unknown = 1, error = 1;
  for (int budget : {10, 20, 40, 80}) {
    run_adaptive(*r, diagonal, budget - static_cast<int>(r->points().size()));
    CHECK(r->points().size() == static_cast<size_t>(budget));
    CHECK(r->unknown_fraction() < unknown);
    unknown = r->unknown_fraction();
    const double e = misclassified(*r);
    CHECK(e <= error);
    error = e;
  }
  // A straight boundary is the staircase's worst case: with k valid points
  // on it the region misses about 1 / (2k) of the box.
  INFO("misclassified after 80 runs: ", error);
  CHECK(error < 0.04);
  std::set<std::vector<double>> seen;
  for (const auto& p : r->points()) CHECK(seen.insert(p.x).second);
}

TEST_CASE("calibration: an application that never decides spends the budget on distinct points") {
  auto r = CalibrationRegion::create({{"rate", 0, 1}, {"std", 0, 2}, {"bias", 0, 1}}, 512);
  REQUIRE(r.ok());
  const int calls = run_adaptive(*r, [](const std::vector<double>&) { return Verdict::uncertain; }, 30);
  CHECK(calls == 30);
  CHECK(r->unknown_fraction() == 1.0);
  std::set<std::vector<double>> seen;
  for (const auto& p : r->points()) CHECK(seen.insert(p.x).second);
}

TEST_CASE("calibration: bisection in 2-D, and axes that cannot be searched") {
  auto r = CalibrationRegion::create(unit_square());
  REQUIRE(r.ok());
  auto calls = run_bisection(*r, diagonal, 80);
  REQUIRE(calls.ok());
  CHECK(*calls == 80);
  INFO("bisection, misclassified after 80 runs: ", misclassified(*r));
  CHECK(misclassified(*r) < 0.05);
  auto three = CalibrationRegion::create({{"a", 0, 1}, {"b", 0, 1}, {"c", 0, 1}});
  CHECK_FALSE(run_bisection(*three, diagonal, 10).ok());
  auto reversed = CalibrationRegion::create({{"bias", 1, 0}});
  REQUIRE_FALSE(reversed.ok());
  CHECK(reversed.status().message().find("axis 'bias' has an empty or reversed range [1, 0]") != std::string::npos);
  CHECK_FALSE(CalibrationRegion::create({}).ok());
}
