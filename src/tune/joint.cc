// The joint space of several networks and the evaluation of its
// candidates (tune/joint.h).
#include "tune/joint.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "eval/reshape.h"
#include "qos/error_stats.h"

namespace caliprox {

namespace {

constexpr char kSeparator = ':';  // joint node names: "<network>:<node>"
constexpr double kWorst = 1e30;   // the search loss of a candidate as far from feasible as can be

Status check_budgets(const Experiment& exp, const BudgetSpace& b) {
  if (b.experiment() != exp.name)
    return invalid_input("{}: calibrated for experiment '{}', this is '{}'", b.source(), b.experiment(), exp.name);
  std::vector<std::string> names;
  for (const NetworkSpec& n : exp.networks) names.push_back(n.name);
  for (const BudgetAxis& a : b.axes())
    if (std::find(names.begin(), names.end(), a.network) == names.end())
      return invalid_input("{}: axis '{}' is about network '{}', which {} does not have (it has: {})", b.source(),
                           a.name, a.network, exp.source_path, fmt::join(names, ", "));
  bool any_valid = false;
  for (const auto& p : b.region().points()) any_valid = any_valid || p.verdict == Verdict::valid;
  if (!any_valid)
    return invalid_input("{}: no point of the budgets is valid, so no candidate can be accepted (calibrate again "
                         "with a box whose least severe corner the application passes)",
                         b.source());
  return {};
}

}  // namespace

Result<std::unique_ptr<JointTuner>> JointTuner::open(JointSetup setup, PipelineReporter* reporter) {
  if (!(setup.margin >= 0 && setup.margin < 1))
    return invalid_input("the guide's margin must be in [0, 1) (a fraction of each axis's range), got {}",
                         setup.margin);
  if (setup.checks < 1) return invalid_input("the application checks must be at least 1, got {}", setup.checks);
  if (!setup.experiment.application)
    return invalid_input("{}: joint tuning needs an application section (the application validates what it picks)",
                         setup.experiment.source_path);
  std::vector<std::string> names;
  if (setup.budgets) {
    CP_TRY(check_budgets(setup.experiment, *setup.budgets));
    names = setup.budgets->networks();
  } else {
    for (const NetworkSpec& n : setup.experiment.networks) names.push_back(n.name);
  }
  std::unique_ptr<JointTuner> t(new JointTuner(std::move(setup)));
  for (const std::string& name : names) CP_TRY(t->open_network(name, reporter));
  return t;
}

Status JointTuner::open_network(const std::string& name, PipelineReporter* reporter) {
  Experiment exp = setup_.experiment;
  CP_TRY(select_network(exp, name, "tune"));
  JointNetwork n;
  n.name = name;
  std::unique_ptr<WorkerPool> ranks;
  if (setup_.ranks) ranks = std::make_unique<ClusterWorkerPool>(*setup_.ranks);
  CP_ASSIGN_OR_RETURN(n.ctx, open_pipeline({std::move(exp), setup_.backend, setup_.threads, setup_.jobs, setup_.dir,
                                            "tune", std::move(ranks)},
                                           reporter));
  PipelineContext& c = *n.ctx;
  CP_ASSIGN_OR_RETURN(n.exact_ms, median_batch_ms(c.main(), c.batch(), 15));
  const Dataset& data = c.main().dataset();
  CP_ASSIGN_OR_RETURN(n.range, data.split(guided() ? "calibrate" : "tune"));
  CP_ASSIGN_OR_RETURN(SplitResult base, empirical(c, 0, {}, n.range, &n.exact));
  CP_ASSIGN_OR_RETURN(n.exact_flops, current_flops(c.main(), c.batch()));
  n.exact_qos = base.qos;
  n.row = base.samples > 0 ? static_cast<int64_t>(n.exact.size()) / base.samples : 0;
  n.labels = data.label_batch(n.range.begin, n.range.end);
  n.exact_errors = output_errors(n.exact, n.exact, n.row, n.labels ? &*n.labels : nullptr);
  n.max_loss = absolute_max_loss(c.exp.qos, base.qos);
  if (!guided() && !(n.max_loss > 0))
    return Status(Errc::goal_not_met,
                  fmt::format("{}: the QoS goal of network '{}' allows no loss, so nothing can be tuned against it",
                              c.exp.source_path, name));
  n.first = space_.layers.size();
  for (LayerChoices l : c.ks.space.layers) {
    l.node = name + kSeparator + l.node;
    space_.layers.push_back(std::move(l));
  }
  networks_.push_back(std::move(n));
  return {};
}

std::map<std::string, KnobConfig> JointTuner::split(const KnobConfig& joint) const {
  std::map<std::string, KnobConfig> parts;
  for (const JointNetwork& n : networks_) parts[n.name];
  for (const auto& [node, knob] : joint) {
    const auto cut = node.find(kSeparator);
    if (cut != std::string::npos) parts[node.substr(0, cut)][node.substr(cut + 1)] = knob;
  }
  return parts;
}

Result<JointTuner::Part> JointTuner::run_part(JointNetwork& n, const KnobConfig& config, int worker) {
  const std::string key = n.name + "\n" + nlohmann::json(config).dump();
  {
    std::lock_guard lock(cache_mu_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  Part p;
  if (config.empty()) {
    p.errors = n.exact_errors;
  } else {
    std::vector<float> outputs;
    double flops = 0;
    CP_ASSIGN_OR_RETURN(SplitResult r, empirical(*n.ctx, worker, config, n.range, &outputs, false, &flops));
    p.errors = output_errors(outputs, n.exact, n.row, n.labels ? &*n.labels : nullptr);
    p.loss = qos_loss(n.ctx->exp.qos.metric, n.exact_qos, r.qos);
    p.speedup = flops > 0 ? n.exact_flops / flops : 1.0;
  }
  std::lock_guard lock(cache_mu_);
  cache_.emplace(key, p);
  return p;
}

Result<JointEval> JointTuner::evaluate(const Candidate& c, int worker) {
  const std::map<std::string, KnobConfig> parts = split(space_.to_config(c));
  std::map<std::string, Part> done;
  std::map<std::string, double> speedups;
  JointEval e;
  e.search_loss = -1;
  for (JointNetwork& n : networks_) {
    CP_ASSIGN_OR_RETURN(Part p, run_part(n, parts.at(n.name), worker));
    e.loss[n.name] = p.loss;
    // A NaN loss (diverged outputs) is the worst there is, not one std::max skips.
    e.search_loss = std::isnan(p.loss) ? kWorst : std::max(e.search_loss, p.loss / n.max_loss - 1);
    speedups[n.name] = p.speedup;
    done.emplace(n.name, std::move(p));
  }
  e.speedup = combine(speedups);
  if (guided()) {
    const BudgetSpace& b = *setup_.budgets;
    CP_ASSIGN_OR_RETURN(e.point,
                        b.point([&](const std::string& net) -> const nlohmann::json& { return done.at(net).errors; }));
    e.slack = b.slack(e.point);
    e.excess = b.excess(e.point);
    e.search_loss = -e.slack;
  }
  // Finite, so that records.jsonl keeps it (JSON has no infinity) and a
  // re-run replays it; any value this large is infeasible.
  if (!(e.search_loss < kWorst)) e.search_loss = kWorst;
  return e;
}

Placement JointTuner::place(const JointEval& e) const {
  if (guided()) return setup_.budgets->place(e.point, setup_.margin);
  return e.search_loss <= 0 ? Placement::uncertain : Placement::discarded;
}

double JointTuner::combine(const std::map<std::string, double>& speedups) const {
  double exact = 0, approx = 0;
  for (const JointNetwork& n : networks_) {
    const auto it = speedups.find(n.name);
    const double s = it == speedups.end() || !(it->second > 0) ? 1.0 : it->second;
    exact += n.exact_ms;
    approx += n.exact_ms / s;
  }
  return approx > 0 ? exact / approx : 1.0;
}

}  // namespace caliprox
