// Built-in QoS metrics on small hand-computed tensors, and the goal logic.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qos/metrics.h"

using namespace caliprox;

namespace {

Tensor floats(Shape shape, std::vector<float> v) { return Tensor::copy_of(DType::f32, std::move(shape), v.data()); }
Tensor classes(std::vector<int64_t> v) {
  Shape s{static_cast<int64_t>(v.size())};
  return Tensor::copy_of(DType::i64, s, v.data());
}

QosSpec spec_for(Metric m, MetricReference ref = MetricReference::labels, int k = 5) {
  QosSpec s;
  s.metric = m;
  s.reference = ref;
  s.k = k;
  return s;
}

double evaluate(const QosSpec& spec, const Tensor& out, const Tensor* labels, const Tensor* exact) {
  MetricAccumulator acc(spec);
  Status st = acc.add(out, labels, exact);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return acc.value();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// row 0: clear winner 1; row 1: tie between 0 and 1 (argmax picks 0);
// row 2: 2 wins, label 0 is last; row 3: 0 wins.
const std::vector<float> kLogits = {0.1f, 0.7f, 0.2f, 0.5f, 0.5f, 0.0f, 0.2f, 0.3f, 0.5f, 1.0f, 0.0f, 0.0f};

}  // namespace

TEST_CASE("metrics: names, units and direction") {
  for (Metric m : {Metric::top1, Metric::topk, Metric::l1, Metric::l2, Metric::mse, Metric::agreement_top1,
                   Metric::max_abs_error, Metric::mean_abs_error}) {
    auto back = metric_from_name(metric_name(m));
    REQUIRE(back.has_value());
    CHECK(*back == m);
  }
  CHECK(metric_name(Metric::agreement_top1) == "agreement-top1");
  CHECK(!metric_from_name("accuracy").has_value());
  CHECK(metric_higher_is_better(Metric::top1));
  CHECK(metric_higher_is_better(Metric::agreement_top1));
  CHECK(!metric_higher_is_better(Metric::mse));
  CHECK(metric_unit(Metric::topk) == "percent");
  CHECK(metric_unit(Metric::max_abs_error) == "absolute");
}

TEST_CASE("metrics: top1 and topk with ties going to the lowest index") {
  Tensor out = floats({4, 3}, kLogits);
  Tensor labels = classes({1, 1, 0, 0});
  // correct: row 0 yes, row 1 no (tie -> class 0), row 2 no, row 3 yes
  CHECK(evaluate(spec_for(Metric::top1), out, &labels, nullptr) == doctest::Approx(50.0));
  // top-2: row 1's label 1 has only class 0 ahead; row 2's label 0 has two ahead
  CHECK(evaluate(spec_for(Metric::topk, MetricReference::labels, 2), out, &labels, nullptr) == doctest::Approx(75.0));
  // k at or beyond the class count: every label is within the top k.
  CHECK(evaluate(spec_for(Metric::topk, MetricReference::labels, 5), out, &labels, nullptr) == doctest::Approx(100.0));
  Tensor labels_tie_low = classes({1, 0, 2, 0});
  CHECK(evaluate(spec_for(Metric::top1), out, &labels_tie_low, nullptr) == doctest::Approx(100.0));

  // Accumulates over batches: 2 of 4, then 1 of 2 -> 50 %; int32 labels are accepted.
  MetricAccumulator acc(spec_for(Metric::top1));
  REQUIRE(acc.add(out, &labels, nullptr).ok());
  std::vector<int32_t> l32 = {2, 1};
  Tensor labels32 = Tensor::copy_of(DType::i32, {2}, l32.data());
  Tensor out2 = floats({2, 3}, {0.f, 0.f, 9.f, 3.f, 2.f, 1.f});
  REQUIRE(acc.add(out2, &labels32, nullptr).ok());
  CHECK(acc.count() == 6);
  CHECK(acc.value() == doctest::Approx(50.0));
}

TEST_CASE("metrics: NaN scores never win") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor out = floats({2, 3}, {nan, 0.1f, 0.2f, 0.3f, nan, 0.1f});
  Tensor labels = classes({2, 1});
  // row 0: class 2 wins over the NaN; row 1: label's own score is NaN -> wrong
  CHECK(evaluate(spec_for(Metric::top1), out, &labels, nullptr) == doctest::Approx(50.0));
}

TEST_CASE("metrics: agreement with the exact network") {
  Tensor out = floats({4, 3}, kLogits);
  Tensor exact = floats({4, 3}, {0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0});
  // argmax out: 1, 0, 2, 0; exact: 1, 0, 0, 0 -> 3 of 4
  CHECK(evaluate(spec_for(Metric::agreement_top1), out, nullptr, &exact) == doctest::Approx(75.0));
}

TEST_CASE("metrics: l1, l2 and mse against float targets") {
  Tensor out = floats({2, 2}, {1, 2, 3, 4});
  Tensor targets = floats({2, 2}, {1, 0, 0, 0});
  // differences: [0, 2], [3, 4]
  CHECK(evaluate(spec_for(Metric::l1), out, &targets, nullptr) == doctest::Approx(2.25));
  CHECK(evaluate(spec_for(Metric::mse), out, &targets, nullptr) == doctest::Approx(7.25));
  CHECK(evaluate(spec_for(Metric::l2), out, &targets, nullptr) == doctest::Approx(3.5));  // (2 + 5) / 2
}

TEST_CASE("metrics: l1 and mse against one-hot class labels") {
  Tensor out = floats({2, 2}, {0.8f, 0.2f, 0.4f, 0.6f});
  Tensor labels = classes({0, 0});
  // one-hot [1, 0] twice: differences [-0.2, 0.2], [-0.6, 0.6]
  CHECK(evaluate(spec_for(Metric::l1), out, &labels, nullptr) == doctest::Approx(0.4));
  CHECK(evaluate(spec_for(Metric::mse), out, &labels, nullptr) == doctest::Approx(0.2));
  CHECK(evaluate(spec_for(Metric::l2), out, &labels, nullptr) ==
        doctest::Approx((std::sqrt(0.08) + std::sqrt(0.72)) / 2));
}

TEST_CASE("metrics: errors against the exact outputs") {
  Tensor out = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor exact = floats({2, 3}, {1, 2.5f, 3, 4, 5, 3});
  // |differences|: [0, 0.5, 0], [0, 0, 3]
  CHECK(evaluate(spec_for(Metric::max_abs_error), out, nullptr, &exact) == doctest::Approx(3.0));
  CHECK(evaluate(spec_for(Metric::mean_abs_error), out, nullptr, &exact) == doctest::Approx(3.5 / 6));
  CHECK(evaluate(spec_for(Metric::l1, MetricReference::exact), out, nullptr, &exact) == doctest::Approx(3.5 / 6));
  CHECK(evaluate(spec_for(Metric::mse, MetricReference::exact), out, nullptr, &exact) == doctest::Approx(9.25 / 6));
  CHECK(evaluate(spec_for(Metric::l2, MetricReference::exact), out, nullptr, &exact) == doctest::Approx(1.75));

  // max over batches; a NaN output makes the maximum NaN and fails every goal
  MetricAccumulator acc(spec_for(Metric::max_abs_error));
  REQUIRE(acc.add(out, nullptr, &exact).ok());
  Tensor small = floats({1, 3}, {0, 0, 1});
  Tensor zero = floats({1, 3}, {0, 0, 0});
  REQUIRE(acc.add(small, nullptr, &zero).ok());
  CHECK(acc.value() == doctest::Approx(3.0));
  Tensor nan = floats({1, 3}, {0, std::numeric_limits<float>::quiet_NaN(), 0});
  REQUIRE(acc.add(nan, nullptr, &zero).ok());
  REQUIRE(acc.add(small, nullptr, &zero).ok());
  CHECK(std::isnan(acc.value()));
  CHECK(!goal_met(spec_for(Metric::max_abs_error), 0.0, acc.value()));
}

TEST_CASE("metrics: missing or mismatched inputs name the metric") {
  Tensor out = floats({4, 3}, kLogits);
  Tensor labels = classes({1, 1, 0, 0});
  MetricAccumulator top1(spec_for(Metric::top1));
  Status no_labels = top1.add(out, nullptr, nullptr);
  REQUIRE(!no_labels.ok());
  CHECK(no_labels.code() == Errc::invalid_input);
  CHECK(contains(no_labels.message(), "top1"));

  MetricAccumulator agree(spec_for(Metric::agreement_top1));
  Status no_exact = agree.add(out, &labels, nullptr);
  REQUIRE(!no_exact.ok());
  CHECK(no_exact.code() == Errc::invalid_input);
  CHECK(contains(no_exact.message(), "agreement-top1"));

  Tensor targets = floats({4, 3}, std::vector<float>(12, 0.f));
  Status float_labels = top1.add(out, &targets, nullptr);
  REQUIRE(!float_labels.ok());
  CHECK(contains(float_labels.message(), "class labels"));

  Tensor out_of_range = classes({1, 3, 0, 0});
  Status range = top1.add(out, &out_of_range, nullptr);
  REQUIRE(!range.ok());
  CHECK(contains(range.message(), "label 3"));

  MetricAccumulator top0(spec_for(Metric::topk, MetricReference::labels, 0));
  Status k_zero = top0.add(out, &labels, nullptr);
  REQUIRE(!k_zero.ok());
  CHECK(contains(k_zero.message(), "k = 0"));

  Tensor exact_wrong = floats({4, 2}, std::vector<float>(8, 0.f));
  MetricAccumulator mae(spec_for(Metric::mean_abs_error));
  Status shape = mae.add(out, nullptr, &exact_wrong);
  REQUIRE(!shape.ok());
  CHECK(contains(shape.message(), "[4, 2]"));

  CHECK(top1.count() == 0);
  CHECK(std::isnan(top1.value()));  // nothing accumulated: no value, no goal met
}

TEST_CASE("metrics: loss and goals, absolute and relative") {
  CHECK(qos_loss(Metric::top1, 90.0, 88.5) == doctest::Approx(1.5));
  CHECK(qos_loss(Metric::top1, 90.0, 91.0) == doctest::Approx(-1.0));
  CHECK(qos_loss(Metric::mse, 0.5, 0.75) == doctest::Approx(0.25));

  QosSpec abs = spec_for(Metric::top1);
  abs.goal = {GoalKind::absolute, 1.0};
  // 100 * 901 / 1000 - 100 * 891 / 1000 is 1.0000000000000142 in doubles: still within 1 pp.
  CHECK(goal_met(abs, 100.0 * 901 / 1000, 100.0 * 891 / 1000));
  CHECK(!goal_met(abs, 90.1, 89.0));
  CHECK(goal_met(abs, 90.0, 95.0));

  QosSpec err = spec_for(Metric::mse);
  err.goal = {GoalKind::absolute, 0.1};
  CHECK(goal_met(err, 0.5, 0.6));
  CHECK(!goal_met(err, 0.5, 0.7));
  CHECK(!goal_met(err, 0.5, std::numeric_limits<double>::quiet_NaN()));

  QosSpec rel = spec_for(Metric::top1);
  rel.goal = {GoalKind::relative, 0.01};
  CHECK(goal_met(rel, 80.0, 79.2));   // loss 0.8 = 1 % of 80
  CHECK(!goal_met(rel, 80.0, 79.1));

  QosSpec rel_err = spec_for(Metric::l2);
  rel_err.goal = {GoalKind::relative, 0.5};
  CHECK(goal_met(rel_err, 2.0, 3.0));
  CHECK(!goal_met(rel_err, 2.0, 3.1));
  // A zero baseline: only no loss meets a relative goal.
  CHECK(goal_met(rel_err, 0.0, 0.0));
  CHECK(!goal_met(rel_err, 0.0, 1e-12));
  CHECK(goal_met(rel, 0.0, 10.0));  // a gain over a 0 % baseline
}
