#pragma once
// Built-in QoS metrics over network outputs. Knows tensors and labels, not
// networks (DESIGN boundary).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

enum class Metric {
  top1,            // accuracy against class labels, percent
  topk,            // top-k accuracy against class labels, percent
  l1,              // mean absolute error against targets (labels file) or exact outputs
  l2,              // mean Euclidean norm of the per-sample error vector
  mse,             // mean squared error
  agreement_top1,  // "agreement-top1": percent of samples whose top-1 class equals the exact network's
  max_abs_error,   // "max-abs-error": max |y - y_exact|
  mean_abs_error,  // "mean-abs-error": mean |y - y_exact|
};

std::string_view metric_name(Metric m);              // "top1", "topk", ...
std::optional<Metric> metric_from_name(std::string_view name);
// True when larger is better (accuracies); false for error metrics.
bool metric_higher_is_better(Metric m);
// "percent" or "absolute": the unit losses are expressed in ("pp" for percent metrics).
std::string_view metric_unit(Metric m);

enum class MetricReference { labels, exact };  // what l1/l2/mse compare against

enum class GoalKind { absolute, relative };

struct QosGoal {
  GoalKind kind = GoalKind::absolute;
  // absolute: maximum loss in the metric's unit (percentage points for
  // accuracies); relative: maximum loss as a fraction of the baseline value (0.01 = 1 %).
  double max_loss = 1.0;
};

struct QosSpec {
  Metric metric = Metric::top1;
  int k = 5;                                           // for topk
  MetricReference reference = MetricReference::labels; // for l1/l2/mse
  QosGoal goal;
};

// Accumulates a metric over batches. `exact` outputs are needed for the
// agreement / error-vs-exact metrics and for reference == exact.
class MetricAccumulator {
 public:
  explicit MetricAccumulator(const QosSpec& spec);
  // outputs: [B, K] (or [B, ...]) float32; labels: int64 [B] or float32 targets [B, ...];
  // exact: the exact network's outputs for the same samples (same shape as outputs).
  Status add(const Tensor& outputs, const Tensor* labels, const Tensor* exact);
  int64_t count() const;
  double value() const;  // the metric (percent for accuracies)

 private:
  QosSpec spec_;
  int64_t count_ = 0;
  double sum_ = 0;   // correct count, or summed error
  double max_ = 0;
};

// Loss of `value` against `baseline` in the metric's unit (positive = worse).
double qos_loss(Metric m, double baseline, double value);
// The value whose loss against `baseline` is `loss` (inverse of qos_loss).
double qos_loss_inverse(Metric m, double baseline, double loss);
// Whether the loss satisfies the goal, given the baseline value.
bool goal_met(const QosSpec& spec, double baseline, double value);

}  // namespace caliprox
