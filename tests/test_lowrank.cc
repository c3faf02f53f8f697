// Low-rank factorisation of fully connected layers (knobs/lowrank.h): the
// truncated SVD against its definition (reconstruction, ordering,
// Eckart-Young), and the rewritten graph against X A_r^T + b computed
// directly from the truncated factors.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "knobs/lowrank.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

std::vector<double> random_matrix(int64_t m, int64_t n, std::mt19937& rng) {
  std::normal_distribution<double> d;
  std::vector<double> a(static_cast<size_t>(m * n));
  for (double& v : a) v = d(rng);
  return a;
}

// A_r = U S V^T from the factors.
std::vector<double> rebuild(const TruncatedSvd& s, int64_t m, int64_t n, int64_t r) {
  std::vector<double> a(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < r; ++c)
        a[static_cast<size_t>(i * n + j)] += s.u[static_cast<size_t>(i * r + c)] * s.s[static_cast<size_t>(c)] *
                                              s.v[static_cast<size_t>(j * r + c)];
  return a;
}

double frob2(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return sum;
}

// x[N, in] -> Gemm(W, C) -> out
Graph gemm_graph(const Tensor& w, bool trans_b, std::mt19937& rng) {
  Graph g;
  g.name = "fc";
  g.opset = 13;
  const int64_t in = trans_b ? w.dim(1) : w.dim(0), out = trans_b ? w.dim(0) : w.dim(1);
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{in, ""}}));
  g.initializers["w"] = w;
  g.initializers["c"] = random_tensor({out}, rng);
  Node n = make_node("Gemm", {"x", "w", "c"}, {"out"}, "fc");
  if (trans_b) {
    n.attrs["transB"].kind = Attribute::Kind::i;
    n.attrs["transB"].i = 1;
  }
  g.nodes.push_back(n);
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

std::vector<float> run(const Graph& g, const Tensor& x) {
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  REQUIRE((*s)->run(std::span<const Tensor>(&x, 1)).ok());
  auto v = (*s)->output(0).span<float>();
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("lowrank: the truncated SVD rebuilds, orders and truncates as the definition says") {
  std::mt19937 rng(3);
  for (auto [m, n] : {std::pair<int64_t, int64_t>{7, 5}, {5, 7}, {6, 6}}) {
    CAPTURE(m);
    CAPTURE(n);
    const auto a = random_matrix(m, n, rng);
    const int64_t full = std::min(m, n);
    const TruncatedSvd s = truncated_svd(a, m, n, full);
    CHECK(frob2(rebuild(s, m, n, full), a) < 1e-18 * frob2(a, std::vector<double>(a.size(), 0.0)) + 1e-18);
    for (int64_t c = 1; c < full; ++c) CHECK(s.s[static_cast<size_t>(c)] <= s.s[static_cast<size_t>(c - 1)]);
    // Eckart-Young: the rank-2 truncation misses exactly the other singular values.
    double rest = 0;
    for (int64_t c = 2; c < full; ++c) rest += s.s[static_cast<size_t>(c)] * s.s[static_cast<size_t>(c)];
    const TruncatedSvd s2 = truncated_svd(a, m, n, 2);
    CHECK(frob2(rebuild(s2, m, n, 2), a) == doctest::Approx(rest).epsilon(1e-9));
  }
}

TEST_CASE("lowrank: a Gemm becomes two thinner products computing X A_r^T + b") {
  std::mt19937 rng(5);
  const Tensor x = random_tensor({3, 12}, rng);
  for (bool trans_b : {true, false}) {
    CAPTURE(trans_b);
    const Tensor w = random_tensor(trans_b ? Shape{8, 12} : Shape{12, 8}, rng);
    const Graph g = gemm_graph(w, trans_b, rng);
    auto low = GemmLowRank("fc", 0.5).apply(g);
    REQUIRE_MESSAGE(low.ok(), low.status().message());
    CHECK(low->find_node("fc/lowrank") != nullptr);
    CHECK(low->find_node("fc") != nullptr);
    CHECK(low->initializers.count("w") == 0);
    CHECK(low->initializers.at("fc/lowrank/v").shape() == Shape{12, 4});
    // The reference: A_r from the truncated SVD of W [8, 12], applied directly.
    std::vector<double> a(96);
    for (int64_t o = 0; o < 8; ++o)
      for (int64_t i = 0; i < 12; ++i)
        a[static_cast<size_t>(o * 12 + i)] = w.data<float>()[trans_b ? o * 12 + i : i * 8 + o];
    const auto ar = rebuild(truncated_svd(a, 8, 12, 4), 8, 12, 4);
    const auto y = run(*low, x);
    for (int64_t nn = 0; nn < 3; ++nn)
      for (int64_t o = 0; o < 8; ++o) {
        double ref = g.initializers.at("c").data<float>()[o];
        for (int64_t i = 0; i < 12; ++i) ref += x.data<float>()[nn * 12 + i] * ar[static_cast<size_t>(o * 12 + i)];
        CHECK(y[static_cast<size_t>(nn * 8 + o)] == doctest::Approx(ref).epsilon(1e-4).scale(1.0));
      }
  }
}

TEST_CASE("lowrank: a weight of low rank is factorised without loss; bad requests are refused") {
  std::mt19937 rng(7);
  // W = P Q with P [8, 3], Q [3, 12]: rank 3 <= r = 4.
  const Tensor p = random_tensor({8, 3}, rng), q = random_tensor({3, 12}, rng);
  Tensor w(DType::f32, {8, 12});
  for (int64_t o = 0; o < 8; ++o)
    for (int64_t i = 0; i < 12; ++i) {
      float sum = 0;
      for (int64_t k = 0; k < 3; ++k) sum += p.data<float>()[o * 3 + k] * q.data<float>()[k * 12 + i];
      w.data<float>()[o * 12 + i] = sum;
    }
  const Graph g = gemm_graph(w, true, rng);
  const Tensor x = random_tensor({2, 12}, rng);
  auto low = GemmLowRank("fc", 0.5).apply(g);
  REQUIRE(low.ok());
  const auto a = run(g, x), b = run(*low, x);
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == doctest::Approx(a[i]).epsilon(1e-4).scale(1.0));
  CHECK(GemmLowRank("fc", 0.99).apply(g).status().message().find("not below the full rank 8") != std::string::npos);
  CHECK(GemmLowRank("fc", 0).apply(g).status().message().find("outside (0, 1)") != std::string::npos);
  CHECK(GemmLowRank("nope", 0.5).apply(g).status().message().find("no node 'nope'") != std::string::npos);
}

namespace {

// x[N, 3, 9, 9] -> Conv(W [5, 3, 3, 3], b; strides 2, pads top 1 left 0 bottom 1 right 2) -> out
Graph conv_graph(const Tensor& w, std::mt19937& rng) {
  Graph g;
  g.name = "conv";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{3, ""}, Dim{9, ""}, Dim{9, ""}}));
  g.initializers["w"] = w;
  g.initializers["b"] = random_tensor({5}, rng);
  Node n = make_node("Conv", {"x", "w", "b"}, {"out"}, "conv");
  n.attrs["strides"] = ints_attr({2, 2});
  n.attrs["pads"] = ints_attr({1, 0, 1, 2});
  g.nodes.push_back(n);
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

// W_r: the rank-r truncation of M[(c, kh), (kw, o)], back in [O, C, K, K].
Tensor truncated_conv_weight(const Tensor& w, int64_t r) {
  const int64_t o = w.dim(0), c = w.dim(1), k = w.dim(2), rows = c * k, cols = k * o;
  const auto mr = rebuild(truncated_svd(spatial_svd_matrix(w), rows, cols, r), rows, cols, r);
  Tensor out(DType::f32, w.shape());
  for (int64_t oo = 0; oo < o; ++oo)
    for (int64_t cc = 0; cc < c; ++cc)
      for (int64_t kh = 0; kh < k; ++kh)
        for (int64_t kw = 0; kw < k; ++kw)
          out.data<float>()[((oo * c + cc) * k + kh) * k + kw] =
              static_cast<float>(mr[static_cast<size_t>((cc * k + kh) * cols + kw * o + oo)]);
  return out;
}

}  // namespace

TEST_CASE("lowrank: spatial SVD splits a KxK convolution into Kx1 and 1xK ones computing the rank-r weight") {
  std::mt19937 rng(9);
  const Tensor w = random_tensor({5, 3, 3, 3}, rng);
  const Graph g = conv_graph(w, rng);
  const Tensor x = random_tensor({2, 3, 9, 9}, rng);
  auto split = ConvSpatialSvd("conv", 0.5).apply(g);  // full rank min(9, 15) = 9: r = 5
  REQUIRE_MESSAGE(split.ok(), split.status().message());
  CHECK(split->initializers.at("conv/spatial/w").shape() == Shape{5, 3, 3, 1});
  CHECK(split->initializers.at("conv/spatial_h/w").shape() == Shape{5, 5, 1, 3});
  // The reference: one convolution with the rank-5 weight, same strides and pads.
  Graph reference = g;
  reference.initializers["w"] = truncated_conv_weight(w, 5);
  const auto a = run(*split, x), b = run(reference, x);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-4).scale(1.0));
  CHECK(run(g, x) != a);  // truncation changed it
  CHECK(ConvSpatialSvd("conv", 0.95).apply(g).status().message().find("not below the full rank 9") !=
        std::string::npos);
  Tensor one(DType::f32, {5, 3, 1, 1});
  CHECK(ConvSpatialSvd("conv", 0.5).apply(conv_graph(one, rng)).status().message().find("1x1 kernel") !=
        std::string::npos);
}
