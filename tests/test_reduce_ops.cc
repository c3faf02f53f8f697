// reduce/normalisation op family: shape inference (ir/ops/reduce_ops*.cc)
// and the reference kernels (backends/reference/reduce_*.cc). Expected
// values are worked out by hand in the comments (float comparisons: relative
// 1e-5 unless stated). The randomized Reduce case compares against a naive
// loop over each output's group of elements and prints its seed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// The inputs of a node under test. Input #0 is fed at run time; the others
// are constants (axes, K) unless `dynamic_all`.
struct Inputs {
  std::vector<Tensor> values;
  bool dynamic_all = false;
};

Result<std::vector<Tensor>> run_all(const Node& node, const Inputs& inputs) {
  return run_rest_constant(node, inputs.values, inputs.dynamic_all);
}

std::vector<Tensor> run(const Node& node, const Inputs& inputs) {
  auto r = run_all(node, inputs);
  if (!r.ok()) FAIL(r.status().message());
  return r.value();
}

Tensor run1(const Node& node, const Inputs& inputs) { return run(node, inputs)[0]; }

Status error_of(const Node& node, const Inputs& inputs) {
  auto r = run_all(node, inputs);
  return r.ok() ? Status() : r.status();
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("reduce ops: ReduceMean") {
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  check_values(run1(make_node("ReduceMean", 1, {{"axes", ints({1})}}), {{x}}), {2, 1}, {2, 5});
  check_values(run1(make_node("ReduceMean", 1, {{"axes", ints({-2})}, {"keepdims", int_attr(0)}}), {{x}}), {3},
               {2.5, 3.5, 4.5});
  check_values(run1(make_node("ReduceMean", 1), {{x}}), {1, 1}, {3.5});
  check_values(run1(make_node("ReduceMean", 1, {{"keepdims", int_attr(0)}}), {{x}}), {}, {3.5});
  // Opset 18 form: axes as input; empty axes with noop_with_empty_axes keeps the data.
  check_values(run1(make_node("ReduceMean", 2), {{x, i64({1}, {0})}}), {1, 3}, {2.5, 3.5, 4.5});
  check_values(run1(make_node("ReduceMean", 2, {{"noop_with_empty_axes", int_attr(1)}}), {{x, i64({0}, {})}}), {2, 3},
               {1, 2, 3, 4, 5, 6});
  // 3-D, two non-adjacent axes: mean over axes 0 and 2 of 0..11 as [2, 3, 2].
  check_values(run1(make_node("ReduceMean", 1, {{"axes", ints({0, 2})}}), {{iota({2, 3, 2})}}), {1, 3, 1},
               {3.5, 5.5, 7.5});
  // Integers: the mean truncates toward zero (3 / 2, -3 / 2).
  const Tensor m = run1(make_node("ReduceMean", 1, {{"axes", ints({1})}}), {{i64({2, 2}, {1, 2, -1, -2})}});
  CHECK(m.dtype() == DType::i64);
  check_values(m, {2, 1}, {1, -1});
}

TEST_CASE("reduce ops: every Reduce op along one axis") {
  // Rows [1, -2, 3] and [-4, 5, -6].
  const Tensor x = f32({2, 3}, {1, -2, 3, -4, 5, -6});
  auto reduce = [&](const std::string& op) { return run1(make_node(op, 1, {{"axes", ints({1})}}), {{x}}); };
  check_values(reduce("ReduceSum"), {2, 1}, {2, -5});
  check_values(reduce("ReduceMax"), {2, 1}, {3, 5});
  check_values(reduce("ReduceMin"), {2, 1}, {-2, -6});
  check_values(reduce("ReduceProd"), {2, 1}, {-6, 120});
  check_values(reduce("ReduceL1"), {2, 1}, {6, 15});
  // sqrt(1 + 4 + 9), sqrt(16 + 25 + 36).
  check_values(reduce("ReduceL2"), {2, 1}, {3.7416574, 8.7749644});
  check_values(reduce("ReduceSumSquare"), {2, 1}, {14, 77});
  // log(2), log(-5).
  check_values(reduce("ReduceLogSum"), {2, 1}, {0.69314718, NAN});
  // log(e^1 + e^-2 + e^3), log(e^-4 + e^5 + e^-6).
  check_values(reduce("ReduceLogSumExp"), {2, 1}, {3.1328452, 5.0001401});
  check_values(reduce("ReduceMean"), {2, 1}, {2.0 / 3, -5.0 / 3});
  // No axes: every axis; keepdims 0 drops them.
  check_values(run1(make_node("ReduceSum", 1), {{x}}), {1, 1}, {-3});
  check_values(run1(make_node("ReduceProd", 1, {{"keepdims", int_attr(0)}, {"axes", ints({0})}}), {{x}}), {3},
               {-4, -10, -18});
  // LogSumExp of large values does not overflow: 1000 + log(2).
  check_values(run1(make_node("ReduceLogSumExp", 1), {{f32({2}, {1000, 1000})}}), {1}, {1000.6931472});
  // Max and Min propagate NaN.
  check_values(run1(make_node("ReduceMax", 1), {{f32({3}, {1, NAN, 3})}}), {1}, {NAN});
  check_values(run1(make_node("ReduceMin", 1), {{f32({3}, {NAN, 1, 3})}}), {1}, {NAN});
  // float16 and float64 keep their type.
  const Tensor h = run1(make_node("ReduceL2", 1), {{tensor<double>({2}, {3, 4})}});
  CHECK(h.dtype() == DType::f64);
  check_values(h, {1}, {5});
}

TEST_CASE("reduce ops: ReduceSum axes input (opset 13) and noop_with_empty_axes") {
  const Tensor x = f32({2, 3}, {1, -2, 3, -4, 5, -6});
  const Node sum13 = at_opset(make_node("ReduceSum", 2), 13);
  check_values(run1(sum13, {{x, i64({1}, {-1})}}), {2, 1}, {2, -5});
  check_values(run1(sum13, {{x, i64({2}, {1, 0})}}), {1, 1}, {-3});
  // Axes omitted or empty: every axis, unless noop_with_empty_axes.
  check_values(run1(at_opset(make_node("ReduceSum", 1), 13), {{x}}), {1, 1}, {-3});
  check_values(run1(sum13, {{x, i64({0}, {})}}), {1, 1}, {-3});
  const Node noop = at_opset(make_node("ReduceSum", 2, {{"noop_with_empty_axes", int_attr(1)}}), 13);
  check_values(run1(noop, {{x, i64({0}, {})}}), {2, 3}, {1, -2, 3, -4, 5, -6});
  // Before opset 13 the axes are an attribute.
  check_values(run1(at_opset(make_node("ReduceSum", 1, {{"axes", ints({0})}}), 11), {{x}}), {1, 3}, {-3, 3, -3});
  // The other Reduce ops take the opset 18 input form too.
  check_values(run1(make_node("ReduceMax", 2, {{"keepdims", int_attr(0)}}), {{x, i64({1}, {0})}}), {3}, {1, 5, 3});
  // Axes that are not constant leave the output shape unknown.
  Status s = error_of(sum13, {{x, i64({1}, {1})}, true});
  CHECK(s.code() == Errc::unsupported);
  CHECK(s.message().find("'axes' must be a constant") != std::string::npos);
}

TEST_CASE("reduce ops: integer Reduce ops") {
  // Sums wrap like the hardware: INT32_MAX + 1.
  const Tensor s = run1(make_node("ReduceSum", 1), {{tensor<int32_t>({2}, {2147483647, 1})}});
  CHECK(s.dtype() == DType::i32);
  check_values(s, {1}, {-2147483648.0});
  check_values(run1(make_node("ReduceMax", 1), {{tensor<int8_t>({3}, {-5, 7, 3})}}), {1}, {7});
  check_values(run1(make_node("ReduceMin", 1), {{tensor<uint8_t>({3}, {200, 10, 255})}}), {1}, {10});
  check_values(run1(make_node("ReduceProd", 1), {{i64({3}, {2, -3, 4})}}), {1}, {-24});
  check_values(run1(make_node("ReduceL1", 1), {{tensor<int32_t>({2}, {-3, 4})}}), {1}, {7});
  check_values(run1(make_node("ReduceSumSquare", 1), {{tensor<int32_t>({2}, {3, -4})}}), {1}, {25});
  check_values(run1(make_node("ReduceL2", 1), {{tensor<int32_t>({2}, {3, -4})}}), {1}, {5});
  // Large int64 values are exact (no detour through double).
  const int64_t big = (int64_t{1} << 60) + 1;
  const Tensor b = run1(make_node("ReduceMax", 1), {{i64({2}, {big, 3})}});
  CHECK(b.data<int64_t>()[0] == big);
  // Unsigned 64-bit values above INT64_MAX stay the largest.
  const uint64_t huge = (uint64_t{1} << 63) + 5;
  const Tensor u = run1(make_node("ReduceMax", 1), {{tensor<uint64_t>({3}, {1, huge, 7})}});
  CHECK(u.data<uint64_t>()[0] == huge);
  CHECK(run1(make_node("ReduceMin", 1), {{tensor<uint64_t>({2}, {huge, 7})}}).data<uint64_t>()[0] == 7);
  // int16 sums wrap at 16 bits: 32767 + 2.
  check_values(run1(make_node("ReduceSum", 1), {{tensor<int16_t>({2}, {32767, 2})}}), {1}, {-32767});
}

TEST_CASE("reduce ops: reducing an empty set gives the ONNX identity values") {
  // [2, 0] reduced along axis 1: two empty groups.
  const Tensor x = f32({2, 0}, {});
  auto reduce = [&](const std::string& op) { return run1(make_node(op, 1, {{"axes", ints({1})}}), {{x}}); };
  check_values(reduce("ReduceSum"), {2, 1}, {0, 0});
  check_values(reduce("ReduceProd"), {2, 1}, {1, 1});
  check_values(reduce("ReduceMax"), {2, 1}, {-kInf, -kInf});
  check_values(reduce("ReduceMin"), {2, 1}, {kInf, kInf});
  check_values(reduce("ReduceL1"), {2, 1}, {0, 0});
  check_values(reduce("ReduceL2"), {2, 1}, {0, 0});
  check_values(reduce("ReduceSumSquare"), {2, 1}, {0, 0});
  check_values(reduce("ReduceLogSum"), {2, 1}, {-kInf, -kInf});
  check_values(reduce("ReduceLogSumExp"), {2, 1}, {-kInf, -kInf});
  check_values(reduce("ReduceMean"), {2, 1}, {NAN, NAN});
  // Integers: the type's lowest and highest values.
  const Tensor xi = tensor<int32_t>({0, 3}, {});
  check_values(run1(make_node("ReduceMax", 1, {{"axes", ints({0})}}), {{xi}}), {1, 3},
               {-2147483648.0, -2147483648.0, -2147483648.0});
  check_values(run1(make_node("ReduceMin", 1, {{"keepdims", int_attr(0)}}), {{tensor<uint8_t>({0}, {})}}), {}, {255});
  check_values(run1(make_node("ReduceMin", 1), {{tensor<uint32_t>({0}, {})}}), {1}, {4294967295.0});
  // An empty output stays empty: [0, 3] reduced along axis 1.
  check_values(run1(make_node("ReduceSum", 1, {{"axes", ints({1})}}), {{f32({0, 3}, {})}}), {0, 1}, {});
}

TEST_CASE("reduce ops: the Reduce ops match a naive loop over each group") {
  const unsigned seed = std::random_device{}();
  std::printf("test_reduce_ops: random seed %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> rank_dist(1, 4), dim_dist(1, 4), coin(0, 1);
  std::uniform_real_distribution<float> val(0.5f, 2.0f);  // positive: LogSum stays finite
  const char* ops[] = {"ReduceSum", "ReduceMean", "ReduceMax",    "ReduceMin",       "ReduceProd",
                       "ReduceL1",  "ReduceL2",   "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"};
  for (int trial = 0; trial < 40; ++trial) {
    INFO("seed " << seed << " trial " << trial);
    Shape shape(static_cast<size_t>(rank_dist(rng)));
    for (auto& d : shape) d = dim_dist(rng);  // empty groups: the empty-set case above
    std::vector<int64_t> axes;
    for (size_t a = 0; a < shape.size(); ++a)
      if (coin(rng) == 1)
        axes.push_back(coin(rng) == 1 ? static_cast<int64_t>(a)
                                      : static_cast<int64_t>(a) - static_cast<int64_t>(shape.size()));
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (auto& e : v) e = val(rng);
    // Naive: the group of each input element is its index with reduced axes zeroed.
    const size_t rank = shape.size();
    std::vector<bool> reduced(rank, axes.empty());
    for (int64_t a : axes) reduced[static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(rank) : a)] = true;
    std::map<int64_t, std::vector<double>> groups;
    for (int64_t i = 0; i < shape_numel(shape); ++i) {
      int64_t rest = i, key = 0, stride = 1;
      for (size_t k = rank; k-- > 0;) {
        const int64_t idx = rest % shape[k];
        rest /= shape[k];
        if (!reduced[k]) key += idx * stride;
        stride *= reduced[k] ? 1 : shape[k];
      }
      groups[key].push_back(v[static_cast<size_t>(i)]);
    }
    for (const char* op : ops) {
      INFO(op << " shape " << shape_str(shape) << " axes " << axes.size());
      const Node node = make_node(op, 1, {{"axes", ints(axes)}, {"keepdims", int_attr(coin(rng))}});
      const Tensor y = run1(axes.empty() ? make_node(op, 1) : node, {{f32(shape, v)}});
      const std::vector<double> got = y.to_double_vector();
      REQUIRE(got.size() == groups.size());
      for (const auto& [key, g] : groups) {
        double sum = 0, prod = 1, l1 = 0, sq = 0, lse = 0;
        for (double e : g) {
          sum += e;
          prod *= e;
          l1 += std::fabs(e);
          sq += e * e;
          lse += std::exp(e);
        }
        const std::map<std::string, double> want = {{"ReduceSum", sum},
                                                    {"ReduceMean", sum / static_cast<double>(g.size())},
                                                    {"ReduceMax", *std::max_element(g.begin(), g.end())},
                                                    {"ReduceMin", *std::min_element(g.begin(), g.end())},
                                                    {"ReduceProd", prod},
                                                    {"ReduceL1", l1},
                                                    {"ReduceL2", std::sqrt(sq)},
                                                    {"ReduceLogSum", std::log(sum)},
                                                    {"ReduceLogSumExp", std::log(lse)},
                                                    {"ReduceSumSquare", sq}};
        CHECK(got[static_cast<size_t>(key)] == doctest::Approx(want.at(op)).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("reduce ops: ArgMax and ArgMin") {
  // Rows [1, 5, 5] and [7, 0, 7].
  const Tensor x = f32({2, 3}, {1, 5, 5, 7, 0, 7});
  const Tensor a = run1(make_node("ArgMax", 1, {{"axis", int_attr(1)}}), {{x}});
  CHECK(a.dtype() == DType::i64);
  check_values(a, {2, 1}, {1, 0});  // ties: the first index
  check_values(run1(make_node("ArgMax", 1, {{"axis", int_attr(-1)}, {"select_last_index", int_attr(1)}}), {{x}}),
               {2, 1}, {2, 2});
  // Default axis 0, kept as 1.
  check_values(run1(make_node("ArgMax", 1), {{x}}), {1, 3}, {1, 0, 1});
  check_values(run1(make_node("ArgMin", 1, {{"keepdims", int_attr(0)}}), {{x}}), {3}, {0, 1, 0});
  check_values(run1(make_node("ArgMin", 1, {{"axis", int_attr(1)}, {"keepdims", int_attr(0)}}), {{x}}), {2}, {0, 1});
  // NaN is the extreme both ways (NumPy), the first one unless select_last_index.
  const Tensor n = f32({4}, {1, NAN, 3, NAN});
  check_values(run1(make_node("ArgMax", 1), {{n}}), {1}, {1});
  check_values(run1(make_node("ArgMin", 1), {{n}}), {1}, {1});
  check_values(run1(make_node("ArgMax", 1, {{"select_last_index", int_attr(1)}}), {{n}}), {1}, {3});
  // Integers, and the middle axis of a 3-D input: [2, 2, 2] along axis 1.
  check_values(run1(make_node("ArgMax", 1, {{"axis", int_attr(1)}}),
                    {{tensor<int32_t>({2, 2, 2}, {0, 9, 4, 1, 5, 5, 5, 6})}}),
               {2, 1, 2}, {1, 0, 0, 1});
}

TEST_CASE("reduce ops: LogSoftmax and Hardmax follow Softmax's axis rules") {
  // log(softmax([1, 2, 3])).
  check_values(run1(make_node("LogSoftmax", 1), {{f32({3}, {1, 2, 3})}}), {3}, {-2.4076060, -1.4076060, -0.4076060});
  const Tensor x = iota({1, 2, 2});  // [[[0, 1], [2, 3]]]
  // Opset 13, axis 1: pairs (0, 2) and (1, 3).
  check_values(run1(make_node("LogSoftmax", 1, {{"axis", int_attr(1)}}), {{x}}), {1, 2, 2},
               {-2.1269280, -2.1269280, -0.1269280, -0.1269280});
  // Opset 11: coerced to [1, 4] at axis 1, all four compete; also the default axis (1).
  const std::vector<double> all4 = {-3.4401897, -2.4401897, -1.4401897, -0.4401897};
  check_values(run1(at_opset(make_node("LogSoftmax", 1, {{"axis", int_attr(1)}}), 11), {{x}}), {1, 2, 2}, all4);
  check_values(run1(at_opset(make_node("LogSoftmax", 1), 12), {{x}}), {1, 2, 2}, all4);
  // Default axis -1 from opset 13: pairs (0, 1), (2, 3).
  check_values(run1(make_node("LogSoftmax", 1), {{x}}), {1, 2, 2}, {-1.3132617, -0.3132617, -1.3132617, -0.3132617});
  check_values(run1(make_node("LogSoftmax", 1), {{f32({2}, {10000, 10000})}}), {2}, {-0.69314718, -0.69314718});

  // Rows [1, 3, 3] and [0, -1, 2]: the first largest per row.
  const Tensor h = f32({2, 3}, {1, 3, 3, 0, -1, 2});
  check_values(run1(make_node("Hardmax", 1), {{h}}), {2, 3}, {0, 1, 0, 0, 0, 1});
  // Opset 13, axis 0: per column; opset 11, axis 0: all six compete.
  check_values(run1(make_node("Hardmax", 1, {{"axis", int_attr(0)}}), {{h}}), {2, 3}, {1, 1, 1, 0, 0, 0});
  check_values(run1(at_opset(make_node("Hardmax", 1, {{"axis", int_attr(0)}}), 11), {{h}}), {2, 3}, {0, 1, 0, 0, 0, 0});
  check_values(run1(make_node("Hardmax", 1), {{tensor<double>({3}, {1, NAN, 2})}}), {3}, {0, 1, 0});
}

TEST_CASE("reduce ops: LayerNormalization") {
  // Rows [1, 2, 3] (mean 2, variance 2/3) and [4, 6, 8] (mean 6, variance
  // 8/3): both normalise to [-1.2247449, 0, 1.2247449] with epsilon 0.
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 6, 8});
  const Tensor scale = f32({3}, {1, 2, 3});
  const Tensor b = f32({3}, {0, 1, 0});
  const Node ln = make_node("LayerNormalization", 3, {{"epsilon", float_attr(0)}}, 3);
  const std::vector<Tensor> out = run(ln, {{x, scale, b}, true});
  check_values(out[0], {2, 3}, {-1.2247449, 1, 3.6742346, -1.2247449, 1, 3.6742346});
  CHECK(out[1].dtype() == DType::f32);
  check_values(out[1], {2, 1}, {2, 6});
  check_values(out[2], {2, 1}, {1.2247449, 0.6123724});  // 1 / sqrt(2/3), 1 / sqrt(8/3)
  // Epsilon is added to the variance: 1 / sqrt(2/3 + 1) = 0.7745967,
  // 2 / sqrt(8/3 + 1) = 1.0444659.
  const Tensor ones = f32({3}, {1, 1, 1});
  check_values(run1(make_node("LayerNormalization", 2, {{"epsilon", float_attr(1)}}), {{x, ones}, true}), {2, 3},
               {-0.7745967, 0, 0.7745967, -1.0444659, 0, 1.0444659});
  // Axis 0: all six values (mean 4, variance 34/6); B omitted; Scale of X's shape.
  check_values(run1(make_node("LayerNormalization", 2, {{"axis", int_attr(0)}, {"epsilon", float_attr(0)}}),
                    {{x, f32({2, 3}, {1, 1, 1, 1, 1, 2})}, true}),
               {2, 3}, {-1.2602521, -0.8401681, -0.4200840, 0, 0.8401681, 3.3606722});
  // Scale and B broadcast to X: B of shape [2, 1] adds per row.
  check_values(run1(make_node("LayerNormalization", 3, {{"epsilon", float_attr(0)}}),
                    {{x, f32({1}, {2}), f32({2, 1}, {10, 20})}, true}),
               {2, 3}, {7.5505102, 10, 12.4494898, 17.5505102, 20, 22.4494898});
  // float64 in, float32 statistics out (stash_type 1).
  const std::vector<Tensor> d = run(make_node("LayerNormalization", 2, {{"epsilon", float_attr(0)}}, 3),
                                    {{tensor<double>({1, 2}, {1, 3}), tensor<double>({2}, {1, 1})}, true});
  CHECK(d[0].dtype() == DType::f64);
  check_values(d[0], {1, 2}, {-1, 1});
  CHECK(d[2].dtype() == DType::f32);
  check_values(d[1], {1, 1}, {2});
  CHECK(error_of(make_node("LayerNormalization", 2, {{"stash_type", int_attr(11)}}), {{x, ones}, true}).code() ==
        Errc::unsupported);
}

TEST_CASE("reduce ops: InstanceNormalization, LRN, MeanVarianceNormalization") {
  // [1, 2, 1, 2]: channel 0 = [1, 3] (mean 2, variance 1), channel 1 = [2, 6]
  // (mean 4, variance 4); both normalise to [-1, 1] with epsilon 0.
  const Tensor x = f32({1, 2, 1, 2}, {1, 3, 2, 6});
  check_values(run1(make_node("InstanceNormalization", 3, {{"epsilon", float_attr(0)}}),
                    {{x, f32({2}, {2, 3}), f32({2}, {0, 1})}, true}),
               {1, 2, 1, 2}, {-2, 2, -2, 4});
  // Default epsilon 1e-5: 1 / sqrt(1 + 1e-5) = 0.999995.
  check_values(run1(make_node("InstanceNormalization", 3), {{x, f32({2}, {1, 1}), f32({2}, {0, 0})}, true}),
               {1, 2, 1, 2}, {-0.999995, 0.999995, -0.99999875, 0.99999875});

  // LRN over channels [1, 2, 3] with alpha / size = 1, beta = 1, bias = 1:
  // size 3, windows {0, 1}, {0, 1, 2}, {1, 2}: 1 / 6, 2 / 15, 3 / 14.
  const Tensor c = f32({1, 3, 1, 1}, {1, 2, 3});
  check_values(run1(make_node("LRN", 1, {{"size", int_attr(3)}, {"alpha", float_attr(3)}, {"beta", float_attr(1)}}),
                    {{c}}),
               {1, 3, 1, 1}, {1.0 / 6, 2.0 / 15, 3.0 / 14});
  // Size 2: the window reaches one channel up ({0, 1}, {1, 2}, {2}): 1 / 6, 2 / 14, 3 / 10.
  check_values(run1(make_node("LRN", 1, {{"size", int_attr(2)}, {"alpha", float_attr(2)}, {"beta", float_attr(1)}}),
                    {{c}}),
               {1, 3, 1, 1}, {1.0 / 6, 2.0 / 14, 3.0 / 10});
  // Defaults alpha 1e-4, beta 0.75, bias 1, size 1: x / (1 + 1e-4 x^2)^0.75.
  check_values(run1(make_node("LRN", 1, {{"size", int_attr(1)}}), {{f32({1, 1, 1, 1}, {10})}}), {1, 1, 1, 1},
               {10 / std::pow(1.01, 0.75)});

  // MVN with the default axes (0, 2, 3): per channel.
  check_values(run1(make_node("MeanVarianceNormalization", 1), {{x}}), {1, 2, 1, 2}, {-1, 1, -1, 1});
  // Axes [1]: [0, 0, 3] has mean 1 and standard deviation sqrt(2).
  check_values(run1(make_node("MeanVarianceNormalization", 1, {{"axes", ints({1})}}), {{f32({1, 3}, {0, 0, 3})}}),
               {1, 3}, {-0.70710678, -0.70710678, 1.41421356});
}

TEST_CASE("reduce ops: CumSum") {
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  auto cumsum = [&](int64_t axis, int64_t exclusive, int64_t reverse, bool dynamic = false) {
    return run1(make_node("CumSum", 2, {{"exclusive", int_attr(exclusive)}, {"reverse", int_attr(reverse)}}),
                {{x, i64({}, {axis})}, dynamic});
  };
  check_values(cumsum(1, 0, 0), {2, 3}, {1, 3, 6, 4, 9, 15});
  check_values(cumsum(1, 1, 0), {2, 3}, {0, 1, 3, 0, 4, 9});
  check_values(cumsum(1, 0, 1), {2, 3}, {6, 5, 3, 15, 11, 6});
  check_values(cumsum(1, 1, 1), {2, 3}, {5, 3, 0, 11, 6, 0});
  check_values(cumsum(0, 0, 0), {2, 3}, {1, 2, 3, 5, 7, 9});
  check_values(cumsum(-2, 0, 0), {2, 3}, {1, 2, 3, 5, 7, 9});
  // The axis may be a run-time value, read (and checked) when the kernel runs.
  check_values(cumsum(-1, 0, 0, true), {2, 3}, {1, 3, 6, 4, 9, 15});
  CHECK(error_of(make_node("CumSum", 2), {{x, i64({}, {2})}, true}).message().find("out of range") !=
        std::string::npos);
  // Integer types and an int32 axis.
  const Tensor i = run1(make_node("CumSum", 2), {{tensor<int32_t>({3}, {5, -2, 7}), tensor<int32_t>({1}, {0})}});
  CHECK(i.dtype() == DType::i32);
  check_values(i, {3}, {5, 3, 10});
}

TEST_CASE("reduce ops: TopK") {
  // Rows [3, 1, 3, 2] and [-1, 5, 5, 0].
  const Tensor x = f32({2, 4}, {3, 1, 3, 2, -1, 5, 5, 0});
  auto topk = [&](int64_t k, std::map<std::string, Attribute> attrs) {
    return run(make_node("TopK", 2, std::move(attrs), 2), {{x, i64({1}, {k})}});
  };
  // Equal values: the lower index first.
  std::vector<Tensor> r = topk(2, {});
  check_values(r[0], {2, 2}, {3, 3, 5, 5});
  CHECK(r[1].dtype() == DType::i64);
  check_values(r[1], {2, 2}, {0, 2, 1, 2});
  r = topk(3, {{"largest", int_attr(0)}});
  check_values(r[0], {2, 3}, {1, 2, 3, -1, 0, 5});
  check_values(r[1], {2, 3}, {1, 3, 0, 0, 3, 1});
  // Axis 0: per column.
  r = topk(1, {{"axis", int_attr(0)}});
  check_values(r[0], {1, 4}, {3, 5, 5, 2});
  check_values(r[1], {1, 4}, {0, 1, 1, 0});
  // k = 0, and the whole axis.
  check_values(topk(0, {})[0], {2, 0}, {});
  check_values(topk(4, {{"sorted", int_attr(1)}})[1], {2, 4}, {0, 2, 3, 1, 1, 2, 3, 0});
  // Before opset 10, k is an attribute.
  r = run(at_opset(make_node("TopK", 1, {{"k", int_attr(1)}}, 2), 9), {{x}});
  check_values(r[0], {2, 1}, {3, 5});
  // NaN ranks above every number (the ONNX reference's sort).
  const Tensor n = f32({3}, {1, NAN, 3});
  r = run(make_node("TopK", 2, {}, 2), {{n, i64({1}, {2})}});
  check_values(r[0], {2}, {NAN, 3});
  check_values(r[1], {2}, {1, 2});
  r = run(make_node("TopK", 2, {{"largest", int_attr(0)}}, 2), {{n, i64({1}, {2})}});
  check_values(r[1], {2}, {0, 2});
  // Integers.
  r = run(make_node("TopK", 2, {}, 2), {{i64({3}, {-7, 9, 4}), i64({1}, {2})}});
  check_values(r[0], {2}, {9, 4});
  // K must be a constant: it sets the output shape.
  CHECK(error_of(make_node("TopK", 2, {}, 2), {{x, i64({1}, {2})}, true}).code() == Errc::unsupported);
}

TEST_CASE("reduce ops: invalid attributes and inputs name the node") {
  auto expect_invalid = [](const Node& node, const Inputs& inputs, const std::string& fragment) {
    Status s = error_of(node, inputs);
    INFO(s.message());
    CHECK(s.code() == Errc::invalid_input);
    CHECK(s.message().find(node.describe()) != std::string::npos);
    CHECK(s.message().find(fragment) != std::string::npos);
  };
  const Tensor x = iota({2, 3});
  expect_invalid(make_node("ReduceMean", 1, {{"axes", ints({1, -1})}}), {{x}}, "more than once");
  expect_invalid(make_node("ReduceSum", 1, {{"axes", ints({2})}}), {{x}}, "out of range");
  expect_invalid(make_node("ReduceMax", 1), {{tensor<bool>({1}, {true})}}, "numeric type");
  expect_invalid(make_node("ArgMax", 1, {{"axis", int_attr(2)}}), {{x}}, "out of range");
  expect_invalid(make_node("ArgMin", 1, {{"axis", int_attr(1)}}), {{f32({2, 0}, {})}}, "empty");
  expect_invalid(make_node("LogSoftmax", 1), {{i64({2}, {1, 2})}}, "floating-point");
  expect_invalid(make_node("Hardmax", 1, {{"axis", int_attr(-3)}}), {{x}}, "'axis' -3");
  expect_invalid(make_node("TopK", 2, {}, 2), {{x, i64({1}, {4})}}, "k = 4");
  expect_invalid(make_node("TopK", 1, {}, 2), {{x}}, "'k'");
  expect_invalid(make_node("CumSum", 2), {{x, i64({2}, {0, 1})}}, "scalar");
  expect_invalid(make_node("LayerNormalization", 2), {{x, f32({2}, {1, 1})}, true}, "does not broadcast");
  expect_invalid(make_node("LayerNormalization", 2), {{x, tensor<double>({3}, {1, 1, 1})}, true}, "same type");
  expect_invalid(make_node("InstanceNormalization", 3), {{x, f32({2}, {1, 1}), f32({3}, {0, 0, 0})}, true},
                 "one value per channel");
  expect_invalid(make_node("LRN", 1), {{iota({1, 2, 1, 1})}}, "'size' is required");
  expect_invalid(make_node("MeanVarianceNormalization", 1), {{x}}, "out of range");
}
