#include "fma_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

#include "util/stats.h"

namespace caliprox::bench {

namespace {

// Each chain is acc = acc * m + c with m just below 1, so the values settle
// instead of overflowing; the chains are independent, so the loop is limited
// by FMA throughput, not latency. 16 zmm accumulators cover latency 4 x 2
// pipes with room to spare and still leave registers for the constants.
constexpr int kChains512 = 16;
constexpr double kFlopsPerIter512 = kChains512 * 16 * 2;

__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iterations) {
  const __m512 m = _mm512_set1_ps(0.9999999f);
  const __m512 c = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_set1_ps(1.00f), a1 = _mm512_set1_ps(1.01f), a2 = _mm512_set1_ps(1.02f);
  __m512 a3 = _mm512_set1_ps(1.03f), a4 = _mm512_set1_ps(1.04f), a5 = _mm512_set1_ps(1.05f);
  __m512 a6 = _mm512_set1_ps(1.06f), a7 = _mm512_set1_ps(1.07f), a8 = _mm512_set1_ps(1.08f);
  __m512 a9 = _mm512_set1_ps(1.09f), a10 = _mm512_set1_ps(1.10f), a11 = _mm512_set1_ps(1.11f);
  __m512 a12 = _mm512_set1_ps(1.12f), a13 = _mm512_set1_ps(1.13f), a14 = _mm512_set1_ps(1.14f);
  __m512 a15 = _mm512_set1_ps(1.15f);
  for (int64_t i = 0; i < iterations; ++i) {
    a0 = _mm512_fmadd_ps(a0, m, c);
    a1 = _mm512_fmadd_ps(a1, m, c);
    a2 = _mm512_fmadd_ps(a2, m, c);
    a3 = _mm512_fmadd_ps(a3, m, c);
    a4 = _mm512_fmadd_ps(a4, m, c);
    a5 = _mm512_fmadd_ps(a5, m, c);
    a6 = _mm512_fmadd_ps(a6, m, c);
    a7 = _mm512_fmadd_ps(a7, m, c);
    a8 = _mm512_fmadd_ps(a8, m, c);
    a9 = _mm512_fmadd_ps(a9, m, c);
    a10 = _mm512_fmadd_ps(a10, m, c);
    a11 = _mm512_fmadd_ps(a11, m, c);
    a12 = _mm512_fmadd_ps(a12, m, c);
    a13 = _mm512_fmadd_ps(a13, m, c);
    a14 = _mm512_fmadd_ps(a14, m, c);
    a15 = _mm512_fmadd_ps(a15, m, c);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                     _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
  // Stored and summed by hand: GCC 12's _mm512_reduce_add_ps trips
  // -Wuninitialized inside its own header (fatal with -Dwerror=true).
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

// 16 ymm registers in all: 12 accumulators + 2 constants avoid spills.
constexpr int kChains256 = 12;
constexpr double kFlopsPerIter256 = kChains256 * 8 * 2;

__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t iterations) {
  const __m256 m = _mm256_set1_ps(0.9999999f);
  const __m256 c = _mm256_set1_ps(1e-7f);
  __m256 a[kChains256];
  for (int k = 0; k < kChains256; ++k) a[k] = _mm256_set1_ps(1.0f + 0.01f * static_cast<float>(k));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kChains256; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  }
  __m256 s = a[0];
  for (int k = 1; k < kChains256; ++k) s = _mm256_add_ps(s, a[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

struct Loop {
  const char* isa;
  float (*run)(int64_t);
  double flops_per_iter;
};

Loop pick_loop() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"avx512f", fma_chains_avx512, kFlopsPerIter512};
  return {"avx2+fma", fma_chains_avx2, kFlopsPerIter256};
}

// Wall seconds for `threads` copies of the loop, `iterations` each.
double timed_run(const Loop& loop, int threads, int64_t iterations) {
  std::vector<float> sinks(static_cast<size_t>(threads));
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { sinks[static_cast<size_t>(t)] = loop.run(iterations); });
  for (std::thread& th : pool) th.join();
  auto t1 = std::chrono::steady_clock::now();
  // The sum keeps the loops observable (otherwise they could be dropped).
  volatile float sink = 0;
  for (float v : sinks) sink = sink + v;
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace

PeakResult measure_fma_peak(int threads, int trials, double seconds_per_trial) {
  const Loop loop = pick_loop();
  threads = std::max(1, threads);
  // Warm-up: brings the clock up and calibrates the iteration count.
  int64_t iterations = 1 << 20;
  double seconds = timed_run(loop, threads, iterations);
  while (seconds < 0.02) {
    iterations *= 4;
    seconds = timed_run(loop, threads, iterations);
  }
  iterations = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(iterations) * seconds_per_trial / seconds));

  PeakResult r;
  r.threads = threads;
  r.isa = loop.isa;
  const double flops = loop.flops_per_iter * static_cast<double>(iterations) * threads;
  for (int i = 0; i < std::max(1, trials); ++i) r.trials.push_back(flops / timed_run(loop, threads, iterations) * 1e-9);
  r.median_gflops = median_of(r.trials);
  r.max_gflops = *std::max_element(r.trials.begin(), r.trials.end());
  return r;
}

}  // namespace caliprox::bench
