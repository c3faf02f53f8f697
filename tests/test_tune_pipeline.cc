// The tuning pipeline's pieces: the worker pool, the tune modes parsed once
// at the experiment boundary, and the shared phases run on their own on the
// bundled LeNet (as calibrate and adapt-sim will use them).
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiment/experiment.h"
#include "tune/pipeline.h"
#include "tune/search.h"
#include "tune/worker_pool.h"

using namespace caliprox;

namespace {

namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// configs/fashion-lenet.yaml with small splits, two sampling knobs and the
// reference backend, written into `dir`.
std::string small_lenet_experiment(const fs::path& dir) {
  std::ifstream in(fs::path(CALIPROX_SOURCE_ROOT) / "configs" / "fashion-lenet.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto replace = [&](const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  replace("../models/", (fs::path(CALIPROX_SOURCE_ROOT) / "models").string() + "/");
  replace("tune: [1000, 5000]", "tune: [1000, 1064]");
  replace("test: [5000, 10000]", "test: [5000, 5064]");
  replace("batch: 64", "batch: 32");
  replace("backend: onednn", "backend: reference");
  text += "knobs:\n  include: [\"samp-2-*\"]\ntune:\n  predictor_samples: 32\n";
  const fs::path path = dir / "exp.yaml";
  std::ofstream(path) << text;
  return path.string();
}

// Counts what the pipeline reports.
struct CountingReporter final : PipelineReporter {
  std::map<PipelinePhase, size_t> progress_calls;
  std::map<PipelinePhase, size_t> done_calls;
  void progress(PipelinePhase phase, size_t, size_t) override { ++progress_calls[phase]; }
  void progress_done(PipelinePhase phase) override { ++done_calls[phase]; }
};

size_t records_of(const PipelineContext& c, const std::string& phase) {
  size_t n = 0;
  for (const auto& r : c.records->records()) n += r.phase == phase;
  return n;
}

}  // namespace

TEST_CASE("tune: the local worker pool runs every job once, on every worker") {
  LocalWorkerPool pool(4);
  CHECK(pool.workers() == 4);
  std::mutex mu;
  std::vector<int> runs(200, 0);
  std::set<int> workers;
  std::atomic<int> busy{0};
  std::atomic<int> most_busy{0};
  const Status st = pool.run(runs.size(), [&](size_t i, int w) -> Status {
    const int now = ++busy;
    int seen = most_busy.load();
    while (now > seen && !most_busy.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    {
      std::lock_guard<std::mutex> lock(mu);
      ++runs[i];
      workers.insert(w);
    }
    --busy;
    return {};
  });
  CHECK(st.ok());
  for (int r : runs) CHECK(r == 1);
  CHECK(most_busy.load() <= 4);
  for (int w : workers) CHECK((w >= 0 && w < 4));

  // No jobs: nothing runs, and the stop function is still asked once.
  int asked = 0;
  CHECK(pool.run(0, [](size_t, int) -> Status { return runtime_error("never"); }, [&] { return ++asked > 100; }).ok());
  CHECK(asked == 1);
  CHECK(LocalWorkerPool(0).workers() == 1);
}

TEST_CASE("tune: the first error of the worker pool wins and stops the queue") {
  LocalWorkerPool one(1);
  std::vector<size_t> ran;
  const Status st = one.run(10, [&](size_t i, int) -> Status {
    ran.push_back(i);
    if (i == 3) return runtime_error("job {} failed", i);
    if (i == 5) return runtime_error("job {} failed too", i);
    return {};
  });
  CHECK(st.code() == Errc::runtime);
  CHECK(st.message() == "job 3 failed");
  CHECK(ran == std::vector<size_t>{0, 1, 2, 3});

  // With several workers: one error, whichever job hit it first.
  LocalWorkerPool four(4);
  std::atomic<int> started{0};
  const Status many = four.run(1000, [&](size_t i, int) -> Status {
    ++started;
    return i % 7 == 6 ? runtime_error("bad job {}", i) : Status();
  });
  CHECK(!many.ok());
  CHECK(contains(many.message(), "bad job"));
  CHECK(started.load() < 1000);
}

TEST_CASE("tune: a stop request ends the worker pool's queue without an error") {
  LocalWorkerPool pool(2);
  std::atomic<int> done{0};
  const Status st = pool.run(
      100, [&](size_t, int) -> Status {
        ++done;
        return {};
      },
      [&] { return done.load() >= 5; });
  CHECK(st.ok());
  CHECK(done.load() >= 5);
  CHECK(done.load() <= 6);  // a job in flight on the other worker finishes
}

TEST_CASE("tune: strategy, QoS mode, cost mode and stop reason names") {
  for (StrategyKind k : {StrategyKind::random, StrategyKind::greedy, StrategyKind::evolutionary})
    CHECK(strategy_from_name(strategy_name(k)) == k);
  for (QosMode m : {QosMode::empirical, QosMode::p1, QosMode::p2}) CHECK(qos_mode_from_name(qos_mode_name(m)) == m);
  for (CostMode m : {CostMode::nominal, CostMode::measured}) CHECK(cost_mode_from_name(cost_mode_name(m)) == m);
  CHECK(qos_mode_name(QosMode::p1) == "p1");
  CHECK(cost_mode_name(CostMode::measured) == "measured");
  CHECK(!qos_mode_from_name("p3").has_value());
  CHECK(!cost_mode_from_name("Nominal").has_value());
  CHECK(stop_reason_name(StopReason::iterations) == "iterations");
  CHECK(stop_reason_name(StopReason::time) == "time");
  CHECK(stop_reason_name(StopReason::exhausted) == "exhausted");
  CHECK(stop_reason_name(StopReason::interrupted) == "interrupted");
}

TEST_CASE("tune: command-line overrides of the tune section are parsed once, with the option's name in errors") {
  TuneSpec spec;
  TuneOverrides o;
  o.iterations = 7;
  o.time_s = 2.5;
  o.strategy = "greedy";
  o.qos_mode = "empirical";
  o.seed = 42;
  REQUIRE(apply_tune_overrides(spec, o).ok());
  CHECK(spec.iterations == 7);
  CHECK(spec.time_limit_s == 2.5);
  CHECK(spec.strategy == StrategyKind::greedy);
  CHECK(spec.qos_mode == QosMode::empirical);
  CHECK(spec.seed == 42);
  CHECK(spec.cost_mode == CostMode::nominal);

  TuneOverrides bad_strategy;
  bad_strategy.strategy = "annealing";
  Status st = apply_tune_overrides(spec, bad_strategy);
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message() == "--strategy annealing: expected random, greedy or evolutionary");

  TuneOverrides bad_mode;
  bad_mode.qos_mode = "p3";
  st = apply_tune_overrides(spec, bad_mode);
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message() == "--qos-mode p3: expected empirical, p1 or p2");
}

TEST_CASE("tune: the pipeline's shared phases run on their own and resume from records.jsonl") {
  const fs::path dir = fs::temp_directory_path() / ("caliprox_pipeline_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto exp = load_experiment(small_lenet_experiment(dir));
  REQUIRE_MESSAGE(exp.ok(), exp.status().message());
  CountingReporter reporter;
  auto opened = open_pipeline({*exp, "reference", 2, 2, (dir / "run").string(), "calibrate", nullptr}, &reporter);
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  PipelineContext& c = **opened;
  CHECK(c.evaluators.size() == 2);
  CHECK(c.worker_threads == 1);
  CHECK(c.predictor_samples() == 32);
  REQUIRE(c.ks.space.layers.size() == 2);
  REQUIRE(open_records(c, {{"test", "pipeline"}}).ok());

  REQUIRE(run_baselines(c, true).ok());
  CHECK(c.base.qos_tune > 50);
  CHECK(c.base.max_loss == 1.0);
  CHECK(c.base.predictor_outputs.size() == 32 * 10);

  // Single-knob runs: one per (layer, knob), recorded, both predictors built.
  std::vector<std::vector<double>> speedups;
  size_t pairs = 0;
  for (const auto& l : c.ks.space.layers) {
    speedups.emplace_back(l.knobs.size(), 1.5);
    pairs += l.knobs.size() - 1;
  }
  auto singles = run_single_knobs(c, speedups, true, 1);
  REQUIRE_MESSAGE(singles.ok(), singles.status().message());
  CHECK(singles->runs == pairs);
  CHECK(singles->fresh == static_cast<int64_t>(pairs));
  CHECK(singles->p1.has_value());
  CHECK(singles->p2->complete());
  CHECK(records_of(c, "single") == pairs);
  CHECK(reporter.progress_calls[PipelinePhase::single] == pairs);
  CHECK(reporter.done_calls[PipelinePhase::single] == 1);

  // Validation of two finalists: QoS on both splits, a measured speedup.
  std::vector<Finalist> finalists;
  for (size_t l = 0; l < 2; ++l)
    finalists.push_back({l, {{c.ks.space.layers[l].node, c.ks.space.layers[l].knobs[1]}}, {0.0, 1.5}, "test"});
  auto validated = validate_finalists(c, finalists);
  REQUIRE_MESSAGE(validated.ok(), validated.status().message());
  REQUIRE(validated->size() == 2);
  for (const Validated& v : *validated) {
    CHECK(v.speedup > 0);
    CHECK(v.qos_tune > 0);
    CHECK(v.kept == (!std::isnan(v.qos_test) && goal_met(c.exp.qos, c.base.qos_tune, v.qos_tune) &&
                     goal_met(c.exp.qos, c.base.qos_test, v.qos_test)));
  }
  CHECK(records_of(c, "validate") == 2);

  // Again: everything is replayed from the records, nothing is appended.
  const size_t recorded = c.records->records().size();
  auto again = validate_finalists(c, finalists);
  REQUIRE(again.ok());
  CHECK((*again)[0].speedup == (*validated)[0].speedup);
  auto singles_again = run_single_knobs(c, speedups, false, 1);
  REQUIRE(singles_again.ok());
  CHECK(singles_again->fresh == 0);
  CHECK(c.records->records().size() == recorded);

  auto ms = median_batch_ms(c.main(), c.batch(), 3);
  REQUIRE(ms.ok());
  CHECK(*ms > 0);
  c.records.reset();
  fs::remove_all(dir);
}
