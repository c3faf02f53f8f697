#include "model_bench.h"

#include <time.h>

#include <chrono>
#include <memory>
#include <random>
#include <thread>

#include "backends/backend.h"
#include "engine/session.h"

namespace caliprox::bench {

namespace {

// Fashion-MNIST training-set statistics (models/train.py normalises with them).
constexpr float kFashionMean = 0.2860f;
constexpr float kFashionStd = 0.3530f;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of the whole process (every thread): unlike wall time it does not
// grow while other jobs hold the cores.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

struct Samples {
  std::vector<double> wall_ms;
  std::vector<double> cpu_ms;
  LoopTotals totals;
};

struct Prepared {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Session> session;  // declared after backend: destroyed first
  double create_ms = 0;
};

Result<Prepared> prepare(const Graph& graph, const Tensor& input, int threads, const std::string& backend_name,
                         bool collect_timings) {
  Prepared p;
  CP_ASSIGN_OR_RETURN(p.backend, create_backend(backend_name, BackendOptions{threads}));
  SessionOptions options;
  options.threads = threads;
  options.collect_timings = collect_timings;
  auto t0 = std::chrono::steady_clock::now();
  CP_ASSIGN_OR_RETURN(p.session, Session::create(graph, *p.backend, {{graph.inputs[0].name, input.shape()}}, options));
  p.create_ms = ms_since(t0);
  return p;
}

// warmup untimed runs, then `repeats` timed ones; `after_run` sees each timed run.
template <typename AfterRun>
Result<Samples> time_runs(Session& session, const Tensor& input, int warmup, int repeats, AfterRun&& after_run) {
  std::span<const Tensor> feeds(&input, 1);
  for (int i = 0; i < warmup; ++i) CP_TRY(session.run(feeds));
  Samples samples;
  samples.wall_ms.reserve(static_cast<size_t>(repeats));
  samples.cpu_ms.reserve(static_cast<size_t>(repeats));
  const double loop_c0 = process_cpu_ms();
  for (int i = 0; i < repeats; ++i) {
    const double c0 = process_cpu_ms();
    auto t0 = std::chrono::steady_clock::now();
    CP_TRY(session.run(feeds));
    samples.wall_ms.push_back(ms_since(t0));
    samples.cpu_ms.push_back(process_cpu_ms() - c0);
    samples.totals.wall_ms += samples.wall_ms.back();
    after_run();
  }
  // A worker thread still spinning (GOMP_SPINCOUNT) has its CPU time
  // accounted only at the next scheduler tick or when it goes to sleep: give
  // it the time to sleep, then read the loop's total.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  samples.totals.cpu_ms = process_cpu_ms() - loop_c0;
  return samples;
}

}  // namespace

Result<Tensor> fashion_batch(const Tensor& images_u8, int64_t batch) {
  if (images_u8.dtype() != DType::u8 || images_u8.rank() != 3)
    return invalid_input("images: expected a uint8 IDX set [count, H, W], found {} {}",
                         dtype_name(images_u8.dtype()), shape_str(images_u8.shape()));
  if (batch < 1 || batch > images_u8.dim(0))
    return invalid_input("images: batch {} asked for, the set holds {} images", batch, images_u8.dim(0));
  const int64_t h = images_u8.dim(1), w = images_u8.dim(2);
  Tensor out(DType::f32, {batch, 1, h, w});
  const uint8_t* src = images_u8.data<uint8_t>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < batch * h * w; ++i)
    dst[i] = (static_cast<float>(src[i]) / 255.0f - kFashionMean) / kFashionStd;
  return out;
}

Tensor synthetic_batch(const Shape& sample, int64_t batch, uint64_t seed) {
  Shape shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  Tensor out(DType::f32, shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  float* dst = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) dst[i] = uniform(rng);
  return out;
}

Result<RunResult> bench_model(const Graph& graph, const Tensor& input, int threads, const BenchSettings& settings,
                              const std::map<std::string, ConvCost>* costs) {
  if (graph.inputs.size() != 1)
    return invalid_input("{}: the benchmark feeds one input, the graph declares {}", graph.source_path,
                         graph.inputs.size());
  if (settings.repeats < 1) return invalid_input("repeats must be >= 1, found {}", settings.repeats);
  RunResult r;
  r.batch = input.dim(0);
  r.threads = threads;

  {
    CP_ASSIGN_OR_RETURN(Prepared p, prepare(graph, input, threads, settings.backend, false));
    r.create_ms = p.create_ms;
    r.node_backends = p.session->node_backends();
    r.split = p.session->batch_split();
    CP_ASSIGN_OR_RETURN(Samples samples, time_runs(*p.session, input, settings.warmup, settings.repeats, [] {}));
    r.samples_ms = std::move(samples.wall_ms);
    r.cpu_samples_ms = std::move(samples.cpu_ms);
    r.latency = summarize(r.samples_ms);
    r.cpu = summarize(r.cpu_samples_ms);
    r.loop = samples.totals;
    r.output_name = p.session->output_names().at(0);
    r.output = p.session->output(0).clone();
  }
  if (!settings.layers) return r;

  // Per-node times come from a separate session so the end-to-end figures
  // above carry no timing overhead.
  CP_ASSIGN_OR_RETURN(Prepared p, prepare(graph, input, threads, settings.backend, true));
  std::vector<std::vector<double>> per_node;
  std::vector<NodeTiming> order;
  CP_ASSIGN_OR_RETURN(Samples totals,
                      time_runs(*p.session, input, settings.warmup, settings.repeats, [&] {
                        const std::vector<NodeTiming>& t = p.session->timings();
                        if (order.empty()) {
                          order = t;
                          per_node.resize(t.size());
                        }
                        for (size_t i = 0; i < t.size() && i < per_node.size(); ++i) per_node[i].push_back(t[i].ms);
                      }));
  r.layered_run_ms = summarize(totals.wall_ms);
  r.layered_cpu_ms = summarize(totals.cpu_ms);
  r.layered_loop = totals.totals;
  for (size_t i = 0; i < order.size(); ++i) {
    LayerTiming l;
    l.node = order[i].node;
    l.op_type = order[i].op_type;
    l.backend = order[i].backend;
    l.ms = summarize(per_node[i]);
    if (costs != nullptr) {
      auto it = costs->find(l.node);
      if (it != costs->end()) l.conv = &it->second;
    }
    r.layers.push_back(std::move(l));
  }
  return r;
}

}  // namespace caliprox::bench
