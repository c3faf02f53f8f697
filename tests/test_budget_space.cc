// budgets.json read back as a space (tune/budget_space.h): where measured
// errors land on its axes, the slack and excess of a point against the
// judged points, and the accept / discard / uncertain rule guided tuning
// applies with a margin; malformed documents name what is wrong.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "tune/budget_space.h"

using namespace caliprox;

namespace {

// Two axes of network "a" on [0, 1] and [0, 2]; one valid point at
// (0.5, 1.0) and one invalid point at (0.8, 1.6).
nlohmann::json budgets() {
  return {{"format", "caliprox-budgets"},
          {"experiment", "exp"},
          {"axes",
           {{{"name", "a.bias"}, {"network", "a"}, {"param", "bias"}, {"lo", 0}, {"hi", 1}},
            {{"name", "a.std"}, {"network", "a"}, {"param", "std"}, {"lo", 0}, {"hi", 2}}}},
          {"points",
           {{{"values", {{"a.bias", 0.5}, {"a.std", 1.0}}}, {"verdict", "valid"}},
            {{"values", {{"a.bias", 0.8}, {"a.std", 1.6}}}, {"verdict", "invalid"}}}}};
}

}  // namespace

TEST_CASE("budget space: slack and excess are in units of each axis's range") {
  auto s = BudgetSpace::from_json(budgets(), "b.json");
  REQUIRE(s.ok());
  CHECK(s->networks() == std::vector<std::string>{"a"});
  // (0.3, 0.6): 0.2 of the bias range and 0.2 of the std range below the valid point.
  CHECK(s->slack({0.3, 0.6}) == doctest::Approx(0.2));
  CHECK(s->slack({0.3, 0.9}) == doctest::Approx(0.05));  // std is the tighter axis: (1.0 - 0.9) / 2
  CHECK(s->slack({0.6, 0.5}) == doctest::Approx(-0.1));  // bias 0.1 beyond: outside the valid box
  CHECK(s->excess({0.9, 1.8}) == doctest::Approx(0.1));  // 0.1 above the invalid point on both
  CHECK(s->excess({0.9, 1.0}) == doctest::Approx(-0.3));
}

TEST_CASE("budget space: placement with a margin") {
  auto s = BudgetSpace::from_json(budgets(), "b.json");
  REQUIRE(s.ok());
  CHECK(s->place({0.3, 0.6}, 0.1) == Placement::accepted);
  CHECK(s->place({0.3, 0.9}, 0.1) == Placement::uncertain);  // valid, but within the margin of the edge
  CHECK(s->place({0.3, 0.9}, 0.0) == Placement::accepted);
  CHECK(s->place({0.95, 1.9}, 0.1) == Placement::discarded);
  CHECK(s->place({0.85, 1.7}, 0.1) == Placement::uncertain);  // invalid, but within the margin
  CHECK(s->place({0.7, 0.2}, 0.1) == Placement::uncertain);   // nothing known there
  // A noisy application left an invalid point below a valid one: never accepted there.
  nlohmann::json noisy = budgets();
  noisy["points"].push_back({{"values", {{"a.bias", 0.1}, {"a.std", 0.1}}}, {"verdict", "invalid"}});
  auto n = BudgetSpace::from_json(noisy, "b.json");
  REQUIRE(n.ok());
  CHECK(n->place({0.2, 0.2}, 0.1) == Placement::uncertain);
}

TEST_CASE("budget space: a point with a non-finite coordinate is as severe as can be") {
  auto s = BudgetSpace::from_json(budgets(), "b.json");
  REQUIRE(s.ok());
  // A diverged network: std::min and std::max would skip the NaN and place
  // the point by its other coordinates alone.
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    CHECK(s->slack({0.1, bad}) == -std::numeric_limits<double>::infinity());
    CHECK(s->excess({bad, 0.1}) == std::numeric_limits<double>::infinity());
    CHECK(s->place({0.1, bad}, 0.05) == Placement::discarded);
  }
}

TEST_CASE("budget space: measured errors land on the axes") {
  auto s = BudgetSpace::from_json(budgets(), "b.json");
  REQUIRE(s.ok());
  // Against the ground truth when there is one; |bias|.
  const nlohmann::json errors = {{"vs_exact", {{"bias", 0.01}, {"std", 0.02}}},
                                 {"vs_truth", {{"bias", -0.3}, {"std", 0.4}}}};
  auto x = s->point([&](const std::string& net) -> const nlohmann::json& {
    CHECK(net == "a");
    return errors;
  });
  REQUIRE(x.ok());
  CHECK((*x)[0] == doctest::Approx(0.3));
  CHECK((*x)[1] == doctest::Approx(0.4));
  auto rate = axis_value(errors, "rate", "a");
  CHECK(!rate.ok());
  CHECK(rate.status().message().find("flip rate") != std::string::npos);
}

TEST_CASE("budget space: malformed documents are refused with the reason") {
  nlohmann::json doc = budgets();
  doc["format"] = "caliprox-errors";
  auto a = BudgetSpace::from_json(doc, "b.json");
  REQUIRE(!a.ok());
  CHECK(a.status().message().find("b.json: not a budgets.json") != std::string::npos);
  doc = budgets();
  doc["axes"][1]["param"] = "variance";
  auto b = BudgetSpace::from_json(doc, "b.json");
  REQUIRE(!b.ok());
  CHECK(b.status().message().find("param 'variance'") != std::string::npos);
  doc = budgets();
  doc["points"][0]["values"].erase("a.std");
  auto c = BudgetSpace::from_json(doc, "b.json");
  REQUIRE(!c.ok());
  CHECK(c.status().message().find("lacks what caliprox calibrate writes") != std::string::npos);
  auto d = BudgetSpace::load("/nonexistent/budgets.json");
  REQUIRE(!d.ok());
  CHECK(d.status().code() == Errc::invalid_input);
}
