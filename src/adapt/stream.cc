#include "adapt/stream.h"

#include <cmath>
#include <map>
#include <utility>

namespace caliprox {

namespace {

// SplitMix64 (Steele, Lea, Flood 2014). Our own generator and our own
// uniform draws, because std::uniform_*_distribution's output differs
// between standard libraries and a stream must be the same sequence for a
// seed on every machine (reports name the seed, not the samples).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) from the top 53 bits (a double's mantissa).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n >= 1, without modulo bias: draws below the
  // threshold would make the low residues more likely, so they are redrawn.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

 private:
  uint64_t state_;
};

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  // Fisher-Yates, from the back.
  for (size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

// One class's samples, drawn without repetition until used up; then
// reshuffled, and every later draw of the class is a reuse.
struct ClassPool {
  std::vector<int64_t> samples;
  size_t next = 0;
  bool cycled = false;
};

int64_t draw_from(ClassPool& pool, Rng& rng, int64_t& repeated) {
  if (pool.next == pool.samples.size()) {
    shuffle(pool.samples, rng);
    pool.next = 0;
    pool.cycled = true;
  }
  if (pool.cycled) ++repeated;
  return pool.samples[pool.next++];
}

Result<Stream> persistent_stream(const StreamSpec& spec, int64_t begin, const std::vector<int64_t>& labels) {
  if (!(spec.mean_run >= 1)) {
    return invalid_input("stream {}: mean_run must be >= 1, got {}", spec.name, spec.mean_run);
  }
  Rng rng(spec.seed);
  // Ordered by class so that the draws do not depend on hashing.
  std::map<int64_t, ClassPool> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].samples.push_back(begin + static_cast<int64_t>(i));
  std::vector<ClassPool*> pools;
  for (auto& [cls, pool] : by_class) {
    shuffle(pool.samples, rng);
    pools.push_back(&pool);
  }
  const int64_t length = spec.length > 0 ? spec.length : static_cast<int64_t>(labels.size());
  // A run continues with probability 1 - 1/mean_run: geometric lengths
  // with mean mean_run (mean_run 1: a new class every input).
  const double p_continue = 1.0 - 1.0 / spec.mean_run;
  const uint64_t n_classes = pools.size();
  uint64_t current = rng.below(n_classes);
  Stream out;
  out.samples.reserve(static_cast<size_t>(length));
  for (int64_t i = 0; i < length; ++i) {
    if (i > 0 && n_classes > 1 && rng.uniform() >= p_continue) {
      // A change: uniformly among the other classes.
      const uint64_t k = rng.below(n_classes - 1);
      current = k >= current ? k + 1 : k;
    }
    out.samples.push_back(draw_from(*pools[current], rng, out.repeated));
  }
  return out;
}

Result<Stream> shuffled_stream(const StreamSpec& spec, int64_t begin, const std::vector<int64_t>& labels) {
  const auto split = static_cast<int64_t>(labels.size());
  const int64_t length = spec.length > 0 ? spec.length : split;
  if (length > split) {
    return invalid_input("stream {}: a shuffled stream of {} inputs would repeat samples: the split has {}", spec.name,
                         length, split);
  }
  Rng rng(spec.seed);
  Stream out;
  out.samples.resize(static_cast<size_t>(split));
  for (int64_t i = 0; i < split; ++i) out.samples[static_cast<size_t>(i)] = begin + i;
  shuffle(out.samples, rng);
  out.samples.resize(static_cast<size_t>(length));
  return out;
}

Result<Stream> file_stream(const StreamSpec& spec, int64_t begin, const std::vector<int64_t>& labels) {
  if (spec.indices.empty()) return invalid_input("stream {}: the file stream lists no sample indices", spec.name);
  const int64_t end = begin + static_cast<int64_t>(labels.size());
  for (size_t i = 0; i < spec.indices.size(); ++i) {
    const int64_t s = spec.indices[i];
    if (s < begin || s >= end) {
      return invalid_input("stream {}: index {} at position {} lies outside the split [{}, {})", spec.name, s, i,
                           begin, end);
    }
  }
  Stream out;
  out.samples = spec.indices;
  // A length shorter than the file keeps its beginning; a longer one cannot
  // be met without inventing inputs, so the file's length stands.
  if (spec.length > 0 && spec.length < static_cast<int64_t>(out.samples.size())) {
    out.samples.resize(static_cast<size_t>(spec.length));
  }
  return out;
}

}  // namespace

Result<Stream> make_stream(const StreamSpec& spec, int64_t begin, const std::vector<int64_t>& labels) {
  if (labels.empty()) return invalid_input("stream {}: the split is empty", spec.name);
  if (spec.length < 0) return invalid_input("stream {}: length must be >= 0, got {}", spec.name, spec.length);
  switch (spec.kind) {
    case StreamKind::persistent: return persistent_stream(spec, begin, labels);
    case StreamKind::shuffled: return shuffled_stream(spec, begin, labels);
    case StreamKind::file: return file_stream(spec, begin, labels);
  }
  return invalid_input("stream {}: unknown stream kind {}", spec.name, static_cast<int>(spec.kind));
}

}  // namespace caliprox
