#pragma once
// A validated, typed experiment (DESIGN: "experiment.yaml --check--> Experiment").
// Later issues add knobs, evaluators, tuning, adaptation and deploy sections.
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "qos/metrics.h"
#include "util/status.h"

namespace caliprox {

struct NetworkSpec {
  std::string model_path;            // resolved absolute path of the .onnx file
  std::optional<std::string> input;  // graph input name (required when the model has several)
  std::optional<std::string> output; // graph output used by QoS (default: the first)
  std::string layout = "NCHW";
};

struct TargetSpec {
  std::string name;
  std::string backend = "onednn";
  int threads = 1;
  std::vector<int64_t> batch_sizes;  // for profiling; empty = dataset batch
};

struct Experiment {
  std::string name;
  std::string source_path;  // the YAML file (absolute)
  NetworkSpec network;
  DatasetSpec dataset;
  QosSpec qos;
  std::vector<TargetSpec> targets;  // at least one
  const TargetSpec& default_target() const { return targets.front(); }
};

// Parses the YAML, validates it against schemas/experiment.schema.json (embedded),
// converts to the typed struct, resolves relative paths against the file's folder
// and checks that referenced files exist. Errors (Errc::invalid_input) name the
// file, line:column, the key path, what was expected and what was found.
Result<Experiment> load_experiment(const std::string& path);

}  // namespace caliprox
