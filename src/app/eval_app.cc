// caliprox eval --application: the application's own check of knob
// configurations, in network mode. Each run gets a server
// (eval/served_app.h) with every network exact or under its --config, and
// a request naming the configurations; the repeats combine into valid /
// invalid / uncertain (exit 0 / 3 / 1) as calibrate judges a point. Runs go
// to app-records.jsonl and are replayed on a re-run; application.json
// keeps the runs and the verdict.
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "app/common.h"
#include "eval/interrupt.h"
#include "tune/app_check.h"
#include "tune/records.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

// --config [NAME=]FILE: NAME a network of the experiment; without it, the
// --network one or the only one.
Result<std::map<std::string, ServedState>> configs_of(const Experiment& exp, const EvalSettings& s) {
  std::map<std::string, ServedState> states;
  for (const std::string& arg : s.configs) {
    CP_ASSIGN_OR_RETURN(auto named, network_argument(exp, arg, "--config", s.common.network,
                                                     "write NAME=FILE or give --network"));
    const auto& [name, path] = named;
    if (states.count(name)) return invalid_input("--config {}: network '{}' has a configuration already", arg, name);
    CP_ASSIGN_OR_RETURN(KnobConfig config, load_knob_config(path));
    states[name].config = std::move(config);
  }
  return states;
}

void print_runs(const nlohmann::json& runs, Verdict verdict, int passes, const std::string& path) {
  for (const auto& r : runs) {
    std::vector<std::string> m;
    for (const auto& [k, v] : r["metrics"].items()) m.push_back(fmt::format("{}={:.4g}", k, v.get<double>()));
    fmt::print("  repeat {}: {}  {}{}\n", r["repeat"].get<int>(), r["passed"].get<bool>() ? "pass" : "FAIL",
               fmt::join(m, " "), r["failure"].get<std::string>().empty() ? "" : "  (" + r["failure"].get<std::string>() + ")");
  }
  fmt::print("  verdict: {} ({}/{} runs passed)\n  written: {}\n", verdict_name(verdict), passes, runs.size(), path);
}

}  // namespace

Status run_eval_application(const EvalSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  if (!exp.application)
    return invalid_input("{}: --application needs an application section (the application's own check)",
                         exp.source_path);
  CP_ASSIGN_OR_RETURN(auto states, configs_of(exp, s));
  if (s.repeats) exp.application->repeats = *s.repeats;
  const AppSpec& app = *exp.application;
  const ResolvedTarget target = resolve_target(exp, s.common);
  // One folder per set of configurations, so checks of several candidates
  // keep their own records: runs/<name>/application/<label>/.
  std::string label;
  for (const std::string& arg : s.configs) {
    const auto eq = arg.find('=');
    const std::string stem = std::filesystem::path(eq == std::string::npos ? arg : arg.substr(eq + 1)).stem().string();
    label += (label.empty() ? "" : "+") + (eq == std::string::npos ? stem : arg.substr(0, eq) + "-" + stem);
  }
  const std::string dir = s.common.out_dir ? *s.common.out_dir
                                           : run_directory(s.common, exp) + "/application/" + (label.empty() ? "exact" : label);
  CP_TRY(ensure_directory(dir));
  nlohmann::json identity = {{"job", "eval-application"}, {"experiment", exp.name}, {"command", app.command},
                             {"env", app.env},            {"seed", s.seed},        {"repeats", app.repeats},
                             {"backend", target.backend}};
  for (const auto& [name, st] : states) identity["configs"][name] = nlohmann::json(*st.config);
  CP_ASSIGN_OR_RETURN(RecordStore records, RecordStore::open(dir + "/app-records.jsonl",
                                                             fingerprint_of(identity.dump()), identity.dump()));
  for (const auto& w : records.warnings()) log_warn("{}", w);
  log_info("eval --application: {} run(s) of {} in network mode ({} job(s))", app.repeats, app.command[0], app.jobs);

  ServedApplication served(exp, target.backend, target.threads);
  AppCheckHooks hooks;
  hooks.recorded = [&](int repeat) -> std::optional<nlohmann::json> {
    if (const EvalRecord* rec = records.find("application", repeat)) return rec->data;
    return std::nullopt;
  };
  hooks.on_run = [&](int repeat, const nlohmann::json& run, double seconds, const std::string& host) -> Status {
    EvalRecord rec;
    rec.phase = "application";
    rec.iteration = repeat;
    rec.seconds = seconds;
    rec.host = host;
    rec.data = run;
    return records.append(rec);
  };
  Result<AppCheck> checked = check_application(exp, app, served, states, s.seed, dir + "/requests", "eval", hooks);
  if (!checked.ok() && checked.status().code() == Errc::interrupted)
    return interrupted_status("eval --application", records.path(), records.records().size());
  CP_TRY(checked.status());
  const std::vector<nlohmann::json>& runs = checked->runs;
  const int passes = checked->passes;
  const Verdict verdict = checked->verdict;
  nlohmann::json configs = nlohmann::json::object();
  for (const auto& [name, st] : states) configs[name] = nlohmann::json(*st.config);
  const nlohmann::json doc = {{"format", "caliprox-application-eval"},
                              {"version", 1},
                              {"experiment", exp.name},
                              {"mode", "network"},
                              {"configs", configs},
                              {"runs", runs},
                              {"passes", passes},
                              {"verdict", verdict_name(verdict)},
                              {"requests_served", served.served()}};
  const std::string path = dir + "/application.json";
  CP_TRY(write_json_file(path, doc));
  if (s.common.json) fmt::print("{}\n", nlohmann::json{{"application", path}, {"verdict", verdict_name(verdict)},
                                                       {"passes", passes}, {"runs", app.repeats}}.dump());
  else print_runs(doc["runs"], verdict, passes, path);
  if (verdict == Verdict::invalid)
    return Status(Errc::goal_not_met, fmt::format("the application's goal is not met ({}/{} runs passed)", passes,
                                                  app.repeats));
  if (verdict == Verdict::uncertain)
    return runtime_error("uncertain: {}/{} runs passed; more repeats would decide", passes, app.repeats);
  return {};
}

}  // namespace caliprox
