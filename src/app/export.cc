// caliprox export: the network under a knob configuration as a standard
// ONNX file. Reshape knobs come out as the rewritten graph (plain Conv and
// Gemm of the new shapes, pruned layers repaired as the evaluator repairs
// them), kernel knobs as standard ops (knobs/standard_ops.h); perforation
// has no standard form and is refused. Where caliprox can run the written
// file itself, it checks that it computes what the configuration computes.
// With --finetune the experiment's hook trains the reshaped network first
// (app/finetune.h); what is written, and checked, is the trained network.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "app/finetune.h"
#include "engine/session.h"
#include "eval/evaluator.h"
#include "ir/onnx_export.h"
#include "ir/onnx_import.h"
#include "knobs/standard_ops.h"
#include "util/log.h"

namespace caliprox {

namespace {

// Bytes of the stored weights.
int64_t initializer_bytes(const Graph& g) {
  int64_t bytes = 0;
  for (const auto& [name, t] : g.initializers) bytes += t.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
  return bytes;
}

struct Verification {
  bool done = false;
  std::string why_not;   // when !done
  double max_rel = 0;    // max |file - caliprox| / max |caliprox|
  int64_t samples = 0;
};

// Runs the written file in caliprox next to the evaluator's configuration on
// the first samples of `split`; not done (with the reason) when caliprox
// cannot load or run the file (the standard form of bf16 uses a Cast
// caliprox has no kernel for).
Result<Verification> verify_written(Evaluator& ev, const std::string& path, const std::string& split) {
  Verification v;
  auto graph = load_onnx(path);
  if (!graph.ok()) {
    v.why_not = graph.status().message();
    return v;
  }
  CP_ASSIGN_OR_RETURN(SplitRange range, ev.dataset().split(split));
  const int64_t n = std::min<int64_t>(range.end - range.begin, ev.experiment().dataset.batch);
  Tensor x = ev.dataset().sample_batch(range.begin, range.begin + n);
  auto file_session = Session::create(*graph, ev.backend(), {{ev.io().input->name, x.shape()}}, {});
  if (!file_session.ok()) {
    v.why_not = file_session.status().message();
    return v;
  }
  CP_ASSIGN_OR_RETURN(Session * own, ev.session(n));
  CP_TRY(own->run(std::span<const Tensor>(&x, 1)));
  CP_TRY((*file_session)->run(std::span<const Tensor>(&x, 1)));
  auto output = [&](Session& s) -> const Tensor* {
    for (size_t i = 0; i < s.output_names().size(); ++i)
      if (s.output_names()[i] == ev.io().output) return &s.output(i);
    return nullptr;
  };
  const Tensor* a = output(*own);
  const Tensor* b = output(**file_session);
  if (!a || !b || a->numel() != b->numel()) return runtime_error("export: the written model's output '{}' differs in "
                                                                 "shape from the network's", ev.io().output);
  double scale = 0, diff = 0;
  for (int64_t i = 0; i < a->numel(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(a->data<float>()[i])));
    diff = std::max(diff, std::fabs(static_cast<double>(a->data<float>()[i]) - b->data<float>()[i]));
  }
  v.done = true;
  v.samples = n;
  v.max_rel = scale > 0 ? diff / scale : diff;
  return v;
}

}  // namespace

Status run_export(const ExportSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  CP_TRY(select_network(exp, settings.common.network, "export"));
  CP_ASSIGN_OR_RETURN(KnobConfig config, load_knob_config(settings.config_path));
  ResolvedTarget target = resolve_target(exp, settings.common);
  CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
  CP_TRY(ev->configure(config).with_context(settings.config_path));
  std::optional<FinetuneReport> tuned;
  if (settings.finetune) {
    CP_ASSIGN_OR_RETURN(tuned, finetune_with_qos(*ev, settings.split));
  }
  const KnobConfig kernels = ev->kernel_configuration();
  std::map<std::string, ValueRange> ranges;
  if (std::any_of(kernels.begin(), kernels.end(), [](const auto& k) { return k.second == "int8"; })) {
    CP_ASSIGN_OR_RETURN(const auto* r, ev->calibrated_ranges());
    ranges = *r;
  }
  auto lowered = lower_to_standard_ops(ev->current_graph(), kernels, ranges);
  if (!lowered.ok()) return lowered.status().with_context(fmt::format("export {}", settings.config_path));
  CP_TRY(save_onnx(*lowered, settings.output));
  auto verified = verify_written(*ev, settings.output, settings.split);
  Status bad;
  if (!verified.ok()) bad = verified.status();
  else if (verified->done && verified->max_rel > settings.tolerance)
    bad = runtime_error("export: the written model differs from the configuration by {:.3g} of the output's scale "
                        "(more than --tolerance {:g}) on {} samples of split '{}'",
                        verified->max_rel, settings.tolerance, verified->samples, settings.split);
  if (!bad.ok()) {  // nothing wrong is left behind
    std::error_code ec;
    std::filesystem::remove(settings.output, ec);
    return bad;
  }
  const int64_t before = initializer_bytes(ev->graph()), after = initializer_bytes(*lowered);
  size_t sampled = 0;
  for (const auto& [node, knob] : kernels) sampled += knob.rfind("samp-", 0) == 0;
  if (settings.common.json) {
    fmt::print("{}\n", nlohmann::json{{"output", settings.output},
                                      {"experiment", exp.name},
                                      {"configuration", config},
                                      {"nodes", lowered->nodes.size()},
                                      {"weight_bytes", {{"before", before}, {"after", after}}},
                                      {"finetune", tuned ? finetune_json(*tuned, exp) : nlohmann::json(nullptr)},
                                      {"verified", verified->done ? nlohmann::json{{"samples", verified->samples},
                                                                                   {"max_rel_diff", verified->max_rel}}
                                                                  : nlohmann::json(nullptr)}}
                           .dump());
    return {};
  }
  fmt::print("exported {} ({} node(s) approximated) to {}\n", settings.config_path, config.size(), settings.output);
  if (tuned) fmt::print("  {}\n", finetune_summary(*tuned, exp));
  fmt::print("  weights: {:.1f} KiB -> {:.1f} KiB ({:.2f}x smaller)\n", before / 1024.0, after / 1024.0,
             after > 0 ? static_cast<double>(before) / static_cast<double>(after) : 0.0);
  if (sampled > 0)
    fmt::print("  filter sampling on {} layer(s) is written as masked, rescaled weights: the same numbers, no "
               "speedup in another runtime\n", sampled);
  if (verified->done)
    fmt::print("  checked in caliprox on {} samples of split '{}': max |difference| {:.3g} of the output's scale\n",
               verified->samples, settings.split, verified->max_rel);
  else
    fmt::print("  not checked in caliprox ({}); ONNX Runtime runs it (tests/ort_export_test.py)\n", verified->why_not);
  return {};
}

}  // namespace caliprox
