// caliprox infer: one ONNX model on .npy inputs, .npy outputs, latency stats.
#include <chrono>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "data/npy.h"
#include "ir/onnx_import.h"
#include "engine/session.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

// Output names may hold characters that do not belong in file names.
std::string file_stem_for(const std::string& value_name) {
  std::string s = value_name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  if (s.empty() || s == "." || s == "..") s = "output";
  return s;
}

bool is_integer_type(DType t) { return t == DType::i64 || t == DType::i32 || t == DType::boolean; }

}  // namespace

Status run_infer(const InferSettings& settings) {
  if (settings.repeat < 0 || settings.warmup < 0) return invalid_input("--repeat and --warmup must be >= 0");
  if (!settings.common.out_dir) return invalid_input("infer needs an output folder: -o/--out DIR");
  CP_ASSIGN_OR_RETURN(Graph graph, load_onnx(settings.model_path));
  std::optional<KnobConfig> config;
  if (settings.config_path) {
    CP_ASSIGN_OR_RETURN(config, load_knob_config(*settings.config_path));
  }

  // Map -i arguments to model inputs.
  std::map<std::string, Tensor> given;
  for (const auto& [name_arg, path] : settings.inputs) {
    std::string name = name_arg;
    if (name.empty()) {
      if (graph.inputs.size() != 1)
        return invalid_input("-i {}: the model has {} inputs; write -i NAME=FILE.npy", path, graph.inputs.size());
      name = graph.inputs.front().name;
    }
    const ValueInfo* info = graph.find_input(name);
    if (!info) {
      std::vector<std::string> names;
      for (const auto& v : graph.inputs) names.push_back(v.name);
      return invalid_input("-i {}={}: the model {} has no input '{}' (its inputs: {})", name, path,
                           settings.model_path, name, fmt::join(names, ", "));
    }
    if (given.count(name)) return invalid_input("-i {}: input given twice", name);
    CP_ASSIGN_OR_RETURN(Tensor t, read_npy(path));
    if (info->dtype != DType::undefined && t.dtype() != info->dtype)
      return invalid_input("{}: input '{}' of the model is {} but the file holds {}", path, name,
                           dtype_name(info->dtype), dtype_name(t.dtype()));
    given[name] = std::move(t);
  }

  // Integer inputs (shape tensors, indices) are bound as constants so shape
  // subgraphs fold; everything else is fed at run time.
  SessionOptions options;
  options.threads = settings.common.threads.value_or(1);
  std::map<std::string, Shape> shapes;
  for (const auto& info : graph.inputs) {
    auto it = given.find(info.name);
    if (it == given.end()) return invalid_input("no -i given for model input '{}'", info.name);
    if (is_integer_type(it->second.dtype())) options.bound_inputs[info.name] = it->second;
    else shapes[info.name] = it->second.shape();
  }
  CP_ASSIGN_OR_RETURN(auto backend, make_backend(settings.common.backend.value_or("onednn"), options.threads));
  CP_ASSIGN_OR_RETURN(auto session, Session::create(graph, *backend, shapes, options));
  std::vector<Tensor> feed;
  for (const auto& name : session->input_names()) feed.push_back(given.at(name));
  if (config) {
    // infer has no dataset: int8 input ranges are calibrated on the given
    // inputs themselves, with one exact run.
    bool int8 = false;
    for (const auto& [node, knob] : *config) int8 = int8 || knob == "int8";
    if (int8) {
      session->track_input_ranges(true);
      CP_TRY(session->run(feed));
      session->track_input_ranges(false);
      session->set_calibrated_ranges(session->input_ranges());
    }
    CP_TRY(session->configure(*config).with_context(*settings.config_path));
  }

  for (int i = 0; i < settings.warmup; ++i) CP_TRY(session->run(feed));
  std::vector<double> ms;
  const int runs = std::max(1, settings.repeat);
  for (int i = 0; i < runs; ++i) {
    if (interrupt_requested()) return interrupted_status("infer");
    auto t0 = std::chrono::steady_clock::now();
    CP_TRY(session->run(feed));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }

  // Everything succeeded: now write the outputs.
  const std::string& out_dir = *settings.common.out_dir;
  CP_TRY(ensure_directory(out_dir));
  nlohmann::json outputs = nlohmann::json::object();
  std::map<std::string, std::string> used_files;
  std::vector<std::string> lines;
  for (size_t i = 0; i < session->output_names().size(); ++i) {
    const std::string& name = session->output_names()[i];
    std::string stem = file_stem_for(name);
    for (int k = 2; used_files.count(stem); ++k) stem = fmt::format("{}_{}", file_stem_for(name), k);
    used_files[stem] = name;
    std::string path = (std::filesystem::path(out_dir) / (stem + ".npy")).string();
    CP_TRY(write_npy(path, session->output(i)));
    outputs[name] = path;
    lines.push_back(fmt::format("{}  {} {}  -> {}", name, dtype_name(session->output(i).dtype()),
                                shape_str(session->output(i).shape()), path));
  }
  LatencyStats stats = summarize(ms);
  if (settings.common.json) {
    nlohmann::json summary = {{"outputs", outputs}, {"backend", backend->name()}, {"threads", options.threads}};
    if (settings.repeat > 0) summary["latency_ms"] = latency_json(stats);
    fmt::print("{}\n", summary.dump());
  } else {
    for (const auto& l : lines) fmt::print("{}\n", l);
    if (settings.repeat > 0)
      fmt::print("latency over {} runs after {} warm-up ({} backend, {} threads): median {:.3f} ms, min {:.3f}, "
                 "max {:.3f}, MAD {:.3f}\n",
                 stats.count, settings.warmup, backend->name(), options.threads, stats.median, stats.min, stats.max,
                 stats.mad);
  }
  return {};
}

}  // namespace caliprox
