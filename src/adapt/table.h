#pragma once
// adaptation.json (schemas/adaptation.schema.json): the levels a device
// switches between at run time, what each costs and how sure each is, and
// the strategy that switches them. Written by `caliprox adapt-sim`, read
// back by the runtime (adapt/runtime.h) and `caliprox serve --adaptation`.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapt/strategy.h"
#include "knobs/knobs.h"
#include "util/status.h"

namespace caliprox {

struct AdaptationLevel {
  int level = 0;
  std::string id;                        // the pareto.json configuration's id ("exact", "c3", ...)
  KnobConfig knobs;                      // empty for level 0
  double latency_ms = 0;                 // per inference (batch 1), median, measured
  nlohmann::json latency_stat;           // the full statistic (profile's "stat" form)
  std::optional<double> energy_j;        // per inference, measured, when RAPL is readable
  double time_proxy = 1;                 // latency relative to level 0: a time-based proxy, not energy
  double accuracy = 0;                   // top-1 on the calibrate split, fraction
  std::optional<double> speedup_nominal; // the cost model's, from pareto.json
};

struct AdaptationTable {
  std::string experiment;
  std::string model;              // the .onnx path the levels apply to
  std::string output;             // the graph output the strategies read
  int64_t classes = 0;
  std::vector<AdaptationLevel> levels;  // level 0 first
  ConfidenceStats stats;
  AdaptStrategy strategy = AdaptStrategy::confidence;
  StrategyParams params;
  double switch_ms = 0;           // measured cost of changing level
  std::optional<std::string> energy_unavailable;  // why energy_j is null
  std::map<std::string, ValueRange> input_ranges;  // int8 levels' calibrated input ranges
};

nlohmann::json adaptation_json(const AdaptationTable& t);
// Reads and checks an adaptation.json; errors (invalid_input) name the file
// and the key.
Result<AdaptationTable> load_adaptation(const std::string& path);
Result<AdaptationTable> parse_adaptation(const nlohmann::json& j, const std::string& source);

}  // namespace caliprox
