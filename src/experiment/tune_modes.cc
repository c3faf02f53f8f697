#include "experiment/tune_modes.h"

#include <array>
#include <cstddef>
#include <utility>

namespace caliprox {

namespace {

template <typename E, size_t N>
using NameTable = std::array<std::pair<E, std::string_view>, N>;

constexpr NameTable<StrategyKind, 3> kStrategies = {{
    {StrategyKind::random, "random"},
    {StrategyKind::greedy, "greedy"},
    {StrategyKind::evolutionary, "evolutionary"},
}};
constexpr NameTable<QosMode, 3> kQosModes = {{
    {QosMode::empirical, "empirical"},
    {QosMode::p1, "p1"},
    {QosMode::p2, "p2"},
}};
constexpr NameTable<CostMode, 2> kCostModes = {{{CostMode::nominal, "nominal"}, {CostMode::measured, "measured"}}};

template <typename E, size_t N>
std::string_view name_in(const NameTable<E, N>& table, E value) {
  for (const auto& [e, name] : table)
    if (e == value) return name;
  return "?";
}

template <typename E, size_t N>
std::optional<E> value_in(const NameTable<E, N>& table, std::string_view name) {
  for (const auto& [e, n] : table)
    if (n == name) return e;
  return std::nullopt;
}

}  // namespace

std::string_view strategy_name(StrategyKind kind) { return name_in(kStrategies, kind); }
std::string_view qos_mode_name(QosMode mode) { return name_in(kQosModes, mode); }
std::string_view cost_mode_name(CostMode mode) { return name_in(kCostModes, mode); }
std::optional<StrategyKind> strategy_from_name(std::string_view name) { return value_in(kStrategies, name); }
std::optional<QosMode> qos_mode_from_name(std::string_view name) { return value_in(kQosModes, name); }
std::optional<CostMode> cost_mode_from_name(std::string_view name) { return value_in(kCostModes, name); }

}  // namespace caliprox
