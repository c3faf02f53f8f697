#pragma once
// The plotting libraries a report page inlines (Vega and Vega-Lite's browser
// builds), embedded into the binary at build time by scripts/embed_report_js.py
// from src/report/web/node_modules. A build without them (no npm at build
// time) has none, with the reason: pages are then written without plots.
#include <string_view>
#include <vector>

namespace caliprox::report {

struct PlotLibrary {
  std::string_view name;
  std::string_view version;
  std::string_view license;  // the library's licence text, carried into every page
  std::string_view script;   // minified browser build
};

struct PlotLibraries {
  std::vector<PlotLibrary> libraries;  // in load order; empty when not built in
  std::string_view missing;            // why they are not built in (empty when they are)
};

const PlotLibraries& plot_libraries();

}  // namespace caliprox::report
