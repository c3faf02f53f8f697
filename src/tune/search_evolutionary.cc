// Evolutionary search with an operator bandit, after ApproxTuner, which runs
// OpenTuner's AUC bandit over several search techniques. Here the arms are
// three variation operators applied to parents drawn from the current
// frontier (the feasible, non-dominated configurations found so far):
//   mutation                change 1 + Geometric(1/2) random layers to another knob
//   crossover               uniform crossover of two frontier members
//   differential-evolution  DE/rand/1/bin over the knob ranks of each layer:
//                           x = a + F (b - c) per layer (F ~ U[0.5, 1), rounded,
//                           clamped) with crossover rate 1/2 against a
// An operator earns credit (a "win") when its child joins the frontier:
// OpenTuner credits a new global best; tune wants a whole frontier, so any
// new non-dominated feasible point counts.
#include <algorithm>
#include <cmath>
#include <set>

#include "tune/search_internal.h"

namespace caliprox::search_detail {

namespace {

enum Op : int { kMutation = 0, kCrossover = 1, kDifferential = 2, kOpCount = 3 };
constexpr const char* kOpNames[kOpCount] = {"mutation", "crossover", "differential-evolution"};

class EvolutionaryStrategy final : public SearchStrategy {
 public:
  EvolutionaryStrategy(const SearchSpace& space, const SearchSettings& s)
      : space_(space),
        settings_(s),
        rng_(s.seed),
        approximable_(approximable_layers(space)),
        bandit_(kOpCount, s.bandit_c, static_cast<size_t>(std::max(1, s.bandit_window))),
        archive_(s.max_loss),
        initial_random_(s.initial_random > 0 ? s.initial_random : 2 * s.batch_size),
        space_size_(space_size(space)) {
    seen_.insert(space.exact());  // the driver measures the exact network on its own
  }

  std::vector<Proposal> propose() override {
    std::vector<Proposal> batch;
    pending_ops_.clear();
    const std::vector<const Candidate*> pool = parent_pool();
    while (batch.size() < static_cast<size_t>(settings_.batch_size) && seen_.size() < space_size_) {
      int op = -1;
      std::optional<Candidate> child;
      std::string origin;
      if (next_seed_ < settings_.seeds.size()) {
        const Candidate& seed = settings_.seeds[next_seed_++];
        if (seen_.count(seed)) continue;
        child = seed;
        origin = "seed";
      } else if (proposed_ >= initial_random_ && !pool.empty()) {
        const size_t chosen = bandit_.select(rng_);
        for (int attempt = 0; attempt < 16 && !child; ++attempt) {
          auto [c, used] = vary(static_cast<Op>(chosen), pool);
          if (!seen_.count(c)) {
            child = std::move(c);
            op = used;
          }
        }
        if (child) {
          origin = kOpNames[op];
          bandit_.add_pending(static_cast<size_t>(op));
        }
      }
      if (!child) {  // initial population, or the operators keep finding known configurations
        for (int attempt = 0; attempt < 64 && !child; ++attempt) {
          Candidate c = random_candidate(space_, approximable_, rng_);
          if (!seen_.count(c)) child = std::move(c);
        }
        if (!child) break;  // nearly everything has been seen
        origin = "random";
      }
      seen_.insert(*child);
      batch.push_back({std::move(*child), origin});
      pending_ops_.push_back(op);
      ++proposed_;
    }
    pending_.clear();
    for (const auto& p : batch) pending_.push_back(p.candidate);
    return batch;
  }

  Status observe(const std::vector<Evaluation>& results) override {
    if (results.size() != pending_.size())
      return runtime_error("evolutionary search: {} results for a batch of {}", results.size(), pending_.size());
    for (size_t i = 0; i < results.size(); ++i) {
      const bool win = archive_.insert(pending_[i], results[i]);
      evaluated_.push_back({pending_[i], results[i]});
      if (pending_ops_[i] >= 0) bandit_.record(static_cast<size_t>(pending_ops_[i]), win);
    }
    bandit_.clear_pending();
    pending_.clear();
    pending_ops_.clear();
    return {};
  }

  std::string_view name() const override { return "evolutionary"; }
  double max_loss() const override { return settings_.max_loss; }
  std::string summary() const override {
    std::string s = fmt::format("evolutionary: frontier of {}", archive_.entries().size());
    for (int op = 0; op < kOpCount; ++op)
      s += fmt::format("; {} {} uses / {} wins", kOpNames[op], bandit_.total_uses(static_cast<size_t>(op)),
                       bandit_.total_wins(static_cast<size_t>(op)));
    return s;
  }

 private:
  // Parents: the frontier, topped up with the best other configurations
  // (threshold objective) while it has fewer than three members.
  std::vector<const Candidate*> parent_pool() const {
    std::vector<const Candidate*> pool;
    for (const auto& e : archive_.entries()) pool.push_back(&e.candidate);
    if (pool.size() >= 3) return pool;
    std::vector<size_t> idx(evaluated_.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      return better(evaluated_[a].evaluation, evaluated_[b].evaluation, settings_.max_loss);
    });
    for (size_t i : idx) {
      if (pool.size() >= 3) break;
      const Candidate* c = &evaluated_[i].candidate;
      if (std::none_of(pool.begin(), pool.end(), [&](const Candidate* p) { return *p == *c; })) pool.push_back(c);
    }
    return pool;
  }

  // Changes one approximable layer to a different knob.
  void mutate_one(Candidate& c, size_t layer) {
    const size_t n = space_.layers[layer].knobs.size();
    size_t k = rng_.index(n - 1);
    if (k >= static_cast<size_t>(c[layer])) ++k;
    c[layer] = static_cast<int>(k);
  }

  Candidate mutation(const Candidate& parent) {
    Candidate c = parent;
    size_t m = 1;
    while (m < approximable_.size() && rng_.chance(0.5)) ++m;
    for (size_t pick : rng_.distinct(approximable_.size(), m)) mutate_one(c, approximable_[pick]);
    return c;
  }

  // The child and the operator actually used (too small a pool falls back to mutation).
  std::pair<Candidate, int> vary(Op op, const std::vector<const Candidate*>& pool) {
    if (op == kCrossover && pool.size() >= 2) {
      auto pick = rng_.distinct(pool.size(), 2);
      const Candidate& a = *pool[pick[0]];
      const Candidate& b = *pool[pick[1]];
      Candidate c = a;
      for (size_t l : approximable_) c[l] = rng_.chance(0.5) ? a[l] : b[l];
      if (c == a || c == b) mutate_one(c, approximable_[rng_.index(approximable_.size())]);
      return {std::move(c), kCrossover};
    }
    if (op == kDifferential && pool.size() >= 3) {
      auto pick = rng_.distinct(pool.size(), 3);
      const Candidate& a = *pool[pick[0]];
      const Candidate& b = *pool[pick[1]];
      const Candidate& d = *pool[pick[2]];
      const double f = 0.5 + 0.5 * rng_.uniform();
      const size_t forced = approximable_[rng_.index(approximable_.size())];
      Candidate c = a;
      for (size_t l : approximable_) {
        if (l != forced && !rng_.chance(0.5)) continue;
        const long hi = static_cast<long>(space_.layers[l].knobs.size()) - 1;
        const long v = std::lround(a[l] + f * (b[l] - d[l]));
        c[l] = static_cast<int>(std::clamp(v, 0L, hi));
      }
      if (c == a) mutate_one(c, forced);
      return {std::move(c), kDifferential};
    }
    return {mutation(*pool[rng_.index(pool.size())]), kMutation};
  }

  SearchSpace space_;
  SearchSettings settings_;
  Rng rng_;
  std::vector<size_t> approximable_;
  AucBandit bandit_;
  FeasibleArchive archive_;
  std::vector<FeasibleArchive::Entry> evaluated_;
  std::set<Candidate> seen_;
  std::vector<Candidate> pending_;
  std::vector<int> pending_ops_;
  size_t next_seed_ = 0;
  int64_t proposed_ = 0;
  int64_t initial_random_;
  uint64_t space_size_;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_evolutionary(const SearchSpace& space, const SearchSettings& settings) {
  return std::make_unique<EvolutionaryStrategy>(space, settings);
}

}  // namespace caliprox::search_detail
