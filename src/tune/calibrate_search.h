#pragma once
// The search behind `calibrate`: the region of error-model parameters in
// which the application meets its goal. Parameters are oriented so that
// larger means more severe, and the application is assumed monotone (as
// ApproxCaliper assumes): a point dominated by a valid point is valid, one
// dominating an invalid point is invalid. The region is then the union of
// the boxes [lower corner, v] over valid points v.
//
// Two searches over the same oracle: `adaptive` (any number of dimensions:
// each step evaluates the point that resolves the most still-unknown volume
// whichever way it comes out, measured on a fixed quasi-random sample of the
// box) and `bisection` (ApproxCaliper's 2-D recursive diagonal bisection,
// for comparison). Points judged `uncertain` (repeats that could not decide)
// resolve nothing and are not proposed again. No printing; the caller runs
// the application (the oracle) and may run several proposals at once.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qos/application.h"
#include "util/status.h"

namespace caliprox {

struct CalibrationAxis {
  std::string name;
  double lo = 0, hi = 1;  // lo: the least severe value
};

struct CalibrationPoint {
  std::vector<double> x;
  Verdict verdict = Verdict::uncertain;
};

// What is known about the box from the points evaluated so far.
class CalibrationRegion {
 public:
  // invalid_input for no axes, or an axis whose range is empty or reversed.
  static Result<CalibrationRegion> create(std::vector<CalibrationAxis> axes, int reference_points = 4096,
                                          uint64_t seed = 1);
  const std::vector<CalibrationAxis>& axes() const { return axes_; }
  const std::vector<CalibrationPoint>& points() const { return points_; }
  void add(CalibrationPoint p);
  // valid: dominated by a valid point (whatever invalid points say, which
  // only a non-monotone, noisy application leaves); invalid: dominating an
  // invalid one; uncertain otherwise.
  Verdict classify(const std::vector<double>& x) const;
  // Fractions of the box's volume (estimated on the reference sample).
  double valid_fraction() const;
  double unknown_fraction() const;

 private:
  friend class AdaptiveCalibration;
  CalibrationRegion() = default;
  std::vector<CalibrationAxis> axes_;
  std::vector<CalibrationPoint> points_;
  std::vector<std::vector<double>> reference_;  // quasi-random points of the box
  std::vector<Verdict> reference_state_;       // what is known about each
};

// The next point to evaluate, or none when the search has nothing left to
// resolve (no unknown volume, or every candidate was already tried).
// `pending`: points proposed and not judged yet (a round of parallel
// proposals); the next proposal avoids what they will resolve.
class AdaptiveCalibration {
 public:
  explicit AdaptiveCalibration(CalibrationRegion& region, int candidates = 512) : r_(region), candidates_(candidates) {}
  std::optional<std::vector<double>> propose(const std::vector<std::vector<double>>& pending = {});

 private:
  CalibrationRegion& r_;
  int candidates_;
};

// Runs a search to its budget: `oracle` judges one point; rounds of `batch`
// proposals (what parallel runs see). Returns the number of oracle calls.
using CalibrationOracle = std::function<Verdict(const std::vector<double>&)>;
int run_adaptive(CalibrationRegion& region, const CalibrationOracle& oracle, int budget, int batch = 1);
// ApproxCaliper-style recursive diagonal bisection (2 axes only): along the
// diagonal of a box, `steps` bisection evaluations find where validity
// changes; the two off-diagonal boxes left undecided are then searched the
// same way, breadth first, until the budget is spent.
Result<int> run_bisection(CalibrationRegion& region, const CalibrationOracle& oracle, int budget, int steps = 4);

}  // namespace caliprox
