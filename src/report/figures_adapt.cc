// Run-time adaptation (adapt-sim): the levels, each strategy's accuracy and
// savings per stream against exact, static levels and the oracle, and the
// level and confidence of every input of a stream.
#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "report/figure.h"

namespace caliprox::report {

using nlohmann::json;

namespace {

Figure levels(const Artifact& a) {
  Figure f;
  f.id = "adapt-levels" + (a.network.empty() ? "" : "-" + a.network);
  f.section = "Run-time adaptation";
  f.title = "Adaptation levels: accuracy against speedup";
  f.sources = {a.path};
  for (const json& l : a.doc.at("levels")) {
    const double proxy = l.at("time_proxy").get<double>();
    const int level = l.at("level").get<int>();
    f.data.push_back({{"level", level},
                      {"id", l.at("id")},
                      {"label", level == 0 ? "0 exact" : std::to_string(level)},
                      {"speedup", proxy > 0 ? json(1 / proxy) : json(nullptr)},
                      {"latency_ms", number_or_null(l.at("latency_ms"))},
                      {"accuracy", number_or_null(json(100 * l.at("accuracy").get<double>()))}});
  }
  f.caption = fmt::format(
      "The levels the adaptation table switches between (strategy {}): measured speedup at batch 1 over level 0 (the "
      "exact network) and top-1 accuracy (%) on the calibrate split.",
      a.doc.at("strategy").value("name", "?"));
  const json x = {{"field", "speedup"},
                  {"type", "quantitative"},
                  {"title", "speedup (x)"},
                  {"scale", {{"zero", false}}}};
  const json y = {{"field", "accuracy"},
                  {"type", "quantitative"},
                  {"title", "accuracy (%)"},
                  {"scale", {{"zero", false}}}};
  f.spec = {{"width", 420},
            {"height", 240},
            {"layer",
             {{{"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
               {"encoding", {{"x", x}, {"y", y}, {"tooltip", {{{"field", "id"}}, {{"field", "latency_ms"}}}}}}},
              {{"mark", {{"type", "text"}, {"dx", 9}, {"dy", -7}, {"align", "left"}}},
               {"encoding", {{"x", x}, {"y", y}, {"text", {{"field", "label"}}}}}}}}};
  const int n = count_rows(f.data, "", "", {"speedup", "accuracy"});
  f.marks = {{"symbol", n}, {"text", n}};
  return f;
}

Figure outcomes(const Artifact& a, const json& stream) {
  Figure f;
  const std::string name = stream.at("name").get<std::string>();
  f.id = "adapt-outcomes-" + name;
  f.section = "Run-time adaptation";
  f.title = fmt::format("Stream {}: accuracy and savings per strategy", name);
  f.sources = {a.path};
  for (const json& r : stream.at("results"))
    f.data.push_back({{"strategy", r.at("strategy")},
                      {"accuracy", number_or_null(json(100 * r.at("accuracy").get<double>()))},
                      {"agreement", number_or_null(json(100 * r.at("agreement").get<double>()))},
                      {"savings_vs_exact", number_or_null(json(100 * r.at("savings_vs_exact").get<double>()))},
                      {"savings_vs_best_static", r.at("savings_vs_best_static").is_number()
                                                     ? json(100 * r["savings_vs_best_static"].get<double>())
                                                     : json(nullptr)},
                      {"mean_latency_ms", number_or_null(r.at("mean_latency_ms"))},
                      {"switches_per_1000", number_or_null(r.at("switches_per_1000"))}});
  f.caption = fmt::format(
      "{} inputs ({} stream). static-N runs level N throughout (static-0: the exact network); the oracle picks, in "
      "hindsight, the most approximate level that agrees with the exact network. Left: top-1 accuracy (%); right: "
      "latency saved against the exact network (%, switches included).",
      stream.at("inputs").get<int64_t>(), stream.at("kind").get<std::string>());
  const json y = {{"field", "strategy"}, {"type", "nominal"}, {"sort", nullptr}, {"title", nullptr}};
  const json tip = {{{"field", "strategy"}},
                    {{"field", "accuracy"}},
                    {{"field", "agreement"}},
                    {{"field", "savings_vs_exact"}},
                    {{"field", "savings_vs_best_static"}},
                    {{"field", "switches_per_1000"}}};
  auto bars = [&](const char* field, const char* title, const char* color) {
    return json{{"width", 260},
                {"mark", {{"type", "bar"}, {"color", color}}},
                {"encoding",
                 {{"y", y}, {"x", {{"field", field}, {"type", "quantitative"}, {"title", title}}}, {"tooltip", tip}}}};
  };
  f.spec = {
      {"hconcat",
       {bars("accuracy", "accuracy (%)", "#1f5fa8"), bars("savings_vs_exact", "savings vs exact (%)", "#2e8b57")}}};
  f.marks = {{"rect", count_rows(f.data, "", "", {"accuracy"}) + count_rows(f.data, "", "", {"savings_vs_exact"})}};
  return f;
}

// The level (and confidence, where recorded) of every input, per adaptive strategy.
Figure walk(const Artifact& a, const std::string& stream, const json& strategies) {
  Figure f;
  f.id = "adapt-trace-" + stream;
  f.section = "Run-time adaptation";
  f.title = fmt::format("Stream {}: level and confidence of every input", stream);
  f.sources = {a.path};
  int cells = 0, with_confidence = 0, top = 1;
  std::vector<std::string> names;
  for (const auto& [strategy, t] : strategies.items()) {
    if (strategy.starts_with("static-")) continue;  // constant by definition
    names.push_back(strategy);
    // Older files hold the levels alone, as a list.
    const json& lv = t.is_array() ? t : t.at("levels");
    const json empty = json::array();
    const json& conf = t.is_object() && t.contains("confidence") ? t["confidence"] : empty;
    for (size_t i = 0; i < lv.size(); ++i)
      f.data.push_back({{"strategy", strategy},
                        {"input", i},
                        {"level", lv[i]},
                        {"confidence", i < conf.size() ? number_or_null(conf[i]) : json(nullptr)}});
    ++cells;
    with_confidence += conf.empty() ? 0 : 1;
    for (const json& l : lv) top = std::max(top, l.is_number() ? l.get<int>() : 0);
  }
  f.caption =
      "For each adaptive strategy and the oracle: the level each input ran at (step line, left axis) and the top-1 "
      "probability that level gave it (thin line, right axis), which is what the confidence-driven strategy watches.";
  const json x = {{"field", "input"}, {"type", "quantitative"}, {"title", "input"}};
  json lines = {{{"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"color", "#1f5fa8"}}},
                 {"encoding",
                  {{"x", x},
                   {"y",
                    {{"field", "level"},
                     {"type", "quantitative"},
                     {"title", "level"},
                     {"scale", {{"domain", {0, top}}}},
                     {"axis", {{"tickMinStep", 1}}}}}}}},
                {{"transform", json::array({{{"filter", "datum.confidence !== null"}}})},
                 {"mark", {{"type", "line"}, {"strokeWidth", 0.7}, {"color", "#e07b00"}, {"opacity", 0.8}}},
                 {"encoding",
                  {{"x", x},
                   {"y",
                    {{"field", "confidence"},
                     {"type", "quantitative"},
                     {"title", "confidence"},
                     {"scale", {{"domain", {0, 1}}}}}}}}}};
  // One row per strategy; each row two y axes (level, confidence).
  json rows = json::array();
  for (const std::string& strategy : names)
    rows.push_back({{"width", 620},
                    {"height", 70},
                    {"title", {{"text", strategy}, {"anchor", "start"}, {"fontSize", 11}}},
                    {"transform", json::array({{{"filter", {{"field", "strategy"}, {"equal", strategy}}}}})},
                    {"layer", lines},
                    {"resolve", {{"scale", {{"y", "independent"}}}}}});
  f.spec = {{"vconcat", rows}};
  f.marks = {{"line", cells + with_confidence}};
  return f;
}

}  // namespace

void adaptation_figures(const RunFolder& run, Figures& out) {
  each_artifact(run, ArtifactKind::adaptation, out, [&](const Artifact& a) { out.figures.push_back(levels(a)); });
  each_artifact(run, ArtifactKind::adapt_sim, out, [&](const Artifact& a) {
    for (const json& s : a.doc.at("streams")) out.figures.push_back(outcomes(a, s));
  });
  each_artifact(run, ArtifactKind::adapt_traces, out, [&](const Artifact& a) {
    if (!a.doc.is_object()) throw std::invalid_argument("expected an object of streams");
    for (const auto& [stream, strategies] : a.doc.items()) out.figures.push_back(walk(a, stream, strategies));
  });
}

}  // namespace caliprox::report
