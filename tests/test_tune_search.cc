// Search strategies and the search driver (src/tune/search*.cc): seeded
// reproducibility, independence of the number of workers, resumption from
// records.jsonl, and that the strategies do what they claim on a toy
// problem whose QoS loss and cost are additive over layers.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tune/records.h"
#include "tune/rng.h"
#include "tune/search.h"

using namespace caliprox;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Layer l has time weight w_l and sensitivity s_l; knob k divides the
// layer's time by kSpeed[k] and costs s_l * kLoss[k] of QoS.
struct ToyProblem {
  static constexpr double kSpeed[5] = {1.0, 4.0 / 3.0, 1.5, 2.0, 2.0};
  static constexpr double kLoss[5] = {0.0, 0.2, 0.4, 0.8, 1.1};
  SearchSpace space;
  std::vector<double> weight, sensitivity;

  ToyProblem(size_t layers, uint64_t seed) {
    Rng rng(seed);
    for (size_t l = 0; l < layers; ++l) {
      space.layers.push_back({fmt::format("conv{}", l), {"fp32", "perf-row-4-0", "perf-row-3-0", "perf-row-2-0", "samp-2-0"}});
      weight.push_back(0.5 + 1.5 * rng.uniform());
      sensitivity.push_back(0.05 + 0.95 * rng.uniform());
    }
  }
  double cost(const Candidate& c) const {
    double t = 1.0;  // the rest of the network
    for (size_t l = 0; l < c.size(); ++l) t += weight[l] / kSpeed[c[l]];
    return t;
  }
  Evaluation evaluate(const Candidate& c) const {
    double loss = 0;
    for (size_t l = 0; l < c.size(); ++l) loss += sensitivity[l] * kLoss[c[l]];
    return {loss, cost(space.exact()) / cost(c)};
  }
  std::vector<std::vector<Evaluation>> singles() const {
    std::vector<std::vector<Evaluation>> out(space.layers.size());
    for (size_t l = 0; l < space.layers.size(); ++l)
      for (size_t k = 0; k < 5; ++k) {
        Candidate c = space.exact();
        c[l] = static_cast<int>(k);
        out[l].push_back(evaluate(c));
      }
    return out;
  }
};

SearchSettings settings_for(StrategyKind kind, const ToyProblem& toy, uint64_t seed, int batch = 8) {
  SearchSettings s;
  s.kind = kind;
  s.seed = seed;
  s.batch_size = batch;
  s.max_loss = 1.5;
  if (kind == StrategyKind::greedy) s.single = toy.singles();
  return s;
}

SearchHooks toy_hooks(const ToyProblem& toy, bool jitter = false) {
  SearchHooks h;
  h.evaluate = [&toy, jitter](const Proposal& p, int64_t iteration, int) -> Result<Evaluation> {
    // Uneven evaluation times shuffle the order in which parallel workers finish.
    if (jitter) std::this_thread::sleep_for(std::chrono::microseconds((iteration * 7919 % 5) * 300));
    return toy.evaluate(p.candidate);
  };
  return h;
}

SearchOutcome run(const ToyProblem& toy, const SearchSettings& s, SearchBudget budget, int jobs, SearchHooks hooks) {
  auto strategy = make_strategy(toy.space, s);
  REQUIRE_MESSAGE(strategy.ok(), strategy.status().message());
  auto out = run_search(**strategy, budget, jobs, hooks);
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  return std::move(out).value();
}

void check_same(const SearchOutcome& a, const SearchOutcome& b) {
  REQUIRE(a.results.size() == b.results.size());
  for (size_t i = 0; i < a.results.size(); ++i) {
    INFO("result " << i);
    CHECK(a.results[i].iteration == b.results[i].iteration);
    CHECK(a.results[i].proposal.candidate == b.results[i].proposal.candidate);
    CHECK(a.results[i].proposal.origin == b.results[i].proposal.origin);
    CHECK(a.results[i].evaluation.qos_loss == b.results[i].evaluation.qos_loss);
    CHECK(a.results[i].evaluation.speedup == b.results[i].evaluation.speedup);
  }
}

double best_feasible(const SearchOutcome& o, double max_loss) {
  double best = 1.0;
  for (const auto& r : o.results)
    if (feasible(r.evaluation, max_loss)) best = std::max(best, r.evaluation.speedup);
  return best;
}

}  // namespace

TEST_CASE("tune: Rng is the standard mt19937_64 with portable bounded draws") {
  Rng rng(5489);
  for (int i = 0; i < 9999; ++i) rng.next();
  CHECK(rng.next() == 9981545732273789042ull);  // the C++ standard's check value
  Rng a(1), b(1);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const uint64_t x = a.below(7);
    REQUIRE(x == b.below(7));
    ++counts[x];
  }
  for (int c : counts) CHECK(std::abs(c - 10000) < 500);  // 5 standard deviations
  CHECK(a.below(1) == 0);
  auto perm = a.distinct(10, 10);
  std::sort(perm.begin(), perm.end());
  CHECK(perm == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  const double u = a.uniform();
  CHECK((u >= 0 && u < 1));
}

TEST_CASE("tune: search space validation and configuration mapping") {
  ToyProblem toy(3, 1);
  REQUIRE(toy.space.validate().ok());
  const Candidate c = {0, 3, 4};
  const KnobConfig config = toy.space.to_config(c);
  CHECK(config == KnobConfig{{"conv1", "perf-row-2-0"}, {"conv2", "samp-2-0"}});
  auto back = toy.space.from_config(config);
  REQUIRE(back.ok());
  CHECK(*back == c);
  auto stranger = toy.space.from_config({{"fc", "fp16"}});
  REQUIRE(!stranger.ok());
  CHECK(contains(stranger.status().message(), "fc"));
  auto disallowed = toy.space.from_config({{"conv0", "int8"}});
  REQUIRE(!disallowed.ok());
  CHECK(contains(disallowed.status().message(), "conv0"));

  SearchSpace empty;
  CHECK(contains(empty.validate().message(), "empty knob space"));
  SearchSpace only_exact;
  only_exact.layers = {{"conv0", {"fp32"}}, {"conv1", {"fp32"}}};
  CHECK(contains(only_exact.validate().message(), "empty knob space"));
  SearchSpace bad_first;
  bad_first.layers = {{"conv0", {"fp16", "fp32"}}};
  CHECK(contains(bad_first.validate().message(), "first knob"));
  SearchSpace typo;
  typo.layers = {{"conv0", {"fp32", "perf-rows-2-0"}}};
  CHECK(contains(typo.validate().message(), "perf-rows-2-0"));
  CHECK(strategy_from_name("evolutionary") == StrategyKind::evolutionary);
  CHECK(!strategy_from_name("annealing").has_value());
}

TEST_CASE("tune: the AUC bandit prefers the operator that wins more") {
  const uint64_t seed = 11;
  MESSAGE("seed " << seed);
  Rng rng(seed);
  AucBandit bandit(3, 0.05, 500);
  CHECK(std::isinf(bandit.score(0)));  // unused arms are tried first
  const double p_win[3] = {0.05, 0.5, 0.1};
  std::vector<int> pulls(3, 0);
  for (int round = 0; round < 100; ++round) {
    std::vector<size_t> chosen;
    for (int k = 0; k < 6; ++k) {  // batches of 6, as the evolutionary search uses it
      const size_t arm = bandit.select(rng);
      bandit.add_pending(arm);
      chosen.push_back(arm);
    }
    for (size_t arm : chosen) {
      ++pulls[arm];
      bandit.record(arm, rng.chance(p_win[arm]));
    }
    bandit.clear_pending();
  }
  MESSAGE("pulls " << pulls[0] << " " << pulls[1] << " " << pulls[2]);
  CHECK(pulls[1] > 400);  // of 600
  CHECK(pulls[0] > 0);    // but the others are still explored
  CHECK(pulls[2] > 0);
  CHECK(bandit.score(1) > bandit.score(0));
  CHECK(bandit.total_uses(1) == static_cast<size_t>(pulls[1]));
}

TEST_CASE("tune: random search never repeats and stops when the space is exhausted") {
  ToyProblem toy(2, 3);
  toy.space.layers[0].knobs.resize(3);
  toy.space.layers[1].knobs.resize(3);
  SearchBudget budget;
  budget.max_evaluations = 100;
  SearchOutcome out = run(toy, settings_for(StrategyKind::random, toy, 5, 4), budget, 1, toy_hooks(toy));
  CHECK(out.stop_reason == StopReason::exhausted);
  CHECK(out.results.size() == 8);  // 3 x 3 minus the exact configuration
  std::set<Candidate> seen;
  for (const auto& r : out.results) {
    CHECK(r.proposal.candidate != toy.space.exact());
    CHECK(seen.insert(r.proposal.candidate).second);
  }
  SearchOutcome again = run(toy, settings_for(StrategyKind::random, toy, 5, 4), budget, 1, toy_hooks(toy));
  check_same(out, again);
}

TEST_CASE("tune: search results do not depend on the number of workers") {
  ToyProblem toy(8, 21);
  SearchBudget budget;
  budget.max_evaluations = 61;
  for (StrategyKind kind : {StrategyKind::random, StrategyKind::greedy, StrategyKind::evolutionary}) {
    INFO(strategy_name(kind));
    const SearchSettings s = settings_for(kind, toy, 42, 6);
    SearchOutcome one = run(toy, s, budget, 1, toy_hooks(toy));
    std::vector<int64_t> completion;
    SearchHooks hooks = toy_hooks(toy, true);
    hooks.on_evaluated = [&](int64_t it, const Proposal&, const Evaluation&, double, int) {
      completion.push_back(it);
      return Status();
    };
    SearchOutcome three = run(toy, s, budget, 3, hooks);
    check_same(one, three);
    CHECK(completion.size() == three.results.size());
  }
}

TEST_CASE("tune: replaying records.jsonl continues exactly like an uninterrupted run") {
  ToyProblem toy(8, 7);
  for (StrategyKind kind : {StrategyKind::random, StrategyKind::greedy, StrategyKind::evolutionary}) {
    INFO(strategy_name(kind));
    const SearchSettings s = settings_for(kind, toy, 1234, 8);
    SearchBudget full;
    full.max_evaluations = 150;
    const SearchOutcome uninterrupted = run(toy, s, full, 1, toy_hooks(toy));

    const fs::path dir = fs::temp_directory_path() / fmt::format("caliprox-test-tune-replay-{}", ::getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string path = (dir / "records.jsonl").string();
    {
      // First run: stopped after 53 evaluations, in the middle of a batch.
      auto store = RecordStore::open(path, "toy");
      REQUIRE(store.ok());
      SearchHooks hooks = toy_hooks(toy, true);
      hooks.on_evaluated = [&](int64_t it, const Proposal& p, const Evaluation& e, double seconds, int) {
        EvalRecord r;
        r.iteration = it;
        r.knobs = toy.space.to_config(p.candidate);
        r.qos_loss = e.qos_loss;
        r.speedup_predicted = e.speedup;
        r.seconds = seconds;
        r.origin = p.origin;
        return store->append(r);
      };
      SearchBudget part;
      part.max_evaluations = 53;
      SearchOutcome first = run(toy, s, part, 2, hooks);
      CHECK(first.fresh == std::min<int64_t>(53, static_cast<int64_t>(uninterrupted.results.size())));
    }
    {
      std::ofstream crash(path, std::ios::app);  // kill -9 while writing the next line
      crash << R"({"phase":"search","iteration":53,"knobs":{"conv)";
    }
    auto store = RecordStore::open(path, "toy");
    REQUIRE_MESSAGE(store.ok(), store.status().message());
    CHECK(store->warnings().size() == 1);
    SearchHooks hooks = toy_hooks(toy);
    hooks.recorded = [&](int64_t it) -> std::optional<RecordedEvaluation> {
      const EvalRecord* r = store->find("search", it);
      if (r == nullptr) return std::nullopt;
      auto c = toy.space.from_config(r->knobs);
      REQUIRE(c.ok());
      return RecordedEvaluation{*c, {*r->qos_loss, *r->speedup_predicted}};
    };
    const SearchOutcome resumed = run(toy, s, full, 3, hooks);
    check_same(uninterrupted, resumed);
    CHECK(resumed.replayed == std::min<int64_t>(53, static_cast<int64_t>(uninterrupted.results.size())));
    CHECK(resumed.stop_reason == uninterrupted.stop_reason);

    // Records of another search are refused, not silently mixed in.
    hooks.recorded = [&](int64_t it) -> std::optional<RecordedEvaluation> {
      if (it != 2) return std::nullopt;
      return RecordedEvaluation{toy.space.exact(), {0, 1}};
    };
    auto strategy = make_strategy(toy.space, s);
    REQUIRE(strategy.ok());
    auto mismatch = run_search(**strategy, full, 1, hooks);
    REQUIRE(!mismatch.ok());
    CHECK(contains(mismatch.status().message(), "iteration 2"));
    fs::remove_all(dir);
  }
}

TEST_CASE("tune: greedy starts with the least sensitive layer, meets the goal and ignores the batch size") {
  ToyProblem toy(6, 3);
  SearchBudget none;
  const SearchOutcome b1 = run(toy, settings_for(StrategyKind::greedy, toy, 0, 1), none, 1, toy_hooks(toy));
  const SearchOutcome b4 = run(toy, settings_for(StrategyKind::greedy, toy, 0, 4), none, 1, toy_hooks(toy));
  CHECK(b1.stop_reason == StopReason::exhausted);
  // Least sensitive = lowest loss per share of time saved, over its usable knobs.
  const auto singles = toy.singles();
  size_t first_layer = 0;
  double best = INFINITY;
  for (size_t l = 0; l < singles.size(); ++l)
    for (size_t k = 1; k < 5; ++k) {
      const double v = singles[l][k].qos_loss / (1 - 1 / singles[l][k].speedup);
      if (singles[l][k].qos_loss <= 1.5 && v < best) {
        best = v;
        first_layer = l;
      }
    }
  const Candidate& first = b1.results.front().proposal.candidate;
  CHECK(first[first_layer] != 0);
  CHECK(std::count(first.begin(), first.end(), 0) == static_cast<long>(first.size()) - 1);
  // The most aggressive knob by single speedup comes first (ties: lower loss, so perf-row-2-0 before samp-2-0).
  CHECK(first[first_layer] == 3);
  auto final_config = [](const SearchOutcome& o) {
    Candidate best_c;
    double best_s = 0;
    for (const auto& r : o.results)
      if (feasible(r.evaluation, 1.5) && r.evaluation.speedup > best_s) {
        best_s = r.evaluation.speedup;
        best_c = r.proposal.candidate;
      }
    return best_c;
  };
  CHECK(final_config(b1) == final_config(b4));
  CHECK(best_feasible(b1, 1.5) > 1.3);
  for (const auto& r : b1.results) CHECK(r.proposal.origin == "greedy");
  SearchSettings bad = settings_for(StrategyKind::greedy, toy, 0);
  bad.single.pop_back();
  CHECK(!make_strategy(toy.space, bad).ok());
}

TEST_CASE("tune: evolutionary search beats random search on a toy problem") {
  double evo = 0, rnd = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    ToyProblem toy(10, 100 + seed);
    SearchBudget budget;
    budget.max_evaluations = 240;
    evo += best_feasible(run(toy, settings_for(StrategyKind::evolutionary, toy, seed), budget, 1, toy_hooks(toy)), 1.5);
    rnd += best_feasible(run(toy, settings_for(StrategyKind::random, toy, seed), budget, 1, toy_hooks(toy)), 1.5);
  }
  MESSAGE("mean best feasible speedup: evolutionary " << evo / 4 << ", random " << rnd / 4);
  CHECK(evo > rnd);
}

TEST_CASE("tune: budgets, interruption and bad settings") {
  ToyProblem toy(4, 9);
  auto strategy = make_strategy(toy.space, settings_for(StrategyKind::evolutionary, toy, 1));
  REQUIRE(strategy.ok());
  SearchBudget zero;
  zero.max_evaluations = 0;
  auto r0 = run_search(**strategy, zero, 1, toy_hooks(toy));
  REQUIRE(!r0.ok());
  CHECK(r0.status().code() == Errc::invalid_input);
  auto unbounded = run_search(**strategy, SearchBudget{}, 1, toy_hooks(toy));
  REQUIRE(!unbounded.ok());
  CHECK(contains(unbounded.status().message(), "budget"));
  SearchBudget some;
  some.max_evaluations = 10;
  CHECK(!run_search(**strategy, some, 0, toy_hooks(toy)).ok());

  // Time budget on a fake clock: every evaluation takes 1 s, 5.5 s allowed.
  double t = 0;
  SearchHooks timed = toy_hooks(toy);
  timed.clock = [&] { return t; };
  auto inner = timed.evaluate;
  timed.evaluate = [&](const Proposal& p, int64_t it, int w) {
    t += 1.0;
    return inner(p, it, w);
  };
  SearchBudget time;
  time.max_seconds = 5.5;
  auto fresh = make_strategy(toy.space, settings_for(StrategyKind::evolutionary, toy, 1));
  auto timed_out = run_search(**fresh, time, 1, timed);
  REQUIRE(timed_out.ok());
  CHECK(timed_out->stop_reason == StopReason::time);
  CHECK(timed_out->results.size() == 6);

  int calls = 0;
  SearchHooks stopping = toy_hooks(toy);
  stopping.should_stop = [&] { return ++calls > 10; };
  auto again = make_strategy(toy.space, settings_for(StrategyKind::evolutionary, toy, 1));
  auto stopped = run_search(**again, some, 1, stopping);
  REQUIRE(stopped.ok());
  CHECK(stopped->stop_reason == StopReason::interrupted);
  CHECK(stopped->results.size() < 10);

  SearchHooks failing = toy_hooks(toy);
  failing.evaluate = [](const Proposal&, int64_t, int) -> Result<Evaluation> { return runtime_error("session died"); };
  auto third = make_strategy(toy.space, settings_for(StrategyKind::random, toy, 1));
  auto failed = run_search(**third, some, 2, failing);
  REQUIRE(!failed.ok());
  CHECK(contains(failed.status().message(), "session died"));

  SearchSettings bad = settings_for(StrategyKind::random, toy, 1);
  bad.batch_size = 0;
  CHECK(!make_strategy(toy.space, bad).ok());
  bad.batch_size = 4;
  bad.seeds = {{1, 2}};
  CHECK(!make_strategy(toy.space, bad).ok());
}
