#pragma once
// A seeded pseudo-random source whose draws are the same on every platform
// and standard library: std::mt19937_64's output sequence is fixed by the C++
// standard, but std::uniform_int_distribution and friends are not, so the
// bounded and real-valued draws are written out here. Tuning results (and
// resumption from records.jsonl) depend on this being reproducible.
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace caliprox {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  uint64_t next() { return engine_(); }

  // Uniform in [0, n); n > 0. Rejection sampling: values below 2^64 mod n
  // would make the low residues more likely, so they are drawn again.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }
  // Uniform index into a container of `n` elements (n > 0).
  size_t index(size_t n) { return static_cast<size_t>(below(static_cast<uint64_t>(n))); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return uniform() < p; }

  // Fisher-Yates shuffle driven by below().
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[index(i)]);
  }

  // `k` distinct indices out of [0, n), in draw order (partial Fisher-Yates).
  std::vector<size_t> distinct(size_t n, size_t k) {
    std::vector<size_t> pool(n);
    for (size_t i = 0; i < n; ++i) pool[i] = i;
    if (k > n) k = n;
    for (size_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + index(n - i)]);
    pool.resize(k);
    return pool;
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace caliprox
