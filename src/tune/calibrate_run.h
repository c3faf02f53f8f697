#pragma once
// `calibrate` as a job: the adaptive search (tune/calibrate_search.h) over
// an error model's parameters, each point judged by the application's own
// check in inject mode (qos/application.h), every application run appended
// to records.jsonl and replayed from it on a re-run. No printing: progress
// goes to a callback.
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/served_app.h"
#include "experiment/experiment.h"
#include "tune/calibrate_search.h"
#include "tune/records.h"
#include "tune/worker_pool.h"

namespace caliprox {

// The error model of each network that has an axis, at point x (its
// parameters off the axes are 0). Networks without axes are exact.
std::map<std::string, ErrorModel> error_models_at(const CalibrateSpec& spec, const std::vector<double>& x);

// What identifies a calibration job in its records: the application, the
// error model, the box and the seed (not the budget: a larger budget
// resumes a smaller run).
nlohmann::json calibration_identity(const Experiment& exp);

enum class CalibrationStop { budget, time, resolved, interrupted };
std::string_view calibration_stop_name(CalibrationStop s);

struct CalibrationProgress {
  int points = 0;         // evaluated so far
  int runs = 0;           // application runs (fresh + replayed)
  int replayed = 0;
  double valid_fraction = 0, unknown_fraction = 0;
};

struct CalibrationResult {
  CalibrationRegion region;
  std::vector<int> runs, passes;  // per point of region.points()
  int fresh = 0, replayed = 0;
  CalibrationStop stop = CalibrationStop::budget;
};

// Runs the search to its budget. `work_dir` receives the request files;
// The runs go to `pool`'s workers (an MPI job's ranks), or to
// application.jobs threads when null. `records` is open with
// calibration_identity's fingerprint; `served`, when
// given (application.serve), serves each run the exact outputs perturbed
// by the point's error models. Errors: the application cannot be started, a
// record does not match the run it stands for, or writing fails.
Result<CalibrationResult> run_calibration(const Experiment& exp, RecordStore& records, const std::string& work_dir,
                                          const std::function<void(const CalibrationProgress&)>& progress,
                                          ServedApplication* served = nullptr, WorkerPool* pool = nullptr);

// One application run of a calibration as a task any rank can run
// (`pool` in run_calibration): {"kind": "calibrate-run", "point", "x",
// "repeat"} in; {"run": app_run_json, "seconds", "host"} out. The request
// is a function of the experiment, x and the repeat only, so every rank
// asks the application the same question.
nlohmann::json calibrate_task(int64_t point, const std::vector<double>& x, int repeat);
Result<nlohmann::json> run_calibrate_task(const Experiment& exp, const nlohmann::json& task,
                                          const std::string& work_dir, ServedApplication* served);

// budgets.json: axes, every point, the region (the maximal valid points'
// boxes), its volume fraction, the uncertain volume and the runs spent.
nlohmann::json budgets_json(const Experiment& exp, const CalibrationResult& r);

}  // namespace caliprox
