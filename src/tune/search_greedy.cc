// Greedy search by layer sensitivity, in the spirit of Intel Neural
// Compressor's "basic" tuning strategy: it orders ops by how much they hurt
// accuracy and decides op by op. Here:
// 1. Each layer's knobs are ranked by the speedup they gave when applied
//    alone (most aggressive first); knobs that alone already miss the goal,
//    or give no speedup, are dropped.
// 2. Layers are ordered by sensitivity, least sensitive first: the smallest
//    loss per unit of network time saved, loss / (1 - 1/speedup), over the
//    layer's remaining knobs (large layers that tolerate approximation go
//    first, because they buy the most speed per unit of loss budget).
// 3. Pass over the layers: on top of the configuration built so far, try the
//    layer's knobs from most to least aggressive and keep the first one whose
//    combined configuration still meets the goal (or leave the layer exact).
//    A batch holds the next batch_size knobs of the current layer, and the
//    first feasible one in ranking order wins, so the outcome is the same for
//    every batch size.
// 4. Refine: pass again, trying only knobs more aggressive than the one a
//    layer holds (errors of different layers interact, and sometimes
//    cancel), until a pass changes nothing or greedy_refine_sweeps passes ran.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "tune/search_internal.h"

namespace caliprox::search_detail {

namespace {

class GreedyStrategy final : public SearchStrategy {
 public:
  GreedyStrategy(const SearchSpace& space, const SearchSettings& s)
      : space_(space), settings_(s), current_(space.exact()) {
    std::vector<std::pair<double, size_t>> sensitivity;
    ranked_.resize(space.layers.size());
    for (size_t l = 0; l < space.layers.size(); ++l) {
      double best = std::numeric_limits<double>::infinity();
      for (size_t k = 1; k < space.layers[l].knobs.size(); ++k) {
        const Evaluation& e = s.single[l][k];
        const double gain = 1.0 - 1.0 / e.speedup;  // share of the network's time saved
        if (!feasible(e, s.max_loss) || !(gain > 0)) continue;
        ranked_[l].push_back(static_cast<int>(k));
        best = std::min(best, e.qos_loss / gain);
      }
      std::stable_sort(ranked_[l].begin(), ranked_[l].end(), [&](int a, int b) {
        const Evaluation& ea = s.single[l][static_cast<size_t>(a)];
        const Evaluation& eb = s.single[l][static_cast<size_t>(b)];
        if (ea.speedup != eb.speedup) return ea.speedup > eb.speedup;
        return ea.qos_loss < eb.qos_loss;
      });
      if (!ranked_[l].empty()) sensitivity.emplace_back(best, l);
    }
    std::stable_sort(sensitivity.begin(), sensitivity.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [sens, l] : sensitivity) order_.push_back(l);
  }

  std::vector<Proposal> propose() override {
    for (;;) {
      if (!next_window()) return {};
      std::vector<Proposal> batch;
      for (const Candidate& c : window_)
        if (!cache_.count(c)) batch.push_back({c, "greedy"});
      pending_ = batch.size();
      if (!batch.empty()) return batch;
      decide();  // everything in the window was evaluated before
    }
  }

  Status observe(const std::vector<Evaluation>& results) override {
    if (results.size() != pending_)
      return runtime_error("greedy search: {} results for a batch of {}", results.size(), pending_);
    size_t r = 0;
    for (const Candidate& c : window_)
      if (!cache_.count(c)) cache_.emplace(c, results[r++]);
    pending_ = 0;
    decide();
    return {};
  }

  std::string_view name() const override { return "greedy"; }
  double max_loss() const override { return settings_.max_loss; }
  bool ends_by_itself() const override { return true; }
  std::string summary() const override {
    return fmt::format("greedy: {} of {} layers approximated after {} passes", approximated(), order_.size(),
                       sweep_ + 1);
  }

 private:
  // Knobs of layer l still to try in this pass, most aggressive first.
  std::vector<int> options_for(size_t l) const {
    if (sweep_ == 0) return ranked_[l];
    std::vector<int> out;
    const int cur = current_[l];
    const double cur_speedup = cur == 0 ? 1.0 : settings_.single[l][static_cast<size_t>(cur)].speedup;
    for (int k : ranked_[l])
      if (k != cur && settings_.single[l][static_cast<size_t>(k)].speedup > cur_speedup) out.push_back(k);
    return out;
  }

  // Fills window_ with the next candidates to decide on; false when done.
  bool next_window() {
    for (;;) {
      if (pos_ >= order_.size()) {
        const bool last_pass = sweep_ >= settings_.greedy_refine_sweeps || (sweep_ > 0 && !changed_);
        if (last_pass || order_.empty()) return false;
        ++sweep_;
        pos_ = 0;
        tried_ = 0;
        changed_ = false;
      }
      const size_t l = order_[pos_];
      const std::vector<int> options = options_for(l);
      if (tried_ >= options.size()) {
        ++pos_;
        tried_ = 0;
        continue;
      }
      window_.clear();
      const size_t end = std::min(options.size(), tried_ + static_cast<size_t>(settings_.batch_size));
      for (size_t i = tried_; i < end; ++i) {
        Candidate c = current_;
        c[l] = options[i];
        window_.push_back(std::move(c));
      }
      window_options_ = options.size();
      return true;
    }
  }

  void decide() {
    for (const Candidate& c : window_) {
      const Evaluation& e = cache_.at(c);
      if (feasible(e, settings_.max_loss)) {
        current_ = c;
        changed_ = true;
        ++pos_;
        tried_ = 0;
        return;
      }
    }
    tried_ += window_.size();
    if (tried_ >= window_options_) {
      ++pos_;
      tried_ = 0;
    }
  }

  size_t approximated() const {
    return static_cast<size_t>(std::count_if(current_.begin(), current_.end(), [](int k) { return k != 0; }));
  }

  SearchSpace space_;
  SearchSettings settings_;
  std::vector<std::vector<int>> ranked_;  // per layer: usable knobs, most aggressive first
  std::vector<size_t> order_;             // layers, least sensitive first
  Candidate current_;
  std::map<Candidate, Evaluation> cache_;
  std::vector<Candidate> window_;
  size_t window_options_ = 0;
  size_t pending_ = 0;
  size_t pos_ = 0;    // position in order_
  size_t tried_ = 0;  // options of the current layer already decided on in this pass
  int sweep_ = 0;     // 0 = first pass, then refinement passes
  bool changed_ = false;
};

}  // namespace

Result<std::unique_ptr<SearchStrategy>> make_greedy(const SearchSpace& space, const SearchSettings& settings) {
  if (settings.single.size() != space.layers.size())
    return invalid_input("greedy search needs the result of every single (layer, knob) approximation: got {} "
                         "layers of results for {} layers",
                         settings.single.size(), space.layers.size());
  for (size_t l = 0; l < space.layers.size(); ++l)
    if (settings.single[l].size() != space.layers[l].knobs.size())
      return invalid_input("greedy search: layer {} has {} knobs but {} single-knob results", space.layers[l].node,
                           space.layers[l].knobs.size(), settings.single[l].size());
  if (settings.greedy_refine_sweeps < 0)
    return invalid_input("greedy search: refine sweeps must be >= 0, found {}", settings.greedy_refine_sweeps);
  return std::unique_ptr<SearchStrategy>(std::make_unique<GreedyStrategy>(space, settings));
}

}  // namespace caliprox::search_detail
