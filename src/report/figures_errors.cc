// The output errors of inject's candidates (errors.json): per candidate, the
// distribution of |error| against the exact network (quantiles) and its mean.
#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "report/figure.h"

namespace caliprox::report {

using nlohmann::json;

namespace {

Figure distributions(const Artifact& a) {
  const json& d = a.doc;
  Figure f;
  const std::string network = d.value("network", a.network);
  f.id = "errors-" + (a.network.empty() ? std::string("network") : a.network);
  f.section = "Output errors";
  f.title =
      fmt::format("Output errors of {} candidate(s) of {} against the exact network", d.at("candidates").size(), network);
  f.sources = {a.path};
  struct Row {
    json row;
    double mean_abs;
  };
  std::vector<Row> rows;
  for (const json& c : d.at("candidates")) {
    const json& e = c.at("errors").at("vs_exact");
    const json& q = e.at("abs_quantiles");
    json r = {{"name", c.at("name")},
              {"mean_abs", number_or_null(e.at("mean_abs"))},
              {"bias", number_or_null(e.at("bias"))},
              {"std", number_or_null(e.at("std"))},
              {"p50", number_or_null(q.value("p50", json()))},
              {"p90", number_or_null(q.value("p90", json()))},
              {"p99", number_or_null(q.value("p99", json()))},
              {"max", number_or_null(q.value("max", json()))}};
    if (e.contains("flip_rate")) r["flip_rate"] = number_or_null(e["flip_rate"]);
    const json& qos = c.at("errors").value("qos", json::object());
    if (qos.contains("value")) r["qos"] = number_or_null(qos["value"]);
    rows.push_back({r, r["mean_abs"].is_number() ? r["mean_abs"].get<double>() : 1e300});
  }
  // Ordered by mean |error|: the distributions then read as a staircase.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.mean_abs < y.mean_abs; });
  int rank = 0;
  for (Row& r : rows) {
    r.row["rank"] = ++rank;
    f.data.push_back(std::move(r.row));
  }
  f.caption = fmt::format(
      "Each candidate (x: ordered by mean |error|) on {} samples of the {} split, output '{}': the bar spans the "
      "median to the 99th percentile of |approximate - exact| over the output's elements, the dot is the mean, the "
      "tick the maximum. The tooltip names the candidate.",
      d.value("samples", 0), d.value("split", "?"), d.value("output", "?"));
  const json x = {{"field", "rank"}, {"type", "quantitative"}, {"title", "candidate (by mean |error|)"}};
  const json tip = {{{"field", "name"}}, {{"field", "mean_abs"}}, {{"field", "p50"}}, {{"field", "p99"}},
                    {{"field", "max"}},  {{"field", "bias"}},     {{"field", "std"}}};
  auto layer = [&](json mark, json enc) {
    enc["x"] = x;
    enc["tooltip"] = tip;
    return json{{"mark", std::move(mark)}, {"encoding", std::move(enc)}};
  };
  const json y = {{"field", "p50"}, {"type", "quantitative"}, {"title", "|error| against the exact network"}};
  f.spec = {{"width", 620},
            {"height", 280},
            {"layer",
             {layer({{"type", "rule"}, {"color", "#1f5fa8"}, {"strokeWidth", 2}},
                    {{"y", y}, {"y2", {{"field", "p99"}}}}),
              layer({{"type", "point"}, {"filled", true}, {"size", 20}, {"color", "#b8322a"}},
                    {{"y", {{"field", "mean_abs"}, {"type", "quantitative"}}}}),
              layer({{"type", "tick"}, {"color", "#555555"}, {"thickness", 1}},
                    {{"y", {{"field", "max"}, {"type", "quantitative"}}}})}}};
  f.marks = {{"rule", count_rows(f.data, "", "", {"p50", "p99"})},
             {"symbol", count_rows(f.data, "", "", {"mean_abs"})},
             {"rect", count_rows(f.data, "", "", {"max"})}};
  return f;
}

}  // namespace

void error_figures(const RunFolder& run, Figures& out) {
  each_artifact(run, ArtifactKind::errors, out, [&](const Artifact& a) {
    if (a.doc.at("candidates").empty()) out.problems.push_back({a.path, "no candidates: nothing to draw"});
    else out.figures.push_back(distributions(a));
  });
}

}  // namespace caliprox::report
