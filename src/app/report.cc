// caliprox report: draws a run folder's artifacts into one self-contained
// HTML page (src/report/), written atomically, and says what it drew and
// what it could not.
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/settings.h"
#include "report/page.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

Status run_report(const ReportSettings& s) {
  report::PageOptions options;
  options.plots = s.plots;
  options.generator = "caliprox " + s.version;
  CP_ASSIGN_OR_RETURN(report::Report r, report::build_report(s.run_dir, options));
  const std::string path = s.output.value_or((std::filesystem::path(s.run_dir) / "report.html").string());
  CP_TRY(write_file_atomic(path, r.html));
  for (const report::Problem& p : r.problems)
    log_warn("report: {}: {}", (std::filesystem::path(s.run_dir) / p.path).string(), p.what);
  if (s.plots && !r.plots_missing.empty()) log_warn("report: plots not drawn: {}", r.plots_missing);
  // Problems make it an input error: stdout stays empty, the page is still there.
  if (!r.problems.empty())
    return invalid_input("{} artifact problem(s) in {} (listed above and at the top of the page); the rest is drawn "
                         "in {}",
                         r.problems.size(), s.run_dir, path);
  if (s.common.json) {
    fmt::print("{}\n", nlohmann::json{{"report", path},
                                      {"figures", r.figures},
                                      {"sections", r.sections},
                                      {"plots", r.plots_missing.empty()},
                                      {"bytes", r.html.size()}}
                           .dump());
  } else {
    fmt::print("written: {} ({} figure(s): {}; {} KiB{})\n", path, r.figures, fmt::join(r.sections, ", "),
               (r.html.size() + 1023) / 1024, r.plots_missing.empty() ? "" : ", tables only");
  }
  return {};
}

}  // namespace caliprox
