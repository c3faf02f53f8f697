#include "tune/knob_space.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tune/records.h"

namespace caliprox {

Result<KnobSpace> make_knob_space(const Experiment& exp, const std::vector<KnobSite>& sites, const Backend& backend,
                                  EmulatedKnobs emulated, const Session* session) {
  const KnobSpaceSpec& spec = exp.knobs;
  for (const auto& name : spec.layers) {
    if (std::none_of(sites.begin(), sites.end(), [&](const KnobSite& s) { return s.node == name; })) {
      std::vector<std::string> names;
      for (const auto& s : sites) names.push_back(s.node);
      return invalid_input("{}: knobs.layers names '{}', which is not a layer that takes knobs (those are: {})",
                           exp.source_path, name, fmt::join(names, ", "));
    }
  }
  auto selected = [&](const Knob& k) {
    bool in = spec.include.empty() && !reshapes(k);
    for (const auto& p : spec.include) in = in || knob_pattern_matches(p, k.name);
    for (const auto& p : spec.exclude) in = in && !knob_pattern_matches(p, k.name);
    return in;
  };
  KnobSpace ks;
  // Kinds this target runs here (probe-decided), layers that would fall
  // back, and what is left out.
  auto leave_out = [&](const Knob& k, KnobSupport why) {
    auto it = std::find_if(ks.left_out.begin(), ks.left_out.end(),
                           [&](const LeftOutKnobs& l) { return l.kind == k.kind && l.support.how == why.how; });
    if (it == ks.left_out.end()) it = ks.left_out.insert(ks.left_out.end(), {k.kind, std::move(why), {}});
    if (std::find(it->knobs.begin(), it->knobs.end(), k.name) == it->knobs.end()) it->knobs.push_back(k.name);
  };
  auto runs_here = [&](const KnobSite& site, const Knob& k) {
    const KnobSupport support = knob_support_for(backend, k);
    if (support.run == KnobRun::unavailable || (support.run == KnobRun::emulated && emulated == EmulatedKnobs::leave_out)) {
      leave_out(k, support);
      return false;
    }
    if (session != nullptr && backend.name() != "reference" && !reshapes(k)) {
      auto placed = session->knob_backend(site.node, k);
      if (placed.ok() && *placed == "reference") {
        leave_out(k, {KnobRun::unavailable,
                      fmt::format("{} would run on the reference backend's plain loops ({} declines the layer)",
                                  site.node, backend.name())});
        return false;
      }
    }
    return true;
  };
  for (const KnobSite& site : sites) {
    if (!spec.layers.empty() && std::find(spec.layers.begin(), spec.layers.end(), site.node) == spec.layers.end())
      continue;
    std::vector<const Knob*> kernel, reshape;
    for (const Knob* k : site.knobs)
      if (k->kind != KnobKind::exact && selected(*k) && runs_here(site, *k)) (reshapes(*k) ? reshape : kernel).push_back(k);
    // Least to most aggressive: the evolutionary strategy's numeric axis.
    auto saving = [&](const Knob* k) {
      if (!reshapes(*k)) return layer_nominal_speedup(*k, site.geometry);
      auto it = site.flops_saved.find(k->name);
      return it == site.flops_saved.end() ? 0.0 : it->second;
    };
    for (auto* list : {&kernel, &reshape})
      std::stable_sort(list->begin(), list->end(), [&](const Knob* a, const Knob* b) { return saving(a) < saving(b); });
    for (bool is_reshape : {false, true}) {
      const auto& knobs = is_reshape ? reshape : kernel;
      // A kernel entry for every Conv (as before reshape knobs); a reshape
      // entry only with reshape knobs.
      if (is_reshape ? knobs.empty() : site.op_type != "Conv") continue;
      LayerChoices layer{site.node, {exact_knob().name}, is_reshape};
      for (const Knob* k : knobs) layer.knobs.push_back(k->name);
      ks.space.layers.push_back(std::move(layer));
      ks.geometries.push_back(site.geometry);
      ks.fused.push_back(site.fused);
      ks.flops_saved.push_back(is_reshape ? site.flops_saved : std::map<std::string, double>{});
    }
  }
  Status st = ks.space.validate();
  if (!st.ok()) return st.with_context(fmt::format("{}: the knob space (sections knobs.include/exclude/layers)",
                                                   exp.source_path));
  return ks;
}

nlohmann::json knob_support_json(const Backend& backend) {
  nlohmann::json j = nlohmann::json::object();
  for (KnobKind kind : {KnobKind::perforation, KnobKind::sampling, KnobKind::fp16, KnobKind::bf16, KnobKind::int8}) {
    const KnobSupport s = backend.knob_support(kind);
    j[std::string(knob_kind_name(kind))] = {{"run", knob_run_name(s.run)}, {"how", s.how}};
  }
  return j;
}

nlohmann::json left_out_json(const KnobSpace& ks) {
  nlohmann::json j = nlohmann::json::array();
  for (const LeftOutKnobs& l : ks.left_out)
    j.push_back({{"kind", knob_kind_name(l.kind)}, {"run", knob_run_name(l.support.run)}, {"how", l.support.how},
                 {"knobs", l.knobs}});
  return j;
}

Result<std::string> network_fingerprint(const Experiment& exp, const std::string& backend, int threads,
                                        int64_t batch) {
  std::ifstream in(exp.network.model_path, std::ios::binary);
  if (!in) return invalid_input("cannot read the model {}", exp.network.model_path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  nlohmann::json id = {{"model", fingerprint_of(bytes.str())},
                       {"backend", backend},
                       {"threads", threads},
                       {"batch", batch}};
  return fingerprint_of(id.dump());
}

}  // namespace caliprox
