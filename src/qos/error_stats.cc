#include "qos/error_stats.h"

#include <algorithm>
#include <cmath>

#include "qos/error_model.h"

namespace caliprox {

namespace {

// bias, std, mean |e| and quantiles of |e| of e = a - b.
nlohmann::json difference_stats(const std::vector<float>& a, const float* b, size_t n) {
  double sum = 0, sq = 0;
  std::vector<double> mag(n);
  for (size_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(a[i]) - b[i];
    sum += e;
    sq += e * e;
    mag[i] = std::fabs(e);
  }
  std::sort(mag.begin(), mag.end());
  const double mean = n ? sum / static_cast<double>(n) : 0;
  const double var = n > 1 ? (sq - static_cast<double>(n) * mean * mean) / static_cast<double>(n - 1) : 0;
  auto q = [&](double p) { return n ? mag[std::min(n - 1, static_cast<size_t>(p * static_cast<double>(n)))] : 0.0; };
  double mean_abs = 0;
  for (double m : mag) mean_abs += m;
  return {{"bias", mean},
          {"std", std::sqrt(std::max(var, 0.0))},
          {"mean_abs", n ? mean_abs / static_cast<double>(n) : 0},
          {"abs_quantiles", {{"p50", q(0.5)}, {"p90", q(0.9)}, {"p99", q(0.99)}, {"max", n ? mag.back() : 0.0}}}};
}

int64_t top(const float* r, int64_t row) { return std::max_element(r, r + row) - r; }

}  // namespace

nlohmann::json output_errors(const std::vector<float>& approx, const std::vector<float>& exact, int64_t row,
                             const Tensor* labels) {
  const size_t total = std::min(approx.size(), exact.size());
  const int64_t n = row > 0 ? static_cast<int64_t>(total) / row : 0;
  nlohmann::json out = {{"samples", n}, {"row", row}, {"vs_exact", difference_stats(approx, exact.data(), total)}};
  std::vector<double> errors(total);
  for (size_t i = 0; i < total; ++i) errors[i] = static_cast<double>(approx[i]) - exact[i];
  out["fitted"]["gaussian"] = error_model_json(fit_gaussian(errors, row, ErrorKind::gaussian, false));

  const bool classifier = labels && labels->dtype() == DType::i64 && row >= 2 && labels->numel() >= n;
  if (classifier) {
    std::vector<std::vector<int64_t>> confusion(static_cast<size_t>(row), std::vector<int64_t>(static_cast<size_t>(row)));
    int64_t flips = 0, right_exact = 0, right_approx = 0;
    const int64_t* y = labels->data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t e = top(exact.data() + i * row, row), a = top(approx.data() + i * row, row);
      ++confusion[static_cast<size_t>(e)][static_cast<size_t>(a)];
      flips += e != a;
      right_exact += e == y[i];
      right_approx += a == y[i];
    }
    const double rate = n ? static_cast<double>(flips) / static_cast<double>(n) : 0;
    out["vs_exact"]["flip_rate"] = rate;
    out["vs_exact"]["confusion"] = confusion;
    out["vs_truth"] = {{"accuracy_exact", n ? static_cast<double>(right_exact) / static_cast<double>(n) : 0},
                       {"accuracy", n ? static_cast<double>(right_approx) / static_cast<double>(n) : 0}};
    // label_flip: the rate, and where each class went when it flipped
    // (rows without flips: uniform, as the model's default).
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t c = 0; c < row; ++c) {
      const auto& counts = confusion[static_cast<size_t>(c)];
      int64_t off = 0;
      for (int64_t k = 0; k < row; ++k) off += k == c ? 0 : counts[static_cast<size_t>(k)];
      std::vector<double> p(static_cast<size_t>(row));
      for (int64_t k = 0; k < row; ++k)
        p[static_cast<size_t>(k)] = k == c ? 0.0
                                    : off ? static_cast<double>(counts[static_cast<size_t>(k)]) / static_cast<double>(off)
                                          : 1.0 / static_cast<double>(row - 1);
      rows.push_back(p);
    }
    out["fitted"]["label_flip"] = {{"kind", "label_flip"}, {"rate", rate}, {"confusion", rows}};
  } else if (labels && labels->dtype() == DType::f32 && labels->numel() >= static_cast<int64_t>(total)) {
    out["vs_truth"] = difference_stats(approx, labels->data<float>(), total);
  }
  return out;
}

}  // namespace caliprox
