// caliprox eval: QoS and latency of the network (exact or under --config)
// on one dataset split; with --application, the application's own check
// (eval_app.cc); with --finetune, of the configuration after the
// experiment's fine-tune hook (app/finetune.h).
#include <chrono>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "app/finetune.h"
#include "eval/evaluator.h"
#include "eval/reshape.h"
#include "engine/session.h"
#include "util/log.h"

namespace caliprox {

Status run_eval(const EvalSettings& settings) {
  if (settings.application) return run_eval_application(settings);
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  CP_TRY(select_network(exp, settings.common.network, "eval"));
  if (settings.configs.size() > 1) return invalid_input("eval: one --config (several only with --application)");
  const std::optional<std::string> config_path =
      settings.configs.empty() ? std::nullopt : std::optional(settings.configs.front());
  std::optional<KnobConfig> config;
  if (config_path) {
    CP_ASSIGN_OR_RETURN(config, load_knob_config(*config_path));
  }
  ResolvedTarget target = resolve_target(exp, settings.common);
  CP_ASSIGN_OR_RETURN(auto evaluator, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
  CP_TRY(evaluator->dataset().split(settings.split).status());
  if (config) CP_TRY(evaluator->configure(*config).with_context(*config_path));
  const int64_t batch = exp.dataset.batch;
  const bool progress = progress_enabled() && !settings.common.quiet;
  std::optional<FinetuneReport> tuned;
  SplitResult r;
  if (settings.finetune) {  // its run after fine-tuning is the evaluation
    CP_ASSIGN_OR_RETURN(tuned, finetune_with_qos(*evaluator, settings.split));
    r = tuned->after;
  } else {
    CP_ASSIGN_OR_RETURN(r, evaluator->run_split(settings.split, nullptr, [&](int64_t done, int64_t total) {
      if (progress) fmt::print(stderr, "\r  eval {}: {}/{} samples", settings.split, done, total);
    }));
    if (progress) fmt::print(stderr, "\n");
  }
  const int64_t total = r.samples;
  const std::vector<double>& batch_ms = r.batch_ms;
  Backend* backend = &evaluator->backend();
  LatencyStats lat = summarize(batch_ms);
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [name, value] : r.metrics) metrics[name] = value;
  // What the reshape knobs leave of the network's work, against the exact
  // network (first: the exact session's configure() drops the evaluator's).
  CP_ASSIGN_OR_RETURN(auto exact_session, evaluator->detached_session({}, batch));
  const double flops_exact = network_flops(evaluator->graph(), exact_session->knob_sites(), batch);
  exact_session.reset();
  std::vector<std::string> fallback;
  CP_ASSIGN_OR_RETURN(Session * session, evaluator->session(batch));
  const double flops_now = network_flops(evaluator->current_graph(), session->knob_sites(), batch);
  const WeightSize w_exact = weight_size(evaluator->graph(), {});
  const WeightSize w_now = weight_size(evaluator->current_graph(), evaluator->kernel_configuration());
  for (const auto& [node, be] : session->node_backends())
    if (be != backend->name() && be != kEngineBackend) fallback.push_back(node);

  nlohmann::json result = {
      {"experiment", exp.name},
      {"split", settings.split},
      {"samples", total},
      {"batch", batch},
      {"target", {{"name", target.name}, {"backend", target.backend}, {"threads", target.threads}}},
      {"qos", {{"metric", metric_name(exp.qos.metric)}, {"value", r.qos}, {"unit", metric_unit(exp.qos.metric)}}},
      {"metrics", metrics},
      {"latency_ms", {{"batch", latency_json(lat)},
                      {"per_sample_median", batch > 0 ? lat.median / static_cast<double>(batch) : 0.0}}},
      {"fallback_nodes", fallback},
      {"flops", {{"exact", flops_exact}, {"configured", flops_now}}},
      {"weights", {{"exact", {{"parameters", w_exact.parameters}, {"bytes", w_exact.bytes}}},
                   {"configured", {{"parameters", w_now.parameters}, {"bytes", w_now.bytes}}}}},
      {"configuration", nlohmann::json(evaluator->configuration())},
  };
  if (tuned) result["finetune"] = finetune_json(*tuned, exp);
  if (backend->device_memory() != nullptr) {  // host <-> device moves of one full batch
    const TransferStats& t = session->transfers();
    result["transfers_per_batch"] = {{"uploads", t.uploads},
                                     {"downloads", t.downloads},
                                     {"bytes_up", t.bytes_up},
                                     {"bytes_down", t.bytes_down}};
  }
  const std::string dir = run_directory(settings.common, exp, true);
  const std::string path = (std::filesystem::path(dir) / "eval.json").string();
  CP_TRY(write_json_file(path, result));

  if (settings.common.json) {
    result["artifact"] = path;
    fmt::print("{}\n", result.dump());
  } else {
    fmt::print("experiment {}  split {} ({} samples)  target {} ({} backend, {} threads)\n", exp.name, settings.split,
               total, target.name, target.backend, target.threads);
    if (!evaluator->configuration().empty())
      fmt::print("  configuration {}: {} approximated node(s)\n", *config_path,
                 evaluator->configuration().size());
    if (tuned) fmt::print("  {}\n", finetune_summary(*tuned, exp));
    for (const auto& [name, value] : metrics.items()) fmt::print("  {:<16} {:.4f}\n", name, value.get<double>());
    if (lat.count > 0)
      fmt::print("  latency per batch of {}: median {:.3f} ms (min {:.3f}, max {:.3f}, MAD {:.3f}, {} batches)\n", batch,
                 lat.median, lat.min, lat.max, lat.mad, lat.count);
    if (flops_now != flops_exact)
      fmt::print("  FLOPs of the Conv and Gemm layers per batch: {:.1f} M, exact {:.1f} M (nominal {:.2f}x; kernel "
                 "knobs not counted)\n",
                 flops_now / 1e6, flops_exact / 1e6, flops_now > 0 ? flops_exact / flops_now : 0.0);
    if (w_now.bytes != w_exact.bytes)
      fmt::print("  weights: {} parameters, {:.1f} KiB (exact {}, {:.1f} KiB: {:.2f}x smaller)\n", w_now.parameters,
                 w_now.bytes / 1024.0, w_exact.parameters, w_exact.bytes / 1024.0,
                 w_now.bytes > 0 ? static_cast<double>(w_exact.bytes) / static_cast<double>(w_now.bytes) : 0.0);
    if (!fallback.empty()) fmt::print("  nodes on the reference fallback: {}\n", fmt::join(fallback, ", "));
    fmt::print("  written: {}\n", path);
  }
  return {};
}

}  // namespace caliprox
