#pragma once
// Plain settings structs: what the CLI parses and what run_<subcommand>() reads.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace caliprox {

struct CommonSettings {
  std::optional<std::string> out_dir;   // -o/--out; default runs/<experiment name>/
  std::optional<int> threads;           // overrides the target's threads
  std::optional<std::string> backend;   // overrides the target's backend
  bool json = false;                    // one JSON summary object on stdout
  bool quiet = false;
  bool verbose = false;                 // also debug details (kernel tuning, batch split)
  std::optional<std::string> network;   // --network: which of the experiment's networks
};

struct CheckSettings {
  CommonSettings common;
  std::string experiment_path;
};

struct InferSettings {
  CommonSettings common;
  std::string model_path;
  std::vector<std::pair<std::string, std::string>> inputs;  // name ("" = the only input) -> .npy path
  int repeat = 0;   // timed runs (0: run once, report no latency)
  int warmup = 0;   // untimed runs before the timed ones
  std::optional<std::string> config_path;  // --config: knob configuration JSON
};

struct EvalSettings {
  CommonSettings common;
  std::string experiment_path;
  std::string split = "test";
  // --config: knob configuration JSON; with --application, [NAME=]FILE per network.
  std::vector<std::string> configs;
  bool application = false;  // --application: the application's check, in network mode
  uint64_t seed = 1;         // --seed: of the application runs' seeds
  std::optional<int> repeats;  // --repeats: overrides application.repeats
  bool finetune = false;       // --finetune: the configuration after the experiment's fine-tune hook
};

struct KnobsSettings {
  CommonSettings common;
  std::optional<std::string> experiment_path;  // absent: the catalogue only
};

struct TuneSettings {
  CommonSettings common;
  std::string experiment_path;
  std::optional<int64_t> iterations;       // overrides tune.iterations
  std::optional<double> time_s;            // overrides tune.time_limit
  std::optional<std::string> strategy;     // overrides tune.strategy
  std::optional<std::string> qos_mode;     // overrides tune.qos_mode
  std::optional<uint64_t> seed;            // overrides tune.seed
  int jobs = 1;                            // parallel workers, each with its own sessions
  std::optional<std::string> export_hpvm;  // also write ApproxTuner's confs.txt
  // Joint tuning of every network (run_tune_joint): --guide budgets.json
  // (guided by calibrate's budgets) or --joint (each network's QoS goal,
  // the application checks every finalist).
  std::optional<std::string> guide;
  bool joint = false;
  std::optional<double> margin;            // --margin: of the guide, a fraction of each axis's range
  std::optional<int> checks;               // --checks: application checks at most
  std::optional<std::string> goal;         // --goal 0.02 or 1%: overrides qos.goal
};

struct ProfileSettings {
  CommonSettings common;
  std::string experiment_path;
  std::optional<std::string> configs_path;  // pareto.json, a list of configurations, or one
  std::optional<int64_t> batch;             // overrides the target's batch_sizes
  int warmup = 2;                           // rounds thrown away
  int min_rounds = 10;                      // rounds at least ...
  double min_seconds = 1.0;                 // ... and seconds at least
};

struct CalibrateSettings {
  CommonSettings common;
  // Without --query: the experiment. With it: NAME=VALUE per axis.
  std::vector<std::string> args;
  std::optional<std::string> query_path;  // --query budgets.json
  std::vector<std::string> errors_paths;  // --errors errors.json (with --query; repeatable)
  std::optional<int64_t> points;          // overrides calibrate.points
  // Set by run_calibrate for --query: 0 inside, 3 outside, 1 uncertain.
  int query_exit = 0;
};

struct InjectSettings {
  CommonSettings common;
  std::string experiment_path;
  std::vector<std::string> configs;       // --config FILE (repeatable)
  std::optional<std::string> pareto_path; // --pareto pareto.json: its configurations
  bool each_knob = false;                 // --each-knob (the default without candidates)
  std::string split = "calibrate";
};

struct ServeSettings {
  CommonSettings common;
  std::string experiment_path;
  std::string socket_path;                   // --socket
  std::vector<std::string> configs;          // --config [NAME=]FILE: the approximation to serve
  std::vector<std::string> error_models;     // --error-model [NAME=]JSON: perturb the outputs instead
  std::vector<std::string> adaptations;      // --adaptation [NAME=]adaptation.json: switch levels per request
  std::optional<std::string> strategy;       // --strategy: in place of the table's
  uint64_t seed = 1;                         // --seed: the error model's draws
  int64_t max_requests = 0;                  // --max-requests: stop after this many (0: until a signal)
};

struct AdaptSimSettings {
  CommonSettings common;
  std::string experiment_path;
  std::optional<std::string> pareto_path;  // --pareto; default runs/<name>/pareto.json
  std::optional<std::string> strategy;     // --strategy: the one adaptation.json names
  bool all_levels = false;                 // --all-levels: no thinning on the measured speedups
  int min_rounds = 20;                     // latency measurement: rounds at least ...
  double min_seconds = 1.0;                // ... and seconds at least
};

struct ExportSettings {
  CommonSettings common;            // (no output folder: -o names the file)
  std::string experiment_path;
  std::string config_path;          // --config: the configuration to export
  std::string output;               // -o/--output: the .onnx file
  std::string split = "test";       // --split: the samples the written file is checked on
  double tolerance = 1e-4;          // --tolerance: of that check, relative to the output's scale
  bool finetune = false;            // --finetune: train the reshaped network with the experiment's hook first
};

struct DeploySettings {
  CommonSettings common;  // -o: where the artifacts land (default runs/<experiment>/<target>/)
  std::string experiment_path;
  std::string target;                // --target: a target with a transport
  std::vector<std::string> command;  // after --: the subcommand and its arguments
};

struct ReportSettings {
  CommonSettings common;              // (no output folder: -o names the page)
  std::string run_dir;                // the run folder to draw
  std::optional<std::string> output;  // -o/--output: default RUN_DIR/report.html
  bool plots = true;                  // --no-plots: tables only
  std::string version;                // caliprox's, named in the page (the CLI fills it in)
};

// Each returns the process exit status class via Status (the CLI maps it).
Status run_check(const CheckSettings& settings);
Status run_infer(const InferSettings& settings);
Status run_eval(const EvalSettings& settings);
Status run_eval_application(const EvalSettings& settings);
Status run_knobs(const KnobsSettings& settings);
Status run_tune(const TuneSettings& settings);
Status run_tune_joint(const TuneSettings& settings);
Status run_profile(const ProfileSettings& settings);
Status run_calibrate(CalibrateSettings& settings);
Status run_inject(const InjectSettings& settings);
// The other ranks of an MPI job (app/distributed.h): they answer rank 0's
// tasks for the same subcommand until it ends the job.
Status run_calibrate_worker(const CalibrateSettings& settings);
Status run_inject_worker(const InjectSettings& settings);
Status run_tune_worker(const TuneSettings& settings);
Status run_serve(const ServeSettings& settings);
Status run_adapt_sim(const AdaptSimSettings& settings);
Status run_export(const ExportSettings& settings);
Status run_deploy(const DeploySettings& settings);
Status run_report(const ReportSettings& settings);

}  // namespace caliprox
