#include "tune/budget_space.h"

#include <algorithm>
#include <cmath>
#include <fstream>

namespace caliprox {

std::string_view placement_name(Placement p) {
  switch (p) {
    case Placement::accepted: return "accepted";
    case Placement::discarded: return "discarded";
    case Placement::uncertain: return "uncertain";
  }
  return "?";
}

Result<BudgetSpace> BudgetSpace::from_json(const nlohmann::json& doc, const std::string& source) {
  if (!doc.is_object() || doc.value("format", "") != "caliprox-budgets")
    return invalid_input("{}: not a budgets.json written by caliprox calibrate", source);
  if (!doc.contains("axes") || !doc["axes"].is_array() || !doc.contains("points") || !doc["points"].is_array())
    return invalid_input("{}: a budgets.json needs 'axes' and 'points' lists (written by caliprox calibrate)", source);
  try {
    std::vector<BudgetAxis> axes;
    std::vector<CalibrationAxis> region_axes;
    for (const auto& a : doc["axes"]) {
      BudgetAxis b;
      b.name = a.at("name").get<std::string>();
      b.param = a.value("param", b.name);
      b.network = a.value("network", "");
      b.lo = a.at("lo").get<double>();
      b.hi = a.at("hi").get<double>();
      if (b.param != "bias" && b.param != "std" && b.param != "rate")
        return invalid_input("{}: axis '{}' has param '{}' (expected bias, std or rate)", source, b.name, b.param);
      region_axes.push_back({b.name, b.lo, b.hi});
      axes.push_back(std::move(b));
    }
    CP_ASSIGN_OR_RETURN(CalibrationRegion region, CalibrationRegion::create(region_axes, 1));
    for (const auto& p : doc["points"]) {
      std::vector<double> values;
      for (const auto& a : axes) values.push_back(p.at("values").at(a.name).get<double>());
      const std::string verdict = p.at("verdict").get<std::string>();
      region.add({std::move(values), verdict == "valid"     ? Verdict::valid
                                     : verdict == "invalid" ? Verdict::invalid
                                                            : Verdict::uncertain});
    }
    BudgetSpace s(std::move(region));
    s.experiment_ = doc.value("experiment", "");
    s.source_ = source;
    s.axes_ = std::move(axes);
    return s;
  } catch (const nlohmann::json::exception& e) {  // edited by hand, or truncated
    return invalid_input("{}: a budgets.json lacks what caliprox calibrate writes: {}", source, e.what());
  }
}

Result<BudgetSpace> BudgetSpace::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) return invalid_input("{}: cannot read it (a budgets.json written by caliprox calibrate)", path);
  const nlohmann::json doc = nlohmann::json::parse(f, nullptr, false);
  if (doc.is_discarded()) return invalid_input("{}: not JSON (a budgets.json written by caliprox calibrate)", path);
  return from_json(doc, path);
}

std::vector<std::string> BudgetSpace::networks() const {
  std::vector<std::string> out;
  for (const auto& a : axes_)
    if (std::find(out.begin(), out.end(), a.network) == out.end()) out.push_back(a.network);
  return out;
}

Result<std::vector<double>> BudgetSpace::point(
    const std::function<const nlohmann::json&(const std::string&)>& errors) const {
  std::vector<double> x;
  for (const auto& a : axes_) {
    CP_ASSIGN_OR_RETURN(double v, axis_value(errors(a.network), a.param, a.network));
    x.push_back(v);
  }
  return x;
}

namespace {

// max over points with `verdict` of min over axes of sign * (p - x) / range.
double distance_to(const CalibrationRegion& region, const std::vector<double>& x, Verdict verdict, double sign) {
  double best = -std::numeric_limits<double>::infinity();
  const auto& axes = region.axes();
  for (const auto& p : region.points()) {
    if (p.verdict != verdict) continue;
    double worst = std::numeric_limits<double>::infinity();
    for (size_t k = 0; k < axes.size(); ++k)
      worst = std::min(worst, sign * (p.x[k] - x[k]) / (axes[k].hi - axes[k].lo));
    best = std::max(best, worst);
  }
  return best;
}

}  // namespace

namespace {

bool all_finite(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

// A point with a NaN or infinite coordinate (a network whose outputs
// diverged) is as severe as can be: outside every valid box, beyond every
// invalid point.
double BudgetSpace::slack(const std::vector<double>& x) const {
  if (!all_finite(x)) return -std::numeric_limits<double>::infinity();
  return distance_to(region_, x, Verdict::valid, 1);
}
double BudgetSpace::excess(const std::vector<double>& x) const {
  if (!all_finite(x)) return std::numeric_limits<double>::infinity();
  return distance_to(region_, x, Verdict::invalid, -1);
}

Placement BudgetSpace::place(const std::vector<double>& x, double margin) const {
  const double ex = excess(x);
  // Inside with margin, and not above an invalid point (a noisy application
  // can leave one below a valid one: there the region cannot be trusted).
  if (slack(x) >= margin && ex < 0) return Placement::accepted;
  if (ex >= margin) return Placement::discarded;
  return Placement::uncertain;
}

Result<double> axis_value(const nlohmann::json& errors, const std::string& param, const std::string& where) {
  const bool truth = errors.contains("vs_truth") && errors["vs_truth"].contains("std");
  if (!truth && !errors.contains("vs_exact")) return invalid_input("{}: no errors measured", where);
  const nlohmann::json& e = truth ? errors["vs_truth"] : errors.at("vs_exact");
  if (param == "bias") return std::fabs(e.at("bias").get<double>());
  if (param == "std") return e.at("std").get<double>();
  if (errors.contains("vs_exact") && errors["vs_exact"].contains("flip_rate"))
    return errors["vs_exact"]["flip_rate"].get<double>();
  return invalid_input("{}: no rate measured (a rate axis needs a classifier's flip rate)", where);
}

}  // namespace caliprox
