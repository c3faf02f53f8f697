#include "adapt/table.h"

#include <cmath>
#include <fstream>
#include <limits>

#include <fmt/format.h>

namespace caliprox {

namespace {

// NaN (a class a level never predicted rightly or wrongly) is null in JSON.
nlohmann::json rows_json(const std::vector<std::vector<double>>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : rows) {
    nlohmann::json r = nlohmann::json::array();
    for (double v : row) r.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json());
    out.push_back(r);
  }
  return out;
}

std::vector<std::vector<double>> rows_from(const nlohmann::json& j) {
  std::vector<std::vector<double>> out;
  for (const auto& row : j) {
    std::vector<double> r;
    for (const auto& v : row) r.push_back(v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>());
    out.push_back(std::move(r));
  }
  return out;
}

nlohmann::json params_json(const StrategyParams& p) {
  return {{"factor", p.factor}, {"less_at", p.less_at}, {"more_at", p.more_at},
          {"votes", p.votes},   {"window", p.window},   {"static_level", p.static_level}};
}

}  // namespace

nlohmann::json adaptation_json(const AdaptationTable& t) {
  nlohmann::json levels = nlohmann::json::array();
  for (const AdaptationLevel& l : t.levels) {
    levels.push_back({{"level", l.level},
                      {"id", l.id},
                      {"knobs", nlohmann::json(l.knobs)},
                      {"latency_ms", l.latency_ms},
                      {"latency", l.latency_stat},
                      {"energy_j", l.energy_j ? nlohmann::json(*l.energy_j) : nlohmann::json()},
                      {"time_proxy", l.time_proxy},
                      {"accuracy", l.accuracy},
                      {"speedup_nominal", l.speedup_nominal ? nlohmann::json(*l.speedup_nominal) : nlohmann::json()}});
  }
  nlohmann::json ranges = nlohmann::json::object();
  for (const auto& [node, r] : t.input_ranges) ranges[node] = {r.min, r.max};
  return {{"format", "caliprox-adaptation"},
          {"version", 1},
          {"experiment", t.experiment},
          {"model", t.model},
          {"output", t.output},
          {"classes", t.classes},
          {"levels", levels},
          {"confidence", {{"correct", rows_json(t.stats.correct)}, {"wrong", rows_json(t.stats.wrong)}}},
          {"strategy", {{"name", adapt_strategy_name(t.strategy)}, {"params", params_json(t.params)}}},
          {"switch_ms", t.switch_ms},
          {"energy_unavailable", t.energy_unavailable ? nlohmann::json(*t.energy_unavailable) : nlohmann::json()},
          {"time_proxy_note", "time_proxy is latency relative to level 0, a time-based proxy, not a measured energy"},
          {"input_ranges", ranges}};
}

Result<AdaptationTable> parse_adaptation(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || j.value("format", "") != "caliprox-adaptation")
    return invalid_input("{}: not an adaptation.json written by caliprox adapt-sim", source);
  AdaptationTable t;
  try {
    t.experiment = j.at("experiment").get<std::string>();
    t.model = j.at("model").get<std::string>();
    t.output = j.at("output").get<std::string>();
    t.classes = j.at("classes").get<int64_t>();
    for (const auto& l : j.at("levels")) {
      AdaptationLevel level;
      level.level = l.at("level").get<int>();
      level.id = l.at("id").get<std::string>();
      level.knobs = l.at("knobs").get<KnobConfig>();
      level.latency_ms = l.at("latency_ms").get<double>();
      level.latency_stat = l.value("latency", nlohmann::json());
      if (!l.at("energy_j").is_null()) level.energy_j = l.at("energy_j").get<double>();
      level.time_proxy = l.at("time_proxy").get<double>();
      level.accuracy = l.at("accuracy").get<double>();
      if (!l.at("speedup_nominal").is_null()) level.speedup_nominal = l.at("speedup_nominal").get<double>();
      if (level.level != static_cast<int>(t.levels.size()))
        return invalid_input("{}: levels[{}] has level {}: levels are numbered 0, 1, ... in order", source,
                             t.levels.size(), level.level);
      t.levels.push_back(std::move(level));
    }
    t.stats.correct = rows_from(j.at("confidence").at("correct"));
    t.stats.wrong = rows_from(j.at("confidence").at("wrong"));
    const auto& s = j.at("strategy");
    const auto kind = adapt_strategy_from_name(s.at("name").get<std::string>());
    if (!kind) return invalid_input("{}: strategy.name '{}' is not a strategy", source, s.at("name").dump());
    t.strategy = *kind;
    const auto& p = s.at("params");
    t.params = {p.at("factor").get<double>(), p.at("less_at").get<double>(), p.at("more_at").get<double>(),
                p.at("votes").get<int>(),     p.at("window").get<int>(),     p.at("static_level").get<int>()};
    t.switch_ms = j.at("switch_ms").get<double>();
    if (!j.at("energy_unavailable").is_null()) t.energy_unavailable = j.at("energy_unavailable").get<std::string>();
    for (const auto& [node, r] : j.at("input_ranges").items())
      t.input_ranges[node] = {r.at(0).get<float>(), r.at(1).get<float>()};
  } catch (const nlohmann::json::exception& e) {
    return invalid_input("{}: {}", source, e.what());
  }
  if (t.levels.empty()) return invalid_input("{}: no levels", source);
  if (t.stats.correct.size() != t.levels.size() || t.stats.wrong.size() != t.levels.size())
    return invalid_input("{}: confidence has {} rows for {} levels", source, t.stats.correct.size(), t.levels.size());
  CP_TRY(check_strategy_params(t.params).with_context(source + ": strategy.params"));
  return t;
}

Result<AdaptationTable> load_adaptation(const std::string& path) {
  std::ifstream f(path);
  if (!f) return invalid_input("{}: cannot read it", path);
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) return invalid_input("{}: not valid JSON", path);
  return parse_adaptation(j, path);
}

}  // namespace caliprox
