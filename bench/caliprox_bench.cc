// caliprox_bench: end-to-end and per-layer speed of caliprox on a network, and
// the machine's FP32 FMA peak. Prints (or writes) one JSON document; the
// comparison with ONNX Runtime and the tables are made by bench/run.sh and
// bench/report.js (see bench/README.md).
//
//   caliprox_bench peak  [--threads 1,2] [--trials N] [--seconds S] [--json FILE]
//   caliprox_bench model MODEL.onnx [--images IDX | --input-shape C,H,W] [--batches 1,64] [--threads 1,2]
//                        [--backend onednn] [--warmup N] [--repeats N] [--no-layers]
//                        [--save-input DIR] [--peak-trials N] [--json FILE]
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "conv_costs.h"
#include "data/idx.h"
#include "fma_peak.h"
#include "ir/onnx_import.h"
#include "model_bench.h"
#include "util/atomic_file.h"
#include "util/cpu.h"
#include "util/log.h"
#include "util/process_policy.h"

namespace caliprox::bench {
namespace {

using nlohmann::json;

json stats_json(const LatencyStats& s) {
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"mad", s.mad}, {"count", s.count}};
}

json peak_json(const PeakResult& p) {
  return {{"threads", p.threads},
          {"isa", p.isa},
          {"trials_gflops", p.trials},
          {"median_gflops", p.median_gflops},
          {"max_gflops", p.max_gflops}};
}

json run_json(const RunResult& r) {
  json j;
  j["batch"] = r.batch;
  j["threads"] = r.threads;
  j["create_ms"] = r.create_ms;
  j["batch_split"] = {{"chunk", r.split.chunk}, {"chunks", r.split.chunks}, {"workers", r.split.workers}};
  j["latency_ms"] = stats_json(r.latency);
  j["samples_ms"] = r.samples_ms;
  j["cpu_ms"] = stats_json(r.cpu);
  j["cpu_samples_ms"] = r.cpu_samples_ms;
  j["loop"] = {{"wall_ms", r.loop.wall_ms}, {"cpu_ms", r.loop.cpu_ms}};
  j["output"] = {{"name", r.output_name}, {"shape", r.output.shape()}, {"values", r.output.to_double_vector()}};
  json backends = json::array();
  for (const auto& [node, backend] : r.node_backends) backends.push_back({{"node", node}, {"backend", backend}});
  j["node_backends"] = backends;
  if (!r.layers.empty()) {
    j["layered_run_ms"] = stats_json(r.layered_run_ms);
    j["layered_cpu_ms"] = stats_json(r.layered_cpu_ms);
    j["layered_loop"] = {{"wall_ms", r.layered_loop.wall_ms}, {"cpu_ms", r.layered_loop.cpu_ms}};
    json layers = json::array();
    for (const LayerTiming& l : r.layers) {
      json e = {{"node", l.node}, {"op_type", l.op_type}, {"backend", l.backend}, {"ms", stats_json(l.ms)}};
      if (l.conv != nullptr) {
        e["conv"] = {{"geometry", l.conv->describe()},
                     {"input", l.conv->input},
                     {"weights", l.conv->weights},
                     {"output", l.conv->output},
                     {"group", l.conv->group},
                     {"mflop", l.conv->flops * 1e-6},
                     {"gflops", l.ms.median > 0 ? l.conv->flops / (l.ms.median * 1e-3) * 1e-9 : 0.0}};
      }
      layers.push_back(std::move(e));
    }
    j["layers"] = layers;
  }
  return j;
}

Status emit(const json& doc, const std::string& path) {
  const std::string text = doc.dump(1) + "\n";
  if (path.empty() || path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return {};
  }
  return write_file_atomic(path, text);
}

Status save_input(const Tensor& input, const std::string& dir) {
  CP_TRY(ensure_directory(dir));
  // Raw little-endian float32, NCHW: what bench/ort_bench.js reads.
  const std::string path = dir + "/input_b" + std::to_string(input.dim(0)) + ".f32";
  return write_file_atomic(path, std::string_view(static_cast<const char*>(input.raw()), input.nbytes()));
}

struct ModelArgs {
  std::string model;
  std::string images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  std::vector<int64_t> input_shape;  // dims after the batch: synthetic input instead of the images
  std::vector<int64_t> batches{1, 64};
  std::vector<int> threads{1, 2};
  BenchSettings settings;
  std::string save_input_dir;
  std::string json_path;
  int peak_trials = 0;  // short FMA peak trials per thread count, next to the model runs
};

Status run_model(const ModelArgs& a) {
  CP_ASSIGN_OR_RETURN(Graph graph, load_onnx(a.model));
  if (graph.inputs.size() != 1)
    return invalid_input("{}: the benchmark feeds one input, the graph declares {}", a.model, graph.inputs.size());
  const bool synthetic = !a.input_shape.empty();
  Tensor images;
  if (!synthetic) {
    CP_ASSIGN_OR_RETURN(images, read_idx(a.images));
  }
  json runs = json::array();
  json peaks = json::array();
  for (int64_t batch : a.batches) {
    Tensor input;
    if (synthetic) {
      input = synthetic_batch(a.input_shape, batch, 1);
    } else {
      CP_ASSIGN_OR_RETURN(input, fashion_batch(images, batch));
    }
    if (!a.save_input_dir.empty()) CP_TRY(save_input(input, a.save_input_dir));
    CP_ASSIGN_OR_RETURN(auto costs, conv_costs(graph, {{graph.inputs[0].name, input.shape()}}));
    for (int threads : a.threads) {
      CP_ASSIGN_OR_RETURN(RunResult r, bench_model(graph, input, threads, a.settings, &costs));
      // Peak samples taken between model runs, under the load the runs saw.
      if (a.peak_trials > 0) peaks.push_back(peak_json(measure_fma_peak(threads, a.peak_trials, 0.05)));
      const std::string split =
          r.split.chunk == 0
              ? std::string("not split")
              : fmt::format("split: {} chunks of {} on {} thread(s)", r.split.chunks, r.split.chunk, r.split.workers);
      log_info("{} batch {} threads {} ({}): median {:.3f} ms (min {:.3f}, MAD {:.3f}) over {} runs", a.model, batch,
               threads, split, r.latency.median, r.latency.min, r.latency.mad, r.latency.count);
      runs.push_back(run_json(r));
    }
  }
  json doc = {{"tool", "caliprox"},
              {"model", a.model},
              {"input", synthetic ? fmt::format("uniform [0, 1), seed 1, [batch, {}]", fmt::join(a.input_shape, ", "))
                                  : a.images},
              {"backend", a.settings.backend},
              {"cpu", cpu::describe(cpu::features())},
              {"warmup", a.settings.warmup},
              {"repeats", a.settings.repeats},
              {"runs", runs}};
  if (!peaks.empty()) doc["peak"] = peaks;
  return emit(doc, a.json_path);
}

struct PeakArgs {
  std::vector<int> threads{1, 2};
  int trials = 5;
  double seconds = 0.2;
  std::string json_path;
};

Status run_peak(const PeakArgs& a) {
  json results = json::array();
  for (int threads : a.threads) {
    PeakResult p = measure_fma_peak(threads, a.trials, a.seconds);
    log_info("FMA peak ({}) with {} thread(s): median {:.1f} GFLOP/s, best {:.1f}", p.isa, threads, p.median_gflops,
             p.max_gflops);
    results.push_back(peak_json(p));
  }
  return emit(json{{"tool", "fma_peak"}, {"peak", results}}, a.json_path);
}

}  // namespace
}  // namespace caliprox::bench

int main(int argc, char** argv) {
  caliprox::apply_process_policy(argv);  // measure with the OpenMP settings the caliprox binary runs with
  using namespace caliprox;
  using namespace caliprox::bench;
  CLI::App app{"caliprox_bench: caliprox end-to-end / per-layer speed and the FP32 FMA peak (JSON out)"};
  app.require_subcommand(1);

  PeakArgs peak;
  CLI::App* peak_cmd = app.add_subcommand("peak", "measure the FP32 FMA peak (GFLOP/s) per thread count");
  peak_cmd->add_option("--threads", peak.threads, "thread counts")->delimiter(',')->check(CLI::PositiveNumber);
  peak_cmd->add_option("--trials", peak.trials, "timed trials per thread count")->check(CLI::PositiveNumber);
  peak_cmd->add_option("--seconds", peak.seconds, "approximate length of one trial")->check(CLI::PositiveNumber);
  peak_cmd->add_option("--json", peak.json_path, "output file (default stdout)");

  ModelArgs model;
  bool no_layers = false;
  CLI::App* model_cmd = app.add_subcommand("model", "time one ONNX network per batch size and thread count");
  model_cmd->add_option("model", model.model, "ONNX file")->required();
  model_cmd->add_option("--images", model.images, "IDX uint8 images (first N of them form the batch)");
  model_cmd
      ->add_option("--input-shape", model.input_shape,
                   "dims after the batch (e.g. 3,224,224): feed pseudo-random values in [0, 1) instead of --images")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  model_cmd->add_option("--batches", model.batches, "batch sizes")->delimiter(',')->check(CLI::PositiveNumber);
  model_cmd->add_option("--threads", model.threads, "thread counts")->delimiter(',')->check(CLI::PositiveNumber);
  model_cmd->add_option("--backend", model.settings.backend, "caliprox backend");
  model_cmd->add_option("--warmup", model.settings.warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  model_cmd->add_option("--repeats", model.settings.repeats, "timed runs")->check(CLI::PositiveNumber);
  model_cmd->add_flag("--no-layers", no_layers, "skip the per-node timing session");
  model_cmd->add_option("--save-input", model.save_input_dir,
                        "write input_b<N>.f32 (raw float32, the input's layout) here");
  model_cmd->add_option("--json", model.json_path, "output file (default stdout)");
  model_cmd->add_option("--peak-trials", model.peak_trials, "also sample the FMA peak after each configuration")
      ->check(CLI::NonNegativeNumber);

  CLI11_PARSE(app, argc, argv);
  model.settings.layers = !no_layers;

  Status st = peak_cmd->parsed() ? run_peak(peak) : run_model(model);
  if (!st.ok()) {
    std::fprintf(stderr, "caliprox_bench: %s\n", st.message().c_str());
    return exit_code_for(st.code());
  }
  return 0;
}
