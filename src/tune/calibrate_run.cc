#include "tune/calibrate_run.h"

#include <chrono>
#include <mutex>

#include <fmt/format.h>

#include "dist/cluster.h"
#include "eval/interrupt.h"
#include "tune/worker_pool.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

// The seed of one application run: a function of the job's seed, the point
// and the repeat, so a resumed job asks exactly what the first one asked.
uint64_t run_seed(uint64_t seed, const std::vector<double>& x, int repeat) {
  return seed_of(nlohmann::json{seed, x, repeat}.dump());
}

nlohmann::json request_for(const Experiment& exp, const std::vector<double>& x, int repeat) {
  const CalibrateSpec& spec = *exp.calibrate;
  const auto models = error_models_at(spec, x);
  nlohmann::json networks = nlohmann::json::object();
  for (const NetworkSpec& n : exp.networks) {
    const auto it = models.find(n.name);
    networks[n.name] = {{"error_model", it == models.end() ? nlohmann::json() : error_model_json(it->second)},
                        {"config", nullptr}};
  }
  return {{"experiment", exp.name},  {"mode", "inject"}, {"seed", run_seed(spec.seed, x, repeat)},
          {"repeat", repeat},         {"serve", exp.application->serve ? nlohmann::json(true) : nlohmann::json()},
          {"networks", networks}};
}

}  // namespace

std::map<std::string, ErrorModel> error_models_at(const CalibrateSpec& spec, const std::vector<double>& x) {
  std::map<std::string, ErrorModel> models;
  for (size_t k = 0; k < spec.axes.size(); ++k) {
    const auto& axis = spec.axes[k];
    auto [it, fresh] = models.try_emplace(axis.network);
    ErrorModel& m = it->second;
    if (fresh) {
      m.kind = spec.kind;
      m.per = spec.per;
    }
    if (axis.param == "bias") m.bias = {x[k]};
    if (axis.param == "std") m.std = {x[k]};
    if (axis.param == "rate") m.rate = x[k];
  }
  return models;
}

nlohmann::json calibration_identity(const Experiment& exp) {
  const AppSpec& a = *exp.application;
  const CalibrateSpec& c = *exp.calibrate;
  nlohmann::json goal = nlohmann::json::array();
  for (const auto& cond : a.goal.conditions)
    goal.push_back({cond.metric, cond.min ? nlohmann::json(*cond.min) : nullptr,
                    cond.max ? nlohmann::json(*cond.max) : nullptr});
  nlohmann::json axes = nlohmann::json::array();
  for (const auto& ax : c.axes) axes.push_back({ax.name, ax.lo, ax.hi});
  return {{"job", "calibrate"},
          {"experiment", exp.name},
          {"command", a.command},
          {"env", a.env},
          {"repeats", a.repeats},
          {"goal", goal},
          {"pass_rate", a.goal.rule == RepeatRule::pass_rate ? nlohmann::json(a.goal.pass_rate) : nullptr},
          {"confidence", a.goal.confidence},
          {"error_model", error_kind_name(c.kind)},
          {"per", c.per == ErrorScope::sample ? "sample" : "element"},
          {"axes", axes},
          {"seed", c.seed},
          {"batch", c.batch},
          {"serve", a.serve}};
}

std::string_view calibration_stop_name(CalibrationStop s) {
  switch (s) {
    case CalibrationStop::budget: return "budget";
    case CalibrationStop::time: return "time";
    case CalibrationStop::resolved: return "resolved";
    case CalibrationStop::interrupted: return "interrupted";
  }
  return "?";
}

namespace {

// One application run of a calibration: replayed from the records when
// there, else run as a task on one of the pool's workers and appended.
struct RunOne {
  const Experiment& exp;
  RecordStore& records;
  WorkerPool& pool;
  const WorkerPool::TaskFn& local;
  CalibrationResult& r;
  std::mutex mu;  // records and counters, shared by parallel runs

  // passed: 1 or 0 when the run ended (fresh or replayed).
  Status operator()(int64_t point, const std::vector<double>& x, int repeat, int worker, int& passed) {
    const int64_t iteration = point * exp.application->repeats + repeat;
    const nlohmann::json request = request_for(exp, x, repeat);
    {
      std::lock_guard lock(mu);
      if (const EvalRecord* rec = records.find("calibrate", iteration)) {
        if (rec->data.value("request", nlohmann::json()) != request)
          return invalid_input("{}: record {} is not the run this job asks for (request {}); was it written by "
                               "another calibration?",
                               records.path(), iteration, request.dump());
        passed = rec->data.value("passed", false) ? 1 : 0;
        ++r.replayed;
        return {};
      }
    }
    CP_ASSIGN_OR_RETURN(nlohmann::json done, pool.run_task(worker, calibrate_task(point, x, repeat), local));
    if (done.value("run", nlohmann::json()).value("request", nlohmann::json()) != request)
      return runtime_error("calibration point {} repeat {}: {} ran another request than this job asks for; do all "
                           "ranks run the same caliprox?",
                           point, repeat, done.value("host", std::string("a worker")));
    std::lock_guard lock(mu);
    EvalRecord rec;
    rec.phase = "calibrate";
    rec.iteration = iteration;
    rec.seconds = done.value("seconds", 0.0);
    rec.host = done.value("host", std::string());
    rec.data = std::move(done["run"]);
    CP_TRY(records.append(rec));
    passed = rec.data.value("passed", false) ? 1 : 0;
    ++r.fresh;
    return {};
  }
};

}  // namespace

nlohmann::json calibrate_task(int64_t point, const std::vector<double>& x, int repeat) {
  return {{"kind", "calibrate-run"}, {"point", point}, {"x", x}, {"repeat", repeat}};
}

Result<nlohmann::json> run_calibrate_task(const Experiment& exp, const nlohmann::json& task,
                                          const std::string& work_dir, ServedApplication* served) {
  if (task.value("kind", "") != "calibrate-run" || !task.contains("x") || !task.contains("repeat"))
    return runtime_error("not a calibration task: {}", task.dump());
  const CalibrateSpec& spec = *exp.calibrate;
  const AppSpec& app = *exp.application;
  const auto x = task["x"].get<std::vector<double>>();
  const int repeat = task["repeat"].get<int>();
  if (x.size() != spec.axes.size())
    return runtime_error("calibration task with {} values for {} axes", x.size(), spec.axes.size());
  const nlohmann::json request = request_for(exp, x, repeat);
  const auto t = Clock::now();
  const std::string tag = fmt::format("{}-{}", task.value("point", int64_t{0}), repeat);
  AppRun run;
  if (served) {
    std::map<std::string, ServedState> states;
    for (auto& [name, model] : error_models_at(spec, x)) states[name].error_model = model;
    CP_ASSIGN_OR_RETURN(run, served->run(app, request, states, request["seed"].get<uint64_t>(), work_dir, tag));
  } else {
    CP_ASSIGN_OR_RETURN(run, run_application(app, request, work_dir, tag));
  }
  return nlohmann::json{{"run", app_run_json(run)},
                        {"seconds", std::chrono::duration<double>(Clock::now() - t).count()},
                        {"host", this_host_name()}};
}

Result<CalibrationResult> run_calibration(const Experiment& exp, RecordStore& records, const std::string& work_dir,
                                          const std::function<void(const CalibrationProgress&)>& progress,
                                          ServedApplication* served, WorkerPool* pool) {
  const CalibrateSpec& spec = *exp.calibrate;
  const AppSpec& app = *exp.application;
  std::vector<CalibrationAxis> axes;
  for (const auto& a : spec.axes) axes.push_back({a.name, a.lo, a.hi});
  CP_ASSIGN_OR_RETURN(CalibrationRegion region, CalibrationRegion::create(std::move(axes), 4096, spec.seed));
  CalibrationResult r{std::move(region), {}, {}, 0, 0, CalibrationStop::budget};
  AdaptiveCalibration search(r.region);
  const auto t0 = Clock::now();
  const WorkerPool::TaskFn local = [&](const nlohmann::json& task) {
    return run_calibrate_task(exp, task, work_dir, served);
  };
  LocalWorkerPool threads(app.jobs);
  if (!pool) pool = &threads;
  RunOne run_one{exp, records, *pool, local, r, {}};
  // Rounds of `batch` points; their runs (points x repeats) share the pool.
  // The proposals depend on the region and the batch, never on `jobs`.
  for (int64_t point = 0; point < spec.points;) {
    if (spec.time_limit_s > 0 && std::chrono::duration<double>(Clock::now() - t0).count() >= spec.time_limit_s) {
      r.stop = CalibrationStop::time;
      break;
    }
    if (interrupt_requested()) {
      r.stop = CalibrationStop::interrupted;
      break;
    }
    std::vector<std::vector<double>> round;
    while (static_cast<int64_t>(round.size()) < std::min<int64_t>(spec.batch, spec.points - point)) {
      std::optional<std::vector<double>> x = search.propose(round);
      if (!x) break;
      round.push_back(std::move(*x));
    }
    if (round.empty()) {
      r.stop = CalibrationStop::resolved;
      break;
    }
    const size_t reps = static_cast<size_t>(app.repeats);
    std::vector<int> passed(round.size() * reps, -1);
    CP_TRY(pool->run(
        passed.size(),
        [&](size_t task, int worker) {
          const size_t k = task / reps;
          return run_one(point + static_cast<int64_t>(k), round[k], static_cast<int>(task % reps), worker,
                         passed[task]);
        },
        interrupt_requested));
    if (std::count(passed.begin(), passed.end(), -1) > 0) {  // interrupted between runs
      r.stop = CalibrationStop::interrupted;
      break;
    }
    for (size_t k = 0; k < round.size(); ++k) {
      const int passes = static_cast<int>(std::count(passed.begin() + static_cast<std::ptrdiff_t>(k * reps),
                                                     passed.begin() + static_cast<std::ptrdiff_t>((k + 1) * reps), 1));
      r.region.add({round[k], combine_repeats(app.goal, passes, app.repeats)});
      r.runs.push_back(app.repeats);
      r.passes.push_back(passes);
      ++point;
      if (progress)
        progress({static_cast<int>(point), r.fresh + r.replayed, r.replayed, r.region.valid_fraction(),
                  r.region.unknown_fraction()});
    }
  }
  return r;
}

nlohmann::json budgets_json(const Experiment& exp, const CalibrationResult& r) {
  const auto& axes = r.region.axes();
  auto named = [&](const std::vector<double>& x) {
    nlohmann::json j = nlohmann::json::object();
    for (size_t k = 0; k < axes.size(); ++k) j[axes[k].name] = x[k];
    return j;
  };
  nlohmann::json jaxes = nlohmann::json::array(), points = nlohmann::json::array(), boxes = nlohmann::json::array();
  std::vector<double> lo;
  for (size_t k = 0; k < axes.size(); ++k) {
    const auto& a = axes[k];
    const auto& spec_axis = exp.calibrate->axes[k];
    jaxes.push_back({{"name", a.name},
                     {"network", spec_axis.network},
                     {"param", spec_axis.param},
                     {"lo", a.lo},
                     {"hi", a.hi},
                     {"direction", "larger is more severe"}});
    lo.push_back(a.lo);
  }
  std::vector<std::string> network_names;
  for (const NetworkSpec& n : exp.networks) network_names.push_back(n.name);
  const auto& pts = r.region.points();
  for (size_t i = 0; i < pts.size(); ++i) {
    points.push_back({{"values", named(pts[i].x)},
                      {"runs", r.runs[i]},
                      {"passes", r.passes[i]},
                      {"verdict", verdict_name(pts[i].verdict)}});
    // A valid point's box, unless another valid point's box holds it.
    if (pts[i].verdict != Verdict::valid) continue;
    bool maximal = true;
    for (size_t j = 0; j < pts.size() && maximal; ++j) {
      if (j == i || pts[j].verdict != Verdict::valid) continue;
      bool below = true;
      for (size_t k = 0; k < axes.size(); ++k) below = below && pts[i].x[k] <= pts[j].x[k];
      maximal = !(below && pts[i].x != pts[j].x);
    }
    if (maximal) boxes.push_back({{"lo", named(lo)}, {"hi", named(pts[i].x)}});
  }
  return {{"format", "caliprox-budgets"},
          {"version", 1},
          {"experiment", exp.name},
          {"networks", network_names},
          {"error_model", {{"kind", error_kind_name(exp.calibrate->kind)},
                           {"per", exp.calibrate->per == ErrorScope::sample ? "sample" : "element"}}},
          {"assumption", "monotone: a point dominated by a valid point is valid; one dominating an invalid point is "
                         "invalid"},
          {"axes", jaxes},
          {"points", points},
          {"region", {{"boxes", boxes},
                      {"volume_fraction", r.region.valid_fraction()},
                      {"uncertain_fraction", r.region.unknown_fraction()}}},
          {"runs", {{"total", r.fresh + r.replayed}, {"fresh", r.fresh}, {"replayed", r.replayed}}},
          {"stopped_by", calibration_stop_name(r.stop)}};
}

}  // namespace caliprox
