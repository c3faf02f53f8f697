#include "app/knob_space.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tune/records.h"

namespace caliprox {

Result<KnobSpace> make_knob_space(const Experiment& exp, const std::vector<KnobSite>& sites) {
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
    bool in = spec.include.empty();
    for (const auto& p : spec.include) in = in || knob_pattern_matches(p, k.name);
    for (const auto& p : spec.exclude) in = in && !knob_pattern_matches(p, k.name);
    return in;
  };
  KnobSpace ks;
  for (const KnobSite& site : sites) {
    if (!spec.layers.empty() && std::find(spec.layers.begin(), spec.layers.end(), site.node) == spec.layers.end())
      continue;
    std::vector<const Knob*> knobs;
    for (const Knob* k : site.knobs)
      if (k->kind != KnobKind::exact && selected(*k)) knobs.push_back(k);
    // Least to most aggressive: the evolutionary strategy's numeric axis.
    std::stable_sort(knobs.begin(), knobs.end(), [&](const Knob* a, const Knob* b) {
      return layer_nominal_speedup(*a, site.geometry) < layer_nominal_speedup(*b, site.geometry);
    });
    LayerChoices layer{site.node, {exact_knob().name}};
    for (const Knob* k : knobs) layer.knobs.push_back(k->name);
    ks.space.layers.push_back(std::move(layer));
    ks.geometries.push_back(site.geometry);
    ks.fused.push_back(site.fused);
  }
  Status st = ks.space.validate();
  if (!st.ok()) return st.with_context(fmt::format("{}: the knob space (sections knobs.include/exclude/layers)",
                                                   exp.source_path));
  return ks;
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
