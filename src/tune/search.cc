#include "tune/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include "tune/search_internal.h"

namespace caliprox {

// ----------------------------------------------------------------- space

Status SearchSpace::validate() const {
  if (layers.empty()) return invalid_input("empty knob space: the network has no layer that takes a knob");
  bool any = false;
  std::set<std::pair<std::string, bool>> entries;
  for (const auto& l : layers) {
    if (!entries.insert({l.node, l.reshape}).second)
      return invalid_input("layer {}: listed twice for {} knobs", l.node, l.reshape ? "reshape" : "kernel");
    if (l.knobs.empty()) return invalid_input("layer {}: no knobs (expected at least the exact knob)", l.node);
    const Knob* first = find_knob(l.knobs[0]);
    if (first == nullptr || first->kind != KnobKind::exact)
      return invalid_input("layer {}: the first knob must be the exact one ({}), found '{}'", l.node,
                           exact_knob().name, l.knobs[0]);
    std::set<std::string> seen;
    for (const auto& k : l.knobs) {
      const Knob* knob = find_knob(k);
      if (knob == nullptr) return invalid_input("layer {}: unknown knob '{}'{}", l.node, k, suggest_knob(k));
      if (knob->kind != KnobKind::exact && reshapes(*knob) != l.reshape)
        return invalid_input("layer {}: knob '{}' is {} knob, in the layer's {} knobs", l.node, k,
                             reshapes(*knob) ? "a reshape" : "a kernel", l.reshape ? "reshape" : "kernel");
      if (!seen.insert(k).second) return invalid_input("layer {}: knob '{}' listed twice", l.node, k);
    }
    any = any || l.knobs.size() > 1;
  }
  if (!any)
    return invalid_input("empty knob space: none of the {} layers allows a knob other than {}", layers.size(),
                         exact_knob().name);
  return {};
}

bool SearchSpace::contains(const Candidate& c) const {
  if (c.size() != layers.size()) return false;
  for (size_t l = 0; l < c.size(); ++l)
    if (c[l] < 0 || static_cast<size_t>(c[l]) >= layers[l].knobs.size()) return false;
  return true;
}

KnobConfig SearchSpace::to_config(const Candidate& c) const {
  std::map<std::string, KnobChoice> choices;
  for (size_t l = 0; l < c.size() && l < layers.size(); ++l) {
    if (c[l] <= 0) continue;
    const Knob* k = find_knob(layers[l].knobs[static_cast<size_t>(c[l])]);
    KnobChoice& choice = choices[layers[l].node];
    (layers[l].reshape ? choice.reshape : choice.kernel) = k;
  }
  KnobConfig config;
  for (const auto& [node, choice] : choices) config[node] = knob_choice_name(choice);
  return config;
}

Result<Candidate> SearchSpace::from_config(const KnobConfig& config) const {
  Candidate c = exact();
  for (const auto& [node, text] : config) {
    auto choice = parse_knob_choice(text);
    if (!choice.ok()) return choice.status().with_context(fmt::format("node {}", node));
    bool known = false;
    for (bool reshape : {false, true}) {
      const Knob* k = reshape ? choice->reshape : choice->kernel;
      auto l = std::find_if(layers.begin(), layers.end(),
                            [&](const LayerChoices& e) { return e.node == node && e.reshape == reshape; });
      known = known || l != layers.end();
      if (k == nullptr || k->kind == KnobKind::exact) continue;
      if (l == layers.end())
        return invalid_input("node {}: knob '{}' ({}) is not among the knobs this layer may take", node, k->name, text);
      auto pos = std::find(l->knobs.begin(), l->knobs.end(), k->name);
      if (pos == l->knobs.end())
        return invalid_input("node {}: knob '{}' is not among the knobs this layer may take", node, text);
      c[static_cast<size_t>(l - layers.begin())] = static_cast<int>(pos - l->knobs.begin());
    }
    if (!known) return invalid_input("node {} (knob {}) is not a layer of the search space", node, text);
  }
  return c;
}

// ----------------------------------------------------------------- bandit

AucBandit::AucBandit(size_t arms, double c, size_t window)
    : c_(c), window_(std::max<size_t>(window, 1)), pending_(arms, 0), total_(arms, 0), wins_(arms, 0) {}

size_t AucBandit::uses_in_window(size_t arm) const {
  size_t n = 0;
  for (const auto& [a, win] : history_) n += a == arm;
  return n;
}

double AucBandit::score(size_t arm) const {
  size_t pending_all = 0;
  for (size_t p : pending_) pending_all += p;
  double auc_sum = 0;
  size_t n = 0;
  for (const auto& [a, win] : history_)
    if (a == arm) {
      ++n;
      if (win) auc_sum += static_cast<double>(n);
    }
  const double uses = static_cast<double>(n + pending_[arm]);
  if (uses == 0) return std::numeric_limits<double>::infinity();
  const double exploit = n > 0 ? auc_sum * 2.0 / (static_cast<double>(n) * (static_cast<double>(n) + 1.0)) : 0.0;
  const double all = static_cast<double>(history_.size() + pending_all);
  const double explore = all > 1 ? std::sqrt(2.0 * std::log(all) / uses) : 0.0;
  return exploit + c_ * explore;
}

size_t AucBandit::select(Rng& rng) const {
  std::vector<size_t> best;
  double best_score = -std::numeric_limits<double>::infinity();
  for (size_t a = 0; a < pending_.size(); ++a) {
    const double s = score(a);
    if (s > best_score) {
      best_score = s;
      best.assign(1, a);
    } else if (s == best_score) {
      best.push_back(a);
    }
  }
  return best.size() == 1 ? best[0] : best[rng.index(best.size())];
}

void AucBandit::add_pending(size_t arm) { ++pending_[arm]; }

void AucBandit::clear_pending() { std::fill(pending_.begin(), pending_.end(), 0); }

void AucBandit::record(size_t arm, bool win) {
  history_.emplace_back(arm, win);
  if (history_.size() > window_) history_.pop_front();
  ++total_[arm];
  wins_[arm] += win;
}

// ----------------------------------------------------------------- helpers

namespace search_detail {

std::vector<size_t> approximable_layers(const SearchSpace& space) {
  std::vector<size_t> out;
  for (size_t l = 0; l < space.layers.size(); ++l)
    if (space.layers[l].knobs.size() > 1) out.push_back(l);
  return out;
}

Candidate random_candidate(const SearchSpace& space, const std::vector<size_t>& approximable, Rng& rng) {
  Candidate c = space.exact();
  const size_t k = 1 + rng.index(approximable.size());
  for (size_t pick : rng.distinct(approximable.size(), k)) {
    const size_t l = approximable[pick];
    c[l] = 1 + static_cast<int>(rng.index(space.layers[l].knobs.size() - 1));
  }
  return c;
}

uint64_t space_size(const SearchSpace& space) {
  const uint64_t cap = uint64_t{1} << 62;
  uint64_t n = 1;
  for (const auto& l : space.layers) {
    const uint64_t k = l.knobs.size();
    if (n > cap / std::max<uint64_t>(k, 1)) return cap;
    n *= k;
  }
  return n;
}

bool FeasibleArchive::insert(const Candidate& c, const Evaluation& e) {
  if (!feasible(e, max_loss_) || std::isnan(e.speedup)) return false;
  for (const auto& m : entries_)
    if (m.evaluation.qos_loss <= e.qos_loss && m.evaluation.speedup >= e.speedup) return false;
  std::erase_if(entries_, [&](const Entry& m) {
    return e.qos_loss <= m.evaluation.qos_loss && e.speedup >= m.evaluation.speedup;
  });
  entries_.push_back({c, e});
  return true;
}

bool better(const Evaluation& a, const Evaluation& b, double max_loss) {
  const bool fa = feasible(a, max_loss), fb = feasible(b, max_loss);
  if (fa != fb) return fa;
  if (fa) return a.speedup > b.speedup;
  if (std::isnan(b.qos_loss)) return !std::isnan(a.qos_loss);
  return a.qos_loss < b.qos_loss;
}

namespace {

// Uniformly random candidates, never the same one twice.
class RandomStrategy final : public SearchStrategy {
 public:
  RandomStrategy(const SearchSpace& space, const SearchSettings& s)
      : space_(space), settings_(s), rng_(s.seed), approximable_(approximable_layers(space)),
        // every candidate but the exact one can be drawn
        drawable_(space_size(space) - 1) {}

  std::vector<Proposal> propose() override {
    std::vector<Proposal> batch;
    while (batch.size() < static_cast<size_t>(settings_.batch_size) && seen_.size() < drawable_) {
      Candidate c = random_candidate(space_, approximable_, rng_);
      if (seen_.insert(c).second) batch.push_back({std::move(c), "random"});
    }
    last_batch_ = batch.size();
    return batch;
  }
  Status observe(const std::vector<Evaluation>& results) override {
    if (results.size() != last_batch_)
      return runtime_error("random search: {} results for a batch of {}", results.size(), last_batch_);
    return {};
  }
  std::string_view name() const override { return "random"; }
  double max_loss() const override { return settings_.max_loss; }

 private:
  SearchSpace space_;
  SearchSettings settings_;
  Rng rng_;
  std::vector<size_t> approximable_;
  uint64_t drawable_;
  std::set<Candidate> seen_;
  size_t last_batch_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_random(const SearchSpace& space, const SearchSettings& settings) {
  return std::make_unique<RandomStrategy>(space, settings);
}

}  // namespace search_detail

Result<std::unique_ptr<SearchStrategy>> make_strategy(const SearchSpace& space, const SearchSettings& settings) {
  CP_TRY(space.validate());
  if (settings.batch_size < 1) return invalid_input("search batch size must be at least 1, found {}", settings.batch_size);
  if (std::isnan(settings.max_loss)) return invalid_input("search goal: the maximum loss is not a number");
  for (size_t i = 0; i < settings.seeds.size(); ++i)
    if (!space.contains(settings.seeds[i]))
      return invalid_input("search seed #{} does not fit the search space ({} layers)", i, space.layers.size());
  switch (settings.kind) {
    case StrategyKind::random: return search_detail::make_random(space, settings);
    case StrategyKind::greedy: return search_detail::make_greedy(space, settings);
    case StrategyKind::evolutionary: return search_detail::make_evolutionary(space, settings);
  }
  return invalid_input("unknown search strategy");
}

}  // namespace caliprox
