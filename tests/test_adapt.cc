// Run-time adaptation (src/adapt): the level mover and each strategy against
// hand-computed traces, and the checks of their parameters. Streams and the
// simulation are in test_adapt_sim.cc.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adapt/strategy.h"

using namespace caliprox;

namespace {

const double nan_v = std::numeric_limits<double>::quiet_NaN();

std::unique_ptr<AdaptationStrategy> make(AdaptStrategy kind, const StrategyParams& p, int levels,
                                         const ConfidenceStats* stats = nullptr) {
  auto s = make_strategy(kind, p, levels, stats);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

// The levels a strategy returns after each observation; observation i ran
// at the level returned after observation i - 1 (start() for the first).
std::vector<int> walk(AdaptationStrategy& s, const std::vector<std::pair<int64_t, double>>& seen) {
  std::vector<int> out;
  int level = s.start();
  for (const auto& [argmax, top1] : seen) {
    level = s.next(Observation{level, argmax, top1});
    out.push_back(level);
  }
  return out;
}

std::vector<int> walk_argmax(AdaptationStrategy& s, const std::vector<int64_t>& argmaxes) {
  std::vector<std::pair<int64_t, double>> seen;
  for (int64_t a : argmaxes) seen.emplace_back(a, 0.9);
  return walk(s, seen);
}

bool error_names(const Status& st, const std::string& what) {
  return !st.ok() && st.code() == Errc::invalid_input && st.message().find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("adapt: strategy names round-trip") {
  for (AdaptStrategy k :
       {AdaptStrategy::static_level, AdaptStrategy::naive, AdaptStrategy::state, AdaptStrategy::confidence}) {
    CHECK(adapt_strategy_from_name(adapt_strategy_name(k)) == k);
  }
  CHECK(adapt_strategy_name(AdaptStrategy::static_level) == "static");
  CHECK_FALSE(adapt_strategy_from_name("oracle").has_value());
}

TEST_CASE("adapt: the mover adds a growing step and halves on less") {
  LevelMover m{7, 2.0};
  // Steps 1, 2, 4, 8: 0 -> 1 -> 3 -> 7, then 7 + 8 clamped at the top.
  m.more();
  CHECK(m.level == 1);
  m.more();
  CHECK(m.level == 3);
  m.more();
  CHECK(m.level == 7);
  m.more();
  CHECK(m.level == 7);
  CHECK(m.step == 16);
  // less: 7 / 2 = 3 and the step back to 1, so the next more adds 1.
  m.less();
  CHECK(m.level == 3);
  CHECK(m.step == 1);
  m.more();
  CHECK(m.level == 4);

  // A real factor: steps 1, 1.5, 2.25, 3.375, 5.06 add 1, 1, 2, 3, 5.
  LevelMover r{10, 1.5};
  std::vector<int> levels;
  for (int i = 0; i < 5; ++i) {
    r.more();
    levels.push_back(r.level);
  }
  CHECK(levels == std::vector<int>{1, 2, 4, 7, 10});
}

TEST_CASE("adapt: static stays at its level, and refuses a level that does not exist") {
  StrategyParams p;
  p.static_level = 2;
  auto s = make(AdaptStrategy::static_level, p, 3);
  CHECK(s->start() == 2);
  CHECK(walk_argmax(*s, {1, 2, 3}) == std::vector<int>{2, 2, 2});

  p.static_level = 3;
  auto bad = make_strategy(AdaptStrategy::static_level, p, 3);
  REQUIRE_FALSE(bad.ok());
  CHECK(error_names(bad.status(), "static_level 3"));
  CHECK(error_names(bad.status(), "3 levels"));
  CHECK(error_names(make_strategy(AdaptStrategy::naive, StrategyParams{}, 0).status(), "at least 1 level"));
}

TEST_CASE("adapt: naive against a hand-computed trace") {
  auto s = make(AdaptStrategy::naive, StrategyParams{}, 8);  // top 7, factor 2
  CHECK(s->start() == 0);
  // argmax 3: first input, more: 0 + 1 = 1 (step 2)
  // argmax 3: same, more: 1 + 2 = 3 (step 4)
  // argmax 3: same, more: 3 + 4 = 7 (step 8)
  // argmax 5: differs, less: 7 / 2 = 3 (step 1)
  // argmax 5: same as the previous (5), more: 3 + 1 = 4 (step 2)
  // argmax 2: differs, less: 4 / 2 = 2 (step 1)
  // argmax 2: same, more: 2 + 1 = 3 (step 2)
  // argmax 2: same, more: 3 + 2 = 5 (step 4)
  CHECK(walk_argmax(*s, {3, 3, 3, 5, 5, 2, 2, 2}) == std::vector<int>{1, 3, 7, 3, 4, 2, 3, 5});
}

TEST_CASE("adapt: naive compares with the previous input, not the first") {
  auto s = make(AdaptStrategy::naive, StrategyParams{}, 4);
  // 1: more -> 1; 2 differs from 1: less -> 0; 2 equals the previous 2:
  // more -> 1. (Mobiprox's published code kept comparing with the first
  // argmax, 1, and would have gone less -> 0.)
  CHECK(walk_argmax(*s, {1, 2, 2}) == std::vector<int>{1, 0, 1});
}

TEST_CASE("adapt: state against a hand-computed trace") {
  StrategyParams p;  // window 3, votes 2, factor 2
  auto s = make(AdaptStrategy::state, p, 8);
  // 4 [4] not full: vote -1 (votes -1), stay 0
  // 4 [4 4] not full: -1 (votes -2): less 0 / 2 = 0, votes 0
  // 4 [4 4 4] agree: +1 (votes 1), stay 0
  // 4 [4 4 4] agree: +1 (votes 2): more 0 + 1 = 1 (step 2), votes 0
  // 4 agree: votes 1, stay 1
  // 4 agree: votes 2: more 1 + 2 = 3 (step 4), votes 0
  // 1 [4 4 1]: votes -1, stay 3
  // 1 [4 1 1]: votes -2: less 3 / 2 = 1 (step 1), votes 0
  // 1 [1 1 1]: votes 1, stay 1
  // 1 [1 1 1]: votes 2: more 1 + 1 = 2, votes 0
  CHECK(walk_argmax(*s, {4, 4, 4, 4, 4, 4, 1, 1, 1, 1}) == std::vector<int>{0, 0, 0, 1, 1, 3, 3, 1, 1, 2});
}

TEST_CASE("adapt: state's votes accumulate and cancel, clamped to [-votes, votes]") {
  StrategyParams p;
  p.window = 2;
  p.votes = 3;
  auto s = make(AdaptStrategy::state, p, 4);
  // 5 [5] not full: -1; 5 [5 5]: 0; 5: 1; 7 [5 7]: 0; 7 [7 7]: 1; 7: 2;
  // 7: 3 = votes: more -> 1, votes 0; 7: 1, stay.
  CHECK(walk_argmax(*s, {5, 5, 5, 7, 7, 7, 7, 7}) == std::vector<int>{0, 0, 0, 0, 0, 0, 1, 1});
}

TEST_CASE("adapt: state's window length decides what counts as agreement") {
  StrategyParams p;
  p.votes = 1;  // every vote moves
  p.window = 2;
  auto two = make(AdaptStrategy::state, p, 8);
  // [1] less 0; [1 1] more 1 (step 2); [1 2] less 0 (step 1); [2 2] more 1
  // (step 2); [2 2] more 1 + 2 = 3.
  CHECK(walk_argmax(*two, {1, 1, 2, 2, 2}) == std::vector<int>{0, 1, 0, 1, 3});
  p.window = 3;
  auto three = make(AdaptStrategy::state, p, 8);
  // [1], [1 1] not full, [1 1 2], [1 2 2] disagree: less at 0 each time;
  // [2 2 2] agree: more 1.
  CHECK(walk_argmax(*three, {1, 1, 2, 2, 2}) == std::vector<int>{0, 0, 0, 0, 1});
}

TEST_CASE("adapt: confidence against a hand-computed trace with given C and W") {
  ConfidenceStats st;
  st.correct = {{0.9, 0.8}, {0.8, nan_v}, {0.7, 0.6}};
  st.wrong = {{0.5, 0.4}, {0.4, 0.6}, {0.2, nan_v}};
  StrategyParams p;  // less_at 0.5, more_at 0.75, factor 2
  auto s = make(AdaptStrategy::confidence, p, 3, &st);
  // Thresholds W + 0.5 (C - W) / W + 0.75 (C - W):
  //   level 0 class 0: W .5 C .9 -> .7 / .8;  class 1: W .4 C .8 -> .6 / .7
  //   level 1 class 0: W .4 C .8 -> .6 / .7;  class 1: C NaN -> row mean .8,
  //     W .6 -> .7 / .75
  //   level 2 class 1: C .6, W NaN -> row mean .2 -> .4 / .5
  // (0, .85) at 0: > .8, more -> 1 (step 2)
  // (1, .72) at 1: between .7 and .75, stay 1
  // (1, .76) at 1: > .75, more -> 1 + 2 clamped to 2 (step 4)
  // (1, .35) at 2: < .4, less -> 1 (step 1)
  // (0, .65) at 1: between .6 and .7, stay 1
  // (0, .55) at 1: < .6, less -> 0
  // (1, .69) at 0: between .6 and .7, stay 0
  // (1, .75) at 0: > .7, more -> 1
  const std::vector<std::pair<int64_t, double>> seen = {{0, .85}, {1, .72}, {1, .76}, {1, .35},
                                                        {0, .65}, {0, .55}, {1, .69}, {1, .75}};
  CHECK(walk(*s, seen) == std::vector<int>{1, 1, 2, 1, 1, 0, 0, 1});
}

TEST_CASE("adapt: confidence stays where a level has no statistics at all") {
  ConfidenceStats st;
  st.correct = {{0.9, 0.8}, {0.8, 0.7}};
  st.wrong = {{nan_v, nan_v}, {0.1, 0.1}};  // level 0 never wrong: no W
  auto s = make(AdaptStrategy::confidence, StrategyParams{}, 2, &st);
  CHECK(walk(*s, {{0, 0.01}, {1, 0.99}, {0, 0.5}}) == std::vector<int>{0, 0, 0});
}

TEST_CASE("adapt: confidence needs statistics for every level") {
  StrategyParams p;
  CHECK(error_names(make_strategy(AdaptStrategy::confidence, p, 2).status(), "confidence statistics"));
  ConfidenceStats st;
  st.correct = {{0.9}};
  st.wrong = {{0.1}};
  CHECK(error_names(make_strategy(AdaptStrategy::confidence, p, 2, &st).status(), "there are 2 levels"));
  CHECK(make_strategy(AdaptStrategy::confidence, p, 1, &st).ok());
}

TEST_CASE("adapt: check_strategy_params names the parameter out of range") {
  CHECK(check_strategy_params(StrategyParams{}).ok());
  auto with = [](auto edit) {
    StrategyParams p;
    edit(p);
    return check_strategy_params(p);
  };
  CHECK(error_names(with([](StrategyParams& p) { p.factor = 0.5; }), "factor"));
  CHECK(error_names(with([](StrategyParams& p) { p.factor = nan_v; }), "factor"));
  CHECK(error_names(with([](StrategyParams& p) { p.less_at = -0.1; }), "less_at"));
  CHECK(error_names(with([](StrategyParams& p) { p.more_at = 1.5; }), "more_at"));
  CHECK(error_names(with([](StrategyParams& p) { p.less_at = 0.8; }), "must not exceed more_at"));
  CHECK(error_names(with([](StrategyParams& p) { p.votes = 0; }), "votes"));
  CHECK(error_names(with([](StrategyParams& p) { p.window = 1; }), "window"));
  CHECK(error_names(with([](StrategyParams& p) { p.static_level = -1; }), "static_level"));
  // make_strategy checks them too.
  StrategyParams p;
  p.window = 1;
  CHECK(error_names(make_strategy(AdaptStrategy::state, p, 3).status(), "window"));
  // The edges are allowed.
  CHECK(with([](StrategyParams& q) {
          q.factor = 1;
          q.less_at = 0.6;
          q.more_at = 0.6;
          q.votes = 1;
          q.window = 2;
        }).ok());
}
