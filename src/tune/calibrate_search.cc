#include "tune/calibrate_search.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <numeric>
#include <set>

#include "tune/rng.h"

namespace caliprox {

namespace {

constexpr int kPrimes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};

// Element i of the van der Corput sequence in base b.
double radical_inverse(uint64_t i, int b) {
  double f = 1, r = 0;
  while (i > 0) {
    f /= b;
    r += f * static_cast<double>(i % static_cast<uint64_t>(b));
    i /= static_cast<uint64_t>(b);
  }
  return r;
}

bool dominated_by(const std::vector<double>& x, const std::vector<double>& v) {  // x <= v everywhere
  for (size_t k = 0; k < x.size(); ++k)
    if (x[k] > v[k]) return false;
  return true;
}

}  // namespace

Result<CalibrationRegion> CalibrationRegion::create(std::vector<CalibrationAxis> axes, int reference_points,
                                                    uint64_t seed) {
  if (axes.empty()) return invalid_input("calibration: no parameter axes");
  if (axes.size() > std::size(kPrimes)) return invalid_input("calibration: at most {} axes", std::size(kPrimes));
  for (const auto& a : axes)
    if (!(a.lo < a.hi) || !std::isfinite(a.lo) || !std::isfinite(a.hi))
      return invalid_input("calibration: axis '{}' has an empty or reversed range [{}, {}] (lo is the least "
                           "severe value, hi the most)",
                           a.name, a.lo, a.hi);
  CalibrationRegion r;
  r.axes_ = std::move(axes);
  // A Halton sample of the box, shifted by a seeded offset per axis
  // (Cranley-Patterson rotation) so that seeds give independent samples.
  Rng rng(seed);
  std::vector<double> shift;
  for (size_t k = 0; k < r.axes_.size(); ++k) shift.push_back(rng.uniform());
  for (int i = 0; i < reference_points; ++i) {
    std::vector<double> x;
    for (size_t k = 0; k < r.axes_.size(); ++k) {
      const double u = std::fmod(radical_inverse(static_cast<uint64_t>(i + 1), kPrimes[k]) + shift[k], 1.0);
      x.push_back(r.axes_[k].lo + u * (r.axes_[k].hi - r.axes_[k].lo));
    }
    r.reference_.push_back(std::move(x));
  }
  r.reference_state_.assign(r.reference_.size(), Verdict::uncertain);
  return r;
}

void CalibrationRegion::add(CalibrationPoint p) {
  if (p.verdict != Verdict::uncertain)
    for (size_t i = 0; i < reference_.size(); ++i) {
      if (reference_state_[i] != Verdict::uncertain) continue;
      if (p.verdict == Verdict::valid && dominated_by(reference_[i], p.x)) reference_state_[i] = Verdict::valid;
      if (p.verdict == Verdict::invalid && dominated_by(p.x, reference_[i])) reference_state_[i] = Verdict::invalid;
    }
  points_.push_back(std::move(p));
}

Verdict CalibrationRegion::classify(const std::vector<double>& x) const {
  // The region is the union of the valid points' boxes: a point inside one
  // is valid even where a noisy application also left an invalid point
  // below it.
  for (const auto& p : points_)
    if (p.verdict == Verdict::valid && dominated_by(x, p.x)) return Verdict::valid;
  for (const auto& p : points_)
    if (p.verdict == Verdict::invalid && dominated_by(p.x, x)) return Verdict::invalid;
  return Verdict::uncertain;
}

double CalibrationRegion::valid_fraction() const {
  return static_cast<double>(std::count(reference_state_.begin(), reference_state_.end(), Verdict::valid)) /
         static_cast<double>(reference_state_.size());
}

double CalibrationRegion::unknown_fraction() const {
  return static_cast<double>(std::count(reference_state_.begin(), reference_state_.end(), Verdict::uncertain)) /
         static_cast<double>(reference_state_.size());
}

std::optional<std::vector<double>> AdaptiveCalibration::propose(const std::vector<std::vector<double>>& pending) {
  std::vector<size_t> unknown;
  for (size_t i = 0; i < r_.reference_.size(); ++i)
    if (r_.reference_state_[i] == Verdict::uncertain) unknown.push_back(i);
  if (unknown.empty()) return std::nullopt;
  std::set<std::vector<double>> tried(pending.begin(), pending.end());
  for (const auto& p : r_.points_) tried.insert(p.x);
  // Points a pending proposal will resolve (those comparable with it) are
  // left to it: the next proposal works on the rest, so that a round of
  // proposals spreads along the boundary (the two off-diagonal quadrants
  // after the centre, as parallel bisection would). When nothing is left,
  // all unknown points count again.
  std::vector<size_t> free;
  for (size_t u : unknown) {
    const auto& y = r_.reference_[u];
    if (std::none_of(pending.begin(), pending.end(),
                     [&](const std::vector<double>& p) { return dominated_by(y, p) || dominated_by(p, y); }))
      free.push_back(u);
  }
  if (!free.empty()) unknown = std::move(free);
  // The candidate that resolves the most unknown reference points in its
  // worse outcome: if valid, the points it dominates become valid; if
  // invalid, the points dominating it become invalid. Maximising the
  // smaller of the two balances the split, as a bisection does.
  // At most `candidates_` of them are scored, spread over the unknown set by
  // a prime step (a plain stride would pick Halton points that share their
  // low-order digits, i.e. a thin slab of the box).
  const size_t n = unknown.size();
  const size_t count = std::min(n, static_cast<size_t>(candidates_));
  size_t step = 7919;
  while (n > 1 && std::gcd(step, n) != 1) step += 2;
  std::optional<size_t> best;
  size_t best_score = 0;
  for (size_t j = 0; j < count; ++j) {
    const size_t c = count == n ? j : (j * step) % n;
    const auto& x = r_.reference_[unknown[c]];
    if (tried.count(x)) continue;
    size_t below = 0, above = 0;
    for (size_t u : unknown) {
      const auto& y = r_.reference_[u];
      below += dominated_by(y, x);
      above += dominated_by(x, y);
    }
    const size_t score = std::min(below, above) + 1;  // + 1: every candidate resolves itself
    if (!best || score > best_score) {
      best = unknown[c];
      best_score = score;
    }
  }
  if (!best) return std::nullopt;
  return r_.reference_[*best];
}

int run_adaptive(CalibrationRegion& region, const CalibrationOracle& oracle, int budget, int batch) {
  AdaptiveCalibration search(region);
  int calls = 0;
  while (calls < budget) {
    std::vector<std::vector<double>> round;
    while (static_cast<int>(round.size()) < std::min(batch, budget - calls)) {
      auto x = search.propose(round);
      if (!x) break;
      round.push_back(std::move(*x));
    }
    if (round.empty()) break;
    for (const auto& x : round) region.add({x, oracle(x)});  // as if judged in parallel
    calls += static_cast<int>(round.size());
  }
  return calls;
}

Result<int> run_bisection(CalibrationRegion& region, const CalibrationOracle& oracle, int budget, int steps) {
  if (region.axes().size() != 2) return invalid_input("bisection: 2 axes only, found {}", region.axes().size());
  struct Box {
    std::vector<double> lo, hi;
  };
  std::deque<Box> boxes;
  boxes.push_back({{region.axes()[0].lo, region.axes()[1].lo}, {region.axes()[0].hi, region.axes()[1].hi}});
  int calls = 0;
  auto judge = [&](const std::vector<double>& x) {
    Verdict v = region.classify(x);  // known from earlier points: no run
    if (v != Verdict::uncertain) return v;
    v = oracle(x);
    ++calls;
    region.add({x, v});
    return v;
  };
  while (!boxes.empty() && calls < budget) {
    const Box b = boxes.front();
    boxes.pop_front();
    auto at = [&](double t) { return std::vector<double>{b.lo[0] + t * (b.hi[0] - b.lo[0]), b.lo[1] + t * (b.hi[1] - b.lo[1])}; };
    double t_valid = 0, t_invalid = 1;  // the corners are taken as valid and invalid
    for (int s = 0; s < steps && calls < budget; ++s) {
      const double mid = (t_valid + t_invalid) / 2;
      (judge(at(mid)) == Verdict::valid ? t_valid : t_invalid) = mid;
    }
    const auto p = at(t_valid), q = at(t_invalid);
    // [lo, p] is valid and [q, hi] invalid; the boundary may still cross
    // the two off-diagonal boxes.
    boxes.push_back({{b.lo[0], p[1]}, {q[0], b.hi[1]}});
    boxes.push_back({{p[0], b.lo[1]}, {b.hi[0], q[1]}});
  }
  return calls;
}

}  // namespace caliprox
