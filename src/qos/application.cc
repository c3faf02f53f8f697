#include "qos/application.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "qos/process.h"
#include "util/atomic_file.h"

namespace caliprox {

namespace {

bool named(const std::vector<std::string>& names, const std::string& n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

// The standard normal quantile at p (0.5 < p < 1), Acklam's rational
// approximation refined by one Halley step (|error| < 1e-9).
double normal_quantile(double p) {
  const double q = std::sqrt(-2 * std::log(1 - p));
  double x = -(((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q -
                 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00) /
             ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q +
               3.754408661907416e+00) * q + 1);
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

}  // namespace

Result<AppReply> parse_app_reply(std::string_view text, const AppSpec& spec) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    const std::string_view head = text.substr(0, 80);
    return invalid_input("the reply is not JSON (it starts: '{}')", head.empty() ? "<nothing>" : head);
  }
  if (!doc.is_object()) return invalid_input("the reply is {}, not a JSON object", doc.type_name());
  auto m = doc.find("metrics");
  if (m == doc.end() || !m->is_object()) return invalid_input("the reply has no \"metrics\" object");
  AppReply reply;
  for (const auto& [name, value] : m->items()) {
    if (!value.is_number() || !std::isfinite(value.get<double>()))
      return invalid_input("metric '{}' is {}, not a finite number", name, value.dump());
    const bool judged = std::any_of(spec.goal.conditions.begin(), spec.goal.conditions.end(),
                                    [&](const AppCondition& c) { return c.metric == name; });
    if (!judged && !named(spec.record, name))
      return invalid_input("metric '{}' is neither in the goal nor in application.record (list it there to keep it)",
                           name);
    reply.metrics[name] = value.get<double>();
  }
  for (const AppCondition& c : spec.goal.conditions)
    if (!reply.metrics.count(c.metric)) return invalid_input("the reply lacks metric '{}', which the goal names", c.metric);
  if (auto v = doc.find("valid"); v != doc.end()) {
    if (!v->is_boolean()) return invalid_input("\"valid\" is {}, not true or false", v->dump());
    reply.valid = v->get<bool>();
  }
  return reply;
}

bool app_goal_met(const AppGoal& goal, const AppReply& reply, std::string* why) {
  auto fail = [&](std::string text) {
    if (why) *why = std::move(text);
    return false;
  };
  for (const AppCondition& c : goal.conditions) {
    const double v = reply.metrics.at(c.metric);
    if (c.min && v < *c.min) return fail(fmt::format("{} = {} is below its minimum {}", c.metric, v, *c.min));
    if (c.max && v > *c.max) return fail(fmt::format("{} = {} is above its maximum {}", c.metric, v, *c.max));
  }
  if (reply.valid && !*reply.valid) return fail("the application said \"valid\": false");
  return true;
}

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::valid: return "valid";
    case Verdict::invalid: return "invalid";
    case Verdict::uncertain: return "uncertain";
  }
  return "?";
}

Verdict combine_repeats(const AppGoal& goal, int passes, int runs) {
  if (goal.rule == RepeatRule::all || runs == 0) {
    if (passes < runs) return Verdict::invalid;
    return runs > 0 ? Verdict::valid : Verdict::uncertain;
  }
  const double n = runs, p = static_cast<double>(passes) / n;
  const double z = normal_quantile(goal.confidence);
  const double centre = (p + z * z / (2 * n)) / (1 + z * z / n);
  const double half = z / (1 + z * z / n) * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n));
  if (centre - half >= goal.pass_rate) return Verdict::valid;
  if (centre + half < goal.pass_rate) return Verdict::invalid;
  return Verdict::uncertain;
}

Result<AppRun> run_application(const AppSpec& spec, const nlohmann::json& request, const std::string& work_dir,
                               const std::string& tag) {
  CP_TRY(ensure_directory(work_dir));
  const std::string request_path =
      std::filesystem::absolute(std::filesystem::path(work_dir) / fmt::format("request-{}.json", tag)).string();
  CP_TRY(write_file_atomic(request_path, request.dump(1) + "\n"));
  ProcessSpec ps;
  ps.argv = spec.command;
  ps.cwd = spec.dir;
  ps.env = inherited_environment();
  for (const auto& [k, v] : spec.env) ps.env[k] = v;
  ps.env["CALIPROX_REQUEST"] = request_path;
  ps.timeout_s = spec.timeout_s;

  AppRun run;
  run.request = request;
  for (int attempt = 0; attempt <= spec.retries; ++attempt) {
    CP_ASSIGN_OR_RETURN(ProcessResult r, run_process(ps));
    ++run.attempts;
    run.seconds += r.seconds;
    run.exit_code = r.exit_code;
    run.stderr_tail = r.err_tail;
    if (r.timed_out || r.stdout_overflow || r.signal || r.exit_code != 0) {
      run.failure = r.stdout_overflow ? fmt::format("the application {} (more than {} bytes on stdout)", r.describe(),
                                                    ps.max_stdout)
                                      : fmt::format("the application {}", r.describe());
      continue;
    }
    Result<AppReply> reply = parse_app_reply(r.out, spec);
    if (!reply.ok()) {
      run.failure = fmt::format("unreadable reply: {}", reply.status().message());
      continue;
    }
    run.ok = true;
    run.reply = std::move(reply).value();
    run.failure.clear();
    run.passed = app_goal_met(spec.goal, run.reply, &run.failure);
    break;
  }
  return run;
}

nlohmann::json app_run_json(const AppRun& run) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [k, v] : run.reply.metrics) metrics[k] = v;
  nlohmann::json j = {{"request", run.request}, {"ok", run.ok},           {"passed", run.passed},
                      {"metrics", metrics},     {"failure", run.failure}, {"attempts", run.attempts}};
  j["exit_status"] = run.exit_code ? nlohmann::json(*run.exit_code) : nlohmann::json(nullptr);
  if (!run.ok) j["stderr_tail"] = run.stderr_tail;
  return j;
}

}  // namespace caliprox
