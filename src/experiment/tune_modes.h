#pragma once
// The modes of `caliprox tune` (schema: tune.strategy, tune.qos_mode,
// tune.cost_mode) as enums. They are parsed once, where the experiment is
// read and where the CLI overrides it; everything else compares enums. The
// names are what the experiment file, records.jsonl and the logs say.
#include <optional>
#include <string_view>

namespace caliprox {

enum class StrategyKind { random, greedy, evolutionary };
// empirical: a run on the tune split per candidate; p1 / p2: predicted from
// one run per (layer, knob), by summed output deltas (p1) or QoS deltas (p2).
enum class QosMode { empirical, p1, p2 };
// nominal: FLOPs / each knob's nominal speedup; measured: a profile.json.
enum class CostMode { nominal, measured };

std::string_view strategy_name(StrategyKind kind);   // "random", "greedy", "evolutionary"
std::string_view qos_mode_name(QosMode mode);        // "empirical", "p1", "p2"
std::string_view cost_mode_name(CostMode mode);      // "nominal", "measured"
std::optional<StrategyKind> strategy_from_name(std::string_view name);
std::optional<QosMode> qos_mode_from_name(std::string_view name);
std::optional<CostMode> cost_mode_from_name(std::string_view name);

}  // namespace caliprox
