#include "adapt/strategy.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <utility>

namespace caliprox {

std::string_view adapt_strategy_name(AdaptStrategy k) {
  switch (k) {
    case AdaptStrategy::static_level: return "static";
    case AdaptStrategy::naive: return "naive";
    case AdaptStrategy::state: return "state";
    case AdaptStrategy::confidence: return "confidence";
  }
  return "unknown";
}

std::optional<AdaptStrategy> adapt_strategy_from_name(std::string_view name) {
  for (AdaptStrategy k :
       {AdaptStrategy::static_level, AdaptStrategy::naive, AdaptStrategy::state, AdaptStrategy::confidence}) {
    if (adapt_strategy_name(k) == name) return k;
  }
  return std::nullopt;
}

Status check_strategy_params(const StrategyParams& p) {
  // Written as negated ranges so that a NaN fails them too.
  if (!(p.factor >= 1)) return invalid_input("strategy factor must be >= 1, got {}", p.factor);
  if (!(p.less_at >= 0 && p.less_at <= 1)) {
    return invalid_input("strategy less_at must lie in [0, 1], got {}", p.less_at);
  }
  if (!(p.more_at >= 0 && p.more_at <= 1)) {
    return invalid_input("strategy more_at must lie in [0, 1], got {}", p.more_at);
  }
  if (p.less_at > p.more_at) {
    return invalid_input("strategy less_at ({}) must not exceed more_at ({})", p.less_at, p.more_at);
  }
  if (p.votes < 1) return invalid_input("strategy votes must be >= 1, got {}", p.votes);
  if (p.window < 2) return invalid_input("strategy window must be >= 2, got {}", p.window);
  if (p.static_level < 0) return invalid_input("strategy static_level must be >= 0, got {}", p.static_level);
  return Status::ok_status();
}

void LevelMover::more() {
  // The step grows as a real number (factor need not be an integer) but
  // moves by whole levels, at least one, so that "more" always moves below
  // the top.
  const double whole = std::floor(step);
  const int add = whole < 1 ? 1 : static_cast<int>(std::min<double>(whole, top + 1.0));
  level = std::min(top, level + add);
  step *= factor;
}

namespace {

class StaticStrategy final : public AdaptationStrategy {
 public:
  explicit StaticStrategy(int level) : level_(level) {}
  AdaptStrategy kind() const override { return AdaptStrategy::static_level; }
  int start() const override { return level_; }
  int next(const Observation&) override { return level_; }

 private:
  int level_;
};

// Mobiprox's naive strategy: a change of the predicted class between two
// consecutive inputs suggests the approximation is hurting, so back off;
// a repeated class suggests it is safe to approximate more.
class NaiveStrategy final : public AdaptationStrategy {
 public:
  NaiveStrategy(int top, double factor) { mover_ = LevelMover{top, factor, 0, 1}; }
  AdaptStrategy kind() const override { return AdaptStrategy::naive; }
  int start() const override { return 0; }
  int next(const Observation& o) override {
    if (previous_ && *previous_ != o.argmax) {
      mover_.less();
    } else {
      mover_.more();  // also the first input: nothing to disagree with
    }
    // Mobiprox's published code never updated the previous argmax, so it
    // compared every input with the first one. We compare consecutive inputs
    // as the method describes.
    previous_ = o.argmax;
    return mover_.level;
  }

 private:
  LevelMover mover_;
  std::optional<int64_t> previous_;
};

// Mobiprox's state strategy: a sliding window of the last argmaxes votes
// for "more" when they all agree and for "less" otherwise; only a run of
// votes (a full count at either end) moves, which damps the naive one's
// jumping back and forth.
class StateStrategy final : public AdaptationStrategy {
 public:
  StateStrategy(int top, const StrategyParams& p) : window_size_(p.window), max_votes_(p.votes) {
    mover_ = LevelMover{top, p.factor, 0, 1};
  }
  AdaptStrategy kind() const override { return AdaptStrategy::state; }
  int start() const override { return 0; }
  int next(const Observation& o) override {
    window_.push_back(o.argmax);
    if (static_cast<int>(window_.size()) > window_size_) window_.pop_front();
    votes_ = std::clamp(votes_ + (window_agrees() ? 1 : -1), -max_votes_, max_votes_);
    if (votes_ == max_votes_) {
      mover_.more();
      votes_ = 0;
    } else if (votes_ == -max_votes_) {
      mover_.less();
      votes_ = 0;
    }
    return mover_.level;
  }

 private:
  bool window_agrees() const {
    if (static_cast<int>(window_.size()) < window_size_) return false;
    return std::all_of(window_.begin(), window_.end(), [&](int64_t a) { return a == window_.front(); });
  }

  int window_size_;
  int max_votes_;
  int votes_ = 0;
  std::deque<int64_t> window_;
  LevelMover mover_;
};

double nan_value() { return std::numeric_limits<double>::quiet_NaN(); }

// The mean of a row's non-NaN values; NaN when there are none.
double row_mean(const std::vector<double>& row) {
  double sum = 0;
  int64_t n = 0;
  for (double v : row) {
    if (std::isnan(v)) continue;
    sum += v;
    ++n;
  }
  return n == 0 ? nan_value() : sum / static_cast<double>(n);
}

// A level's C (or W) for a class; the level's mean over classes where the
// class was never predicted that way (or lies outside the row).
double stat_or_mean(const std::vector<double>& row, double mean, int64_t cls) {
  if (cls < 0 || cls >= static_cast<int64_t>(row.size())) return mean;
  const double v = row[static_cast<size_t>(cls)];
  return std::isnan(v) ? mean : v;
}

// Mobiprox's confidence strategy: the top-1 probability is compared with
// what this level's correct (C) and wrong (W) answers for the predicted
// class typically score on the calibrate split. Close to W: back off; close
// to C: approximate more.
class ConfidenceStrategy final : public AdaptationStrategy {
 public:
  ConfidenceStrategy(int top, const StrategyParams& p, ConfidenceStats stats)
      : less_at_(p.less_at), more_at_(p.more_at), stats_(std::move(stats)) {
    mover_ = LevelMover{top, p.factor, 0, 1};
    for (size_t l = 0; l < stats_.correct.size(); ++l) {
      correct_mean_.push_back(row_mean(stats_.correct[l]));
      wrong_mean_.push_back(row_mean(stats_.wrong[l]));
    }
  }
  AdaptStrategy kind() const override { return AdaptStrategy::confidence; }
  int start() const override { return 0; }
  int next(const Observation& o) override {
    const auto l = static_cast<size_t>(mover_.level);
    const double c_stat = stat_or_mean(stats_.correct[l], correct_mean_[l], o.argmax);
    const double w_stat = stat_or_mean(stats_.wrong[l], wrong_mean_[l], o.argmax);
    // No statistics at all for this level: nothing to compare with, stay.
    if (std::isnan(c_stat) || std::isnan(w_stat)) return mover_.level;
    if (o.top1 < w_stat + less_at_ * (c_stat - w_stat)) {
      mover_.less();
    } else if (o.top1 > w_stat + more_at_ * (c_stat - w_stat)) {
      mover_.more();
    }
    return mover_.level;
  }

 private:
  double less_at_;
  double more_at_;
  ConfidenceStats stats_;
  std::vector<double> correct_mean_, wrong_mean_;
  LevelMover mover_;
};

Status check_confidence_stats(const ConfidenceStats* stats, int levels) {
  if (stats == nullptr) return invalid_input("the confidence strategy needs confidence statistics (C and W per level)");
  const auto want = static_cast<size_t>(levels);
  if (stats->correct.size() != want || stats->wrong.size() != want) {
    return invalid_input("confidence statistics cover {} (correct) and {} (wrong) levels, but there are {} levels",
                         stats->correct.size(), stats->wrong.size(), levels);
  }
  return Status::ok_status();
}

}  // namespace

Result<std::unique_ptr<AdaptationStrategy>> make_strategy(AdaptStrategy kind, const StrategyParams& params, int levels,
                                                          const ConfidenceStats* stats) {
  if (levels < 1) return invalid_input("a strategy needs at least 1 level, got {}", levels);
  CP_TRY(check_strategy_params(params));
  const int top = levels - 1;
  std::unique_ptr<AdaptationStrategy> s;
  switch (kind) {
    case AdaptStrategy::static_level:
      if (params.static_level >= levels) {
        return invalid_input("static_level {} is not a level: there are {} levels (0 .. {})", params.static_level,
                             levels, top);
      }
      s = std::make_unique<StaticStrategy>(params.static_level);
      break;
    case AdaptStrategy::naive: s = std::make_unique<NaiveStrategy>(top, params.factor); break;
    case AdaptStrategy::state: s = std::make_unique<StateStrategy>(top, params); break;
    case AdaptStrategy::confidence:
      CP_TRY(check_confidence_stats(stats, levels));
      s = std::make_unique<ConfidenceStrategy>(top, params, *stats);
      break;
  }
  if (!s) return invalid_input("unknown strategy kind {}", static_cast<int>(kind));
  return s;
}

}  // namespace caliprox
