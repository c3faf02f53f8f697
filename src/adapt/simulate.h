#pragma once
// Simulating a strategy over a stream without running the network again:
// every level's answer for every sample of the stream is computed once
// (deterministic), and the strategy walks over them. Costs are the levels'
// measured latencies (and energies), plus the measured cost of a switch.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "adapt/strategy.h"

namespace caliprox {

// Every level's answer for every dataset sample of the stream's split:
// answers[level][i] for sample begin + i.
struct LevelAnswers {
  int64_t begin = 0;
  std::vector<std::vector<Observation>> answers;  // Observation.level = the level
};

struct LevelCost {
  double latency_ms = 0;                // per inference, measured
  std::optional<double> energy_j;       // per inference, measured (RAPL), when readable
};

struct SimulationResult {
  std::string strategy;
  std::vector<int> trace;          // level used for each input
  std::vector<double> confidence;  // for each input, the top-1 probability the level in use gave it
  double accuracy = 0;             // against the labels, fraction
  double agreement = 0;            // argmax equal to the exact network's (level 0), fraction
  double mean_latency_ms = 0;      // per inference, switches included
  std::optional<double> mean_energy_j;
  int64_t switches = 0;
  double switches_per_1000 = 0;
  std::vector<int64_t> level_counts;  // inputs per level
};

// Walks `stream` (dataset sample indices) with `strategy`. labels[i]: class
// of sample answers.begin + i. switch_ms / switch_j: the measured cost of
// changing level, added once per change.
SimulationResult simulate(AdaptationStrategy& strategy, const std::vector<int64_t>& stream, const LevelAnswers& answers,
                          const std::vector<int64_t>& labels, const std::vector<LevelCost>& costs, double switch_ms,
                          std::optional<double> switch_j);

// The oracle: in hindsight, each input runs at the most approximate level
// whose argmax equals the exact network's (level 0 when none does); no
// switch cost (the upper bound every strategy is measured against).
SimulationResult simulate_oracle(const std::vector<int64_t>& stream, const LevelAnswers& answers,
                                 const std::vector<int64_t>& labels, const std::vector<LevelCost>& costs);

// Per level and class C and W (ConfidenceStats) from the levels' answers on
// a split: labels[i] is the class of sample answers.begin + i.
ConfidenceStats confidence_stats(const LevelAnswers& answers, const std::vector<int64_t>& labels, int64_t classes);

// Observations from a level's outputs: rows of `classes` logits (or
// probabilities: softmax is applied unless the rows already sum to 1).
std::vector<Observation> observations(std::span<const float> outputs, int64_t classes, int level);

}  // namespace caliprox
