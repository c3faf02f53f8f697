// caliprox knobs: the knob catalogue, or which layers of a network take
// which knobs (with each layer's FLOPs and per-layer nominal speedups).
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "eval/evaluator.h"
#include "tune/knob_space.h"
#include "util/cpu.h"

namespace caliprox {

namespace {

// The backend a catalogue listing describes: --backend, else oneDNN where built.
Result<std::unique_ptr<Backend>> catalogue_backend(const CommonSettings& common) {
  const std::vector<std::string_view> names = backend_names();
  const std::string fallback(std::find(names.begin(), names.end(), "onednn") != names.end() ? "onednn" : "reference");
  return make_backend(common.backend.value_or(fallback), common.threads.value_or(1));
}

// The accelerator of a device backend (null for the CPU backends).
nlohmann::json device_json(const Backend& backend) {
  nlohmann::json j;
  for (const auto& [k, v] : backend.device_facts()) j[k] = v;
  return j;
}

nlohmann::json knob_json(const Knob& k, const Backend& backend) {
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
  const KnobSupport here = knob_support_for(backend, k);
  j["here"] = {{"backend", backend.name()}, {"run", knob_run_name(here.run)}, {"how", here.how}};
  return j;
}

Status print_catalogue(const KnobsSettings& settings) {
  CP_ASSIGN_OR_RETURN(auto backend, catalogue_backend(settings.common));
  const std::string cpu = cpu::describe(cpu::features());
  if (settings.common.json) {
    nlohmann::json all = nlohmann::json::array();
    for (const Knob& k : knob_catalogue()) all.push_back(knob_json(k, *backend));
    fmt::print("{}\n", nlohmann::json{{"cpu", cpu},
                                      {"backend", backend->name()},
                                      {"support", knob_support_json(*backend)},
                                      {"device", device_json(*backend)},
                                      {"knobs", all}}
                           .dump());
    return {};
  }
  fmt::print("{:<20} {:>5}  {:<12} {:<6} {:>8}  {:<9} {}\n", "knob", "hpvm", "kind", "ops", "nominal", "here",
             "meaning");
  for (const Knob& k : knob_catalogue())
    fmt::print("{:<20} {:>5}  {:<12} {:<6} {:>7.2f}x  {:<9} {}\n", k.name,
               k.hpvm_id > 0 ? std::to_string(k.hpvm_id) : "-", knob_kind_name(k.kind),
               fmt::join(knob_op_types(k), ","), k.nominal_speedup,
               knob_run_name(knob_support_for(*backend, k).run), k.summary);
  fmt::print("\nnominal speedup: FLOP ratio for perforation and sampling (a large layer; `caliprox knobs "
             "EXPERIMENT.yaml` gives each layer's), element-width ratio for precision knobs.\n"
             "here: how the {} backend runs the knob on this CPU ({}):\n",
             backend->name(), cpu);
  for (KnobKind kind : {KnobKind::perforation, KnobKind::sampling, KnobKind::fp16, KnobKind::bf16, KnobKind::int8}) {
    const KnobSupport s = backend->knob_support(kind);
    fmt::print("  {:<12} {:<9} {}\n", knob_kind_name(kind), knob_run_name(s.run), s.how);
  }
  for (const auto& [k, v] : backend->device_facts()) fmt::print("  device {:<14} {}\n", k, v);
  fmt::print("emulated knobs change accuracy as the knob defines but run at fp32 speed: `caliprox tune` leaves them "
             "out (the -fp16 variants count as fp16).\n");
  return {};
}

}  // namespace

Status run_knobs(const KnobsSettings& settings) {
  if (!settings.experiment_path) return print_catalogue(settings);
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(*settings.experiment_path));
  CP_TRY(select_network(exp, settings.common.network, "knobs"));
  ResolvedTarget target = resolve_target(exp, settings.common);
  CP_ASSIGN_OR_RETURN(auto evaluator, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
  CP_ASSIGN_OR_RETURN(const std::vector<KnobSite>* sites, evaluator->knob_sites());
  const int64_t batch = exp.dataset.batch;
  CP_ASSIGN_OR_RETURN(Session * session, evaluator->session(batch));
  // Per layer, the knobs that would run on the reference backend's plain loops.
  auto fallbacks = [&](const KnobSite& s) {
    std::vector<std::string> out;
    if (evaluator->backend().name() == "reference") return out;
    for (const Knob* k : s.knobs) {
      if (k->kind == KnobKind::exact || reshapes(*k)) continue;  // reshaped layers run plain ops
      auto placed = session->knob_backend(s.node, *k);
      if (placed.ok() && *placed == "reference") out.push_back(k->name);
    }
    return out;
  };
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
                        {"knobs", knobs},
                        {"flops_saved", s.flops_saved},
                        {"reference_fallback", fallbacks(s)}});
    }
    fmt::print("{}\n", nlohmann::json{{"experiment", exp.name},
                                      {"batch", batch},
                                      {"backend", evaluator->backend().name()},
                                      {"cpu", cpu::describe(cpu::features())},
                                      {"support", knob_support_json(evaluator->backend())},
                                      {"layers", layers}}
                           .dump());
    return {};
  }
  fmt::print("experiment {}: {} layer(s) take knobs (FLOPs at batch {})\n", exp.name, sites->size(), batch);
  size_t w = 4;
  for (const KnobSite& s : *sites) w = std::max(w, s.node.size());
  fmt::print("{:<{}} {:<6} {:<14} {:<18} {:>10} {:>6}  {:<44} {}\n", "node", w, "op", "fused", "output", "MFLOP",
             "kernel", "reshape (MFLOP saved in the network)", "kernel knobs not applicable");
  size_t kernel_all = 0;
  for (const Knob& k : knob_catalogue()) kernel_all += !reshapes(k);
  for (const KnobSite& s : *sites) {
    std::vector<std::string> missing, reshape;
    size_t kernel = 0;
    for (const Knob* k : s.knobs)
      if (reshapes(*k))
        reshape.push_back(fmt::format("{}({:.1f})", k->name, s.flops_saved.count(k->name) ? s.flops_saved.at(k->name) / 1e6 : 0.0));
      else
        ++kernel;
    for (const Knob& k : knob_catalogue())
      if (!reshapes(k) && std::find(s.knobs.begin(), s.knobs.end(), &k) == s.knobs.end()) missing.push_back(k.name);
    std::string not_applicable = missing.empty() ? "-" : fmt::format("{}", fmt::join(missing, " "));
    if (kernel <= 1 && s.op_type != "Conv") not_applicable = fmt::format("all (they apply to Conv only)");
    fmt::print("{:<{}} {:<6} {:<14} {:<18} {:>10.2f} {:>3}/{:<2}  {:<44} {}\n", s.node, w, s.op_type,
               s.fused.empty() ? "-" : s.fused, shape_str(s.geometry.output_shape()), s.flops / 1e6, kernel,
               kernel_all, reshape.empty() ? "-" : fmt::format("{}", fmt::join(reshape, " ")), not_applicable);
  }
  bool any_fallback = false;
  for (const KnobSite& s : *sites) {
    const std::vector<std::string> f = fallbacks(s);
    if (f.empty()) continue;
    any_fallback = true;
    fmt::print("{}: on the reference backend's plain loops (not the fast path, left out by tune and profile): {}\n",
               s.node, fmt::join(f, " "));
  }
  if (!any_fallback)
    fmt::print("every layer runs its knobs on the {} backend; ", evaluator->backend().name());
  fmt::print("knob kinds on this CPU ({}):", cpu::describe(cpu::features()));
  for (KnobKind kind : {KnobKind::perforation, KnobKind::sampling, KnobKind::fp16, KnobKind::bf16, KnobKind::int8})
    fmt::print(" {} {}", knob_kind_name(kind), knob_run_name(evaluator->backend().knob_support(kind).run));
  fmt::print("\n`caliprox knobs --json {}` adds each layer's nominal speedup per knob.\n", *settings.experiment_path);
  return {};
}

}  // namespace caliprox
