// Knob configurations in the executor: validation errors name node and knob
// and leave the previous configuration active; kernels are cached per
// (node, knob) so switching back reproduces the same results; knobs without
// a channels-last kernel are adapted inside an NHWC stretch; input ranges
// for int8 calibration are tracked.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/session.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

std::vector<float> run_once(Session& s, const Tensor& x) {
  REQUIRE(s.run(std::span<const Tensor>(&x, 1)).ok());
  auto v = s.output(0).span<float>();
  return {v.begin(), v.end()};
}

// x[1,4,H,6] -> Conv(8, 3x3, pad 1) -> y: for tiny feature maps.
Graph single_conv(int64_t h, std::mt19937& rng) {
  Graph g;
  g.name = "single";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{1, ""}, Dim{4, ""}, Dim{h, ""}, Dim{6, ""}}));
  g.initializers["w"] = random_tensor({8, 4, 3, 3}, rng);
  Node conv = make_node("Conv", {"x", "w"}, {"y"}, "conv");
  conv.attrs["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(conv);
  g.outputs.push_back({"y", DType::f32, std::nullopt});
  return g;
}

}  // namespace

TEST_CASE("knob session: sites, errors name node and knob, failed configure keeps the old one") {
  const unsigned seed = 7311;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  Graph g = residual_graph(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE(s.ok());
  Session& session = **s;

  const auto& sites = session.knob_sites();
  REQUIRE(sites.size() == 2);
  CHECK(sites[0].node == "shortcut");
  CHECK(sites[1].node == "conv1");
  CHECK(sites[1].fused == "Add+Relu");
  CHECK(sites[1].flops == doctest::Approx(2.0 * 2 * 8 * 36 * 4 * 9));
  // Every kernel knob (reshape knobs rewrite the graph: the evaluator adds them).
  const auto kernel_knobs = std::count_if(knob_catalogue().begin(), knob_catalogue().end(),
                                          [](const Knob& k) { return !reshapes(k); });
  CHECK(sites[1].knobs.size() == static_cast<size_t>(kernel_knobs));

  const std::vector<float> exact = run_once(session, x);
  REQUIRE(session.configure({{"conv1", "perf-row-2-0"}}).ok());
  const std::vector<float> perforated = run_once(session, x);
  CHECK(perforated != exact);

  auto expect_error = [&](const KnobConfig& c, std::vector<std::string> parts) {
    Status st = session.configure(c);
    REQUIRE(!st.ok());
    CHECK(st.code() == Errc::invalid_input);
    for (const auto& p : parts) CHECK_MESSAGE(st.message().find(p) != std::string::npos, st.message());
    // The previous configuration is still the active one.
    CHECK(session.configuration() == KnobConfig{{"conv1", "perf-row-2-0"}});
    CHECK(run_once(session, x) == perforated);
  };
  expect_error({{"conv9", "samp-2-0"}}, {"'conv9'", "samp-2-0", "conv1"});
  expect_error({{"conv1", "perf-rows-2-0"}}, {"'conv1'", "perf-rows-2-0", "did you mean 'perf-row-2-0'"});
  expect_error({{"gap", "fp16"}}, {"fp16", "gap", "Conv only"});
  // int8 needs a calibrated input range.
  expect_error({{"conv1", "int8"}}, {"int8", "conv1", "calibrate"});
}

TEST_CASE("knob session: switching reuses cached kernels and reproduces results") {
  const unsigned seed = 99;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  Graph g = residual_graph(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE(s.ok());
  Session& session = **s;
  const auto exact = run_once(session, x);
  const KnobConfig a{{"conv1", "samp-3-1"}, {"shortcut", "fp16"}};
  const KnobConfig b{{"conv1", "perf-col-3-2"}};
  REQUIRE(session.configure(a).ok());
  const auto out_a = run_once(session, x);
  REQUIRE(session.configure(b).ok());
  const auto out_b = run_once(session, x);
  REQUIRE(session.configure({}).ok());
  CHECK(run_once(session, x) == exact);
  REQUIRE(session.configure(a).ok());
  CHECK(run_once(session, x) == out_a);
  CHECK(out_a != exact);
  CHECK(out_b != exact);
  CHECK(out_a != out_b);
  // Exact by name is the same as absent.
  REQUIRE(session.configure({{"conv1", "fp32"}}).ok());
  CHECK(session.configuration().empty());
  CHECK(run_once(session, x) == exact);
}

TEST_CASE("knob session: a perforation rate that leaves no row is refused") {
  std::mt19937 rng(5);
  Graph g = single_conv(1, rng);
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", {1, 4, 1, 6}}});
  REQUIRE(s.ok());
  Status st = (*s)->configure({{"conv", "perf-row-2-0"}});
  REQUIRE(!st.ok());
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message().find("perf-row-2-0") != std::string::npos);
  CHECK(st.message().find("nothing to compute") != std::string::npos);
  // Offset 1 keeps row 0: fine. Columns: 6 of them.
  CHECK((*s)->configure({{"conv", "perf-row-2-1"}}).ok());
  CHECK((*s)->configure({{"conv", "perf-col-4-0"}}).ok());
}

TEST_CASE("knob session: NCHW-only knob kernels inside a channels-last stretch are adapted") {
  const unsigned seed = 2718;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  Graph g = residual_graph(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  auto reference = make_reference_backend({});
  NhwcConvBackend nhwc_exact_only(false);
  NhwcConvBackend nhwc_all(true);
  auto plain = Session::create(g, *reference, {{"x", x.shape()}});
  auto cl1 = Session::create(g, nhwc_exact_only, {{"x", x.shape()}});
  auto cl2 = Session::create(g, nhwc_all, {{"x", x.shape()}});
  REQUIRE((plain.ok() && cl1.ok() && cl2.ok()));
  for (const KnobConfig& c : {KnobConfig{{"conv1", "perf-row-3-1"}, {"shortcut", "samp-2-1"}},
                              KnobConfig{{"shortcut", "perf-col-2-0"}}}) {
    REQUIRE((*plain)->configure(c).ok());
    REQUIRE((*cl1)->configure(c).ok());
    REQUIRE((*cl2)->configure(c).ok());
    const auto want = run_once(**plain, x);
    for (Session* s : {cl1->get(), cl2->get()}) {
      const auto got = run_once(*s, x);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));
    }
  }
}

TEST_CASE("knob session: input ranges are tracked for int8 calibration") {
  std::mt19937 rng(31);
  Graph g = residual_graph(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng, -0.5f, 2.0f);
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE(s.ok());
  (*s)->track_input_ranges(true);
  run_once(**s, x);
  const auto ranges = (*s)->input_ranges();
  REQUIRE(ranges.count("conv1") == 1);
  const auto v = x.span<float>();
  CHECK(ranges.at("conv1").min == *std::min_element(v.begin(), v.end()));
  CHECK(ranges.at("conv1").max == *std::max_element(v.begin(), v.end()));
  (*s)->set_calibrated_ranges(ranges);
  REQUIRE((*s)->configure({{"conv1", "int8"}}).ok());
  const auto q = run_once(**s, x);
  REQUIRE((*s)->configure({}).ok());
  const auto e = run_once(**s, x);
  // 8-bit quantisation of a K=36 dot product: close to exact, not equal.
  CHECK(q != e);
  for (size_t i = 0; i < q.size(); ++i) CHECK(std::fabs(q[i] - e[i]) <= 0.05f * (1.f + std::fabs(e[i])));
}

TEST_CASE("knob session: idle knob kernels are released and rebuilt on demand") {
  std::mt19937 rng(47);
  Graph g = residual_graph(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE(s.ok());
  REQUIRE((*s)->configure({{"conv1", "perf-row-2-0"}}).ok());
  const auto first = run_once(**s, x);
  REQUIRE((*s)->configure({{"conv1", "samp-2-0"}, {"shortcut", "perf-col-2-1"}}).ok());
  const auto second = run_once(**s, x);
  // Only the perforated conv1 kernel is idle; the active two stay.
  CHECK((*s)->release_idle_kernels() == 1);
  CHECK((*s)->release_idle_kernels() == 0);
  CHECK(run_once(**s, x) == second);
  REQUIRE((*s)->configure({{"conv1", "perf-row-2-0"}}).ok());
  CHECK(run_once(**s, x) == first);
  CHECK((*s)->release_idle_kernels() == 2);
}
