// The pieces the tuning pipeline is built from that need no network: the
// worker pool, and the tune modes parsed once at the experiment boundary.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "experiment/experiment.h"
#include "tune/search.h"
#include "tune/worker_pool.h"

using namespace caliprox;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

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
