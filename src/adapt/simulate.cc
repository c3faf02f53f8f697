#include "adapt/simulate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace caliprox {

namespace {

// Sums over a walk's inputs; finish() turns them into the result's means.
// Shared by simulate and simulate_oracle so that both count the same way.
class Tally {
 public:
  Tally(std::string name, const LevelAnswers& answers, const std::vector<int64_t>& labels,
        const std::vector<LevelCost>& costs)
      : answers_(answers), labels_(labels), costs_(costs) {
    result_.strategy = std::move(name);
    result_.level_counts.assign(answers.answers.size(), 0);
    for (const LevelCost& c : costs) have_energy_ = have_energy_ && c.energy_j.has_value();
  }

  // The input `sample` ran at `level`: its observation.
  const Observation& add(int64_t sample, int level) {
    const auto i = static_cast<size_t>(sample - answers_.begin);
    const auto l = static_cast<size_t>(level);
    // at(): a stream sample outside the answers is the caller's bug; fail
    // loudly rather than read past the end.
    const Observation& o = answers_.answers.at(l).at(i);
    if (o.argmax == labels_.at(i)) ++correct_;
    if (o.argmax == answers_.answers.at(0).at(i).argmax) ++agree_;
    latency_ms_ += costs_.at(l).latency_ms;
    if (have_energy_) energy_j_ += *costs_.at(l).energy_j;
    if (!result_.trace.empty() && result_.trace.back() != level) ++result_.switches;
    result_.trace.push_back(level);
    result_.confidence.push_back(o.top1);
    ++result_.level_counts.at(l);
    return o;
  }

  // A change of level, paid (by the next input) when the strategy pays.
  void charge_switch(double ms, std::optional<double> j) {
    latency_ms_ += ms;
    if (j) switch_energy_j_ += *j;
  }

  SimulationResult finish() {
    const auto n = static_cast<double>(result_.trace.size());
    if (n > 0) {
      result_.accuracy = static_cast<double>(correct_) / n;
      result_.agreement = static_cast<double>(agree_) / n;
      result_.mean_latency_ms = latency_ms_ / n;
      if (have_energy_) result_.mean_energy_j = (energy_j_ + switch_energy_j_) / n;
      result_.switches_per_1000 = 1000.0 * static_cast<double>(result_.switches) / n;
    }
    return std::move(result_);
  }

 private:
  const LevelAnswers& answers_;
  const std::vector<int64_t>& labels_;
  const std::vector<LevelCost>& costs_;
  SimulationResult result_;
  bool have_energy_ = true;
  int64_t correct_ = 0, agree_ = 0;
  double latency_ms_ = 0, energy_j_ = 0, switch_energy_j_ = 0;
};

// Softmax in place, shifted by the maximum so that exp cannot overflow.
void softmax(std::vector<double>& row) {
  double max = -std::numeric_limits<double>::infinity();
  for (double v : row) max = std::max(max, v);
  double sum = 0;
  for (double& v : row) {
    v = std::exp(v - max);
    sum += v;
  }
  for (double& v : row) v /= sum;
}

// Probabilities already: every value >= 0 and every row sums to 1.
bool are_probabilities(std::span<const float> outputs, size_t classes, size_t rows) {
  for (size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (size_t k = 0; k < classes; ++k) {
      const double v = outputs[r * classes + k];
      if (!(v >= 0)) return false;
      sum += v;
    }
    if (std::abs(sum - 1.0) > 1e-4) return false;
  }
  return true;
}

}  // namespace

SimulationResult simulate(AdaptationStrategy& strategy, const std::vector<int64_t>& stream, const LevelAnswers& answers,
                          const std::vector<int64_t>& labels, const std::vector<LevelCost>& costs, double switch_ms,
                          std::optional<double> switch_j) {
  Tally tally(std::string(adapt_strategy_name(strategy.kind())), answers, labels, costs);
  int level = strategy.start();
  for (size_t i = 0; i < stream.size(); ++i) {
    const Observation& o = tally.add(stream[i], level);
    const int next = strategy.next(o);
    // A change after the last input is never paid: no input runs at it.
    if (next != level && i + 1 < stream.size()) tally.charge_switch(switch_ms, switch_j);
    level = next;
  }
  return tally.finish();
}

SimulationResult simulate_oracle(const std::vector<int64_t>& stream, const LevelAnswers& answers,
                                 const std::vector<int64_t>& labels, const std::vector<LevelCost>& costs) {
  Tally tally("oracle", answers, labels, costs);
  const auto levels = static_cast<int>(answers.answers.size());
  for (int64_t sample : stream) {
    const auto i = static_cast<size_t>(sample - answers.begin);
    const int64_t exact = answers.answers.at(0).at(i).argmax;
    int best = 0;
    for (int l = levels - 1; l > 0; --l) {
      if (answers.answers[static_cast<size_t>(l)].at(i).argmax == exact) {
        best = l;
        break;
      }
    }
    tally.add(sample, best);
  }
  return tally.finish();
}

ConfidenceStats confidence_stats(const LevelAnswers& answers, const std::vector<int64_t>& labels, int64_t classes) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto n_classes = static_cast<size_t>(std::max<int64_t>(classes, 0));
  ConfidenceStats stats;
  for (const std::vector<Observation>& level : answers.answers) {
    // Grouped by the predicted class: that is what the strategy knows at
    // run time (it never sees the label).
    std::vector<double> c_sum(n_classes, 0), w_sum(n_classes, 0);
    std::vector<int64_t> c_n(n_classes, 0), w_n(n_classes, 0);
    for (size_t i = 0; i < level.size() && i < labels.size(); ++i) {
      const Observation& o = level[i];
      if (o.argmax < 0 || o.argmax >= classes) continue;
      const auto k = static_cast<size_t>(o.argmax);
      if (labels[i] == o.argmax) {
        c_sum[k] += o.top1;
        ++c_n[k];
      } else {
        w_sum[k] += o.top1;
        ++w_n[k];
      }
    }
    std::vector<double> c(n_classes, nan), w(n_classes, nan);
    for (size_t k = 0; k < n_classes; ++k) {
      if (c_n[k] > 0) c[k] = c_sum[k] / static_cast<double>(c_n[k]);
      if (w_n[k] > 0) w[k] = w_sum[k] / static_cast<double>(w_n[k]);
    }
    stats.correct.push_back(std::move(c));
    stats.wrong.push_back(std::move(w));
  }
  return stats;
}

std::vector<Observation> observations(std::span<const float> outputs, int64_t classes, int level) {
  std::vector<Observation> out;
  if (classes <= 0) return out;
  const auto k_n = static_cast<size_t>(classes);
  const size_t rows = outputs.size() / k_n;
  const bool probabilities = are_probabilities(outputs, k_n, rows);
  out.reserve(rows);
  std::vector<double> row(k_n);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t k = 0; k < k_n; ++k) row[k] = outputs[r * k_n + k];
    // On the raw values: exp may round two close logits to one probability.
    size_t best = 0;
    for (size_t k = 1; k < k_n; ++k) {
      if (row[k] > row[best]) best = k;  // strict: the first maximum wins
    }
    if (!probabilities) softmax(row);
    out.push_back(Observation{level, static_cast<int64_t>(best), row[best]});
  }
  return out;
}

}  // namespace caliprox
