#include "eval/reshape.h"

#include <algorithm>

#include <fmt/format.h>

#include "eval/prune_repair.h"
#include "knobs/lowrank.h"
#include "knobs/prune.h"
#include "util/log.h"

namespace caliprox {

namespace {

// ChannelPrune followed by the least-squares repair of the layers where the
// channels end, on calibration inputs.
class RepairedPrune final : public GraphRewrite {
 public:
  RepairedPrune(std::string node, double fraction, Backend& backend, RepairInputs inputs)
      : node_(std::move(node)), fraction_(fraction), backend_(backend), inputs_(std::move(inputs)) {}
  std::string key() const override { return fmt::format("prune:{}:{}+repair", node_, fraction_); }
  Result<Graph> apply(const Graph& graph) const override {
    CP_ASSIGN_OR_RETURN(PrunePlan plan, plan_prune(graph, node_, fraction_));
    CP_ASSIGN_OR_RETURN(Graph pruned, ChannelPrune(node_, fraction_).apply(graph));
    CP_ASSIGN_OR_RETURN(Tensor x, inputs_());
    RepairReport report;
    CP_ASSIGN_OR_RETURN(Graph repaired, repair_pruned(graph, pruned, plan, x, backend_, {}, &report));
    for (const auto& l : report.layers)
      log_debug("prune {} {}: repaired {} (output mse {:.3g} -> {:.3g})", node_, fraction_, l.node, l.mse_before,
                l.mse_after);
    return repaired;
  }

 private:
  std::string node_;
  double fraction_;
  Backend& backend_;
  RepairInputs inputs_;
};

int node_index(const Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

// The first member (graph order) of the residual group `plan` prunes.
std::string group_leader(const Graph& g, const PrunePlan& plan) {
  return *std::min_element(plan.members.begin(), plan.members.end(),
                           [&](const std::string& a, const std::string& b) { return node_index(g, a) < node_index(g, b); });
}

// A stored float32 weight of the given rank read by input #1 of `node`.
const Tensor* stored_weight(const Graph& g, const Node& node, size_t rank) {
  if (node.inputs.size() < 2) return nullptr;
  auto it = g.initializers.find(node.inputs[1]);
  if (it == g.initializers.end() || it->second.dtype() != DType::f32 || it->second.shape().size() != rank) return nullptr;
  return &it->second;
}

}  // namespace

Result<SplitConfig> split_configuration(const Graph& base, const KnobConfig& config) {
  SplitConfig out;
  std::map<std::string, std::pair<std::string, const Knob*>> groups;  // leader -> (node named, knob)
  std::vector<ReshapeStep> prunes, factorised;
  for (const auto& [node, text] : config) {
    auto choice = parse_knob_choice(text);
    if (!choice.ok()) return choice.status().with_context(fmt::format("configuration: node '{}'", node));
    if (choice->kernel->kind != KnobKind::exact) out.kernels[node] = choice->kernel->name;
    if (choice->reshape == nullptr) continue;
    const Knob* knob = choice->reshape;
    const Node* n = base.find_node(node);
    if (n == nullptr) return invalid_input("configuration: node '{}' (knob '{}') is not a node of the network", node, text);
    if (knob->kind == KnobKind::lowrank) {
      if (n->op_type != "Conv" && n->op_type != "Gemm")
        return invalid_input("configuration: knob '{}' does not apply to {}: lowrank factorises Conv and Gemm", text,
                             n->describe());
      factorised.push_back({node, n->op_type, knob});
      continue;
    }
    auto plan = plan_prune(base, node, knob->fraction);
    if (!plan.ok()) return plan.status().with_context(fmt::format("configuration: node '{}' ({})", node, text));
    const std::string leader = group_leader(base, *plan);
    auto [it, inserted] = groups.emplace(leader, std::make_pair(node, knob));
    if (!inserted && it->second.second != knob)
      return invalid_input("configuration: {} and {} belong to one residual group ({}), whose channels are pruned "
                           "together, but have different knobs ({} and {})",
                           it->second.first, node, fmt::join(plan->members, ", "), it->second.second->name, knob->name);
    if (inserted) prunes.push_back({leader, "Conv", knob});
  }
  auto by_position = [&](const ReshapeStep& a, const ReshapeStep& b) {
    return node_index(base, a.node) < node_index(base, b.node);
  };
  std::sort(prunes.begin(), prunes.end(), by_position);
  std::sort(factorised.begin(), factorised.end(), by_position);
  out.reshapes = std::move(prunes);
  out.reshapes.insert(out.reshapes.end(), factorised.begin(), factorised.end());
  return out;
}

RewriteChain reshape_chain(const SplitConfig& split, Backend& backend, RepairInputs inputs) {
  RewriteChain chain;
  for (const ReshapeStep& s : split.reshapes) {
    if (s.knob->kind == KnobKind::prune)
      chain.push_back(std::make_shared<RepairedPrune>(s.node, s.knob->fraction, backend, inputs));
    else if (s.op_type == "Gemm")
      chain.push_back(std::make_shared<GemmLowRank>(s.node, s.knob->fraction, LowRankBy::cost));
    else
      chain.push_back(std::make_shared<ConvSpatialSvd>(s.node, s.knob->fraction, LowRankBy::cost));
  }
  return chain;
}

namespace {

// FLOPs a prune of `plan` removes: members lose output channels, the ends
// input channels (a node can be both), Gemm ends feature blocks.
double prune_flops_saved(const PrunePlan& plan, const std::map<std::string, const KnobSite*>& by_node) {
  const double kept = static_cast<double>(plan.keep.size()) / static_cast<double>(plan.channels);
  std::map<std::string, std::pair<double, double>> factor;  // node -> (output, input) share kept
  for (const auto& m : plan.members) factor[m].first = kept;
  for (const auto& e : plan.conv_ends) factor[e].second = kept;
  for (const auto& e : plan.gemm_ends) factor[e].second = kept;
  double saved = 0;
  for (const auto& [node, f] : factor) {
    auto it = by_node.find(node);
    if (it == by_node.end()) continue;  // not a counted layer
    const double out = f.first > 0 ? f.first : 1.0, in = f.second > 0 ? f.second : 1.0;
    saved += it->second->flops * (1.0 - out * in);
  }
  return saved;
}

// A Gemm Y = X W^T + b with a stored [out, in] weight as a site (its
// geometry: a 1x1 convolution over a 1x1 image), or nothing.
std::optional<KnobSite> gemm_site(const Graph& g, const Node& n, int64_t batch) {
  const Tensor* w = stored_weight(g, n, 2);
  if (w == nullptr || n.attr_float("alpha", 1.f) != 1.f || n.attr_int("transA", 0) != 0) return std::nullopt;
  const bool trans_b = n.attr_int("transB", 0) != 0;
  ConvGeometry geo;
  geo.n = batch;
  geo.c_out = trans_b ? w->dim(0) : w->dim(1);
  geo.c_in = trans_b ? w->dim(1) : w->dim(0);
  geo.in_spatial = geo.out_spatial = geo.kernel = geo.strides = geo.dilations = {1, 1};
  geo.pads_begin = geo.pads_end = {0, 0};
  KnobSite site{n.name, "Gemm", geo, conv_layer_flops(geo), "", {&exact_knob()}, {}};
  return site;
}

void add_lowrank(KnobSite& site, const Graph& g, const Node& n) {
  for (const Knob& k : knob_catalogue()) {
    if (k.kind != KnobKind::lowrank) continue;
    const ConvGeometry& geo = site.geometry;
    double after = 0;
    if (n.op_type == "Gemm") {
      auto r = gemm_lowrank_rank(geo.c_out, geo.c_in, k.fraction, LowRankBy::cost, n.name);
      if (!r.ok()) continue;
      after = 2.0 * static_cast<double>(geo.n) * static_cast<double>(*r * (geo.c_in + geo.c_out));
    } else {
      const Tensor* w = stored_weight(g, n, 4);
      const bool plain = n.attr_int("group", 1) == 1 && n.attr_ints("dilations", {1, 1}) == std::vector<int64_t>{1, 1} &&
                         n.attr_string("auto_pad", "NOTSET") == "NOTSET";
      if (w == nullptr || !plain || w->dim(2) != w->dim(3) || w->dim(2) < 2) continue;
      auto r = spatial_svd_rank(w->dim(0), w->dim(1), w->dim(2), k.fraction, LowRankBy::cost, n.name);
      if (!r.ok()) continue;
      after = spatial_svd_flops(geo, *r);
    }
    if (after >= site.flops) continue;  // no saving at this geometry
    site.knobs.push_back(&k);
    site.flops_saved[k.name] = site.flops - after;
  }
}

}  // namespace

double network_flops(const Graph& graph, const std::vector<KnobSite>& sites, int64_t batch) {
  double flops = 0;
  for (const KnobSite& s : sites)
    if (s.op_type == "Conv") flops += s.flops;
  for (const Node& n : graph.nodes)
    if (n.op_type == "Gemm")
      if (auto site = gemm_site(graph, n, batch)) flops += site->flops;
  return flops;
}

double configured_flops(const Graph& graph, const std::vector<KnobSite>& sites, const KnobConfig& kernels,
                        int64_t batch) {
  double flops = network_flops(graph, sites, batch);
  for (const KnobSite& s : sites) {
    const auto it = kernels.find(s.node);
    const Knob* k = it == kernels.end() ? nullptr : find_knob(it->second);
    if (s.op_type != "Conv" || k == nullptr || k->kind == KnobKind::exact || reshapes(*k)) continue;
    flops -= s.flops * (1 - 1 / layer_nominal_speedup(*k, s.geometry));
  }
  return flops;
}

WeightSize weight_size(const Graph& graph, const KnobConfig& kernels) {
  std::map<std::string, int64_t> width;  // weight initializer -> bytes per element
  for (const Node& n : graph.nodes) {
    const auto it = kernels.find(n.name);
    if (it == kernels.end() || n.inputs.size() < 2) continue;
    const Knob* k = find_knob(it->second);
    if (k == nullptr) continue;
    if (k->kind == KnobKind::int8) width[n.inputs[1]] = 1;
    else if (k->half || k->kind == KnobKind::fp16 || k->kind == KnobKind::bf16) width[n.inputs[1]] = 2;
  }
  WeightSize out;
  for (const auto& [name, t] : graph.initializers) {
    out.parameters += t.numel();
    const auto w = width.find(name);
    out.bytes += w == width.end() ? static_cast<int64_t>(t.nbytes()) : t.numel() * w->second;
  }
  return out;
}

void add_reshape_sites(const Graph& base, int64_t batch, std::vector<KnobSite>& sites) {
  std::vector<KnobSite> gemms;
  for (const Node& n : base.nodes)
    if (n.op_type == "Gemm")
      if (auto site = gemm_site(base, n, batch)) gemms.push_back(std::move(*site));
  std::map<std::string, const KnobSite*> by_node;
  for (const KnobSite& s : sites) by_node[s.node] = &s;
  for (const KnobSite& s : gemms) by_node[s.node] = &s;
  std::map<std::string, std::vector<std::pair<const Knob*, double>>> prunes;
  for (const KnobSite& site : sites) {
    if (site.op_type != "Conv") continue;
    for (const Knob& k : knob_catalogue()) {
      if (k.kind != KnobKind::prune) continue;
      auto plan = plan_prune(base, site.node, k.fraction);
      if (!plan.ok() || group_leader(base, *plan) != site.node) continue;
      prunes[site.node].push_back({&k, prune_flops_saved(*plan, by_node)});
    }
  }
  for (KnobSite& site : sites) {
    const Node* n = base.find_node(site.node);
    if (n == nullptr) continue;  // a node the executor made
    for (const auto& [k, saved] : prunes[site.node]) {
      site.knobs.push_back(k);
      site.flops_saved[k->name] = saved;
    }
    if (site.op_type == "Conv") add_lowrank(site, base, *n);
  }
  for (KnobSite& site : gemms) {
    add_lowrank(site, base, *base.find_node(site.node));
    if (site.knobs.size() > 1) sites.push_back(std::move(site));
  }
  std::stable_sort(sites.begin(), sites.end(), [&](const KnobSite& a, const KnobSite& b) {
    return node_index(base, a.node) < node_index(base, b.node);
  });
}

}  // namespace caliprox
