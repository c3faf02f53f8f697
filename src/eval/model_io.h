#pragma once
// What an experiment's network needs before it can run: a backend, the graph
// input fed with dataset samples and the output read by QoS, and the check
// that the samples fit that input.
#include <memory>
#include <string>

#include "backends/backend.h"
#include "ir/graph.h"
#include "experiment/experiment.h"

namespace caliprox {

// invalid_input for threads < 1 (named as --threads, the option that sets it).
// `device` picks the accelerator of a device backend (opencl); Errc::unreachable
// when it has none (exit 4).
Result<std::unique_ptr<Backend>> make_backend(const std::string& name, int threads, const DeviceSelector& device = {});
// The device a target names (targets[].platform / device / device_memory_mib).
DeviceSelector device_selector(const TargetSpec& target);

// The graph input fed with dataset samples and the output read by QoS.
struct ModelIo {
  const ValueInfo* input = nullptr;
  std::string output;
};
Result<ModelIo> model_io(const Graph& graph, const NetworkSpec& spec, const std::string& experiment_path);
// Checks that samples of shape [N, ...] fit the model input (rank and fixed dims).
Status check_input_fits(const ValueInfo& input, const Shape& sample_batch_shape, const std::string& dataset_path);

}  // namespace caliprox
