#include "tune/app_check.h"

#include <algorithm>
#include <chrono>
#include <mutex>

#include <fmt/format.h>

#include "dist/cluster.h"
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

Result<nlohmann::json> run_app_check_task(const Experiment& exp, ServedApplication& served, const nlohmann::json& task,
                                          const std::string& work_dir) {
  if (task.value("kind", "") != "app-check-run") return runtime_error("not an application check: {}", task.dump());
  std::map<std::string, ServedState> states;
  try {
    for (const auto& [network, config] : task.at("configs").items())
      if (!config.is_null()) states[network].config = config.get<KnobConfig>();
    const int repeat = task.at("repeat").get<int>();
    const nlohmann::json request = network_request(exp, states, task.at("seed").get<uint64_t>(), repeat);
    const auto t0 = std::chrono::steady_clock::now();
    CP_ASSIGN_OR_RETURN(AppRun run,
                        served.run(*exp.application, request, states, request["seed"].get<uint64_t>(), work_dir,
                                   fmt::format("{}-{}", task.at("tag").get<std::string>(), repeat)));
    return nlohmann::json{{"run", app_run_json(run)},
                          {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                          {"host", this_host_name()}};
  } catch (const nlohmann::json::exception& e) {
    return runtime_error("unreadable application check task: {}", e.what());
  }
}

Result<AppCheck> check_application(const Experiment& exp, const AppSpec& app, ServedApplication& served,
                                   const std::map<std::string, ServedState>& states, uint64_t seed,
                                   const std::string& work_dir, const std::string& tag, const AppCheckHooks& hooks,
                                   WorkerPool* pool) {
  std::mutex mu;
  AppCheck out;
  out.runs.resize(static_cast<size_t>(app.repeats));
  nlohmann::json configs = nlohmann::json::object();
  for (const auto& [network, state] : states) configs[network] = state.config ? nlohmann::json(*state.config) : nullptr;
  const WorkerPool::TaskFn local = [&](const nlohmann::json& task) {
    return run_app_check_task(exp, served, task, work_dir);
  };
  LocalWorkerPool threads(app.jobs);
  if (!pool) pool = &threads;
  auto one = [&](size_t rep, int worker) -> Status {
    const int repeat = static_cast<int>(rep);
    if (hooks.recorded) {
      std::lock_guard lock(mu);
      if (std::optional<nlohmann::json> r = hooks.recorded(repeat)) {
        out.runs[rep] = std::move(*r);
        return {};
      }
    }
    const nlohmann::json task = {
        {"kind", "app-check-run"}, {"configs", configs}, {"seed", seed}, {"repeat", repeat}, {"tag", tag}};
    CP_ASSIGN_OR_RETURN(nlohmann::json done, pool->run_task(worker, task, local));
    const double secs = done.value("seconds", 0.0);
    nlohmann::json data = std::move(done["run"]);
    data["repeat"] = repeat;
    std::lock_guard lock(mu);
    if (hooks.on_run) CP_TRY(hooks.on_run(repeat, data, secs, done.value("host", std::string())));
    out.runs[rep] = std::move(data);
    ++out.fresh;
    out.seconds += secs;
    return {};
  };
  CP_TRY(pool->run(out.runs.size(), one, interrupt_requested));
  if (std::any_of(out.runs.begin(), out.runs.end(), [](const nlohmann::json& r) { return r.is_null(); }))
    return Status(Errc::interrupted, "interrupted during an application check");
  out.passes = static_cast<int>(std::count_if(out.runs.begin(), out.runs.end(),
                                              [](const nlohmann::json& r) { return r.value("passed", false); }));
  out.verdict = combine_repeats(app.goal, out.passes, app.repeats);
  return out;
}

}  // namespace caliprox
