#pragma once
// The report page: one self-contained HTML file (no network access when
// opened) with every figure's data embedded as JSON, drawn by Vega-Lite in
// the browser when the plotting libraries are built in (assets.h), and as
// plain tables besides (printable; readable without JavaScript).
#include <string>
#include <vector>

#include "report/figure.h"
#include "report/run_folder.h"

namespace caliprox::report {

struct PageOptions {
  bool plots = true;      // false: tables only (--no-plots), even where the libraries are built in
  std::string generator;  // "caliprox 0.1.0", shown in the page
};

struct Report {
  std::string html;
  size_t figures = 0;
  std::vector<std::string> sections;  // in page order, each once
  std::vector<Problem> problems;      // artifacts (or parts) that could not be drawn
  std::string plots_missing;          // why the page has no plots; empty when it has them
};

// Reads `dir` (read_run_folder), builds every figure and renders the page.
// Fails only where read_run_folder does; unreadable artifacts are listed in
// the page and in Report::problems.
Result<Report> build_report(const std::string& dir, const PageOptions& options);

// The page for figures already built (tests use it directly).
std::string render_page(const RunFolder& run, const Figures& figures, const PageOptions& options,
                        const std::string& plots_missing);

// Text made safe inside HTML elements and attribute values.
std::string escape_html(std::string_view text);

}  // namespace caliprox::report
