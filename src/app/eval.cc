// caliprox eval: QoS and latency of the exact network on one dataset split.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "engine/onnx_import.h"
#include "engine/session.h"
#include "util/log.h"

namespace caliprox {

namespace {

// Sessions are built per input shape; a split whose size is not a multiple
// of the batch needs a second one for the remainder.
class BatchRunner {
 public:
  BatchRunner(const Graph& graph, Backend& backend, const ModelIo& io, int threads)
      : graph_(graph), backend_(backend), io_(io), threads_(threads) {}

  Result<const Tensor*> run(const Tensor& batch) {
    auto it = sessions_.find(batch.dim(0));
    if (it == sessions_.end()) {
      SessionOptions opt;
      opt.threads = threads_;
      CP_ASSIGN_OR_RETURN(auto s, Session::create(graph_, backend_, {{io_.input->name, batch.shape()}}, opt));
      it = sessions_.emplace(batch.dim(0), std::move(s)).first;
    }
    Session& s = *it->second;
    CP_TRY(s.run(std::span<const Tensor>(&batch, 1)));
    for (size_t i = 0; i < s.output_names().size(); ++i)
      if (s.output_names()[i] == io_.output) return &s.output(i);
    return runtime_error("output '{}' missing from the session", io_.output);
  }
  const Session* any_session() const { return sessions_.empty() ? nullptr : sessions_.begin()->second.get(); }

 private:
  const Graph& graph_;
  Backend& backend_;
  const ModelIo& io_;
  int threads_;
  std::map<int64_t, std::unique_ptr<Session>> sessions_;
};

}  // namespace

Status run_eval(const EvalSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  CP_ASSIGN_OR_RETURN(Graph graph, load_onnx(exp.network.model_path));
  CP_ASSIGN_OR_RETURN(ModelIo io, model_io(graph, exp.network, exp.source_path));
  CP_ASSIGN_OR_RETURN(Dataset data, load_dataset(exp.dataset));
  CP_ASSIGN_OR_RETURN(SplitRange range, data.split(settings.split));
  const int64_t batch = exp.dataset.batch;
  CP_TRY(check_input_fits(*io.input, data.sample_batch(range.begin, range.begin + 1).shape(), exp.dataset.samples_path));

  ResolvedTarget target = resolve_target(exp, settings.common);
  CP_ASSIGN_OR_RETURN(auto backend, make_backend(target.backend, target.threads));
  BatchRunner runner(graph, *backend, io, target.threads);

  // The experiment's metric, plus top-1 / top-5 whenever class labels exist.
  MetricAccumulator main_metric(exp.qos);
  std::vector<std::pair<std::string, MetricAccumulator>> extra;
  const bool class_labels = data.labels && data.labels->dtype() == DType::i64;
  if (class_labels) {
    QosSpec top1 = exp.qos, top5 = exp.qos;
    top1.metric = Metric::top1;
    top5.metric = Metric::topk;
    top5.k = 5;
    extra.emplace_back("top1", MetricAccumulator(top1));
    extra.emplace_back("top5", MetricAccumulator(top5));
  }

  std::vector<double> batch_ms;
  const int64_t total = range.end - range.begin;
  const bool progress = progress_enabled() && !settings.common.quiet;
  for (int64_t b = range.begin; b < range.end; b += batch) {
    if (interrupt_requested()) return interrupted_status("eval");
    const int64_t e = std::min(b + batch, range.end);
    Tensor x = data.sample_batch(b, e);
    auto t0 = std::chrono::steady_clock::now();
    CP_ASSIGN_OR_RETURN(const Tensor* y, runner.run(x));
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // The first batch of each shape builds a session; time only full batches after it.
    if (e - b == batch && b != range.begin) batch_ms.push_back(ms);
    std::optional<Tensor> labels = data.label_batch(b, e);
    CP_TRY(main_metric.add(*y, labels ? &*labels : nullptr, y));
    for (auto& [name, acc] : extra) CP_TRY(acc.add(*y, &*labels, y));
    if (progress) fmt::print(stderr, "\r  eval {}: {}/{} samples", settings.split, e - range.begin, total);
  }
  if (progress) fmt::print(stderr, "\n");

  LatencyStats lat = summarize(batch_ms);
  nlohmann::json metrics = nlohmann::json::object();
  metrics[std::string(metric_name(exp.qos.metric))] = main_metric.value();
  for (auto& [name, acc] : extra) metrics[name] = acc.value();
  std::vector<std::string> fallback;
  if (const Session* s = runner.any_session())
    for (const auto& [node, be] : s->node_backends())
      if (be != backend->name()) fallback.push_back(node);

  nlohmann::json result = {
      {"experiment", exp.name},
      {"split", settings.split},
      {"samples", total},
      {"batch", batch},
      {"target", {{"name", target.name}, {"backend", target.backend}, {"threads", target.threads}}},
      {"qos", {{"metric", metric_name(exp.qos.metric)}, {"value", main_metric.value()}, {"unit", metric_unit(exp.qos.metric)}}},
      {"metrics", metrics},
      {"latency_ms", {{"batch", latency_json(lat)},
                      {"per_sample_median", batch > 0 ? lat.median / static_cast<double>(batch) : 0.0}}},
      {"fallback_nodes", fallback},
  };
  const std::string dir = run_directory(settings.common, exp.name);
  const std::string path = (std::filesystem::path(dir) / "eval.json").string();
  CP_TRY(write_json_file(path, result));

  if (settings.common.json) {
    result["artifact"] = path;
    fmt::print("{}\n", result.dump());
  } else {
    fmt::print("experiment {}  split {} ({} samples)  target {} ({} backend, {} threads)\n", exp.name, settings.split,
               total, target.name, target.backend, target.threads);
    for (const auto& [name, value] : metrics.items()) fmt::print("  {:<16} {:.4f}\n", name, value.get<double>());
    if (lat.count > 0)
      fmt::print("  latency per batch of {}: median {:.3f} ms (min {:.3f}, max {:.3f}, MAD {:.3f}, {} batches)\n", batch,
                 lat.median, lat.min, lat.max, lat.mad, lat.count);
    if (!fallback.empty()) fmt::print("  nodes on the reference fallback: {}\n", fmt::join(fallback, ", "));
    fmt::print("  written: {}\n", path);
  }
  return {};
}

}  // namespace caliprox
