// caliprox adapt-sim: Mobiprox's run-time adaptation, simulated. The levels
// of a frontier (pareto.json) are measured on the target (adapt_levels.h);
// each strategy walks streams drawn from a labelled split over the levels'
// answers; the report compares them with every static level, with the
// exact network and with the oracle. Writes adaptation.json (the table the
// runtime loads), adapt-sim.json (the report) and adapt-traces.json (the
// level each input ran at, per stream and strategy).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "adapt/stream.h"
#include "adapt/table.h"
#include "app/adapt_levels.h"
#include "app/common.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace {

Result<ParetoDocument> read_pareto(const std::string& path, const Experiment& exp) {
  Result<ParetoDocument> read = load_pareto_json(path, "--pareto");
  if (!read.ok()) return read.status().with_context("run caliprox tune first, or give --pareto FILE");
  ParetoDocument doc = std::move(read).value();
  if (doc.experiment != exp.name)
    return invalid_input("{}: the frontier of experiment '{}', not '{}'", path, doc.experiment, exp.name);
  std::sort(doc.configurations.begin(), doc.configurations.end(),
            [](const auto& a, const auto& b) { return a.level < b.level; });
  if (doc.configurations.empty() || doc.configurations.front().level != 0 || !doc.configurations.front().knobs.empty())
    return invalid_input("{}: level 0 must be the exact network", path);
  return doc;
}

nlohmann::json result_json(const SimulationResult& r, double exact_ms, std::optional<double> best_static_ms) {
  return {{"strategy", r.strategy},
          {"accuracy", r.accuracy},
          {"agreement", r.agreement},
          {"mean_latency_ms", r.mean_latency_ms},
          {"mean_energy_j", r.mean_energy_j ? nlohmann::json(*r.mean_energy_j) : nlohmann::json()},
          {"savings_vs_exact", 1 - r.mean_latency_ms / exact_ms},
          {"savings_vs_best_static",
           best_static_ms ? nlohmann::json(1 - r.mean_latency_ms / *best_static_ms) : nlohmann::json()},
          {"switches", r.switches},
          {"switches_per_1000", r.switches_per_1000},
          {"level_counts", r.level_counts}};
}

// Strategies, static levels and the oracle over one stream.
struct StreamReport {
  nlohmann::json json;
  nlohmann::json traces;
  std::vector<SimulationResult> results;
};

Result<StreamReport> simulate_stream(const Experiment& exp, const StreamSpec& spec, const Stream& stream,
                                     const LevelData& data, const std::vector<int64_t>& labels, const LevelCosts& costs,
                                     const ConfidenceStats& stats) {
  const int levels = static_cast<int>(data.stream.answers.size());
  StreamReport out;
  for (int l = 0; l < levels; ++l) {
    StrategyParams p = exp.adapt.params;
    p.static_level = l;
    CP_ASSIGN_OR_RETURN(auto st, make_strategy(AdaptStrategy::static_level, p, levels));
    out.results.push_back(simulate(*st, stream.samples, data.stream, labels, costs.costs, costs.switch_ms, costs.switch_j));
    out.results.back().strategy = fmt::format("static-{}", l);
  }
  for (AdaptStrategy k : {AdaptStrategy::naive, AdaptStrategy::state, AdaptStrategy::confidence}) {
    CP_ASSIGN_OR_RETURN(auto st, make_strategy(k, exp.adapt.params, levels, &stats));
    out.results.push_back(simulate(*st, stream.samples, data.stream, labels, costs.costs, costs.switch_ms, costs.switch_j));
  }
  out.results.push_back(simulate_oracle(stream.samples, data.stream, labels, costs.costs));
  const double exact_ms = out.results.front().mean_latency_ms;
  nlohmann::json rows = nlohmann::json::array();
  out.traces = nlohmann::json::object();
  for (const SimulationResult& r : out.results) {
    // The cheapest static level at least as accurate as this result.
    std::optional<double> best;
    for (int l = 0; l < levels; ++l) {
      const auto& s = out.results[static_cast<size_t>(l)];
      if (s.accuracy >= r.accuracy && (!best || s.mean_latency_ms < *best)) best = s.mean_latency_ms;
    }
    rows.push_back(result_json(r, exact_ms, best));
    out.traces[r.strategy] = {{"levels", r.trace}, {"confidence", r.confidence}};
  }
  out.json = {{"name", spec.name},
              {"kind", spec.kind == StreamKind::persistent ? "persistent"
                       : spec.kind == StreamKind::shuffled ? "shuffled"
                                                           : "file"},
              {"mean_run", spec.kind == StreamKind::persistent ? nlohmann::json(spec.mean_run) : nlohmann::json()},
              {"seed", spec.seed},
              {"inputs", stream.samples.size()},
              {"repeated_samples", stream.repeated},
              {"results", rows}};
  return out;
}

void print_stream(const nlohmann::json& s, bool energy) {
  fmt::print("stream {} ({} inputs{})\n", s["name"].get<std::string>(), s["inputs"].get<int64_t>(),
             s["repeated_samples"].get<int64_t>() ? fmt::format(", {} samples reused", s["repeated_samples"].get<int64_t>())
                                                  : "");
  fmt::print("  {:<12} {:>8} {:>9} {:>10} {:>11} {:>9} {:>10} {:>9}\n", "strategy", "accuracy", "vs exact",
             "ms/input", energy ? "J/input" : "", "saved", "vs static", "sw/1000");
  for (const auto& r : s["results"]) {
    const auto& e = r["mean_energy_j"];
    const auto& vs = r["savings_vs_best_static"];
    fmt::print("  {:<12} {:>7.2f}% {:>8.2f}% {:>10.4f} {:>11} {:>8.1f}% {:>10} {:>9.1f}\n", r["strategy"].get<std::string>(),
               100 * r["accuracy"].get<double>(), 100 * r["agreement"].get<double>(), r["mean_latency_ms"].get<double>(),
               e.is_null() ? "" : fmt::format("{:.3g}", e.get<double>()), 100 * r["savings_vs_exact"].get<double>(),
               vs.is_null() ? "-" : fmt::format("{:.1f}%", 100 * vs.get<double>()), r["switches_per_1000"].get<double>());
  }
}

}  // namespace

Status run_adapt_sim(const AdaptSimSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  CP_TRY(select_network(exp, s.common.network, "adapt-sim"));
  if (exp.qos.metric != Metric::top1 && exp.qos.metric != Metric::topk)
    return invalid_input("{}: adapt-sim needs a classifier (qos.metric top1 or topk, with class labels)",
                         exp.source_path);
  if (s.strategy) {
    auto k = adapt_strategy_from_name(*s.strategy);
    if (!k) return invalid_input("--strategy {}: expected static, naive, state or confidence", *s.strategy);
    exp.adapt.strategy = *k;
  }
  CP_TRY(check_strategy_params(exp.adapt.params).with_context(exp.source_path + ": adapt"));
  const std::string dir = run_directory(s.common, exp, true);
  const std::string pareto_path = s.pareto_path.value_or(dir + "/pareto.json");
  CP_ASSIGN_OR_RETURN(ParetoDocument pareto, read_pareto(pareto_path, exp));
  if (pareto.configurations.size() < 2)
    return Status(Errc::goal_not_met, fmt::format("{}: the frontier has no approximate level: an adaptation table "
                                                  "would hold the exact network only", pareto_path));
  const ResolvedTarget target = resolve_target(exp, s.common);
  CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
  CP_ASSIGN_OR_RETURN(SplitRange range, ev->dataset().split(exp.adapt.split));
  const std::optional<Tensor> label_tensor = ev->dataset().label_batch(range.begin, range.end);
  if (!label_tensor || label_tensor->dtype() != DType::i64)
    return invalid_input("{}: adapt-sim needs class labels on split {}", exp.source_path, exp.adapt.split);
  const auto y = label_tensor->span<int64_t>();
  const std::vector<int64_t> labels(y.begin(), y.end());
  std::vector<Stream> streams;
  for (const StreamSpec& spec : exp.adapt.streams) {
    Result<Stream> st = make_stream(spec, range.begin, labels);
    if (!st.ok()) return st.status().with_context(fmt::format("{}: adapt stream {}", exp.source_path, spec.name));
    streams.push_back(std::move(*st));
  }
  RepeatPolicy policy;
  policy.min_rounds = s.min_rounds;
  policy.min_seconds = s.min_seconds;
  // A switch takes microseconds: without a cap on rounds, min_seconds would
  // hold every level for 10^5 rounds just to time the switch that long.
  policy.max_rounds = std::max(s.min_rounds, 3000);
  log_info("adapt-sim: measuring {} levels and the switch at batch 1 on {} ({} thread(s))",
           pareto.configurations.size(), target.backend, target.threads);
  // --all-levels: a rule every level passes (speedup steps of -inf).
  const ThinningRule rule = s.all_levels ? ThinningRule{-HUGE_VAL, 0}
                                         : ThinningRule{exp.tune.min_speedup_step, exp.tune.min_loss_step};
  CP_ASSIGN_OR_RETURN(ThinnedLevels thinned, measure_and_thin(*ev, pareto.configurations, policy, rule, pareto_path));
  for (const std::string& why : thinned.dropped) log_info("adapt-sim: {}", why);
  const std::vector<ParetoConfiguration>& cfgs = thinned.levels;
  const LevelCosts& costs = thinned.costs;
  if (cfgs.size() < 2)
    return Status(Errc::goal_not_met, fmt::format("{}: no level is measurably faster than the exact network at batch "
                                                  "1 on this target: an adaptation table would hold the exact "
                                                  "network only", pareto_path));
  // Classes: the width of the network's output (a split may lack some).
  CP_ASSIGN_OR_RETURN(Session * one, ev->session(1));
  int64_t classes = 0;
  for (size_t i = 0; i < one->output_names().size(); ++i)
    if (one->output_names()[i] == ev->io().output && one->output_types()[i].shape.size() == 2)
      classes = one->output_types()[i].shape[1];
  if (classes < 2 || *std::max_element(labels.begin(), labels.end()) >= classes)
    return invalid_input("{}: adapt-sim needs a classifier output [N, classes] covering the labels; '{}' is not one",
                         exp.source_path, ev->io().output);
  CP_ASSIGN_OR_RETURN(LevelData data, level_data(*ev, cfgs, exp.adapt.split, classes));
  const ConfidenceStats stats = confidence_stats(data.calibrate, data.calibrate_labels, classes);

  AdaptationTable table;
  table.experiment = exp.name;
  table.model = exp.network.model_path;
  table.output = ev->io().output;
  table.classes = classes;
  table.stats = stats;
  table.strategy = exp.adapt.strategy;
  table.params = exp.adapt.params;
  table.switch_ms = costs.switch_ms;
  if (!costs.energy->available()) table.energy_unavailable = costs.energy->unavailable_reason();
  CP_ASSIGN_OR_RETURN(auto ranges, ev->calibrated_ranges());
  for (const auto& c : cfgs)
    for (const auto& [node, knob] : c.knobs)
      if (ranges->count(node)) table.input_ranges[node] = ranges->at(node);
  for (size_t l = 0; l < cfgs.size(); ++l)
    table.levels.push_back({static_cast<int>(l), cfgs[l].id, cfgs[l].knobs, costs.costs[l].latency_ms, costs.stats[l],
                            costs.costs[l].energy_j, costs.costs[l].latency_ms / costs.costs[0].latency_ms,
                            data.calibrate_accuracy[l], cfgs[l].speedup_predicted});

  nlohmann::json report = nlohmann::json::array(), traces = nlohmann::json::object();
  for (size_t i = 0; i < streams.size(); ++i) {
    CP_ASSIGN_OR_RETURN(StreamReport r,
                        simulate_stream(exp, exp.adapt.streams[i], streams[i], data, labels, costs, stats));
    report.push_back(r.json);
    traces[exp.adapt.streams[i].name] = r.traces;
  }
  CP_TRY(ensure_directory(dir));
  CP_TRY(write_json_file(dir + "/adaptation.json", adaptation_json(table)));
  CP_TRY(write_json_file(dir + "/adapt-traces.json", traces));
  const nlohmann::json doc = {{"format", "caliprox-adapt-sim"},
                              {"version", 1},
                              {"experiment", exp.name},
                              {"pareto", pareto_path},
                              {"split", exp.adapt.split},
                              {"levels", adaptation_json(table)["levels"]},
                              {"switch_ms", costs.switch_ms},
                              {"energy", costs.energy->available() ? nlohmann::json(costs.energy->source())
                                                                   : nlohmann::json(nullptr)},
                              {"energy_unavailable", table.energy_unavailable ? nlohmann::json(*table.energy_unavailable)
                                                                              : nlohmann::json(nullptr)},
                              {"rounds", costs.rounds},
                              {"streams", report}};
  CP_TRY(write_json_file(dir + "/adapt-sim.json", doc));
  if (s.common.json) {
    fmt::print("{}\n", nlohmann::json{{"adaptation", dir + "/adaptation.json"}, {"report", dir + "/adapt-sim.json"},
                                      {"traces", dir + "/adapt-traces.json"}}.dump());
    log_report_hint(dir);
    return {};
  }
  fmt::print("levels (batch 1, {} rounds; switch {:.4f} ms):\n", costs.rounds, costs.switch_ms);
  for (const auto& l : table.levels)
    fmt::print("  {} {:<6} {:.4f} ms ({:.2f}x)  calibrate accuracy {:.2f}%\n", l.level, l.id, l.latency_ms,
               costs.costs[0].latency_ms / l.latency_ms, 100 * l.accuracy);
  if (table.energy_unavailable) fmt::print("energy: not measured ({})\n", *table.energy_unavailable);
  for (const auto& st : report) print_stream(st, costs.energy->available());
  fmt::print("written: {}/adaptation.json, adapt-sim.json, adapt-traces.json\n", dir);
  log_report_hint(dir);
  return {};
}

}  // namespace caliprox
