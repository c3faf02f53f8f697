#include "tune/predict.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "tune/rng.h"

namespace caliprox {

namespace {

Status check_candidate(const std::vector<std::string>& nodes, const std::vector<size_t>& knob_counts,
                       const Candidate& c) {
  if (c.size() != nodes.size())
    return invalid_input("configuration has {} layers, the search space {}", c.size(), nodes.size());
  for (size_t l = 0; l < c.size(); ++l)
    if (c[l] < 0 || static_cast<size_t>(c[l]) >= knob_counts[l])
      return invalid_input("layer {}: knob position {} is outside its {} knobs", nodes[l], c[l], knob_counts[l]);
  return {};
}

}  // namespace

// ------------------------------------------------------------------------ p2

QosDeltaPredictor::QosDeltaPredictor(const SearchSpace& space, double exact_qos) : exact_(exact_qos) {
  for (const auto& l : space.layers) {
    nodes_.push_back(l.node);
    delta_.emplace_back(l.knobs.size());
    delta_.back()[0] = 0.0;  // the exact knob changes nothing
  }
}

Status QosDeltaPredictor::set_single(size_t layer, size_t knob, double qos) {
  if (layer >= delta_.size() || knob >= delta_[layer].size())
    return invalid_input("p2 predictor: no knob #{} on layer #{}", knob, layer);
  if (knob == 0) return {};
  delta_[layer][knob] = qos - exact_;
  return {};
}

bool QosDeltaPredictor::complete() const {
  for (const auto& l : delta_)
    for (const auto& d : l)
      if (!d) return false;
  return true;
}

Result<double> QosDeltaPredictor::predict(const Candidate& c) const {
  if (c.size() != delta_.size())
    return invalid_input("p2 predictor: configuration has {} layers, the search space {}", c.size(), delta_.size());
  double q = exact_;
  for (size_t l = 0; l < c.size(); ++l) {
    if (c[l] < 0 || static_cast<size_t>(c[l]) >= delta_[l].size())
      return invalid_input("p2 predictor: layer {} has no knob #{}", nodes_[l], c[l]);
    const auto& d = delta_[l][static_cast<size_t>(c[l])];
    if (!d) return invalid_input("p2 predictor: no single-knob result for layer {} knob #{}", nodes_[l], c[l]);
    q += *d;
  }
  return q;
}

// ------------------------------------------------------------------------ p1

Result<OutputDeltaPredictor> OutputDeltaPredictor::create(const SearchSpace& space, const std::vector<float>& exact,
                                                          int64_t samples, int64_t width, const Options& options) {
  if (samples <= 0 || width <= 0 || static_cast<int64_t>(exact.size()) != samples * width)
    return invalid_input("p1 predictor: exact outputs hold {} values, expected {} samples x {} outputs", exact.size(),
                         samples, width);
  OutputDeltaPredictor p;
  p.samples_ = samples;
  p.width_ = width;
  const int64_t keep = options.max_samples > 0 ? std::min(options.max_samples, samples) : samples;
  p.kept_.reserve(static_cast<size_t>(keep));
  if (keep < samples) {
    Rng rng(options.seed);
    for (size_t i : rng.distinct(static_cast<size_t>(samples), static_cast<size_t>(options.max_samples)))
      p.kept_.push_back(static_cast<int64_t>(i));
    std::sort(p.kept_.begin(), p.kept_.end());
  } else {
    for (int64_t i = 0; i < samples; ++i) p.kept_.push_back(i);
  }
  p.exact_kept_.reserve(p.kept_.size() * static_cast<size_t>(width));
  for (int64_t s : p.kept_)
    p.exact_kept_.insert(p.exact_kept_.end(), exact.begin() + s * width, exact.begin() + (s + 1) * width);
  for (const auto& l : space.layers) {
    p.nodes_.push_back(l.node);
    p.delta_.emplace_back(l.knobs.size());
  }
  return p;
}

Status OutputDeltaPredictor::set_single(size_t layer, size_t knob, const float* outputs, int64_t samples,
                                        int64_t width) {
  if (layer >= delta_.size() || knob >= delta_[layer].size())
    return invalid_input("p1 predictor: no knob #{} on layer #{}", knob, layer);
  if (samples != samples_ || width != width_)
    return invalid_input("p1 predictor: layer {} knob #{}: outputs are {} x {}, the exact outputs {} x {}",
                         nodes_[layer], knob, samples, width, samples_, width_);
  if (knob == 0) return {};
  std::vector<float>& d = delta_[layer][knob];
  d.resize(exact_kept_.size());
  size_t j = 0;
  for (int64_t s : kept_)
    for (int64_t k = 0; k < width_; ++k, ++j) d[j] = outputs[s * width_ + k] - exact_kept_[j];
  d.shrink_to_fit();
  return {};
}

bool OutputDeltaPredictor::complete() const {
  for (const auto& l : delta_)
    for (size_t k = 1; k < l.size(); ++k)
      if (l[k].empty()) return false;
  return true;
}

Status OutputDeltaPredictor::predict_outputs(const Candidate& c, std::vector<float>& out) const {
  std::vector<size_t> counts;
  for (const auto& l : delta_) counts.push_back(l.size());
  CP_TRY(check_candidate(nodes_, counts, c).with_context("p1 predictor"));
  out = exact_kept_;
  for (size_t l = 0; l < c.size(); ++l) {
    if (c[l] == 0) continue;
    const std::vector<float>& d = delta_[l][static_cast<size_t>(c[l])];
    if (d.empty()) return invalid_input("p1 predictor: no single-knob outputs for layer {} knob #{}", nodes_[l], c[l]);
    for (size_t i = 0; i < out.size(); ++i) out[i] += d[i];
  }
  return {};
}

Result<double> OutputDeltaPredictor::predict(const Candidate& c, const OutputMetric& metric) const {
  std::vector<float> out;
  CP_TRY(predict_outputs(c, out));
  return metric(out);
}

size_t OutputDeltaPredictor::memory_bytes() const {
  size_t bytes = exact_kept_.capacity() * sizeof(float) + kept_.capacity() * sizeof(int64_t);
  for (const auto& l : delta_)
    for (const auto& d : l) bytes += d.capacity() * sizeof(float);
  return bytes;
}

// ---------------------------------------------------------------- cost models

CostModel::CostModel(std::vector<std::vector<double>> layer_cost, double rest, std::string unit)
    : layer_cost_(std::move(layer_cost)), rest_(rest), unit_(std::move(unit)) {
  exact_ = rest_;
  for (const auto& l : layer_cost_) exact_ += l.empty() ? 0.0 : l[0];
}

double CostModel::cost(const Candidate& c) const {
  double total = rest_;
  for (size_t l = 0; l < c.size() && l < layer_cost_.size(); ++l) total += layer_cost_[l][static_cast<size_t>(c[l])];
  // Reshape entries add negative costs (savings); summed savings of
  // overlapping rewrites can exceed what is there, so a floor.
  return std::max(total, 0.01 * exact_);
}

std::vector<std::vector<double>> CostModel::single_speedups() const {
  std::vector<std::vector<double>> out(layer_cost_.size());
  for (size_t l = 0; l < layer_cost_.size(); ++l)
    for (double c : layer_cost_[l]) out[l].push_back(exact_ / std::max(exact_ - layer_cost_[l][0] + c, 0.01 * exact_));
  return out;
}

Result<CostModel> nominal_cost_model(const SearchSpace& space, const std::vector<ConvGeometry>& geometries,
                                     double non_conv_share, const std::vector<std::map<std::string, double>>& flops_saved) {
  if (geometries.size() != space.layers.size())
    return invalid_input("nominal cost model: {} layer geometries for {} layers", geometries.size(),
                         space.layers.size());
  if (!(non_conv_share >= 0 && non_conv_share < 1))
    return invalid_input("nominal cost model: the non-conv share must be in [0, 1), found {}", non_conv_share);
  std::vector<std::vector<double>> cost(space.layers.size());
  double conv_total = 0;
  if (!flops_saved.empty() && flops_saved.size() != space.layers.size())
    return invalid_input("nominal cost model: {} FLOP savings for {} layers", flops_saved.size(), space.layers.size());
  for (size_t l = 0; l < space.layers.size(); ++l) {
    if (space.layers[l].reshape) {  // a saving against the exact network: 0 for the exact knob
      const std::map<std::string, double> none;
      const auto& saved = flops_saved.empty() ? none : flops_saved[l];
      for (const auto& name : space.layers[l].knobs) {
        if (name == exact_knob().name) {
          cost[l].push_back(0.0);
          continue;
        }
        auto it = saved.find(name);
        if (it == saved.end())
          return invalid_input("nominal cost model: layer {}: no FLOP saving known for reshape knob '{}'",
                               space.layers[l].node, name);
        cost[l].push_back(-it->second * 1e-9);
      }
      continue;
    }
    const ConvGeometry& g = geometries[l];
    if (g.rank() != 2 || g.kernel.size() != 2 || g.out_spatial.size() != 2)
      return invalid_input("nominal cost model: layer {} is not a 2-D convolution", space.layers[l].node);
    const double flops = conv_layer_flops(g) * 1e-9;
    conv_total += flops;
    for (const auto& name : space.layers[l].knobs) {
      const Knob* k = find_knob(name);
      if (k == nullptr) return invalid_input("nominal cost model: layer {}: unknown knob '{}'", space.layers[l].node, name);
      cost[l].push_back(flops / layer_nominal_speedup(*k, g));
    }
  }
  // The rest is a fixed share of the exact network: rest / (conv + rest) = share.
  const double rest = conv_total * non_conv_share / (1.0 - non_conv_share);
  return CostModel(std::move(cost), rest, "GFLOP");
}

Result<ProfileCosts> parse_profile_costs(std::string_view text, std::string_view source,
                                         std::string_view expected_fingerprint) {
  using json = nlohmann::json;
  json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) return invalid_input("{}: not a JSON object", source);
  auto median_of_stat = [&](const json& parent, const std::string& path, const char* key) -> Result<double> {
    auto it = parent.find(key);
    if (it == parent.end() || !it->is_object())
      return invalid_input("{}: {}.{}: expected a statistics object", source, path, key);
    auto m = it->find("median");
    if (m == it->end() || !m->is_number())
      return invalid_input("{}: {}.{}.median: expected a number", source, path, key);
    return m->get<double>();
  };
  ProfileCosts pc;
  auto fp = root.find("fingerprint");
  if (fp == root.end() || !fp->is_string()) return invalid_input("{}: fingerprint: expected a string", source);
  pc.fingerprint = fp->get<std::string>();
  if (!expected_fingerprint.empty() && pc.fingerprint != expected_fingerprint)
    return invalid_input("{}: fingerprint {} does not match this experiment's network and target ({}): the "
                         "profile was measured for another network, batch size or target; run `caliprox "
                         "profile` again",
                         source, pc.fingerprint, expected_fingerprint);
  auto baseline = root.find("baseline");
  if (baseline == root.end() || !baseline->is_object()) return invalid_input("{}: baseline: expected an object", source);
  CP_ASSIGN_OR_RETURN(pc.baseline_ms, median_of_stat(*baseline, "baseline", "latency_ms"));
  auto rest = root.find("rest_ms");
  if (rest == root.end() || !rest->is_number()) return invalid_input("{}: rest_ms: expected a number", source);
  pc.rest_ms = rest->get<double>();
  auto layers = root.find("layers");
  if (layers == root.end() || !layers->is_array()) return invalid_input("{}: layers: expected an array", source);
  for (size_t i = 0; i < layers->size(); ++i) {
    const json& l = (*layers)[i];
    const std::string path = fmt::format("layers[{}]", i);
    if (!l.is_object() || !l.contains("node") || !l["node"].is_string())
      return invalid_input("{}: {}.node: expected a string", source, path);
    const std::string node = l["node"].get<std::string>();
    auto knobs = l.find("knobs");
    if (knobs == l.end() || !knobs->is_object())
      return invalid_input("{}: {}.knobs: expected an object (knob -> measurements)", source, path);
    for (const auto& [knob, m] : knobs->items()) {
      if (!m.is_object()) return invalid_input("{}: {}.knobs.{}: expected an object", source, path, knob);
      CP_ASSIGN_OR_RETURN(pc.layer_ms[node][knob], median_of_stat(m, path + ".knobs." + knob, "latency_ms"));
    }
  }
  if (auto reshape = root.find("reshape"); reshape != root.end()) {  // absent in profiles without reshape knobs
    if (!reshape->is_object()) return invalid_input("{}: reshape: expected an object (node -> knob -> measurements)", source);
    for (const auto& [node, knobs] : reshape->items()) {
      if (!knobs.is_object()) return invalid_input("{}: reshape.{}: expected an object", source, node);
      for (const auto& [knob, m] : knobs.items()) {
        if (!m.is_object()) return invalid_input("{}: reshape.{}.{}: expected an object", source, node, knob);
        CP_ASSIGN_OR_RETURN(pc.reshape_ms[node][knob],
                            median_of_stat(m, fmt::format("reshape.{}.{}", node, knob), "latency_ms"));
      }
    }
  }
  return pc;
}

Result<CostModel> measured_cost_model(const SearchSpace& space, const ProfileCosts& costs, std::string_view source) {
  std::vector<std::vector<double>> cost(space.layers.size());
  for (size_t l = 0; l < space.layers.size(); ++l) {
    const auto& layer = space.layers[l];
    if (layer.reshape) {  // the whole network's change under the knob
      cost[l].push_back(0.0);
      for (size_t k = 1; k < layer.knobs.size(); ++k) {
        auto node = costs.reshape_ms.find(layer.node);
        const auto* m = node == costs.reshape_ms.end() ? nullptr : &node->second;
        auto it = m ? m->find(layer.knobs[k]) : std::map<std::string, double>::const_iterator{};
        if (m == nullptr || it == m->end())
          return invalid_input("{}: no whole-network measurement of {} under reshape knob {}; run `caliprox "
                               "profile` again",
                               source, layer.node, layer.knobs[k]);
        cost[l].push_back(it->second - costs.baseline_ms);
      }
      continue;
    }
    auto it = costs.layer_ms.find(layer.node);
    if (it == costs.layer_ms.end())
      return invalid_input("{}: no measurements for layer {} (the profile lists {} layers); run `caliprox "
                           "profile` again",
                           source, layer.node, costs.layer_ms.size());
    for (const auto& knob : layer.knobs) {
      auto k = it->second.find(knob);
      if (k == it->second.end())
        return invalid_input("{}: layer {} has no measurement for knob {}", source, layer.node, knob);
      if (!(k->second >= 0)) return invalid_input("{}: layer {} knob {}: latency {} ms is not a time", source, layer.node, knob, k->second);
      cost[l].push_back(k->second);
    }
  }
  if (!(costs.rest_ms >= 0)) return invalid_input("{}: rest_ms {} is negative", source, costs.rest_ms);
  return CostModel(std::move(cost), costs.rest_ms, "ms");
}

}  // namespace caliprox
