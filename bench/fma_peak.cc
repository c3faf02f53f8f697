#include "fma_peak.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#else
#error "bench/fma_peak.cc has FMA loops for x86-64 and aarch64 only: add one for this architecture"
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

#include "util/cpu.h"
#include "util/stats.h"

namespace caliprox::bench {

namespace {

// One architecture's FMA loop: `run` does `iterations` steps of every chain.
struct Loop {
  const char* isa;
  float (*run)(int64_t);
  double flops_per_iter;
};

#if defined(__x86_64__)
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

Loop pick_loop() {
  // The probe with the environment's cap (CALIPROX_MAX_ISA): the peak of the
  // tier the kernels measured next to it run at.
  if (cpu::features().avx512f) return {"avx512f", fma_chains_avx512, kFlopsPerIter512};
  return {"avx2+fma", fma_chains_avx2, kFlopsPerIter256};
}

#elif defined(__aarch64__)
// Each chain is acc = acc + c * m on 128-bit Advanced SIMD (every aarch64
// CPU has it; SVE widths vary and are left out). FMLA accumulates in place,
// so acc as the addend needs no register copies (acc * m + c would); with
// c * m = 1e-7 the values grow by 1e-7 a step and never overflow. Of the
// 32 vector registers, 24 accumulators + 2 constants: enough for four FMA
// pipes at latency 4 (Neoverse V1/V2) with room to spare, and no spills.
constexpr int kChainsNeon = 24;
constexpr double kFlopsPerIterNeon = kChainsNeon * 4 * 2;

float fma_chains_neon(int64_t iterations) {
  const float32x4_t m = vdupq_n_f32(0.9999999f);
  const float32x4_t c = vdupq_n_f32(1e-7f);
  // Every loop over `a` fully unrolled: with constant indices only, GCC
  // keeps the array in registers (otherwise it stores it every iteration).
  float32x4_t a[kChainsNeon];
#pragma GCC unroll 24
  for (int k = 0; k < kChainsNeon; ++k) a[k] = vdupq_n_f32(1.0f + 0.01f * static_cast<float>(k));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int k = 0; k < kChainsNeon; ++k) a[k] = vfmaq_f32(a[k], c, m);
  }
  float32x4_t s = a[0];
#pragma GCC unroll 24
  for (int k = 1; k < kChainsNeon; ++k) s = vaddq_f32(s, a[k]);
  return vaddvq_f32(s);
}

Loop pick_loop() { return {"neon", fma_chains_neon, kFlopsPerIterNeon}; }
#endif

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
