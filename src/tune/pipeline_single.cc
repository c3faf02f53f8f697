// Phase "single": one empirical run per (layer, knob) with only that layer
// approximated, on the predictor range. Builds the p1 / p2 predictors and
// the greedy strategy's sensitivities (tune/pipeline.h).
#include <chrono>
#include <utility>

#include <fmt/format.h>

#include "tune/pipeline.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

Result<SingleRuns> run_single_knobs(PipelineContext& c, const std::vector<std::vector<double>>& speedups,
                                    bool with_outputs, uint64_t seed) {
  const SearchSpace& space = c.ks.space;
  const Metric metric = c.exp.qos.metric;
  const double exact_qos = c.base.qos_predictor;
  const int64_t samples = c.predictor_samples();
  const std::vector<float>& exact_outputs = c.base.predictor_outputs;
  const int64_t width = exact_outputs.empty() ? 0 : static_cast<int64_t>(exact_outputs.size()) / samples;
  SingleRuns out = no_single_runs(c);
  out.p2.emplace(space, exact_qos);
  if (with_outputs) {
    OutputDeltaPredictor::Options o;
    o.seed = seed;
    CP_ASSIGN_OR_RETURN(auto pred, OutputDeltaPredictor::create(space, exact_outputs, samples, width, o));
    out.p1.emplace(std::move(pred));
  }
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t l = 0; l < space.layers.size(); ++l) {
    out.single[l].resize(space.layers[l].knobs.size());
    for (size_t k = 1; k < space.layers[l].knobs.size(); ++k) pairs.emplace_back(l, k);
  }

  const auto t0 = Clock::now();
  std::mutex mu;  // guards `out` and the progress reports
  auto job = [&](size_t i, int w) -> Status {
    const auto [l, k] = pairs[i];
    const std::string& node = space.layers[l].node;
    const std::string& knob = space.layers[l].knobs[k];
    const KnobConfig config{{node, knob}};
    const std::optional<EvalRecord> rec = find_record(c, "single", static_cast<int64_t>(i));
    double qos = 0;
    std::vector<float> outs;
    if (rec && !with_outputs && rec->knobs == config && rec->qos.count("tune")) {
      qos = rec->qos.at("tune");
    } else {
      const auto ts = Clock::now();
      // Each (layer, knob) runs once here: keep only its kernel, so memory
      // does not grow with the size of the knob space.
      auto r = empirical(c, w, config, c.predictor_range, with_outputs ? &outs : nullptr, true);
      if (!r.ok()) return r.status().with_context(fmt::format("{} with {}", node, knob));
      qos = r->qos;
      {
        std::lock_guard<std::mutex> lock(mu);
        ++out.fresh;
      }
      if (!rec) {
        EvalRecord er;
        er.phase = "single";
        er.iteration = static_cast<int64_t>(i);
        er.knobs = config;
        er.qos["tune"] = qos;
        er.qos_loss = qos_loss(metric, exact_qos, qos);
        er.speedup_predicted = speedups[l][k];
        er.seconds = seconds_since(ts);
        er.origin = "single";
        er.host = c.pool->host(w);
        CP_TRY(append_record(c, er));
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    CP_TRY(out.p2->set_single(l, k, qos));
    if (with_outputs) CP_TRY(out.p1->set_single(l, k, outs.data(), samples, width));
    out.single[l][k] = {qos_loss(metric, exact_qos, qos), speedups[l][k]};
    c.reporter->progress(PipelinePhase::single, i, pairs.size());
    return {};
  };
  CP_TRY(run_phase(c, PipelinePhase::single, pairs.size(), job));
  out.runs = pairs.size();
  out.seconds = seconds_since(t0);
  return out;
}

}  // namespace caliprox
