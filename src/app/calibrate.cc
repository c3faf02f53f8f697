// caliprox calibrate: the region of error-model parameters in which the
// application meets its goal (tune/calibrate_run.h does the work), written
// to budgets.json; and --query, which answers whether a point lies inside.
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <fmt/format.h>

#include "app/common.h"
#include "tune/calibrate_run.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

// --query budgets.json NAME=VALUE ...: inside (0), outside (3), uncertain (1).
Status run_query(CalibrateSettings& s) {
  std::ifstream f(*s.query_path);
  if (!f) return invalid_input("--query {}: cannot read it", *s.query_path);
  const nlohmann::json doc = nlohmann::json::parse(f, nullptr, false);
  if (doc.is_discarded() || doc.value("format", "") != "caliprox-budgets" || !doc.contains("axes") ||
      !doc.contains("points"))
    return invalid_input("--query {}: not a budgets.json written by caliprox calibrate", *s.query_path);
  std::vector<std::string> names;
  for (const auto& a : doc["axes"]) names.push_back(a.at("name").get<std::string>());
  std::vector<std::optional<double>> x(names.size());
  for (const std::string& arg : s.args) {
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const auto it = std::find(names.begin(), names.end(), name);
    if (eq == std::string::npos || it == names.end())
      return invalid_input("--query: '{}' is not NAME=VALUE for a parameter of {} (they are: {})", arg, *s.query_path,
                           fmt::join(names, ", "));
    char* end = nullptr;
    const double v = std::strtod(arg.c_str() + eq + 1, &end);
    if (end == arg.c_str() + eq + 1 || *end != '\0' || !std::isfinite(v))
      return invalid_input("--query: '{}': the value is not a number", arg);
    x[static_cast<size_t>(it - names.begin())] = v;
  }
  for (size_t k = 0; k < names.size(); ++k)
    if (!x[k]) return invalid_input("--query: no value for '{}' (give NAME=VALUE for each of: {})", names[k],
                                    fmt::join(names, ", "));
  // The region the file describes: its points, judged by dominance as the
  // search judged them (no reference sample needed for that).
  std::vector<CalibrationAxis> axes;
  for (const auto& a : doc["axes"]) axes.push_back({a.at("name").get<std::string>(), a.at("lo"), a.at("hi")});
  CP_ASSIGN_OR_RETURN(CalibrationRegion region, CalibrationRegion::create(std::move(axes), 1));
  for (const auto& p : doc["points"]) {
    std::vector<double> values;
    for (const auto& name : names) values.push_back(p.at("values").at(name).get<double>());
    const std::string verdict = p.at("verdict").get<std::string>();
    region.add({std::move(values), verdict == "valid"     ? Verdict::valid
                                   : verdict == "invalid" ? Verdict::invalid
                                                          : Verdict::uncertain});
  }
  std::vector<double> point;
  for (const auto& v : x) point.push_back(*v);
  const Verdict verdict = region.classify(point);
  const std::string answer = verdict == Verdict::valid     ? "inside"
                             : verdict == Verdict::invalid ? "outside"
                                                           : "uncertain";
  if (s.common.json) fmt::print("{}\n", nlohmann::json{{"answer", answer}}.dump());
  else fmt::print("{}\n", answer);
  s.query_exit = answer == "inside" ? 0 : answer == "outside" ? 3 : 1;
  return {};
}

}  // namespace

Status run_calibrate(CalibrateSettings& s) {
  if (s.query_path) return run_query(s);
  if (s.args.size() != 1) return invalid_input("calibrate: expected one experiment file (or --query FILE NAME=VALUE ...)");
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.args[0]));
  if (!exp.application)
    return invalid_input("{}: calibrate needs an application section (the application's own check)", exp.source_path);
  if (!exp.calibrate)
    return invalid_input("{}: calibrate needs a calibrate section (error_model and the axes to search)",
                         exp.source_path);
  if (s.points) exp.calibrate->points = *s.points;
  const std::string dir = run_directory(s.common, exp.name);
  CP_TRY(ensure_directory(dir));
  const nlohmann::json identity = calibration_identity(exp);
  CP_ASSIGN_OR_RETURN(RecordStore records, RecordStore::open(dir + "/records.jsonl", fingerprint_of(identity.dump()),
                                                             identity.dump()));
  for (const auto& w : records.warnings()) log_warn("{}", w);
  if (!records.records().empty())
    log_info("resuming: {} application runs recorded in {}", records.records().size(), records.path());
  log_info("calibrate: {} axes, up to {} points of {} run(s), application {}", exp.calibrate->axes.size(),
           exp.calibrate->points, exp.application->repeats, exp.application->command[0]);
  const bool tty = isatty(2) && !s.common.quiet;
  auto progress = [&](const CalibrationProgress& p) {
    if (tty)
      fmt::print(stderr, "\r\033[K  point {}/{}: {} runs ({} replayed); valid {:.1f} %, unknown {:.1f} % of the box",
                 p.points, exp.calibrate->points, p.runs, p.replayed, 100 * p.valid_fraction,
                 100 * p.unknown_fraction);
  };
  CP_ASSIGN_OR_RETURN(CalibrationResult r, run_calibration(exp, records, dir + "/requests", progress));
  if (tty) fmt::print(stderr, "\n");
  if (r.stop == CalibrationStop::interrupted)
    return interrupted_status("calibrate", records.path(), records.records().size());
  const nlohmann::json budgets = budgets_json(exp, r);
  CP_TRY(write_json_file(dir + "/budgets.json", budgets));
  if (s.common.json) {
    fmt::print("{}\n", nlohmann::json{{"budgets", dir + "/budgets.json"},
                                      {"points", r.region.points().size()},
                                      {"runs", budgets["runs"]},
                                      {"volume_fraction", r.region.valid_fraction()},
                                      {"uncertain_fraction", r.region.unknown_fraction()},
                                      {"stopped_by", calibration_stop_name(r.stop)}}
                           .dump());
  } else {
    fmt::print("{}: {} points, {} application runs ({} replayed); stopped by {}\n", dir + "/budgets.json",
               r.region.points().size(), r.fresh + r.replayed, r.replayed, calibration_stop_name(r.stop));
    fmt::print("  valid region {:.1f} % of the box ({} boxes), uncertain {:.1f} %\n",
               100 * r.region.valid_fraction(), budgets["region"]["boxes"].size(), 100 * r.region.unknown_fraction());
  }
  return {};
}

}  // namespace caliprox
