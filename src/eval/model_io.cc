#include "eval/model_io.h"

#include <string>
#include <vector>

#include <fmt/format.h>

namespace caliprox {

Result<std::unique_ptr<Backend>> make_backend(const std::string& name, int threads, const DeviceSelector& device) {
  if (threads < 1) return invalid_input("--threads must be at least 1 (got {})", threads);
  return create_backend(name, BackendOptions{threads, device});
}

DeviceSelector device_selector(const TargetSpec& target) {
  return {target.platform, target.device, static_cast<uint64_t>(target.device_memory_mib) << 20};
}

Result<ModelIo> model_io(const Graph& graph, const NetworkSpec& spec, const std::string& experiment_path) {
  ModelIo io;
  if (spec.input) {
    io.input = graph.find_input(*spec.input);
    if (!io.input) {
      std::vector<std::string> names;
      for (const auto& v : graph.inputs) names.push_back(v.name);
      return invalid_input("{}: network.input: the model has no input '{}' (its inputs: {})", experiment_path,
                           *spec.input, fmt::join(names, ", "));
    }
  } else {
    if (graph.inputs.size() != 1)
      return invalid_input("{}: network.input: the model has {} inputs; name the one fed with samples", experiment_path,
                           graph.inputs.size());
    io.input = &graph.inputs.front();
  }
  if (spec.output) {
    bool found = false;
    for (const auto& o : graph.outputs) found = found || o.name == *spec.output;
    if (!found) return invalid_input("{}: network.output: the model has no output '{}'", experiment_path, *spec.output);
    io.output = *spec.output;
  } else {
    if (graph.outputs.empty()) return invalid_input("{}: the model has no outputs", spec.model_path);
    io.output = graph.outputs.front().name;
  }
  return io;
}

Status check_input_fits(const ValueInfo& input, const Shape& batch_shape, const std::string& dataset_path) {
  if (!input.dims) return {};
  const auto& dims = *input.dims;
  auto describe = [&] {
    std::vector<std::string> d;
    for (const auto& x : dims) d.push_back(x.fixed() ? std::to_string(x.value) : (x.symbol.empty() ? "?" : x.symbol));
    return fmt::format("[{}]", fmt::join(d, ", "));
  };
  if (dims.size() != batch_shape.size())
    return invalid_input("{}: samples have shape {} (with the batch dimension) but model input '{}' expects {}",
                         dataset_path, shape_str(batch_shape), input.name, describe());
  for (size_t i = 1; i < dims.size(); ++i)
    if (dims[i].fixed() && dims[i].value != batch_shape[i])
      return invalid_input("{}: samples have shape {} but model input '{}' expects {} (dimension {} differs)",
                           dataset_path, shape_str(batch_shape), input.name, describe(), i);
  return {};
}

}  // namespace caliprox
