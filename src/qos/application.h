#pragma once
// Application evaluators: the application's own quality check, run as an
// external command (qos/process.h) under the contract in `man
// caliprox-experiment` (section APPLICATION): each run gets the path of a
// JSON request in CALIPROX_REQUEST and answers with one JSON object on
// stdout, {"metrics": {name: number, ...}, "valid": bool (optional)}; the
// experiment's goal judges the metrics, and repeats of a stochastic
// application combine into valid / invalid / uncertain.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace caliprox {

// One condition on a metric the application reports: min <= value <= max.
struct AppCondition {
  std::string metric;
  std::optional<double> min, max;
};

// How the repeats of one point combine.
enum class RepeatRule {
  all,        // every repeat must pass
  pass_rate,  // the pass rate must reach `pass_rate` with confidence `confidence`
};

struct AppGoal {
  std::vector<AppCondition> conditions;
  RepeatRule rule = RepeatRule::all;
  double pass_rate = 1.0;
  double confidence = 0.95;
};

// The experiment's `application:` section, paths resolved.
struct AppSpec {
  std::vector<std::string> command;           // argv; command[0] an absolute path
  std::string dir;                            // working folder: the experiment file's
  double timeout_s = 600;
  int retries = 1;                            // extra attempts after a failed run
  int repeats = 1;                            // independent runs per point (seeds differ)
  int jobs = 1;                               // runs in parallel
  bool serve = false;                         // start a server for inject-mode runs too
  std::map<std::string, std::string> env;     // added to the inherited allow-list
  std::vector<std::string> record;            // metrics recorded but not judged
  std::vector<std::string> files;             // further files it reads (resolved): staged to MPI workers
  AppGoal goal;
};

// Where the metrics of a reply are read from. Errors (invalid_input) say
// what was wrong: no JSON, not an object, no "metrics" object, a metric
// that is not a finite number, a metric the goal names that is missing, or
// one that neither the goal nor `record` names.
struct AppReply {
  std::map<std::string, double> metrics;
  std::optional<bool> valid;  // the application's own verdict, when it gives one
};
Result<AppReply> parse_app_reply(std::string_view text, const AppSpec& spec);

// Whether the metrics meet every condition (and the application's own
// "valid", when given); `why` says which condition failed first.
bool app_goal_met(const AppGoal& goal, const AppReply& reply, std::string* why = nullptr);

// The verdict on one point from its repeats.
enum class Verdict { valid, invalid, uncertain };
std::string_view verdict_name(Verdict v);
// all: invalid at the first failed run, valid when every run passed.
// pass_rate: one-sided Wilson score bounds at `confidence` (0.5 <= confidence
// < 1, as the experiment schema requires): valid when the
// lower bound reaches pass_rate, invalid when the upper bound is below it,
// uncertain otherwise (more repeats would decide).
Verdict combine_repeats(const AppGoal& goal, int passes, int runs);

// One run of the application, with its retries.
struct AppRun {
  nlohmann::json request;
  bool ok = false;           // a reply was read (pass or not)
  bool passed = false;       // ok and the goal is met
  AppReply reply;
  std::string failure;       // why the last attempt failed (not ok), or why the goal was missed
  int attempts = 0;
  double seconds = 0;        // all attempts
  std::optional<int> exit_code;
  std::string stderr_tail;   // of the last attempt
};

// A run as records keep it: request, ok, passed, metrics, failure,
// attempts, exit_status (null after a signal or timeout) and, for a run
// that failed, the tail of its stderr.
nlohmann::json app_run_json(const AppRun& run);

// Writes `request` as <work_dir>/request-<tag>.json, runs the command with
// CALIPROX_REQUEST naming it, and reads the reply; retries (up to
// spec.retries more attempts) after a crash, a timeout or an unreadable
// reply. Errors: only what prevents running at all (the request cannot be
// written, the command cannot be started).
Result<AppRun> run_application(const AppSpec& spec, const nlohmann::json& request, const std::string& work_dir,
                               const std::string& tag);

}  // namespace caliprox
