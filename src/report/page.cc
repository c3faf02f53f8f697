#include "report/page.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "report/assets.h"

namespace caliprox::report {

using nlohmann::json;

namespace {

// Rows shown in a figure's table; the embedded data holds them all.
constexpr size_t kTableRows = 200;

const char* kStyle = R"css(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; max-width: 1080px; margin: 1.5em auto;
       padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin: 0.6em 0 0.3em; }
.meta, figcaption, .src { color: #555; font-size: 0.9em; }
figure { margin: 1em 0 2em; break-inside: avoid; page-break-inside: avoid; }
.plot { overflow-x: auto; } .plot svg { max-width: 100%; height: auto; }
.noplot { border: 1px dashed #b8322a; color: #7a1f1a; padding: 0.5em; font-size: 0.9em; }
.problems { border-left: 4px solid #b8322a; background: #fbeeed; padding: 0.5em 1em; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.4em 0; }
td, th { border: 1px solid #ddd; padding: 1px 6px; text-align: right; } th { background: #f3f3f3; }
td.t { text-align: left; } summary { cursor: pointer; color: #1f5fa8; font-size: 0.9em; }
pre { white-space: pre-wrap; font-size: 0.75em; }
@media print { body { max-width: none; margin: 0; } nav, .licences { display: none; } h2 { break-after: avoid; } }
)css";

// The page's own script: draws every figure from the embedded data with
// Vega-Lite (SVG, so that it prints sharply), and marks each plot drawn.
const char* kBoot = R"js(
(function () {
  var doc = JSON.parse(document.getElementById('caliprox-report-data').textContent);
  doc.figures.forEach(function (f) {
    var el = document.getElementById('plot-' + f.id);
    var spec = Object.assign({}, f.spec, { data: { values: f.data } });
    spec.config = { font: 'DejaVu Sans, Helvetica, Arial, sans-serif', view: { stroke: '#ddd' } };
    try {
      var view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'svg', container: el });
      view.runAsync().then(function () { el.setAttribute('data-drawn', 'yes'); }, function (e) {
        el.textContent = 'This plot could not be drawn: ' + e; console.error('caliprox report: ' + f.id + ': ' + e);
      });
    } catch (e) {
      el.textContent = 'This plot could not be drawn: ' + e; console.error('caliprox report: ' + f.id + ': ' + e);
    }
  });
})();
)js";

std::string cell(const json& v) {
  if (v.is_string()) return escape_html(v.get<std::string>());
  if (v.is_null()) return "&ndash;";
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  return escape_html(v.dump());
}

// A figure's rows as an HTML table: the columns in first-seen order.
std::string table(const json& rows) {
  std::vector<std::string> cols;
  for (const json& r : rows)
    for (const auto& [k, v] : r.items())
      if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  std::string out = "<table><tr>";
  for (const std::string& c : cols) out += "<th>" + escape_html(c) + "</th>";
  out += "</tr>\n";
  for (size_t i = 0; i < rows.size() && i < kTableRows; ++i) {
    out += "<tr>";
    for (const std::string& c : cols) {
      const json v = rows[i].contains(c) ? rows[i][c] : json();
      out += fmt::format("<td{}>{}</td>", v.is_string() ? " class=\"t\"" : "", cell(v));
    }
    out += "</tr>\n";
  }
  out += "</table>\n";
  if (rows.size() > kTableRows)
    out += fmt::format("<p class=\"src\">The first {} of {} rows; all are in the embedded data.</p>\n", kTableRows,
                       rows.size());
  return out;
}

// JSON that cannot end the <script> element it sits in: every '<' (found in
// strings only) becomes \u003c.
std::string script_json(const json& v) {
  const std::string text = v.dump();
  std::string out;
  out.reserve(text.size());
  for (char c : text) out += c == '<' ? std::string("\\u003c") : std::string(1, c);
  return out;
}

std::string figure_html(const Figure& f, bool plots, const std::string& plots_missing) {
  std::string out = fmt::format("<figure id=\"fig-{}\">\n<h3>{}</h3>\n", f.id, escape_html(f.title));
  if (plots) out += fmt::format("<div class=\"plot\" id=\"plot-{}\"></div>\n", f.id);
  else
    out += fmt::format("<div class=\"noplot\" id=\"plot-{}\">Plot not drawn: {}. Its data is in the table below and "
                       "embedded in this page.</div>\n",
                       f.id, escape_html(plots_missing));
  out += fmt::format("<figcaption>{} <span class=\"src\">Drawn from {}.</span></figcaption>\n", escape_html(f.caption),
                     escape_html(fmt::format("{}", fmt::join(f.sources, ", "))));
  out += fmt::format("<details{}><summary>Data ({} rows)</summary>\n{}</details>\n</figure>\n", plots ? "" : " open",
                     f.data.size(), table(f.data));
  return out;
}

// The figures' sections, each once, in the order the figures come.
std::vector<std::string> sections_of(const std::vector<Figure>& figures) {
  std::vector<std::string> out;
  for (const Figure& f : figures)
    if (std::find(out.begin(), out.end(), f.section) == out.end()) out.push_back(f.section);
  return out;
}

// Figure ids made safe and unique.
void settle_ids(std::vector<Figure>& figures) {
  std::set<std::string> seen;
  for (Figure& f : figures) {
    std::string id;
    for (char c : f.id)
      id += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? static_cast<char>(std::tolower(c)) : '-';
    std::string unique = id;
    for (int n = 2; seen.count(unique); ++n) unique = fmt::format("{}-{}", id, n);
    seen.insert(unique);
    f.id = unique;
  }
}

}  // namespace

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_page(const RunFolder& run, const Figures& figures, const PageOptions& options,
                        const std::string& plots_missing) {
  const bool plots = plots_missing.empty();
  const std::string name = run.experiment.empty() ? run.root : run.experiment;
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>caliprox report: {0}</title>\n<style>{1}</style>\n</head>\n<body>\n"
      "<header><h1>caliprox report: {0}</h1>\n<p class=\"meta\">Run folder <code>{2}</code>; {3} artifact(s), {4} "
      "figure(s). Written by {5}.</p></header>\n",
      escape_html(name), kStyle, escape_html(run.root), run.artifacts.size(), figures.figures.size(),
      escape_html(options.generator));
  if (!figures.problems.empty()) {
    out += "<section class=\"problems\" id=\"problems\"><h2>Not drawn</h2>\n<ul>\n";
    for (const Problem& p : figures.problems)
      out += fmt::format("<li><code>{}</code>: {}</li>\n", escape_html(p.path), escape_html(p.what));
    out += "</ul></section>\n";
  }
  const std::vector<std::string> sections = sections_of(figures.figures);
  out += "<nav><ul>\n";
  for (const Figure& f : figures.figures)
    out += fmt::format("<li><a href=\"#fig-{}\">{}</a></li>\n", f.id, escape_html(f.title));
  out += "</ul></nav>\n";
  json data = {{"format", "caliprox-report"},
               {"version", 1},
               {"experiment", run.experiment},
               {"figures", json::array()}};
  for (const std::string& s : sections) {
    out += fmt::format("<section>\n<h2>{}</h2>\n", escape_html(s));
    for (const Figure& f : figures.figures) {
      if (f.section != s) continue;
      out += figure_html(f, plots, plots_missing);
      data["figures"].push_back({{"id", f.id},
                                 {"section", f.section},
                                 {"title", f.title},
                                 {"sources", f.sources},
                                 {"marks", f.marks},
                                 {"data", f.data},
                                 {"spec", f.spec}});
    }
    out += "</section>\n";
  }
  out += "<script type=\"application/json\" id=\"caliprox-report-data\">" + script_json(data) + "</script>\n";
  if (plots) {
    out += "<section class=\"licences\"><h2>Plotting libraries</h2>\n";
    for (const PlotLibrary& lib : plot_libraries().libraries)
      out += fmt::format("<details><summary>{} {} (inlined)</summary><pre>{}</pre></details>\n", escape_html(lib.name),
                         escape_html(lib.version), escape_html(lib.license));
    out += "</section>\n";
    for (const PlotLibrary& lib : plot_libraries().libraries)
      out += fmt::format("<script>/* {} {} */\n{}\n</script>\n", lib.name, lib.version, lib.script);
    out += fmt::format("<script>{}</script>\n", kBoot);
  }
  out += "</body>\n</html>\n";
  return out;
}

Result<Report> build_report(const std::string& dir, const PageOptions& options) {
  CP_ASSIGN_OR_RETURN(RunFolder run, read_run_folder(dir));
  Figures figures;
  figures.problems = run.problems;
  tune_figures(run, figures);
  profile_figures(run, figures);
  budget_figures(run, figures);
  error_figures(run, figures);
  adaptation_figures(run, figures);
  settle_ids(figures.figures);
  Report r;
  if (!options.plots) r.plots_missing = "the page was written with --no-plots";
  else if (plot_libraries().libraries.empty())
    r.plots_missing =
        fmt::format("this caliprox was built without the plotting libraries: {}", plot_libraries().missing);
  r.html = render_page(run, figures, options, r.plots_missing);
  r.figures = figures.figures.size();
  r.sections = sections_of(figures.figures);
  r.problems = std::move(figures.problems);
  return r;
}

}  // namespace caliprox::report
