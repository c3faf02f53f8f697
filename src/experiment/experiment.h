#pragma once
// A validated, typed experiment (DESIGN: "experiment.yaml --check--> Experiment").
// Later issues add knobs, evaluators, tuning, adaptation and deploy sections.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "adapt/strategy.h"
#include "adapt/stream.h"
#include "data/dataset.h"
#include "experiment/tune_modes.h"
#include "qos/application.h"
#include "qos/error_model.h"
#include "qos/metrics.h"
#include "util/status.h"

namespace caliprox {

// A network's fine-tune hook (schema: the network's `finetune`; man
// caliprox-experiment, FINE-TUNING): a command that trains a reshaped
// network's weights. In each argument, {plan}, {model} and {out} stand for
// the plan JSON, the reshaped ONNX file and the ONNX file it must write.
struct FinetuneSpec {
  std::vector<std::string> command;        // argv; command[0] an absolute path
  std::string dir;                         // working folder: the experiment file's
  double timeout_s = 600;
  std::map<std::string, std::string> env;  // added to the inherited allow-list
};

struct NetworkSpec {
  std::string name = "network";      // a key of `networks:`; "network" for `network:`
  std::string model_path;            // resolved absolute path of the .onnx file
  std::optional<std::string> input;  // graph input name (required when the model has several)
  std::optional<std::string> output; // graph output used by QoS (default: the first)
  std::string layout = "NCHW";
  std::optional<std::string> labels_path;  // in place of dataset.labels (resolved)
  std::optional<FinetuneSpec> finetune;    // the fine-tune hook, when given
};

struct TargetSpec {
  std::string name;
  std::string backend = "onednn";
  // backend opencl: platform and device (an index or part of a name; empty:
  // the first), and the largest device buffer in MiB (0: the device's own).
  std::string platform, device;
  int64_t device_memory_mib = 0;
  int threads = 1;
  // A remote device for `caliprox deploy` (transport empty: the host itself).
  struct Remote {
    std::string transport;  // ssh, adb or local
    std::string host;       // ssh: [user@]host
    int port = 0;           // ssh: 0 = ssh's default
    std::string identity;   // ssh: private key file (resolved)
    std::vector<std::string> ssh_options;
    std::string serial;                  // adb: the device's serial (empty: the only device)
    std::string workdir;                 // the remote working folder
    std::string abi = "x86_64";          // x86_64 or arm64-v8a
    std::string cpus;                    // taskset -c list ("4-7"), empty: any
    std::vector<std::string> prefix;     // command prefix (e.g. qemu-aarch64 -L SYSROOT)
    std::string binary;                  // caliprox for the ABI (resolved; empty: this one)
    std::vector<std::string> libraries;  // files pushed beside it (LD_LIBRARY_PATH)
  } remote;
  std::vector<int64_t> batch_sizes;  // for profiling; empty = dataset batch
};

// The knob space tune searches and profile measures (schema: `knobs`).
struct KnobSpaceSpec {
  std::vector<std::string> include;  // knob names or '*' globs; empty = all
  std::vector<std::string> exclude;
  std::vector<std::string> layers;   // node names; empty = every layer that takes knobs
};

// Settings of `caliprox tune` (schema: `tune`).
struct TuneSpec {
  StrategyKind strategy = StrategyKind::evolutionary;
  QosMode qos_mode = QosMode::p2;
  CostMode cost_mode = CostMode::nominal;
  std::optional<std::string> profile;     // resolved path of profile.json (cost_mode measured)
  int64_t iterations = 1000;
  double time_limit_s = 0;                // 0: no wall-time budget
  uint64_t seed = 1;
  int64_t finalists = 50;
  int64_t predictor_samples = 0;          // 0: the whole tune split
  double min_speedup_step = 0.05;
  double min_loss_step = 0;
};

// Settings of `caliprox calibrate` (schema: `calibrate`): the error model on
// the network's outputs and the box of its parameters that is searched.
struct CalibrateSpec {
  ErrorKind kind = ErrorKind::gaussian;
  ErrorScope per = ErrorScope::element;
  struct Axis {
    std::string network;  // the network whose outputs it perturbs
    std::string param;    // "bias", "std" or "rate"
    double lo = 0, hi = 1;
    // "bias" with one network, "heading.bias" with several (budgets.json, --query).
    std::string name;
  };
  std::vector<Axis> axes;
  int64_t points = 60;
  int64_t batch = 1;        // points proposed per round, their runs in parallel
  double time_limit_s = 0;  // 0: none
  uint64_t seed = 1;
};

// Settings of `caliprox adapt-sim` (schema: `adapt`).
struct AdaptSpec {
  AdaptStrategy strategy = AdaptStrategy::confidence;  // the one adaptation.json names
  StrategyParams params;
  std::string split = "test";
  std::vector<StreamSpec> streams;  // default: persistent (mean run 30) and shuffled
};

struct Experiment {
  std::string name;
  std::string source_path;  // the YAML file (absolute)
  // Every network the application uses (one for `network:`), in name order;
  // `network` is the one single-network subcommands work on (the first,
  // until select_network()), and dataset.labels_path its labels.
  std::vector<NetworkSpec> networks;
  NetworkSpec network;
  DatasetSpec dataset;
  std::optional<std::string> dataset_labels_path;  // dataset.labels as written
  QosSpec qos;
  std::vector<TargetSpec> targets;  // at least one
  KnobSpaceSpec knobs;
  TuneSpec tune;
  std::optional<AppSpec> application;  // the application's own quality check, when given
  std::optional<CalibrateSpec> calibrate;
  AdaptSpec adapt;
  const TargetSpec& default_target() const { return targets.front(); }
};

// Parses the YAML, validates it against schemas/experiment.schema.json (embedded),
// converts to the typed struct, resolves relative paths against the file's folder
// and checks that referenced files exist. Errors (Errc::invalid_input) name the
// file, line:column, the key path, what was expected and what was found.
Result<Experiment> load_experiment(const std::string& path);
// The same on an MPI worker, from its mirror of rank 0's files
// (dist/stage.h): `path` is inside `mirror`, and absolute paths in the file
// (rank 0's) resolve under `mirror` too.
Result<Experiment> load_experiment(const std::string& path, const std::string& mirror);

// Makes network `name` the one single-network work uses (and its labels the
// dataset's). Without a name: the only network, or invalid_input listing
// them when there are several (`what` names the subcommand).
Status select_network(Experiment& e, const std::optional<std::string>& name, std::string_view what);
// The network named `name`, or invalid_input listing the experiment's.
Result<const NetworkSpec*> find_network(const Experiment& e, std::string_view name, std::string_view where);

// `caliprox tune`'s options that override the tune section, as given on the
// command line.
struct TuneOverrides {
  std::optional<int64_t> iterations;     // --iterations
  std::optional<double> time_s;          // --time
  std::optional<std::string> strategy;   // --strategy
  std::optional<std::string> qos_mode;   // --qos-mode
  std::optional<uint64_t> seed;          // --seed
};
// Applies them to `spec`; invalid_input naming the option for a strategy or
// QoS mode that does not exist (spec is then partly overridden).
Status apply_tune_overrides(TuneSpec& spec, const TuneOverrides& overrides);

}  // namespace caliprox
