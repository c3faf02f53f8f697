#pragma once
// A budgets.json (written by `caliprox calibrate`) read back as a space
// in which measured errors are placed: its axes (network, parameter, box),
// its judged points, and how far a point lies inside or outside the region
// they describe. `calibrate --query` answers with it, and guided tuning
// (tune/joint.h) accepts, discards or checks a candidate by it.
//
// Distances are in units of each axis's range (hi - lo), so a margin of 0.05
// means 5 % of every axis. Under the monotone assumption calibrate makes, a
// point x is valid when some valid point v dominates it (x <= v on every
// axis). slack(x) = max over valid v of min over axes of (v - x) / range: x
// is valid iff slack >= 0, and still valid when every coordinate is made
// `m` more severe iff slack >= m. excess(x) is the same against the invalid
// points from the other side.
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tune/calibrate_search.h"
#include "util/status.h"

namespace caliprox {

struct BudgetAxis {
  std::string name;     // "heading.std", or "std" with one network
  std::string network;  // whose outputs it is about
  std::string param;    // "bias", "std" or "rate"
  double lo = 0, hi = 1;
};

// What guided tuning does with a candidate.
enum class Placement { accepted, discarded, uncertain };
std::string_view placement_name(Placement p);  // "accepted", "discarded", "uncertain"

class BudgetSpace {
 public:
  // invalid_input naming `source` when the document is not a budgets.json
  // written by caliprox calibrate (format, axes, points).
  static Result<BudgetSpace> from_json(const nlohmann::json& doc, const std::string& source);
  static Result<BudgetSpace> load(const std::string& path);

  const std::string& experiment() const { return experiment_; }
  const std::string& source() const { return source_; }
  const std::vector<BudgetAxis>& axes() const { return axes_; }
  // The networks the axes name, in first-axis order.
  std::vector<std::string> networks() const;
  const CalibrationRegion& region() const { return region_; }

  // The point of a set of measured errors (qos/error_stats.h output_errors,
  // one per network the axes name): `errors(network)` returns the network's
  // errors object. invalid_input when a rate axis meets a network without
  // flip rates.
  Result<std::vector<double>> point(const std::function<const nlohmann::json&(const std::string&)>& errors) const;

  double slack(const std::vector<double>& x) const;   // -inf when no point is valid
  double excess(const std::vector<double>& x) const;  // -inf when no point is invalid
  // accepted: slack >= margin and excess < 0 (above no invalid point: a
  // noisy application can leave one below a valid one); discarded: excess
  // >= margin; else uncertain. A point with a non-finite coordinate has
  // slack -inf and excess +inf.
  Placement place(const std::vector<double>& x, double margin) const;

 private:
  BudgetSpace(CalibrationRegion region) : region_(std::move(region)) {}
  std::string experiment_;
  std::string source_;
  std::vector<BudgetAxis> axes_;
  CalibrationRegion region_;
};

// Where a network's measured errors sit on an axis of parameter `param`:
// against the ground truth when the split has targets (the perception error
// the application sees), else against the exact network; |bias|, as the
// axes run from the least severe value up; a rate is the classifier's flip
// rate. `where` names the network in errors.
Result<double> axis_value(const nlohmann::json& errors, const std::string& param, const std::string& where);

}  // namespace caliprox
