#pragma once
// Plumbing shared by the subcommands: backends for a target, run directories,
// model/dataset fitting, JSON output, interruption.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "app/settings.h"
#include "backends/backend.h"
#include "ir/graph.h"
#include "experiment/experiment.h"
#include "util/stats.h"

namespace caliprox {

// Backend named by --backend or the target, with --threads or the target's threads.
struct ResolvedTarget {
  std::string name;
  std::string backend;
  int threads = 1;
};
ResolvedTarget resolve_target(const Experiment& exp, const CommonSettings& common);
Result<std::unique_ptr<Backend>> make_backend(const std::string& name, int threads);

// -o/--out, or runs/<experiment name>/.
std::string run_directory(const CommonSettings& common, const std::string& experiment_name);

// The graph input fed with dataset samples and the output read by QoS.
struct ModelIo {
  const ValueInfo* input = nullptr;
  std::string output;
};
Result<ModelIo> model_io(const Graph& graph, const NetworkSpec& spec, const std::string& experiment_path);
// Checks that samples of shape [N, ...] fit the model input (rank and fixed dims).
Status check_input_fits(const ValueInfo& input, const Shape& sample_batch_shape, const std::string& dataset_path);

nlohmann::json latency_json(const LatencyStats& s);
// Writes `value` (pretty, trailing newline) atomically, creating the folder.
Status write_json_file(const std::string& path, const nlohmann::json& value);

// SIGINT/SIGTERM set a flag that long loops poll; the CLI then exits 130.
void install_interrupt_handler();
bool interrupt_requested();
Status interrupted_status(const std::string& what);
// A resumable job's: what its records file keeps, and how to resume.
Status interrupted_status(const std::string& what, const std::string& records_path, size_t kept);

}  // namespace caliprox
