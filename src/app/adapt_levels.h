#pragma once
// What `caliprox adapt-sim` measures about each level of a frontier before
// simulating strategies: its answers (argmax, top-1 probability) on the
// stream split and the calibrate split, and its cost per inference.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapt/simulate.h"
#include "eval/evaluator.h"
#include "tune/measure.h"
#include "tune/pareto.h"

namespace caliprox {

struct LevelData {
  LevelAnswers stream;      // on the split the streams are drawn from
  LevelAnswers calibrate;   // on the calibrate split (confidence statistics)
  std::vector<double> calibrate_accuracy;  // per level, fraction
  std::vector<int64_t> calibrate_labels;   // of the calibrate split's samples, in order
};

// Configures each level in turn (measure_levels checked that they apply)
// and records its answers.
Result<LevelData> level_data(Evaluator& ev, const std::vector<ParetoConfiguration>& levels, const std::string& split,
                             int64_t classes);

struct LevelCosts {
  std::vector<LevelCost> costs;        // per level, per inference at batch 1
  std::vector<nlohmann::json> stats;   // latency statistics (ms), per level
  double switch_ms = 0;                // median cost of one switch (exact <-> top level)
  std::optional<double> switch_j;
  int rounds = 0;
  std::unique_ptr<EnergyMeter> energy;  // available() says whether energies were measured
};

// Latency (and energy where RAPL is readable) of each level at batch 1,
// interleaved round by round with a switch and an untimed run before each
// timed one (the steady state of a level), plus the switch cost alone.
// Errors name `pareto_path` and the level whose knobs do not apply to the
// network (a frontier of another network).
Result<LevelCosts> measure_levels(Evaluator& ev, const std::vector<ParetoConfiguration>& levels,
                                  const RepeatPolicy& policy, const std::string& pareto_path);

struct ThinnedLevels {
  std::vector<ParetoConfiguration> levels;  // kept, level 0 first
  LevelCosts costs;                         // of the kept levels
  std::vector<std::string> dropped;         // why each other level was dropped
};

// Measures every level (measure_levels, which checks they apply) and keeps
// those that beat the level before by `rule` on the speedups measured here
// (Mobiprox's thinning).
Result<ThinnedLevels> measure_and_thin(Evaluator& ev, const std::vector<ParetoConfiguration>& levels,
                                       const RepeatPolicy& policy, const ThinningRule& rule,
                                       const std::string& pareto_path);

}  // namespace caliprox
