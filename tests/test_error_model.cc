// Error models (qos/error_model.h): the statistics of what they inject
// (tolerances from the sample sizes used), draws that do not depend on
// batching, label flips and held rows that follow their definitions, fits
// that recover the parameters, and requests that are refused with a reason.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include <fstream>

#include "experiment/schema_validator.h"
#include "qos/error_model.h"
#include "qos/error_stats.h"

using namespace caliprox;

namespace {

Tensor filled(Shape shape, float v) {
  Tensor t(DType::f32, std::move(shape));
  for (float& x : t.span<float>()) x = v;
  return t;
}

ErrorModel parsed(const char* text) {
  auto m = parse_error_model(nlohmann::json::parse(text), "test");
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  return *m;
}

std::pair<double, double> mean_std(const std::vector<double>& v) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double sq = 0;
  for (double x : v) sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / static_cast<double>(v.size() - 1))};
}

}  // namespace

TEST_CASE("error models: Gaussian noise has the requested bias and std, per element or per sample") {
  // 20000 x 4 draws: the mean's standard error is 0.05 / sqrt(80000) ~ 2e-4.
  Tensor y = filled({20000, 4}, 1.0f);
  REQUIRE(apply_error_model(parsed(R"({"kind": "gaussian", "bias": 0.1, "std": 0.05})"), y, 7, 0).ok());
  std::vector<double> e;
  for (float v : y.span<float>()) e.push_back(v - 1.0);
  auto [mean, std] = mean_std(e);
  CHECK(mean == doctest::Approx(0.1).epsilon(0.01));
  CHECK(std == doctest::Approx(0.05).epsilon(0.02));
  // Per sample: every element of a row gets the same draw.
  Tensor s = filled({1000, 3}, 0.0f);
  REQUIRE(apply_error_model(parsed(R"({"kind": "gaussian", "std": 1, "per": "sample"})"), s, 7, 0).ok());
  for (int64_t i = 0; i < 1000; ++i) CHECK(s.data<float>()[i * 3] == s.data<float>()[i * 3 + 2]);
  // Relative: y * (1 + e); per-element values.
  Tensor r = filled({20000, 2}, 2.0f);
  REQUIRE(apply_error_model(parsed(R"({"kind": "relative_gaussian", "bias": [0, 0.5], "std": [0.1, 0]})"), r, 3, 0)
              .ok());
  std::vector<double> col0;
  for (int64_t i = 0; i < 20000; ++i) {
    col0.push_back(r.data<float>()[i * 2] / 2.0 - 1);
    CHECK(r.data<float>()[i * 2 + 1] == 3.0f);  // 2 * (1 + 0.5), std 0
  }
  auto [m0, s0] = mean_std(col0);
  CHECK(std::fabs(m0) < 0.003);
  CHECK(s0 == doctest::Approx(0.1).epsilon(0.02));
}

TEST_CASE("error models: a sample's draw depends on its index and the seed, not on the batching") {
  for (const char* text : {R"({"kind": "gaussian", "std": 1})", R"({"kind": "label_flip", "rate": 0.3})",
                           R"({"kind": "hold_last", "rate": 0.3})"}) {
    CAPTURE(text);
    const ErrorModel m = parsed(text);
    Tensor whole(DType::f32, {10, 5});
    for (int64_t i = 0; i < whole.numel(); ++i) whole.data<float>()[i] = static_cast<float>(i % 7);
    Tensor a = whole.clone(), b1(DType::f32, {4, 5}), b2(DType::f32, {6, 5});
    std::memcpy(b1.raw(), whole.data<float>(), b1.nbytes());
    std::memcpy(b2.raw(), whole.data<float>() + 20, b2.nbytes());
    ErrorStream s1, s2;
    REQUIRE(apply_error_model(m, a, 11, 100, &s1).ok());
    REQUIRE(apply_error_model(m, b1, 11, 100, &s2).ok());
    REQUIRE(apply_error_model(m, b2, 11, 104, &s2).ok());
    CHECK(std::memcmp(a.data<float>(), b1.data<float>(), b1.nbytes()) == 0);
    CHECK(std::memcmp(a.data<float>() + 20, b2.data<float>(), b2.nbytes()) == 0);
    Tensor c = whole.clone();
    REQUIRE(apply_error_model(m, c, 12, 100).ok());  // another seed, other draws
    CHECK(std::memcmp(a.raw(), c.raw(), a.nbytes()) != 0);
  }
}

TEST_CASE("error models: label flips move the top class at the given rate, uniformly or by the confusion matrix") {
  const int64_t n = 20000;
  Tensor logits(DType::f32, {n, 3});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c) logits.data<float>()[i * 3 + c] = c == 0 ? 5.0f : static_cast<float>(c);
  auto top = [](const float* r) { return std::max_element(r, r + 3) - r; };
  for (const char* text : {R"({"kind": "label_flip", "rate": 0.2})",
                           R"({"kind": "label_flip", "rate": 0.2, "confusion": [[0, 0.25, 0.75], [1, 0, 0], [1, 0, 0]]})"}) {
    CAPTURE(text);
    Tensor y = logits.clone();
    REQUIRE(apply_error_model(parsed(text), y, 5, 0).ok());
    int64_t to[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; ++i) ++to[top(y.data<float>() + i * 3)];
    // Binomial: sd of the flip count is sqrt(n 0.2 0.8) ~ 57.
    CHECK(std::fabs(static_cast<double>(to[1] + to[2]) - 0.2 * n) < 5 * 57);
    const double share1 = static_cast<double>(to[1]) / static_cast<double>(to[1] + to[2]);
    CHECK(share1 == doctest::Approx(std::strstr(text, "confusion") ? 0.25 : 0.5).epsilon(0.06));
  }
  Tensor one_class = filled({4, 1}, 1.0f);
  CHECK_FALSE(apply_error_model(parsed(R"({"kind": "label_flip", "rate": 0.5})"), one_class, 1, 0).ok());
}

TEST_CASE("error models: hold_last repeats the previous row, across calls of one stream") {
  Tensor y(DType::f32, {2000, 2});
  for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = static_cast<float>(i / 2);  // row i holds i
  ErrorStream stream;
  const ErrorModel m = parsed(R"({"kind": "hold_last", "rate": 0.25})");
  REQUIRE(apply_error_model(m, y, 9, 0, &stream).ok());
  int64_t held = 0;
  CHECK(y.data<float>()[0] == 0.0f);  // nothing to hold at the start
  for (int64_t i = 1; i < 2000; ++i) {
    const float v = y.data<float>()[i * 2];
    CHECK(y.data<float>()[i * 2 + 1] == v);
    if (v != static_cast<float>(i)) {
      ++held;
      CHECK(v == y.data<float>()[(i - 1) * 2]);  // the previous row as the stream saw it
    }
  }
  CHECK(std::fabs(static_cast<double>(held) - 0.25 * 1999) < 5 * std::sqrt(1999 * 0.25 * 0.75));
  CHECK(stream.last_row == std::vector<float>(2, y.data<float>()[1999 * 2]));
}

TEST_CASE("error models: fits recover the parameters; the JSON form round-trips") {
  const ErrorModel truth = parsed(R"({"kind": "gaussian", "bias": [0.2, -0.1], "std": [0.05, 0.3]})");
  Tensor y = filled({40000, 2}, 0.0f);
  REQUIRE(apply_error_model(truth, y, 1, 0).ok());
  std::vector<double> e(y.span<float>().begin(), y.span<float>().end());
  const ErrorModel f = fit_gaussian(e, 2, ErrorKind::gaussian, true);
  CHECK(f.bias[0] == doctest::Approx(0.2).epsilon(0.01));
  CHECK(f.bias[1] == doctest::Approx(-0.1).epsilon(0.03));
  CHECK(f.std[0] == doctest::Approx(0.05).epsilon(0.02));
  CHECK(f.std[1] == doctest::Approx(0.3).epsilon(0.02));
  const ErrorModel pooled = fit_gaussian(e, 2, ErrorKind::gaussian, false);
  CHECK(pooled.bias.size() == 1);
  CHECK(pooled.bias[0] == doctest::Approx(0.05).epsilon(0.05));
  const ErrorModel back = *parse_error_model(error_model_json(f), "round trip");
  CHECK(back.bias == f.bias);
  CHECK(back.std == f.std);
}

TEST_CASE("error models: requests that cannot be honoured are refused with the key and the reason") {
  auto refused = [](const char* text, const char* why) {
    CAPTURE(text);
    auto m = parse_error_model(nlohmann::json::parse(text), "networks.heading.error_model");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == Errc::invalid_input);
    CHECK(m.status().message().find("networks.heading.error_model: ") == 0);
    CHECK(m.status().message().find(why) != std::string::npos);
  };
  refused(R"([1])", "expected an object");
  refused(R"({"kind": "salt"})", "kind: expected one of gaussian");
  refused(R"({"kind": "gaussian", "std": -1})", "std: expected non-negative finite numbers");
  refused(R"({"kind": "gaussian", "std": []})", "std: expected a number or a non-empty list");
  refused(R"({"kind": "gaussian", "rate": 0.1})", "unknown key 'rate' for kind gaussian");
  refused(R"({"kind": "gaussian", "per": "batch"})", "per: expected element or sample");
  refused(R"({"kind": "label_flip"})", "rate: expected a probability in [0, 1], found nothing");
  refused(R"({"kind": "hold_last", "rate": 1.5})", "rate: expected a probability in [0, 1], found 1.5");
  refused(R"({"kind": "label_flip", "rate": 0.1, "confusion": [[1, 0], [0, 1]]})", "confusion[0]: no other class");
  refused(R"({"kind": "label_flip", "rate": 0.1, "confusion": [[0, 1, 0], [1, 0]]})", "confusion[0]: 3 values in a 2-row");
  Tensor y = filled({2, 3}, 0.0f);
  Status st = apply_error_model(parsed(R"({"kind": "gaussian", "std": [1, 2]})"), y, 0, 0);
  CHECK(st.message().find("2 values for rows of 3 elements") != std::string::npos);
}

TEST_CASE("error statistics: flips, confusion and fits of a classifier's outputs, by the errors.json schema") {
  // 4 samples of 3 classes; sample 2's top class moves from 0 to 2.
  const std::vector<float> exact = {3, 1, 0, 0, 3, 1, 3, 0, 1, 1, 0, 3};
  std::vector<float> approx = exact;
  approx[8] = 4;
  Tensor labels(DType::i64, {4});
  const int64_t y[] = {0, 1, 2, 2};
  std::memcpy(labels.raw(), y, sizeof y);
  const nlohmann::json e = output_errors(approx, exact, 3, &labels);
  CHECK(e["vs_exact"]["flip_rate"] == 0.25);
  CHECK(e["vs_exact"]["confusion"][0][2] == 1);
  CHECK(e["vs_truth"]["accuracy_exact"] == 0.75);
  CHECK(e["vs_truth"]["accuracy"] == 1.0);
  CHECK(e["fitted"]["label_flip"]["rate"] == 0.25);
  CHECK(e["fitted"]["label_flip"]["confusion"][0] == std::vector<double>{0, 0, 1});
  CHECK(e["vs_exact"]["abs_quantiles"]["max"] == 3.0);
  CHECK(parse_error_model(e["fitted"]["label_flip"], "fitted").ok());  // usable as a request's model
  CHECK(parse_error_model(e["fitted"]["gaussian"], "fitted").ok());

  nlohmann::json candidate = {{"name", "c"}, {"config", {{"conv", "int8"}}}, {"errors", e}};
  candidate["errors"]["qos"] = {{"metric", "top1"}, {"value", 100.0}, {"exact", 75.0}};
  nlohmann::json exact_errors = output_errors(exact, exact, 3, &labels);
  exact_errors["qos"] = {{"metric", "top1"}, {"value", 75.0}, {"exact", 75.0}};
  CHECK(exact_errors["vs_exact"]["flip_rate"] == 0.0);
  const nlohmann::json doc = {{"format", "caliprox-errors"}, {"version", 1},        {"experiment", "x"},
                              {"network", "network"},        {"split", "calibrate"}, {"samples", 4},
                              {"output", "logits"},          {"exact", exact_errors}, {"candidates", {candidate}}};
  auto validator = SchemaValidator::create(nlohmann::json::parse(
      std::ifstream(std::string(CALIPROX_SOURCE_ROOT) + "/schemas/errors.schema.json"), nullptr, true));
  REQUIRE(validator.ok());
  const auto errors = validator->validate(doc);
  CHECK_MESSAGE(errors.empty(), (errors.empty() ? "" : errors[0].message));
}
