#include "app/common.h"

#include <filesystem>

#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

ResolvedTarget resolve_target(const Experiment& exp, const CommonSettings& common) {
  const TargetSpec& t = exp.default_target();
  return {t.name, common.backend.value_or(t.backend), common.threads.value_or(t.threads)};
}

Result<std::pair<std::string, std::string>> network_argument(const Experiment& exp, const std::string& arg,
                                                             const char* option,
                                                             const std::optional<std::string>& fallback,
                                                             const char* hint) {
  const auto eq = arg.find('=');
  if (eq != std::string::npos && find_network(exp, arg.substr(0, eq), option).ok())
    return std::pair{arg.substr(0, eq), arg.substr(eq + 1)};
  if (fallback) {
    CP_TRY(find_network(exp, *fallback, "--network").status());
    return std::pair{*fallback, arg};
  }
  if (exp.networks.size() > 1) {
    std::vector<std::string> names;
    for (const NetworkSpec& n : exp.networks) names.push_back(n.name);
    return invalid_input("{} {}: the experiment has several networks ({}); {}", option, arg, fmt::join(names, ", "),
                         hint);
  }
  return std::pair{exp.networks.front().name, arg};
}

std::string run_directory(const CommonSettings& common, const Experiment& exp, bool one_network) {
  if (common.out_dir) return *common.out_dir;
  const auto dir = std::filesystem::path("runs") / exp.name;
  return (one_network && exp.networks.size() > 1 ? dir / exp.network.name : dir).string();
}

nlohmann::json latency_json(const LatencyStats& s) {
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"mad", s.mad}, {"count", s.count}};
}

Status write_json_file(const std::string& path, const nlohmann::json& value) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) CP_TRY(ensure_directory(parent.string()));
  return write_file_atomic(path, value.dump(2) + "\n");
}

void log_notice(const std::string& text) { log_info("{}", text); }

void warn_left_out(const KnobSpace& ks, std::string_view command) {
  for (const LeftOutKnobs& l : ks.left_out)
    log_warn("{}: leaving out {} {} knob(s) on this target ({}): {}: {}", command, l.knobs.size(),
             knob_kind_name(l.kind), knob_run_name(l.support.run), l.support.how, fmt::join(l.knobs, " "));
}

void log_report_hint(const std::string& dir) {
  log_info("artifacts in {}/: `caliprox report {}` draws them into one page", dir, dir);
}

// --goal 0.02 (absolute, the metric's unit) or --goal 1% (relative).
Status apply_goal_override(Experiment& exp, const std::string& text) {
  const bool relative = !text.empty() && text.back() == '%';
  const std::string number = relative ? text.substr(0, text.size() - 1) : text;
  char* end = nullptr;
  const double v = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0' || !std::isfinite(v) || v < 0)
    return invalid_input("--goal '{}': expected a loss (0.02, in the metric's unit) or a percentage of the exact "
                         "network's value (1%)",
                         text);
  exp.qos.goal.kind = relative ? GoalKind::relative : GoalKind::absolute;
  exp.qos.goal.max_loss = relative ? v / 100 : v;
  return {};
}

}  // namespace caliprox
