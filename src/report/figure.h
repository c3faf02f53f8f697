#pragma once
// One plot of a report: its data (rows, embedded in the page so that others
// can re-plot them), a Vega-Lite specification that draws them, and how many
// marks of each kind a browser must draw (the page's test counts them).
// The builders, one per family of artifacts, turn artifacts into figures.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/run_folder.h"

namespace caliprox::report {

struct Figure {
  std::string id;       // unique in the page, [a-z0-9-]
  std::string section;  // heading it is listed under: "Frontier", "Profile", ...
  std::string title;
  std::string caption;                              // what is plotted, in a sentence or two
  std::vector<std::string> sources;                 // the artifacts it draws (paths in the run folder)
  nlohmann::json data = nlohmann::json::array();    // the plotted rows (objects)
  nlohmann::json spec;                              // Vega-Lite, reading its rows from the named data set "rows"
  nlohmann::json marks = nlohmann::json::object();  // {"symbol": 12, "rule": 3}: data marks drawn
};

// A builder's output: figures, and problems with artifacts whose content did
// not match their schema (the rest is still drawn).
struct Figures {
  std::vector<Figure> figures;
  std::vector<Problem> problems;
};

// pareto.json (+ records.jsonl of the same folder): the frontier, and the search's progress.
void tune_figures(const RunFolder& run, Figures& out);
// profile*.json: measured against nominal speedup per (layer, knob).
void profile_figures(const RunFolder& run, Figures& out);
// budgets.json, with errors.json candidates and joint.json finalists placed in it.
void budget_figures(const RunFolder& run, Figures& out);
// errors.json: the candidates' error distributions.
void error_figures(const RunFolder& run, Figures& out);
// adaptation.json, adapt-sim.json, adapt-traces.json.
void adaptation_figures(const RunFolder& run, Figures& out);

// Shared by the builders: a number or null (NaN, missing) for a data row.
nlohmann::json number_or_null(const nlohmann::json& v);
// A Vega-Lite layer over the rows that pass `filter` (an expression on `datum`).
nlohmann::json layer_of(const std::string& filter, nlohmann::json mark, nlohmann::json encoding);
// Counts, for Figure::marks, the rows with a non-null value at each key.
int count_rows(const nlohmann::json& rows, const std::string& kind_key, const std::string& kind,
               const std::vector<std::string>& non_null);
// A builder's part that failed on unexpected content: the problem it becomes.
Problem content_problem(const Artifact& a, const std::exception& e);
// Calls `build` on every artifact of `kind`; one whose content throws (a
// missing key, a wrong type) becomes a content_problem, the others go on.
void each_artifact(const RunFolder& run, ArtifactKind kind, Figures& out,
                   const std::function<void(const Artifact&)>& build);

}  // namespace caliprox::report
