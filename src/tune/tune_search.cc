// Phase "search" of `caliprox tune`: the strategy's candidates evaluated
// empirically or by the p1 / p2 predictors, on the pool, every fresh
// evaluation appended to records.jsonl and recorded ones replayed
// (tune/tune_pipeline.h).
#include <chrono>
#include <cstring>

#include "eval/interrupt.h"
#include "tune/tune_pipeline.h"

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

// The experiment's metric on p1's predicted outputs of the samples it kept
// (and their labels), against its exact outputs of the same samples.
Result<double> p1_metric(PipelineContext& c, const OutputDeltaPredictor& p1, const std::vector<float>& outs) {
  const int64_t width = p1.width();
  const int64_t n = static_cast<int64_t>(outs.size()) / width;
  Tensor y = Tensor::view(DType::f32, {n, width}, const_cast<float*>(outs.data()));
  Tensor exact = Tensor::view(DType::f32, {n, width}, const_cast<float*>(p1.exact_kept().data()));
  MetricAccumulator acc(c.exp.qos);
  std::optional<Tensor> labels;
  const Dataset& data = c.main().dataset();
  if (data.labels) {
    // Labels of the kept samples, in order.
    const auto& kept = p1.kept_samples();
    Tensor lab(data.labels->dtype(), {n});
    for (int64_t i = 0; i < n; ++i) {
      const int64_t sample = c.predictor_range.begin + kept[static_cast<size_t>(i)];
      auto one = data.label_batch(sample, sample + 1);
      std::memcpy(static_cast<char*>(lab.raw()) + i * dtype_size(lab.dtype()), one->raw(), dtype_size(lab.dtype()));
    }
    labels = std::move(lab);
  }
  CP_TRY(acc.add(y, labels ? &*labels : nullptr, &exact));
  return acc.value();
}

}  // namespace

SearchBudget tune_budget(const TuneSpec& spec) {
  SearchBudget budget;
  if (spec.iterations > 0) budget.max_evaluations = spec.iterations;
  if (spec.time_limit_s > 0) budget.max_seconds = spec.time_limit_s;
  return budget;
}

Result<SearchPhase> run_search_phase(PipelineContext& c, const CostModel& cost, const SingleRuns& singles) {
  const TuneSpec& spec = c.exp.tune;
  const SearchSpace& space = c.ks.space;
  const Metric metric = c.exp.qos.metric;
  SearchSettings ss;
  ss.kind = spec.strategy;
  ss.seed = spec.seed;
  ss.max_loss = c.base.max_loss;
  ss.single = singles.single;
  CP_ASSIGN_OR_RETURN(auto strategy, make_strategy(space, ss));

  SearchPhase out;
  OutputDeltaPredictor::OutputMetric p1_on_outputs;
  out.predicted_reference = c.base.qos_predictor;
  if (spec.qos_mode == QosMode::p1) {
    p1_on_outputs = [&c, &p1 = *singles.p1](const std::vector<float>& outs) { return p1_metric(c, p1, outs); };
    CP_ASSIGN_OR_RETURN(out.predicted_reference, p1_on_outputs(singles.p1->exact_kept()));
  }
  SearchHooks hooks;
  hooks.evaluate = [&](const Proposal& p, int64_t, int w) -> Result<Evaluation> {
    const double speedup = cost.speedup(p.candidate);
    switch (spec.qos_mode) {
      case QosMode::empirical: {
        CP_ASSIGN_OR_RETURN(SplitResult r, empirical(c, w, space.to_config(p.candidate), c.tune_range));
        return Evaluation{qos_loss(metric, c.base.qos_tune, r.qos), speedup};
      }
      case QosMode::p2: {
        CP_ASSIGN_OR_RETURN(double qos, singles.p2->predict(p.candidate));
        return Evaluation{qos_loss(metric, c.base.qos_predictor, qos), speedup};
      }
      case QosMode::p1: {
        CP_ASSIGN_OR_RETURN(double qos, singles.p1->predict(p.candidate, p1_on_outputs));
        return Evaluation{qos_loss(metric, out.predicted_reference, qos), speedup};
      }
    }
    return runtime_error("search: unknown QoS mode");
  };
  hooks.recorded = [&](int64_t it) -> std::optional<RecordedEvaluation> {
    const std::optional<EvalRecord> r = find_record(c, "search", it);
    if (!r || !r->qos_loss || !r->speedup_predicted) return std::nullopt;
    auto cand = space.from_config(r->knobs);
    if (!cand.ok()) return std::nullopt;
    return RecordedEvaluation{*cand, {*r->qos_loss, *r->speedup_predicted}};
  };
  hooks.on_evaluated = [&](int64_t it, const Proposal& p, const Evaluation& e, double secs, int w) -> Status {
    EvalRecord r;
    r.phase = "search";
    r.iteration = it;
    r.knobs = space.to_config(p.candidate);
    r.qos_loss = e.qos_loss;
    if (spec.qos_mode == QosMode::empirical) r.qos["tune"] = qos_loss_inverse(metric, c.base.qos_tune, e.qos_loss);
    else r.qos_predicted = qos_loss_inverse(metric, out.predicted_reference, e.qos_loss);
    r.speedup_predicted = e.speedup;
    r.cost = cost.cost(p.candidate);
    r.seconds = secs;
    r.origin = p.origin;
    if (spec.qos_mode == QosMode::empirical) r.host = c.pool->host(w);  // predictions run here
    return append_record(c, r);
  };
  hooks.on_progress = [&](const SearchProgress& pr) { c.reporter->search_progress(pr); };
  hooks.should_stop = interrupt_requested;

  const auto t0 = Clock::now();
  CP_ASSIGN_OR_RETURN(out.outcome, run_search(*strategy, tune_budget(spec), *c.pool, hooks));
  c.reporter->progress_done(PipelinePhase::search);
  if (out.outcome.stop_reason == StopReason::interrupted) return interrupted(c);
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  out.summary = strategy->summary();
  return out;
}

}  // namespace caliprox
