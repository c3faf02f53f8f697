#pragma once
// The machine's FP32 peak, measured rather than looked up: a loop of
// independent fused multiply-add chains (enough accumulators to hide the FMA
// latency on every FMA pipe), one copy per thread. Convolution GFLOP/s are
// reported as a fraction of this figure, measured in the same run and under
// the same load as the convolutions themselves.
#include <string>
#include <vector>

namespace caliprox::bench {

struct PeakResult {
  int threads = 1;
  std::string isa;             // "avx512f" or "avx2+fma" (x86-64), "neon" (aarch64)
  std::vector<double> trials;  // GFLOP/s of each trial
  double median_gflops = 0;
  double max_gflops = 0;
};

// `trials` timed runs of about `seconds_per_trial` each, after one untimed
// warm-up (which also ramps the clock). Threads are std::threads started
// together; a trial's time is the wall time until the last one finishes.
PeakResult measure_fma_peak(int threads, int trials, double seconds_per_trial);

}  // namespace caliprox::bench
