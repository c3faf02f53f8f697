#pragma once
// One check of knob configurations by the application itself, in network
// mode: each of the application's repeats gets a server
// (eval/served_app.h) serving every network exact or under its
// configuration, and the repeats combine into valid / invalid / uncertain
// as calibrate judges a point. `eval --application` checks what the user
// names; guided tuning (tune/joint.h) checks the candidates its budget
// cannot decide and validates the one it picks.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/served_app.h"
#include "tune/worker_pool.h"

namespace caliprox {

// The request of repeat `repeat`: every network of `exp` with its
// configuration (null: exact). The seed depends on `seed` and the repeat
// only, so every configuration faces the same fields (common random
// numbers) and a resumed check asks exactly what the first asked.
nlohmann::json network_request(const Experiment& exp, const std::map<std::string, ServedState>& states, uint64_t seed,
                               int repeat);

struct AppCheck {
  std::vector<nlohmann::json> runs;  // per repeat: app_run_json plus "repeat"
  int passes = 0;
  Verdict verdict = Verdict::uncertain;
  int fresh = 0;       // runs of the application (not replayed)
  double seconds = 0;  // of the fresh runs, summed
};

struct AppCheckHooks {
  // The recorded run of a repeat (a resumed job), or nullopt.
  std::function<std::optional<nlohmann::json>(int repeat)> recorded;
  // A fresh run finished on `host` (never called concurrently): record it.
  std::function<Status(int repeat, const nlohmann::json& run, double seconds, const std::string& host)> on_run;
};

// app.repeats runs on app.jobs workers (on `pool`'s, an MPI job's ranks,
// when given), each through `served` (the rank's own); request files go to
// `work_dir` tagged `tag`-<repeat>. Errc::interrupted when a signal stopped
// it before every repeat had run (what ran was recorded).
Result<AppCheck> check_application(const Experiment& exp, const AppSpec& app, ServedApplication& served,
                                   const std::map<std::string, ServedState>& states, uint64_t seed,
                                   const std::string& work_dir, const std::string& tag, const AppCheckHooks& hooks,
                                   WorkerPool* pool = nullptr);

// One repeat of a check as a task any rank can run: {"kind":
// "app-check-run", "configs": {network: config}, "seed", "repeat", "tag"}
// in; {"run": app_run_json, "seconds", "host"} out.
Result<nlohmann::json> run_app_check_task(const Experiment& exp, ServedApplication& served, const nlohmann::json& task,
                                          const std::string& work_dir);

}  // namespace caliprox
