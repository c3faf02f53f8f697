#pragma once
// Robust summary statistics for latency samples.
#include <cstddef>
#include <vector>

namespace caliprox {

struct LatencyStats {
  double median = 0;
  double min = 0;
  double max = 0;
  double mad = 0;  // median absolute deviation from the median
  size_t count = 0;
};

double median_of(std::vector<double> values);
LatencyStats summarize(const std::vector<double>& samples);

}  // namespace caliprox
