// caliprox calibrate: the region of error-model parameters in which the
// application meets its goal (tune/calibrate_run.h does the work), written
// to budgets.json; and --query, which answers whether a point lies inside.
#include <cmath>
#include <filesystem>
#include <map>
#include <fstream>
#include <unistd.h>

#include <fmt/format.h>

#include "app/common.h"
#include "app/distributed.h"
#include "tune/budget_space.h"
#include "tune/calibrate_run.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

Result<nlohmann::json> read_json(const std::string& path, const char* option, const char* format,
                                 const char* writer) {
  std::ifstream f(path);
  if (!f) return invalid_input("{} {}: cannot read it", option, path);
  nlohmann::json doc = nlohmann::json::parse(f, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("format", "") != format)
    return invalid_input("{} {}: not {} written by {}", option, path,
                         format == std::string("caliprox-budgets") ? "a budgets.json" : "an errors.json", writer);
  return doc;
}

std::string answer_of(Verdict v) { return v == Verdict::valid ? "inside" : v == Verdict::invalid ? "outside" : "uncertain"; }
int exit_of(const std::string& answer) { return answer == "inside" ? 0 : answer == "outside" ? 3 : 1; }

// --query budgets.json --errors errors.json ...: each candidate of the
// errors files, placed in the region. Networks without an errors file sit
// at their axes' least severe values.
Status run_errors_query(CalibrateSettings& s, const nlohmann::json& budgets) {
  std::map<std::string, nlohmann::json> by_network;
  const auto& networks = budgets.value("networks", nlohmann::json::array());
  for (const std::string& path : s.errors_paths) {
    CP_ASSIGN_OR_RETURN(nlohmann::json doc, read_json(path, "--errors", "caliprox-errors", "caliprox inject"));
    if (!doc.contains("network") || !doc.contains("exact") || !doc.contains("candidates") ||
        !doc["candidates"].is_array())
      return invalid_input("--errors {}: no network, exact or candidates (written by an older caliprox inject? "
                           "run it again)", path);
    if (doc.value("experiment", "") != budgets.value("experiment", ""))
      return invalid_input("--errors {}: measured for experiment '{}', the budgets are for '{}'", path,
                           doc.value("experiment", ""), budgets.value("experiment", ""));
    const std::string network = doc["network"].get<std::string>();
    if (std::find(networks.begin(), networks.end(), network) == networks.end())
      return invalid_input("--errors {}: network '{}' is not one of the budgets' ({})", path, network,
                           networks.dump());
    if (by_network.count(network)) return invalid_input("--errors {}: network '{}' has an errors file already", path,
                                                        network);
    by_network[network] = std::move(doc);
  }
  CP_ASSIGN_OR_RETURN(BudgetSpace space, BudgetSpace::from_json(budgets, *s.query_path));
  const CalibrationRegion& region = space.region();
  const auto& axes = budgets.at("axes");
  auto point_for = [&](const std::string& network, const nlohmann::json& errors) -> Result<std::vector<double>> {
    std::vector<double> x;
    for (const auto& a : axes) {
      const std::string net = a.value("network", "network"), param = a.value("param", a.at("name").get<std::string>());
      const auto it = by_network.find(net);
      if (net == network) {
        CP_ASSIGN_OR_RETURN(double v, axis_value(errors, param, net));
        x.push_back(v);
      } else if (it != by_network.end()) {  // another network: exact, at its own measured errors
        CP_ASSIGN_OR_RETURN(double v, axis_value(it->second.at("exact"), param, net));
        x.push_back(v);
      } else {
        x.push_back(a.at("lo").get<double>());
      }
    }
    return x;
  };
  nlohmann::json answers = nlohmann::json::array();
  int worst = 0;
  for (const auto& [network, doc] : by_network) {
    std::vector<std::pair<std::string, const nlohmann::json*>> rows{{"exact", &doc.at("exact")}};
    for (const auto& c : doc.at("candidates")) rows.push_back({c.at("name").get<std::string>(), &c.at("errors")});
    for (const auto& [name, errors] : rows) {
      CP_ASSIGN_OR_RETURN(std::vector<double> x, point_for(network, *errors));
      const std::string answer = answer_of(region.classify(x));
      nlohmann::json values = nlohmann::json::object();
      for (size_t k = 0; k < x.size(); ++k) values[axes[k].at("name").get<std::string>()] = x[k];
      answers.push_back({{"network", network}, {"candidate", name}, {"values", values}, {"answer", answer}});
      const int e = exit_of(answer);
      worst = worst == 3 || e == 3 ? 3 : std::max(worst, e);
    }
  }
  if (s.common.json) {
    fmt::print("{}\n", nlohmann::json{{"answers", answers}}.dump());
  } else {
    for (const auto& a : answers) {
      std::vector<std::string> v;
      for (const auto& [k, x] : a["values"].items()) v.push_back(fmt::format("{}={:.4g}", k, x.get<double>()));
      fmt::print("{:<9} {} {}: {}\n", a["answer"].get<std::string>(), a["network"].get<std::string>(),
                 a["candidate"].get<std::string>(), fmt::join(v, " "));
    }
  }
  s.query_exit = worst;
  return {};
}

// --query budgets.json NAME=VALUE ...: inside (0), outside (3), uncertain (1).
Status run_query(CalibrateSettings& s) {
  CP_ASSIGN_OR_RETURN(nlohmann::json doc, read_json(*s.query_path, "--query", "caliprox-budgets",
                                                    "caliprox calibrate"));
  if (!doc.contains("axes") || !doc.contains("points"))
    return invalid_input("--query {}: not a budgets.json written by caliprox calibrate", *s.query_path);
  if (!s.errors_paths.empty()) {
    if (!s.args.empty()) return invalid_input("--query with --errors: no NAME=VALUE arguments");
    try {
      return run_errors_query(s, doc);
    } catch (const nlohmann::json::exception& e) {  // a file edited by hand, or truncated
      return invalid_input("--query {} --errors ...: a file lacks what caliprox writes: {}", *s.query_path, e.what());
    }
  }
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
  CP_ASSIGN_OR_RETURN(BudgetSpace space, BudgetSpace::from_json(doc, *s.query_path));
  std::vector<double> point;
  for (const auto& v : x) point.push_back(*v);
  const std::string answer = answer_of(space.region().classify(point));
  if (s.common.json) fmt::print("{}\n", nlohmann::json{{"answer", answer}}.dump());
  else fmt::print("{}\n", answer);
  s.query_exit = exit_of(answer);
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
  std::unique_ptr<WorkerPool> ranks;  // an MPI job's: one worker per rank
  if (Cluster* cl = cluster()) {
    CP_ASSIGN_OR_RETURN(ranks, distribute(*cl, exp));
    log_info("calibrate: one application run at a time on each of the {} ranks (application.jobs is for local runs)",
             cl->size());
  }
  const std::string dir = run_directory(s.common, exp);
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
  std::optional<ServedApplication> served;
  if (exp.application->serve) {
    const ResolvedTarget target = resolve_target(exp, s.common);
    served.emplace(exp, target.backend, target.threads);
  }
  CP_ASSIGN_OR_RETURN(CalibrationResult r, run_calibration(exp, records, dir + "/requests", progress,
                                                           served ? &*served : nullptr, ranks.get()));
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
  log_report_hint(dir);
  return {};
}

Status run_calibrate_worker(const CalibrateSettings& s) {
  Cluster& cl = *cluster();
  CP_ASSIGN_OR_RETURN(Experiment exp, join_experiment(cl));
  if (!exp.application || !exp.calibrate)
    return runtime_error("{}: no application or calibrate section", exp.source_path);
  CP_ASSIGN_OR_RETURN(std::unique_ptr<WorkerScratch> scratch, worker_scratch(cl));
  std::optional<ServedApplication> served;
  if (exp.application->serve) {
    const ResolvedTarget target = resolve_target(exp, s.common);
    served.emplace(exp, target.backend, target.threads);
  }
  return cl.serve([&](const nlohmann::json& task) {
    return run_calibrate_task(exp, task, scratch->path, served ? &*served : nullptr);
  });
}

}  // namespace caliprox
