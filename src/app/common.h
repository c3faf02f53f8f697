#pragma once
// Plumbing shared by the subcommands: backends for a target, run directories,
// JSON output, logging what the runtime reports. Backends, model/dataset
// fitting (eval/model_io.h) and interruption (eval/interrupt.h) live in
// src/eval, below the search engines; they are included here for the
// subcommands.
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "app/settings.h"
#include "eval/interrupt.h"
#include "eval/model_io.h"
#include "experiment/experiment.h"
#include "tune/knob_space.h"
#include "util/stats.h"

namespace caliprox {

// Backend named by --backend or the target, with --threads or the target's threads.
struct ResolvedTarget {
  std::string name;
  std::string backend;
  int threads = 1;
};
ResolvedTarget resolve_target(const Experiment& exp, const CommonSettings& common);

// An option's "NAME=VALUE", NAME one of the experiment's networks; or
// VALUE alone for `fallback` (--network), or for the only network. With
// several networks and neither, invalid_input naming the option and the
// networks; `hint` ends it (how else to say which).
Result<std::pair<std::string, std::string>> network_argument(const Experiment& exp, const std::string& arg,
                                                             const char* option,
                                                             const std::optional<std::string>& fallback = {},
                                                             const char* hint = "write NAME=...");

// -o/--out, or runs/<experiment name>/ (runs/<experiment name>/<network>/
// for work on one network of an experiment that has several).
std::string run_directory(const CommonSettings& common, const Experiment& exp, bool one_network = false);

nlohmann::json latency_json(const LatencyStats& s);
// Writes `value` (pretty, trailing newline) atomically, creating the folder.
Status write_json_file(const std::string& path, const nlohmann::json& value);

// The closing line of a long subcommand (in the log, on stderr): where its
// artifacts are, and that `caliprox report` draws them.
void log_report_hint(const std::string& dir);

// An info line in the log, for what the runtime reports on its own
// (Evaluator::Notice).
void log_notice(const std::string& text);
// One warning per kind of knob the knob space left out, naming them and the
// reason (`command`: "tune", "profile").
void warn_left_out(const KnobSpace& ks, std::string_view command);

// --goal 0.02 (absolute, the metric's unit) or --goal 1% (relative to the
// exact network's value): replaces the experiment's qos.goal.
Status apply_goal_override(Experiment& exp, const std::string& text);

}  // namespace caliprox
