// caliprox knobs: the knob catalogue, or which layers of a network take
// which knobs (with each layer's FLOPs and per-layer nominal speedups).
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "app/evaluator.h"

namespace caliprox {

namespace {

constexpr const char* kFp16Note =
    "emulated: this CPU has no native fp16 arithmetic, so its speed is not measured natively here";

nlohmann::json knob_json(const Knob& k) {
  nlohmann::json j = {{"name", k.name},
                      {"hpvm_id", k.hpvm_id > 0 ? nlohmann::json(k.hpvm_id) : nlohmann::json(nullptr)},
                      {"kind", knob_kind_name(k.kind)},
                      {"ops", knob_op_types(k)},
                      {"nominal_speedup", k.nominal_speedup},
                      {"half", k.half},
                      {"summary", k.summary}};
  if (k.kind == KnobKind::perforation) j["direction"] = k.rows ? "rows" : "columns";
  if (k.kind == KnobKind::perforation || k.kind == KnobKind::sampling) {
    j["rate"] = k.rate;
    j["offset"] = k.offset;
  }
  if (k.half) j["note"] = kFp16Note;
  return j;
}

Status print_catalogue(const KnobsSettings& settings) {
  if (settings.common.json) {
    nlohmann::json all = nlohmann::json::array();
    for (const Knob& k : knob_catalogue()) all.push_back(knob_json(k));
    fmt::print("{}\n", nlohmann::json{{"knobs", all}}.dump());
    return {};
  }
  fmt::print("{:<20} {:>5}  {:<12} {:<6} {:>8}  {}\n", "knob", "hpvm", "kind", "ops", "nominal", "meaning");
  for (const Knob& k : knob_catalogue())
    fmt::print("{:<20} {:>5}  {:<12} {:<6} {:>7.2f}x  {}\n", k.name, k.hpvm_id > 0 ? std::to_string(k.hpvm_id) : "-",
               knob_kind_name(k.kind), fmt::join(knob_op_types(k), ","), k.nominal_speedup, k.summary);
  fmt::print("\nnominal speedup: FLOP ratio for perforation and sampling (a large layer; `caliprox knobs "
             "EXPERIMENT.yaml` gives each layer's), element-width ratio for precision knobs.\n"
             "fp16 and the -fp16 variants are {}.\n",
             kFp16Note);
  return {};
}

}  // namespace

Status run_knobs(const KnobsSettings& settings) {
  if (!settings.experiment_path) return print_catalogue(settings);
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(*settings.experiment_path));
  ResolvedTarget target = resolve_target(exp, settings.common);
  CP_ASSIGN_OR_RETURN(auto evaluator, Evaluator::create(exp, target.backend, target.threads));
  CP_ASSIGN_OR_RETURN(const std::vector<KnobSite>* sites, evaluator->knob_sites());
  const int64_t batch = exp.dataset.batch;
  if (settings.common.json) {
    nlohmann::json layers = nlohmann::json::array();
    for (const KnobSite& s : *sites) {
      nlohmann::json knobs = nlohmann::json::object();
      for (const Knob* k : s.knobs) knobs[k->name] = layer_nominal_speedup(*k, s.geometry);
      layers.push_back({{"node", s.node},
                        {"op", s.op_type},
                        {"fused", s.fused},
                        {"output_shape", s.geometry.output_shape()},
                        {"flops", s.flops},
                        {"knobs", knobs}});
    }
    fmt::print("{}\n", nlohmann::json{{"experiment", exp.name}, {"batch", batch}, {"layers", layers}}.dump());
    return {};
  }
  fmt::print("experiment {}: {} layer(s) take knobs (FLOPs at batch {})\n", exp.name, sites->size(), batch);
  size_t w = 4;
  for (const KnobSite& s : *sites) w = std::max(w, s.node.size());
  fmt::print("{:<{}} {:<6} {:<14} {:<18} {:>10} {:>6}  {}\n", "node", w, "op", "fused", "output", "MFLOP", "knobs",
             "not applicable");
  const size_t all = knob_catalogue().size();
  for (const KnobSite& s : *sites) {
    std::vector<std::string> missing;
    for (const Knob& k : knob_catalogue())
      if (std::find(s.knobs.begin(), s.knobs.end(), &k) == s.knobs.end()) missing.push_back(k.name);
    fmt::print("{:<{}} {:<6} {:<14} {:<18} {:>10.2f} {:>3}/{:<2}  {}\n", s.node, w, s.op_type,
               s.fused.empty() ? "-" : s.fused, shape_str(s.geometry.output_shape()), s.flops / 1e6, s.knobs.size(),
               all, missing.empty() ? "-" : fmt::format("{}", fmt::join(missing, " ")));
  }
  fmt::print("`caliprox knobs --json {}` adds each layer's nominal speedup per knob.\n", *settings.experiment_path);
  return {};
}

}  // namespace caliprox
