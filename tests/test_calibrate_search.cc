// The calibration searches (tune/calibrate_search.h) on deterministic
// monotone oracles: what dominance decides, that the adaptive search
// converges on a known boundary without repeating itself, and that
// bisection and bad axes behave. Accuracy against a noisy application is
// measured in bench/calibrate_bench.cc.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "experiment/schema_validator.h"
#include "tune/calibrate_run.h"
#include "tune/calibrate_search.h"

using namespace caliprox;
namespace fs = std::filesystem;

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

TEST_CASE("calibration: a round of proposals spreads over what the pending ones leave unresolved") {
  auto r = CalibrationRegion::create(unit_square(), 4096, 3);
  REQUIRE(r.ok());
  AdaptiveCalibration search(*r);
  const auto first = search.propose();
  REQUIRE(first);
  // Near the centre: it splits the unknown square most evenly.
  CHECK(std::fabs((*first)[0] - 0.5) < 0.1);
  CHECK(std::fabs((*first)[1] - 0.5) < 0.1);
  CHECK(search.propose() == first);  // without pending points, the same choice
  const auto second = search.propose({*first});
  REQUIRE(second);
  // In an off-diagonal quadrant: neither dominates the other.
  const bool below = (*second)[0] <= (*first)[0] && (*second)[1] <= (*first)[1];
  const bool above = (*second)[0] >= (*first)[0] && (*second)[1] >= (*first)[1];
  CHECK_FALSE(below);
  CHECK_FALSE(above);
  // Rounds of 4 converge too, about as well as one point at a time.
  auto batched = CalibrationRegion::create(unit_square(), 4096, 3);
  CHECK(run_adaptive(*batched, diagonal, 80, 4) == 80);
  INFO("misclassified after 80 runs in rounds of 4: ", misclassified(*batched));
  CHECK(misclassified(*batched) < 0.04);
  std::set<std::vector<double>> seen;
  for (const auto& p : batched->points()) CHECK(seen.insert(p.x).second);
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

TEST_CASE("calibration: a job runs the application, writes budgets.json by its schema, and resumes from records") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("caliprox-calibrate-{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  Experiment exp;
  exp.name = "closed-form";
  AppSpec app;
  app.command = {std::string(CALIPROX_SOURCE_ROOT) + "/tests/data/apps/closed_form.py"};
  app.dir = dir.string();
  app.env.emplace("CALIPROX_TEST_PAUSE", "0");  // (operator= on a map entry trips GCC 12's -Wrestrict)
  app.goal.conditions = {{"exceed", std::nullopt, 0.05}};
  exp.application = app;
  CalibrateSpec spec;
  spec.axes = {{"network", "bias", 0, 1.5, "bias"}, {"network", "std", 0, 1, "std"}};
  exp.networks = {NetworkSpec{}};  // one network, named "network"
  spec.points = 6;
  exp.calibrate = spec;
  const std::string fp = fingerprint_of(calibration_identity(exp).dump());

  auto first = [&] {
    auto records = RecordStore::open((dir / "records.jsonl").string(), fp);
    REQUIRE(records.ok());
    return run_calibration(exp, *records, (dir / "requests").string(), {});
  }();
  REQUIRE_MESSAGE(first.ok(), first.status().message());
  CHECK(first->fresh == 6);
  exp.calibrate->points = 10;  // a larger budget resumes the smaller run
  auto records = RecordStore::open((dir / "records.jsonl").string(), fp);
  REQUIRE(records.ok());
  auto second = run_calibration(exp, *records, (dir / "requests").string(), {});
  REQUIRE(second.ok());
  CHECK(second->replayed == 6);
  CHECK(second->fresh == 4);
  for (size_t i = 0; i < 6; ++i) CHECK(second->region.points()[i].x == first->region.points()[i].x);
  // Each request names the error model at its point.
  const nlohmann::json req = records->find("calibrate", 7)->data["request"];
  CHECK(req["mode"] == "inject");
  CHECK(req["networks"]["network"]["error_model"]["bias"] == second->region.points()[7].x[0]);

  const nlohmann::json budgets = budgets_json(exp, *second);
  auto validator = SchemaValidator::create(nlohmann::json::parse(
      std::ifstream(std::string(CALIPROX_SOURCE_ROOT) + "/schemas/budgets.schema.json"), nullptr, true));
  REQUIRE(validator.ok());
  const auto errors = validator->validate(budgets);
  CHECK_MESSAGE(errors.empty(), (errors.empty() ? "" : errors[0].message));
  CHECK(budgets["runs"]["total"] == 10);

  // Repeats, two at a time on the worker pool: a deterministic application
  // passes all of a point's repeats or none.
  exp.application->repeats = 3;
  exp.application->jobs = 2;
  exp.calibrate->points = 4;
  exp.calibrate->seed = 9;
  const std::string fp3 = fingerprint_of(calibration_identity(exp).dump());
  auto records3 = RecordStore::open((dir / "records3.jsonl").string(), fp3);
  REQUIRE(records3.ok());
  auto third = run_calibration(exp, *records3, (dir / "requests").string(), {});
  REQUIRE_MESSAGE(third.ok(), third.status().message());
  CHECK(third->fresh == 12);
  CHECK(records3->records().size() == 12);
  for (size_t i = 0; i < third->passes.size(); ++i) {
    CHECK(third->runs[i] == 3);
    CHECK((third->passes[i] == 0 || third->passes[i] == 3));
    CHECK((third->region.points()[i].verdict == Verdict::valid) == (third->passes[i] == 3));
  }
  fs::remove_all(dir);
}
