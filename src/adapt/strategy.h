#pragma once
// Run-time adaptation strategies (Mobiprox): after each input, choose the
// approximation level for the next one from what the network said about
// this one. Level 0 is the exact network; higher levels are more
// approximate. Moves, as in Mobiprox: "less" approximation halves the level
// (integer division) and resets the step to 1; "more" adds the step to the
// level (clamped to the top level) and multiplies the step by `factor`
// (step kept as a real number, added rounded down, at least 1).
// man caliprox-adapt-sim documents each strategy; tests/test_adapt.cc checks
// them against hand-computed traces.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace caliprox {

enum class AdaptStrategy { static_level, naive, state, confidence };
std::string_view adapt_strategy_name(AdaptStrategy k);  // "static", "naive", "state", "confidence"
std::optional<AdaptStrategy> adapt_strategy_from_name(std::string_view name);

struct StrategyParams {
  double factor = 2.0;        // "more": step *= factor (>= 1)
  double less_at = 0.5;       // confidence: less when c < W + less_at * (C - W)
  double more_at = 0.75;      // confidence: more when c > W + more_at * (C - W); less_at <= more_at
  int votes = 2;              // state: votes clamped to [-votes, votes]; a move at either end
  int window = 3;             // state: the last `window` argmaxes agree -> a vote for more
  int static_level = 0;       // static: the level it stays at
};
// invalid_input naming the parameter for values out of range.
Status check_strategy_params(const StrategyParams& p);

// Per level and class: the mean top-1 probability of correct (C) and wrong
// (W) predictions on the calibrate split (what `confidence` compares with).
struct ConfidenceStats {
  // [level][class]; NaN where the level never predicted the class rightly
  // (C) or wrongly (W): then the level's mean over all classes stands in.
  std::vector<std::vector<double>> correct, wrong;
};

// What the network said about one input at the level it ran.
struct Observation {
  int level = 0;
  int64_t argmax = 0;
  double top1 = 0;  // top-1 softmax probability
};

class AdaptationStrategy {
 public:
  virtual ~AdaptationStrategy() = default;
  virtual AdaptStrategy kind() const = 0;
  // The level for the first input.
  virtual int start() const = 0;
  // The level for the next input, after `o` (which ran at the current level).
  virtual int next(const Observation& o) = 0;
};

// `levels`: how many levels there are (level 0 .. levels - 1). `stats` is
// needed by `confidence` (invalid_input without it, or when its shape does
// not match `levels`).
Result<std::unique_ptr<AdaptationStrategy>> make_strategy(AdaptStrategy kind, const StrategyParams& params, int levels,
                                                          const ConfidenceStats* stats = nullptr);

// The shared move rule, for strategies and tests.
struct LevelMover {
  int top = 0;         // highest level
  double factor = 2;
  int level = 0;
  double step = 1;
  void less() {
    level /= 2;
    step = 1;
  }
  void more();
};

}  // namespace caliprox
