// The frontier and the search's progress (tune), and the profile's heat map.
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "knobs/knobs.h"
#include "qos/metrics.h"
#include "report/figure.h"

namespace caliprox::report {

using nlohmann::json;

namespace {

json quantitative(const char* field, const std::string& title, json extra = json::object()) {
  json e = {{"field", field}, {"type", "quantitative"}, {"title", title}};
  e.update(extra);
  return e;
}

// The loss the goal allows, in loss units (a relative goal scales the exact value).
double goal_loss(const json& goal, double baseline) {
  const double max = goal.at("max_loss").get<double>();
  return goal.value("kind", "absolute") == "relative" ? max * std::abs(baseline) : max;
}

const char* kTune = "measured, tune split";
const char* kTest = "measured, test split";
const char* kPredicted = "predicted";

Figure frontier(const Artifact& a) {
  const json& d = a.doc;
  const std::string unit = d.at("loss_unit").get<std::string>() == "pp" ? "pp" : d.at("metric").get<std::string>();
  // (An unknown metric name reads as an accuracy: higher is better.)
  const Metric metric = metric_from_name(d.at("metric").get<std::string>()).value_or(Metric::top1);
  const json& base = d.at("baseline").at("qos");
  Figure f;
  f.id = "frontier" + (a.network.empty() ? "" : "-" + a.network);
  f.section = "Frontier";
  f.title = fmt::format("Pareto frontier{}: QoS loss against speedup", a.network.empty() ? "" : " of " + a.network);
  f.sources = {a.path};
  int links = 0;
  for (const json& c : d.at("configurations")) {
    const int level = c.at("level").get<int>();
    const std::string label = level == 0 ? "0 exact" : std::to_string(level);
    const json& sp = c.at("speedup");
    const json& loss = c.at("qos_loss");
    json common = {{"level", level}, {"id", c.at("id")}, {"label", label}, {"knobs", c.at("knobs").size()}};
    auto row = [&](const char* kind, const json& speedup, const json& l) {
      json r = common;
      r["kind"] = kind;
      r["speedup"] = number_or_null(speedup);
      r["loss"] = number_or_null(l);
      f.data.push_back(r);
    };
    row(kTune, sp.at("measured"), loss.at("tune"));
    row(kTest, sp.at("measured"), loss.at("test"));
    // The predictor's QoS on the tune split, as a loss against the exact network's.
    json predicted_loss = nullptr;
    const json& qp = c.at("qos_predicted");
    if (qp.is_number() && base.at("tune").is_number())
      predicted_loss = qos_loss(metric, base["tune"].get<double>(), qp.get<double>());
    if (level == 0) predicted_loss = 0.0;
    row(kPredicted, sp.at("predicted"), predicted_loss);
    const json& last = f.data.back();
    const json& tune_row = f.data[f.data.size() - 3];
    if (level > 0 && !last["speedup"].is_null() && !last["loss"].is_null() && !tune_row["speedup"].is_null() &&
        !tune_row["loss"].is_null()) {
      f.data.push_back({{"kind", "link"},
                        {"level", level},
                        {"speedup", last["speedup"]},
                        {"loss", last["loss"]},
                        {"speedup2", tune_row["speedup"]},
                        {"loss2", tune_row["loss"]}});
      ++links;
    }
  }
  const double goal = goal_loss(d.at("goal"), base.at("tune").is_number() ? base["tune"].get<double>() : 0.0);
  f.data.push_back({{"kind", "goal"}, {"loss", goal}});
  f.caption = fmt::format(
      "Each approximation level (numbered; 0 is the exact network) at its measured speedup over the exact network "
      "and its QoS loss ({}) on the tune and test splits; hollow circles are what the search predicted, joined to the "
      "measured point. The dashed line is the goal (loss {} {}).",
      unit, goal, unit);
  const json color = {{"field", "kind"},
                      {"type", "nominal"},
                      {"title", nullptr},
                      {"scale",
                       {{"domain", {kTune, kTest, kPredicted}}, {"range", {"#1f5fa8", "#e07b00", "#555555"}}}}};
  const json x = quantitative("speedup", "speedup (x)", {{"scale", {{"zero", false}}}});
  const json y = quantitative("loss", fmt::format("QoS loss ({})", unit));
  f.spec = {
      {"width", 560},
      {"height", 340},
      {"layer",
       {layer_of("datum.kind === 'goal'", {{"type", "rule"}, {"strokeDash", {6, 4}}, {"color", "#b8322a"}}, {{"y", y}}),
        layer_of("datum.kind === 'link'", {{"type", "rule"}, {"color", "#999999"}},
                 {{"x", x}, {"y", y}, {"x2", {{"field", "speedup2"}}}, {"y2", {{"field", "loss2"}}}}),
        layer_of(fmt::format("datum.kind === '{}'", kPredicted), {{"type", "point"}, {"filled", false}, {"size", 70}},
                 {{"x", x}, {"y", y}, {"color", color}, {"tooltip", {{{"field", "id"}}, {{"field", "speedup"}}}}}),
        layer_of(fmt::format("datum.kind === '{}' || datum.kind === '{}'", kTune, kTest),
                 {{"type", "point"}, {"filled", true}, {"size", 70}},
                 {{"x", x},
                  {"y", y},
                  {"color", color},
                  {"tooltip", {{{"field", "id"}}, {{"field", "kind"}}, {{"field", "speedup"}}, {{"field", "loss"}}}}}),
        layer_of(fmt::format("datum.kind === '{}'", kTune),
                 {{"type", "text"}, {"dx", 9}, {"dy", -7}, {"align", "left"}},
                 {{"x", x}, {"y", y}, {"text", {{"field", "label"}}}})}}};
  f.marks = {{"rule", 1 + links},
             {"symbol", count_rows(f.data, "kind", kTune, {"speedup", "loss"}) +
                            count_rows(f.data, "kind", kTest, {"speedup", "loss"}) +
                            count_rows(f.data, "kind", kPredicted, {"speedup", "loss"})},
             {"text", count_rows(f.data, "kind", kTune, {"speedup", "loss"})}};
  return f;
}

// Best speedup within the goal after each evaluation of the search phase.
Figure progress(const Artifact& records, const Artifact* pareto) {
  const json& info = records.doc.at("header").at("info");
  const json& qos = info.at("qos");
  double limit = qos.at("max_loss").get<double>();
  if (qos.value("relative", false) && pareto) {
    const json& base = pareto->doc.at("baseline").at("qos").at("tune");
    if (base.is_number()) limit *= std::abs(base.get<double>());
  }
  Figure f;
  f.id = "progress" + (records.network.empty() ? "" : "-" + records.network);
  f.section = "Frontier";
  f.title = "Search progress: best speedup within the goal against evaluations";
  f.sources = {records.path};
  const json& search = info.at("search");
  const std::string qos_mode = search.value("qos_mode", "?");
  double best = 0;
  int n = 0, within = 0;
  for (const json& r : records.doc.at("records")) {
    if (r.value("phase", "") != "search") continue;
    const json& sp = r.at("speedup");
    const json speedup = number_or_null(sp.at("measured").is_number() ? sp.at("measured") : sp.at("predicted"));
    const json loss = number_or_null(r.at("qos_loss"));
    const bool ok = loss.is_number() && loss.get<double>() <= limit && speedup.is_number();
    if (ok) {
      best = std::max(best, speedup.get<double>());
      ++within;
    }
    f.data.push_back({{"evaluation", ++n},
                      {"speedup", speedup},
                      {"loss", loss},
                      {"within", ok ? "within the goal" : "over the goal"},
                      {"best", best > 0 ? json(best) : json(nullptr)}});
  }
  f.caption = fmt::format(
      "The {} evaluations of the search phase ({} QoS, {} of them within the goal of loss <= {}): each configuration's "
      "speedup, and the best speedup within the goal so far (line).",
      n, qos_mode, within, limit);
  const json x = quantitative("evaluation", "evaluation");
  f.spec = {{"width", 560},
            {"height", 260},
            {"layer",
             {layer_of("datum.speedup !== null", {{"type", "point"}, {"filled", true}, {"size", 14}, {"opacity", 0.45}},
                       {{"x", x},
                        {"y", quantitative("speedup", "speedup (x)")},
                        {"color",
                         {{"field", "within"},
                          {"type", "nominal"},
                          {"title", nullptr},
                          {"scale",
                           {{"domain", {"within the goal", "over the goal"}}, {"range", {"#1f5fa8", "#c9c9c9"}}}}}}}),
              layer_of("datum.best !== null", {{"type", "line"}, {"interpolate", "step-after"}, {"color", "#b8322a"}},
                       {{"x", x}, {"y", quantitative("best", "speedup (x)")}})}}};
  f.marks = {{"symbol", count_rows(f.data, "", "", {"speedup"})}, {"line", within > 0 ? 1 : 0}};
  return f;
}

Figure heat_map(const Artifact& a) {
  const json& d = a.doc;
  Figure f;
  f.id = "profile-" + std::to_string(d.at("batch_size").get<int>()) + (a.network.empty() ? "" : "-" + a.network);
  f.section = "Profile";
  f.title =
      fmt::format("Measured against nominal speedup per layer and knob (batch {}, {} on {})",
                  d.at("batch_size").get<int>(), d.at("backend").get<std::string>(), d.at("target").get<std::string>());
  f.sources = {a.path};
  auto add = [&](const std::string& layer, const std::string& knob, double speedup) {
    const Knob* k = find_knob(knob);
    const double nominal = k ? k->nominal_speedup : NAN;
    f.data.push_back({{"layer", layer},
                      {"knob", knob},
                      {"speedup", speedup},
                      {"nominal", number_or_null(nominal)},
                      {"ratio", number_or_null(speedup / nominal)}});
  };
  for (const json& l : d.at("layers")) {
    const std::string node = l.at("node").get<std::string>();
    const json& knobs = l.at("knobs");
    if (!knobs.contains("fp32")) continue;
    const double exact = knobs["fp32"].at("latency_ms").at("median").get<double>();
    for (const auto& [knob, m] : knobs.items())
      if (knob != "fp32") add(node, knob, exact / m.at("latency_ms").at("median").get<double>());
  }
  const json reshape = d.value("reshape", json::object());  // (items() of a temporary would dangle)
  for (const auto& [node, knobs] : reshape.items())
    for (const auto& [knob, m] : knobs.items()) add(node, knob, m.at("speedup").get<double>());
  const json& ctx = d.value("context", json::object());
  f.caption = fmt::format(
      "Each cell: the layer's measured speedup under the knob (exact fp32 latency over the knob's, medians) divided "
      "by the knob's nominal speedup (r/(r-1) for perforation and sampling, 32/bits for precision, the catalogue's "
      "figure for pruning and low rank): 1 means the knob pays what it promises. The tooltip gives both speedups. "
      "Measured with {} thread(s) on {}.",
      ctx.value("threads", 0), ctx.value("cpu", std::string("an unrecorded CPU")));
  f.spec = {{"mark", {{"type", "rect"}}},
            {"width", {{"step", 13}}},
            {"height", {{"step", 16}}},
            {"encoding",
             {{"x", {{"field", "knob"}, {"type", "nominal"}, {"sort", nullptr}, {"title", "knob"}}},
              {"y", {{"field", "layer"}, {"type", "nominal"}, {"sort", nullptr}, {"title", "layer"}}},
              {"color",
               {{"field", "ratio"},
                {"type", "quantitative"},
                {"title", "measured / nominal"},
                {"scale", {{"scheme", "redyellowblue"}, {"domain", {0, 2}}, {"domainMid", 1}, {"clamp", true}}}}},
              {"tooltip",
               {{{"field", "layer"}},
                {{"field", "knob"}},
                {{"field", "speedup"}},
                {{"field", "nominal"}},
                {{"field", "ratio"}}}}}}};
  f.marks = {{"rect", count_rows(f.data, "", "", {"ratio"})}};
  return f;
}

}  // namespace

void tune_figures(const RunFolder& run, Figures& out) {
  each_artifact(run, ArtifactKind::pareto, out, [&](const Artifact& a) { out.figures.push_back(frontier(a)); });
  each_artifact(run, ArtifactKind::tune_records, out,
                [&](const Artifact& a) { out.figures.push_back(progress(a, run.next_to(a, ArtifactKind::pareto))); });
}

void profile_figures(const RunFolder& run, Figures& out) {
  each_artifact(run, ArtifactKind::profile, out, [&](const Artifact& a) { out.figures.push_back(heat_map(a)); });
}

}  // namespace caliprox::report
