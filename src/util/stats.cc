#include "util/stats.h"

#include <algorithm>
#include <cmath>

namespace caliprox {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<long>(mid), v.end());
  double hi = v[mid];
  if (v.size() % 2 == 1) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + static_cast<long>(mid));
  return (lo + hi) / 2;
}

LatencyStats summarize(const std::vector<double>& samples) {
  LatencyStats s;
  s.count = samples.size();
  if (samples.empty()) return s;
  s.median = median_of(samples);
  auto [mn, mx] = std::minmax_element(samples.begin(), samples.end());
  s.min = *mn;
  s.max = *mx;
  std::vector<double> dev;
  dev.reserve(samples.size());
  for (double x : samples) dev.push_back(std::fabs(x - s.median));
  s.mad = median_of(std::move(dev));
  return s;
}

}  // namespace caliprox
