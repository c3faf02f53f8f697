#pragma once
// One benchmark configuration of one network: a session on a backend at a
// batch size and thread count, timed end to end (run() wall time) and, in a
// second session with collect_timings, node by node.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "conv_costs.h"
#include "engine/batch_split.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/stats.h"
#include "util/status.h"

namespace caliprox::bench {

struct BenchSettings {
  std::string backend = "onednn";
  int warmup = 5;    // untimed runs before the timed ones (per session)
  int repeats = 30;  // timed runs
  bool layers = true;  // also time every node (second session)
};

struct LayerTiming {
  std::string node;
  std::string op_type;
  std::string backend;
  LatencyStats ms;            // over the timed runs of the timing session
  const ConvCost* conv = nullptr;  // Conv nodes only (points into the caller's map)
};

// CPU and wall time of a whole timed loop. Per-run CPU times undercount a
// worker thread that is still spinning when the run ends (the kernel accounts
// a running thread's time at scheduler ticks), which for runs of a few ms can
// be all of its time; the loop total, read once the workers sleep, does not.
struct LoopTotals {
  double wall_ms = 0;  // sum of the timed runs' wall times
  double cpu_ms = 0;   // process CPU time over the loop
};

struct RunResult {
  int64_t batch = 0;
  int threads = 1;
  double create_ms = 0;            // Session::create (shape inference, passes, primitive creation)
  std::vector<double> samples_ms;  // run() wall times, in order
  LatencyStats latency;            // of samples_ms
  std::vector<double> cpu_samples_ms;  // process CPU time of each timed run (all threads)
  LatencyStats cpu;                    // of cpu_samples_ms
  LoopTotals loop;                     // of the same runs
  std::string output_name;
  Tensor output;                   // first graph output of the last timed run (owned copy)
  std::vector<std::pair<std::string, std::string>> node_backends;
  BatchSplit split;                 // how the session split the batch (chunk 0: not split)
  std::vector<LayerTiming> layers;  // execution order; empty unless settings.layers
  LatencyStats layered_run_ms;      // run() wall time in the timing session
  LatencyStats layered_cpu_ms;      // and its process CPU time
  LoopTotals layered_loop;
};

// The first `batch` images of an IDX uint8 image set [count, H, W] as a float
// [batch, 1, H, W] tensor, normalised like the example models' training data:
// (x / 255 - 0.2860) / 0.3530.
Result<Tensor> fashion_batch(const Tensor& images_u8, int64_t batch);

// A float [batch, sample...] tensor of pseudo-random values in [0, 1), the
// same for the same seed: the input of networks without a bundled dataset
// (third-party models). Latency does not depend on the values; the outputs
// of caliprox and ONNX Runtime are compared on the same batch.
Tensor synthetic_batch(const Shape& sample, int64_t batch, uint64_t seed);

// The graph must have exactly one input; `input` is fed to it every run.
// `costs` (may be null) supplies the Conv geometry for LayerTiming::conv.
Result<RunResult> bench_model(const Graph& graph, const Tensor& input, int threads, const BenchSettings& settings,
                              const std::map<std::string, ConvCost>* costs);

}  // namespace caliprox::bench
