#include "tune/app_check.h"

#include <algorithm>
#include <chrono>
#include <mutex>

#include <fmt/format.h>

#include "eval/interrupt.h"
#include "tune/records.h"
#include "tune/worker_pool.h"

namespace caliprox {

nlohmann::json network_request(const Experiment& exp, const std::map<std::string, ServedState>& states, uint64_t seed,
                               int repeat) {
  nlohmann::json networks = nlohmann::json::object();
  for (const NetworkSpec& n : exp.networks) {
    const auto it = states.find(n.name);
    networks[n.name] = {{"error_model", nullptr},
                        {"config", it == states.end() || !it->second.config ? nlohmann::json()
                                                                            : nlohmann::json(*it->second.config)}};
  }
  return {{"experiment", exp.name}, {"mode", "network"}, {"seed", seed_of(nlohmann::json{seed, repeat}.dump())},
          {"repeat", repeat},       {"serve", true},     {"networks", networks}};
}

Result<AppCheck> check_application(const Experiment& exp, const AppSpec& app, ServedApplication& served,
                                   const std::map<std::string, ServedState>& states, uint64_t seed,
                                   const std::string& work_dir, const std::string& tag, const AppCheckHooks& hooks) {
  std::mutex mu;
  AppCheck out;
  out.runs.resize(static_cast<size_t>(app.repeats));
  auto one = [&](size_t rep, int /*worker*/) -> Status {
    const int repeat = static_cast<int>(rep);
    if (hooks.recorded) {
      std::lock_guard lock(mu);
      if (std::optional<nlohmann::json> r = hooks.recorded(repeat)) {
        out.runs[rep] = std::move(*r);
        return {};
      }
    }
    const nlohmann::json request = network_request(exp, states, seed, repeat);
    const auto t0 = std::chrono::steady_clock::now();
    CP_ASSIGN_OR_RETURN(AppRun run, served.run(app, request, states, request["seed"].get<uint64_t>(), work_dir,
                                               fmt::format("{}-{}", tag, repeat)));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json data = app_run_json(run);
    data["repeat"] = repeat;
    std::lock_guard lock(mu);
    if (hooks.on_run) CP_TRY(hooks.on_run(repeat, data, secs));
    out.runs[rep] = std::move(data);
    ++out.fresh;
    out.seconds += secs;
    return {};
  };
  LocalWorkerPool pool(app.jobs);
  CP_TRY(pool.run(out.runs.size(), one, interrupt_requested));
  if (std::any_of(out.runs.begin(), out.runs.end(), [](const nlohmann::json& r) { return r.is_null(); }))
    return Status(Errc::interrupted, "interrupted during an application check");
  out.passes = static_cast<int>(std::count_if(out.runs.begin(), out.runs.end(),
                                              [](const nlohmann::json& r) { return r.value("passed", false); }));
  out.verdict = combine_repeats(app.goal, out.passes, app.repeats);
  return out;
}

}  // namespace caliprox
