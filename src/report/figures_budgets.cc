// The calibrated error budget (budgets.json): one 2-D view per pair of axes,
// with the judged points, the region's boxes, and the candidates placed in it
// (errors.json of inject, joint.json finalists of guided tuning).
#include <cmath>
#include <map>
#include <string>

#include <fmt/format.h>

#include "report/figure.h"
#include "tune/budget_space.h"

namespace caliprox::report {

using nlohmann::json;

namespace {

struct Candidate {
  std::string name;
  std::string source;
  std::string category;  // accepted, discarded, checked: <verdict>
  std::vector<double> x;
};

// Every errors.json candidate, placed by the budget space. A candidate's own
// network gives its axes; the other networks' axes take their exact
// network's errors (the "exact" entry of their errors.json).
std::vector<Candidate> inject_candidates(const RunFolder& run, const BudgetSpace& space,
                                         std::vector<Problem>& problems) {
  std::map<std::string, const Artifact*> by_network;
  for (const Artifact* a : run.all(ArtifactKind::errors)) by_network[a->doc.value("network", a->network)] = a;
  std::vector<Candidate> out;
  for (const auto& [network, a] : by_network) {
    for (const json& c : a->doc.at("candidates")) {
      auto errors = [&, n = network](const std::string& which) -> const json& {
        if (which == n) return c.at("errors");
        auto it = by_network.find(which);
        if (it == by_network.end()) throw std::out_of_range(fmt::format("no errors.json for network '{}'", which));
        return it->second->doc.at("exact");
      };
      try {
        Result<std::vector<double>> x = space.point(errors);
        if (!x.ok()) {
          problems.push_back(
              {a->path, fmt::format("{}: not placed in the budget: {}", c.value("name", "?"), x.status().message())});
          continue;
        }
        const Placement p = space.place(*x, 0.0);
        out.push_back({c.at("name").get<std::string>(), a->path, std::string(placement_name(p)), *x});
      } catch (const std::out_of_range& e) {
        problems.push_back({a->path, fmt::format("{} not placed in the budget: {}", c.value("name", "?"), e.what())});
        break;  // the same for every candidate of this file
      }
    }
  }
  return out;
}

// joint.json's finalists at their measured point, as guided tuning judged them.
std::vector<Candidate> joint_candidates(const RunFolder& run, const BudgetSpace& space) {
  std::vector<Candidate> out;
  for (const Artifact* a : run.all(ArtifactKind::joint)) {
    int i = 0;
    for (const json& f : a->doc.at("finalists")) {
      ++i;
      if (!f.contains("point")) continue;
      std::vector<double> x;
      bool complete = true;
      for (const BudgetAxis& axis : space.axes()) {
        const json& v = f["point"].contains(axis.name) ? f["point"][axis.name] : json();
        complete = complete && v.is_number();
        x.push_back(v.is_number() ? v.get<double>() : NAN);
      }
      if (!complete) continue;
      std::string category = f.at("placement").get<std::string>();
      if (f.contains("application") && f["application"].value("role", "") == "check")
        category = "checked: " + f["application"].value("verdict", "?");
      else if (category == "uncertain") category = "checked: not run";
      out.push_back({fmt::format("finalist {} ({:.2f}x)", i, f.value("speedup_measured", 0.0)), a->path, category, x});
    }
  }
  return out;
}

const std::vector<std::string> kCategories = {
    "valid",          "invalid",          "uncertain",          "accepted",        "discarded",
    "checked: valid", "checked: invalid", "checked: uncertain", "checked: not run"};
const std::vector<std::string> kColors = {"#2e8b57", "#c0392b", "#e0a800", "#1f5fa8", "#7f3c8d",
                                          "#17becf", "#ff7f0e", "#8c564b", "#999999"};

// The categories the rows use, with their colours, in the fixed order (a legend of what is there).
json present_categories(const json& rows) {
  json domain = json::array(), range = json::array();
  for (size_t k = 0; k < kCategories.size(); ++k) {
    bool used = false;
    for (const json& r : rows) used = used || r.value("category", "") == kCategories[k];
    if (used) {
      domain.push_back(kCategories[k]);
      range.push_back(kColors[k]);
    }
  }
  return {{"domain", domain}, {"range", range}};
}

Figure view(const BudgetSpace& space, const json& doc, size_t i, size_t j, const std::vector<Candidate>& candidates,
            const std::vector<std::string>& sources) {
  const BudgetAxis& ax = space.axes()[i];
  const bool one_axis = i == j;
  const BudgetAxis& ay = space.axes()[j];
  Figure f;
  f.id = one_axis ? fmt::format("budget-{}", i) : fmt::format("budget-{}-{}", i, j);
  f.section = "Error budget";
  f.title = one_axis ? fmt::format("Error budget along {}", ax.name)
                     : fmt::format("Error budget: {} against {}", ay.name, ax.name);
  f.sources = sources;
  auto coord = [&](const json& values, const std::string& axis) { return number_or_null(values.at(axis)); };
  int boxes = 0;
  for (const json& b : doc.at("region").at("boxes")) {
    f.data.push_back({{"kind", "region"},
                      {"x", coord(b.at("lo"), ax.name)},
                      {"x2", coord(b.at("hi"), ax.name)},
                      {"y", one_axis ? json(0) : coord(b.at("lo"), ay.name)},
                      {"y2", one_axis ? json(1) : coord(b.at("hi"), ay.name)}});
    ++boxes;
  }
  for (const json& p : doc.at("points")) {
    const json& v = p.at("values");
    f.data.push_back({{"kind", "point"},
                      {"category", p.at("verdict")},
                      {"x", coord(v, ax.name)},
                      {"y", one_axis ? json(0.5) : coord(v, ay.name)},
                      {"passes", fmt::format("{}/{}", p.at("passes").get<int>(), p.at("runs").get<int>())}});
  }
  for (const Candidate& c : candidates)
    f.data.push_back({{"kind", "candidate"},
                      {"category", c.category},
                      {"name", c.name},
                      {"source", c.source},
                      {"x", number_or_null(c.x[i])},
                      {"y", one_axis ? json(0.5) : number_or_null(c.x[j])}});
  const json x = {{"field", "x"},
                  {"type", "quantitative"},
                  {"title", ax.name},
                  {"scale", {{"domain", {ax.lo, ax.hi}}}}};
  const json y =
      one_axis
          ? json{{"field", "y"}, {"type", "quantitative"}, {"axis", nullptr}, {"scale", {{"domain", {0, 1}}}}}
          : json{{"field", "y"}, {"type", "quantitative"}, {"title", ay.name}, {"scale", {{"domain", {ay.lo, ay.hi}}}}};
  const json color = {{"field", "category"},
                      {"type", "nominal"},
                      {"title", nullptr},
                      {"scale", present_categories(f.data)}};
  f.spec = {
      {"width", one_axis ? 520 : 300},
      {"height", one_axis ? 90 : 300},
      {"layer",
       {layer_of("datum.kind === 'region'", {{"type", "rect"}, {"color", "#2e8b57"}, {"opacity", 0.08}, {"clip", true}},
                 {{"x", x}, {"x2", {{"field", "x2"}}}, {"y", y}, {"y2", {{"field", "y2"}}}}),
        layer_of("datum.kind === 'point'", {{"type", "point"}, {"filled", true}, {"size", 22}, {"clip", true}},
                 {{"x", x}, {"y", y}, {"color", color}, {"tooltip", {{{"field", "category"}}, {{"field", "passes"}}}}}),
        layer_of(
            "datum.kind === 'candidate'",
            {{"type", "point"},
             {"shape", "diamond"},
             {"filled", true},
             {"size", 90},
             {"stroke", "black"},
             {"strokeWidth", 0.8},
             {"clip", true}},
            {{"x", x}, {"y", y}, {"color", color}, {"tooltip", {{{"field", "name"}}, {{"field", "category"}}}}})}}};
  const int cands = count_rows(f.data, "kind", "candidate", {"x", "y"});
  f.marks = {{"rect", boxes}, {"symbol", count_rows(f.data, "kind", "point", {"x", "y"}) + cands}};
  f.caption = fmt::format(
      "{} calibration points judged by the application ({} error model, {}), the region where it holds (shaded: the "
      "union of the region's {} boxes{}){}.",
      doc.at("points").size(), doc.at("error_model").value("kind", "?"), doc.value("assumption", "?"), boxes,
      one_axis ? "" : ", projected onto these two axes",
      cands == 0 ? std::string()
                 : fmt::format(", and {} candidates at their measured errors (diamonds): accepted, discarded, or "
                               "checked by the application",
                               cands));
  return f;
}

}  // namespace

void budget_figures(const RunFolder& run, Figures& out) {
  each_artifact(run, ArtifactKind::budgets, out, [&](const Artifact& a) {
    Result<BudgetSpace> space = BudgetSpace::from_json(a.doc, a.path);
    if (!space.ok()) {
      out.problems.push_back({a.path, space.status().message()});
      return;
    }
    std::vector<Candidate> cands = inject_candidates(run, *space, out.problems);
    for (Candidate& c : joint_candidates(run, *space)) cands.push_back(std::move(c));
    std::vector<std::string> sources = {a.path};
    for (ArtifactKind k : {ArtifactKind::errors, ArtifactKind::joint})
      for (const Artifact* s : run.all(k)) sources.push_back(s->path);
    const size_t n = space->axes().size();
    if (n == 1) out.figures.push_back(view(*space, a.doc, 0, 0, cands, sources));
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j) out.figures.push_back(view(*space, a.doc, i, j, cands, sources));
  });
}

}  // namespace caliprox::report
