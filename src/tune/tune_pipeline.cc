// The phases of `caliprox tune` around the search: records identity, cost
// model, finalists and levels (tune/tune_pipeline.h).
#include "tune/tune_pipeline.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace caliprox {

Result<TuneRecords> open_tune_records(PipelineContext& c) {
  const TuneSpec& spec = c.exp.tune;
  TuneRecords out;
  CP_ASSIGN_OR_RETURN(out.network_fingerprint, network_fingerprint(c.exp, c.backend, c.threads, c.batch()));
  nlohmann::json space = nlohmann::json::array();
  for (const auto& l : c.ks.space.layers) space.push_back({{"node", l.node}, {"knobs", l.knobs}});
  const nlohmann::json identity = {
      {"network", out.network_fingerprint},
      {"experiment", c.exp.name},
      {"dataset", {{"samples", c.exp.dataset.samples_path}, {"tune", {c.tune_range.begin, c.tune_range.end}},
                   {"test", {c.test_range.begin, c.test_range.end}}, {"batch", c.batch()}}},
      {"qos", {{"metric", metric_name(c.exp.qos.metric)}, {"max_loss", c.exp.qos.goal.max_loss},
               {"relative", c.exp.qos.goal.kind == GoalKind::relative}}},
      {"space", space},
      {"search", {{"strategy", strategy_name(spec.strategy)}, {"qos_mode", qos_mode_name(spec.qos_mode)},
                  {"cost_mode", cost_mode_name(spec.cost_mode)}, {"seed", spec.seed},
                  {"predictor", {c.predictor_range.begin, c.predictor_range.end}},
                  {"finalists", spec.finalists}}},
  };
  CP_ASSIGN_OR_RETURN(out.fingerprint, open_records(c, identity));
  return out;
}

bool needs_single_runs(const TuneSpec& spec) {
  return spec.qos_mode != QosMode::empirical || spec.strategy == StrategyKind::greedy;
}

ParetoDocument exact_frontier(const PipelineContext& c, const std::string& fingerprint, double baseline_latency_ms) {
  ParetoDocument doc;
  doc.experiment = c.exp.name;
  doc.fingerprint = fingerprint;
  doc.metric = c.exp.qos.metric;
  doc.goal = c.exp.qos.goal;
  doc.baseline_qos_tune = c.base.qos_tune;
  doc.baseline_qos_test = c.base.qos_test;
  doc.baseline_latency_ms = baseline_latency_ms;
  ParetoConfiguration exact;
  exact.id = "exact";
  exact.qos_tune = c.base.qos_tune;
  exact.qos_test = c.base.qos_test;
  exact.speedup_predicted = 1.0;
  exact.speedup_measured = 1.0;
  doc.configurations.push_back(exact);
  return doc;
}

Result<CostModel> tune_cost_model(const PipelineContext& c, const std::string& network_fingerprint) {
  const TuneSpec& spec = c.exp.tune;
  if (spec.cost_mode == CostMode::measured) {
    std::ifstream in(*spec.profile, std::ios::binary);
    if (!in) return invalid_input("cannot read the profile {}", *spec.profile);
    std::ostringstream text;
    text << in.rdbuf();
    CP_ASSIGN_OR_RETURN(ProfileCosts costs, parse_profile_costs(text.str(), *spec.profile, network_fingerprint));
    return measured_cost_model(c.ks.space, costs, *spec.profile);
  }
  // FLOPs of the tunable layers divided by each knob's nominal speedup:
  // deterministic, so an interrupted and resumed search makes the same
  // proposals as an uninterrupted one. The rest of the network (and the
  // real speed of each knob) is what cost_mode measured accounts for.
  return nominal_cost_model(c.ks.space, c.ks.geometries, 0.0, c.ks.flops_saved);
}

std::vector<Finalist> pick_finalists(const PipelineContext& c, const SearchOutcome& outcome) {
  const SearchSpace& space = c.ks.space;
  std::vector<LossSpeedup> pts;
  for (const auto& r : outcome.results) pts.push_back({r.evaluation.qos_loss, r.evaluation.speedup});
  std::vector<size_t> order = pareto_frontier(pts);
  std::vector<size_t> by_speed(pts.size());
  for (size_t i = 0; i < by_speed.size(); ++i) by_speed[i] = i;
  std::stable_sort(by_speed.begin(), by_speed.end(), [&](size_t a, size_t b) { return pts[a].speedup > pts[b].speedup; });
  order.insert(order.end(), by_speed.begin(), by_speed.end());
  std::vector<Finalist> finalists;
  std::set<KnobConfig> seen;
  for (size_t i : order) {
    if (static_cast<int64_t>(finalists.size()) >= c.exp.tune.finalists) break;
    const auto& r = outcome.results[i];
    if (!feasible(r.evaluation, c.base.max_loss) || r.proposal.candidate == space.exact()) continue;
    KnobConfig knobs = space.to_config(r.proposal.candidate);
    if (!seen.insert(knobs).second) continue;
    finalists.push_back({i, std::move(knobs), r.evaluation, r.proposal.origin});
  }
  return finalists;
}

void add_levels(const PipelineContext& c, const SearchPhase& search, const std::vector<Finalist>& finalists,
                const std::vector<Validated>& validated, ParetoDocument& doc) {
  const Metric metric = c.exp.qos.metric;
  std::vector<LossSpeedup> pts{{0.0, 1.0}};
  std::vector<size_t> ref{0};  // pts[j] is finalist ref[j] (j > 0)
  for (size_t i = 0; i < validated.size(); ++i) {
    if (!validated[i].kept) continue;
    pts.push_back({qos_loss(metric, c.base.qos_test, validated[i].qos_test), validated[i].speedup});
    ref.push_back(i);
  }
  const auto frontier = pareto_frontier(pts);
  const ThinningRule rule{c.exp.tune.min_speedup_step, c.exp.tune.min_loss_step};
  int level = 0;
  for (size_t idx : thin_levels(pts, frontier, 0, rule)) {
    if (idx == 0) continue;
    const Finalist& f = finalists[ref[idx]];
    const Validated& v = validated[ref[idx]];
    ParetoConfiguration pc;
    pc.id = fmt::format("c{}", ++level);
    pc.level = level;
    pc.knobs = f.knobs;
    pc.qos_tune = v.qos_tune;
    pc.qos_test = v.qos_test;
    pc.loss_tune = qos_loss(metric, c.base.qos_tune, v.qos_tune);
    pc.loss_test = qos_loss(metric, c.base.qos_test, v.qos_test);
    if (c.exp.tune.qos_mode != QosMode::empirical)
      pc.qos_predicted = qos_loss_inverse(metric, search.predicted_reference, f.predicted.qos_loss);
    pc.speedup_predicted = f.predicted.speedup;
    pc.speedup_measured = v.speedup;
    doc.configurations.push_back(pc);
  }
}

ModelErrors model_errors(const ParetoDocument& doc) {
  ModelErrors e;
  for (const auto& pc : doc.configurations) {
    if (pc.level == 0) continue;
    if (pc.qos_predicted) {
      e.qos += std::fabs(*pc.qos_predicted - pc.qos_tune);
      ++e.qos_count;
    }
    if (pc.speedup_predicted && pc.speedup_measured) {
      e.speedup += std::fabs(*pc.speedup_predicted - *pc.speedup_measured);
      ++e.speedup_count;
    }
  }
  if (e.qos_count > 0) e.qos /= e.qos_count;
  if (e.speedup_count > 0) e.speedup /= e.speedup_count;
  return e;
}

std::vector<HpvmLayer> hpvm_layers(const KnobSpace& ks) {
  std::vector<HpvmLayer> layers;
  for (size_t l = 0; l < ks.space.layers.size(); ++l) {
    if (ks.space.layers[l].reshape) continue;  // the same layer's kernel entry stands for it
    HpvmLayer hl{ks.space.layers[l].node, {}};
    if (ks.fused[l].find("Add") != std::string::npos) hl.fused_ops.push_back("add");
    if (ks.fused[l].find("Relu") != std::string::npos) hl.fused_ops.push_back("relu");
    layers.push_back(std::move(hl));
  }
  return layers;
}

}  // namespace caliprox
