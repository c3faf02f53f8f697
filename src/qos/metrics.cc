#include "qos/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

// Conventions (the header states what each metric is; these are the choices
// it leaves open):
// - top1/topk/agreement rank the per-sample scores (outputs flattened to
//   [B, K]) by value, ties broken by the lower class index (like argmax);
//   NaN scores rank below every number, and a NaN score at the label's own
//   position never counts as correct.
// - topk with k >= K counts every sample as correct (well defined, and lets a
//   report always show top-5 even for networks with 5 or fewer classes).
// - l1/l2/mse with reference == labels: float targets must hold as many
//   elements per sample as the outputs; int64 class labels are compared as
//   one-hot vectors over the outputs' K classes (outputs [B, K]).
// - l1, mse and mean_abs_error average per-sample means over samples (the
//   element mean, since a network's outputs have a fixed width); l2 averages
//   the per-sample Euclidean norms over samples; max_abs_error and
//   mean_abs_error always compare against the exact outputs.
// - value() of an accumulator that saw no samples is NaN, which never meets
//   a goal.

namespace caliprox {

namespace {

struct MetricInfo {
  Metric metric;
  std::string_view name;
  bool higher_is_better;
};

constexpr MetricInfo kMetrics[] = {
    {Metric::top1, "top1", true},
    {Metric::topk, "topk", true},
    {Metric::l1, "l1", false},
    {Metric::l2, "l2", false},
    {Metric::mse, "mse", false},
    {Metric::agreement_top1, "agreement-top1", true},
    {Metric::max_abs_error, "max-abs-error", false},
    {Metric::mean_abs_error, "mean-abs-error", false},
};

const MetricInfo& info(Metric m) {
  for (const auto& i : kMetrics)
    if (i.metric == m) return i;
  return kMetrics[0];
}

bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::f64; }

// Float values of a tensor without copying float32 data.
class FloatValues {
 public:
  FloatValues() = default;  // no values: data() is null
  explicit FloatValues(const Tensor& t) {
    if (t.dtype() == DType::f32) {
      data_ = t.data<float>();
    } else {
      copy_.resize(static_cast<size_t>(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) copy_[static_cast<size_t>(i)] = static_cast<float>(t.at_double(i));
      data_ = copy_.data();
    }
  }
  const float* data() const { return data_; }

 private:
  const float* data_ = nullptr;
  std::vector<float> copy_;
};

// Whether score a ranks ahead of score b (b at a higher index on ties).
bool ranks_ahead(float a, float b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

int64_t argmax(const float* v, int64_t k) {
  int64_t best = 0;
  for (int64_t j = 1; j < k; ++j)
    if (ranks_ahead(v[j], v[best])) best = j;
  return best;
}

// Whether class `label` is among the top `k` of the `classes` scores.
bool in_top_k(const float* v, int64_t classes, int64_t label, int64_t k) {
  const float x = v[label];
  if (std::isnan(x)) return false;
  int64_t ahead = 0;
  for (int64_t j = 0; j < classes; ++j)
    if (ranks_ahead(v[j], x) || (j < label && v[j] == x)) ++ahead;
  return ahead < k;
}

}  // namespace

std::string_view metric_name(Metric m) { return info(m).name; }

std::optional<Metric> metric_from_name(std::string_view name) {
  for (const auto& i : kMetrics)
    if (i.name == name) return i.metric;
  return std::nullopt;
}

bool metric_higher_is_better(Metric m) { return info(m).higher_is_better; }

std::string_view metric_unit(Metric m) { return metric_higher_is_better(m) ? "percent" : "absolute"; }

MetricAccumulator::MetricAccumulator(const QosSpec& spec) : spec_(spec) {}

Status MetricAccumulator::add(const Tensor& outputs, const Tensor* labels, const Tensor* exact) {
  const std::string_view name = metric_name(spec_.metric);
  if (!is_float(outputs.dtype()))
    return invalid_input("metric {}: outputs must be floating point (found {})", name, dtype_name(outputs.dtype()));
  if (outputs.rank() < 1) return invalid_input("metric {}: outputs need a batch dimension (found a scalar)", name);
  const int64_t batch = outputs.dim(0);
  if (batch == 0) return {};
  const int64_t width = outputs.numel() / batch;  // classes or values per sample
  const FloatValues y(outputs);

  const Metric m = spec_.metric;
  const bool needs_exact = m == Metric::agreement_top1 || m == Metric::max_abs_error ||
                           m == Metric::mean_abs_error ||
                           ((m == Metric::l1 || m == Metric::l2 || m == Metric::mse) &&
                            spec_.reference == MetricReference::exact);
  const bool needs_labels = !needs_exact;

  if (needs_exact) {
    if (!exact) return invalid_input("metric {}: needs the exact network's outputs, none were given", name);
    if (exact->shape() != outputs.shape() || !is_float(exact->dtype()))
      return invalid_input("metric {}: exact outputs are {} {}, expected float {} like the outputs", name,
                           dtype_name(exact->dtype()), shape_str(exact->shape()), shape_str(outputs.shape()));
  }
  std::vector<int64_t> classes;  // integer labels, when given
  if (needs_labels) {
    if (!labels) return invalid_input("metric {}: needs labels, but the dataset has none", name);
    if (labels->rank() < 1 || labels->dim(0) != batch)
      return invalid_input("metric {}: labels have shape {}, expected {} entries like the outputs {}", name,
                           shape_str(labels->shape()), batch, shape_str(outputs.shape()));
    const bool class_labels = !is_float(labels->dtype());
    if ((m == Metric::top1 || m == Metric::topk) && !class_labels)
      return invalid_input("metric {}: needs integer class labels, the labels are {} targets", name,
                           dtype_name(labels->dtype()));
    if (class_labels) {
      if (labels->numel() != batch)
        return invalid_input("metric {}: class labels must have shape [{}] (found {})", name, batch,
                             shape_str(labels->shape()));
      classes = labels->to_int64_vector();
      for (int64_t i = 0; i < batch; ++i)
        if (classes[i] < 0 || classes[i] >= width)
          return invalid_input("metric {}: label {} of batch row {} is outside the {} classes of outputs {}", name,
                               classes[i], i, width, shape_str(outputs.shape()));
    } else if (labels->numel() != outputs.numel()) {
      return invalid_input("metric {}: targets have shape {}, expected as many values as the outputs {}", name,
                           shape_str(labels->shape()), shape_str(outputs.shape()));
    }
  }

  switch (m) {
    case Metric::top1:
    case Metric::topk: {
      const int64_t k = m == Metric::top1 ? 1 : spec_.k;
      if (k < 1) return invalid_input("metric {}: k = {} (expected k >= 1)", name, k);
      for (int64_t i = 0; i < batch; ++i)
        if (in_top_k(y.data() + i * width, width, classes[i], k)) sum_ += 1;
      break;
    }
    case Metric::agreement_top1: {
      const FloatValues e(*exact);
      for (int64_t i = 0; i < batch; ++i)
        if (argmax(y.data() + i * width, width) == argmax(e.data() + i * width, width)) sum_ += 1;
      break;
    }
    case Metric::l1:
    case Metric::l2:
    case Metric::mse:
    case Metric::max_abs_error:
    case Metric::mean_abs_error: {
      // Reference value of element j of row i: exact output, float target or one-hot.
      const Tensor* ref_tensor = needs_exact ? exact : classes.empty() ? labels : nullptr;
      const FloatValues ref = ref_tensor ? FloatValues(*ref_tensor) : FloatValues();
      for (int64_t i = 0; i < batch; ++i) {
        double row_abs = 0, row_sq = 0;
        for (int64_t j = 0; j < width; ++j) {
          const int64_t at = i * width + j;
          const double r = ref.data() ? ref.data()[at] : (classes[i] == j ? 1.0 : 0.0);
          const double d = static_cast<double>(y.data()[at]) - r;
          const double a = std::fabs(d);
          row_abs += a;
          row_sq += d * d;
          // NaN must stick (a > NaN is false), so a NaN output is never hidden.
          if (std::isnan(a)) max_ = a;
          else if (a > max_) max_ = a;
        }
        // Per-sample means: with a fixed width, their mean over samples is the
        // mean over all elements.
        if (m == Metric::l1 || m == Metric::mean_abs_error) sum_ += width ? row_abs / width : 0.0;
        if (m == Metric::mse) sum_ += width ? row_sq / width : 0.0;
        if (m == Metric::l2) sum_ += std::sqrt(row_sq);
      }
      break;
    }
  }
  count_ += batch;
  return {};
}

int64_t MetricAccumulator::count() const { return count_; }

double MetricAccumulator::value() const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  switch (spec_.metric) {
    case Metric::top1:
    case Metric::topk:
    case Metric::agreement_top1: return 100.0 * sum_ / static_cast<double>(count_);
    case Metric::l1:
    case Metric::l2:
    case Metric::mse:
    case Metric::mean_abs_error: return sum_ / static_cast<double>(count_);
    case Metric::max_abs_error: return max_;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

double qos_loss(Metric m, double baseline, double value) {
  return metric_higher_is_better(m) ? baseline - value : value - baseline;
}

double qos_loss_inverse(Metric m, double baseline, double loss) {
  return metric_higher_is_better(m) ? baseline - loss : baseline + loss;
}

bool goal_met(const QosSpec& spec, double baseline, double value) {
  const double loss = qos_loss(spec.metric, baseline, value);
  if (!std::isfinite(loss)) return false;
  // Accuracies like 100 * 891 / 1000 carry rounding noise of a few ulps; a
  // loss that equals the budget up to that noise meets it.
  const double noise = 1e-9 * std::max({1.0, std::fabs(baseline), std::fabs(value)});
  if (spec.goal.kind == GoalKind::absolute) return loss <= spec.goal.max_loss + noise;
  // Relative to a zero baseline every non-zero loss is infinitely large:
  // only no loss (or a gain) meets the goal.
  if (baseline == 0.0) return loss <= 0.0;
  return loss <= spec.goal.max_loss * std::fabs(baseline) + noise;
}

}  // namespace caliprox
