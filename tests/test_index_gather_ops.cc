// index / data-movement op family, part 2: shape inference
// (ir/ops/index_ops_gather.cc) and the reference kernels
// (backends/reference/index_gather.cc, index_select.cc) of GatherElements,
// ScatterElements, Scatter, GatherND, ScatterND, OneHot, ReverseSequence and
// Compress. Expected values are worked out by hand in the comments.
#include <doctest/doctest.h>

#include <vector>

#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Input #0 is a run-time input; the others are constants (indices and
// shape-like inputs are in the conformance cases) unless `dynamic_all`.
Result<std::vector<Tensor>> run(const Node& node, const std::vector<Tensor>& values, bool dynamic_all = false) {
  return run_rest_constant(node, values, dynamic_all);
}

Tensor run1(const Node& node, const std::vector<Tensor>& values, bool dynamic_all = false) {
  auto r = run(node, values, dynamic_all);
  if (!r.ok()) FAIL(r.status().message());
  return r.value()[0];
}

Errc error_of(const Node& node, const std::vector<Tensor>& values, bool dynamic_all = false) {
  auto r = run(node, values, dynamic_all);
  return r.ok() ? Errc::ok : r.status().code();
}

}  // namespace

TEST_CASE("index ops: GatherElements") {
  const Tensor d2 = f32({2, 2}, {1, 2, 3, 4});
  // axis 1: y[i][j] = x[i][idx[i][j]].
  const Node along1 = make_node("GatherElements", 2, {{"axis", int_attr(1)}});
  check_values(run1(along1, {d2, i64({2, 2}, {0, 0, 1, 0})}), {2, 2}, {1, 1, 4, 3});
  // axis 0: y[i][j] = x[idx[i][j]][j], indices smaller than the data.
  const Tensor d3 = f32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  check_values(run1(make_node("GatherElements", 2), {d3, i64({2, 3}, {1, 2, 0, 2, 0, 0})}), {2, 3}, {4, 8, 3, 7, 2, 3});
  // Negative indices count from the end; int32 indices, at run time too.
  check_values(run1(along1, {d2, tensor<int32_t>({1, 2}, {-1, 0})}, true), {1, 2}, {2, 1});
  CHECK(error_of(along1, {d2, i64({1, 2}, {2, 0})}) == Errc::invalid_input);
  CHECK(error_of(along1, {d2, i64({1, 2}, {-3, 0})}, true) == Errc::invalid_input);
  CHECK(error_of(along1, {d2, f32({1, 2}, {0, 0})}) == Errc::invalid_input);
  CHECK(error_of(along1, {d2, i64({2}, {0, 0})}) == Errc::invalid_input);
  CHECK(error_of(make_node("GatherElements", 2, {{"axis", int_attr(2)}}), {d2, i64({1, 1}, {0})}) ==
        Errc::invalid_input);
}

TEST_CASE("index ops: ScatterElements with reductions, Scatter") {
  // The ONNX example: axis 0, y[idx[i][j]][j] = updates[i][j].
  const Tensor zeros = f32({3, 3}, {0, 0, 0, 0, 0, 0, 0, 0, 0});
  const Tensor idx = i64({2, 3}, {1, 0, 2, 0, 2, 1});
  const Tensor upd = f32({2, 3}, {1.0f, 1.1f, 1.2f, 2.0f, 2.1f, 2.2f});
  const std::vector<double> example = {2.0, 1.1, 0, 1.0, 0, 2.2, 0, 2.1, 1.2};
  check_values(run1(make_node("ScatterElements", 3), {zeros, idx, upd}), {3, 3}, example);
  check_values(run1(at_opset(make_node("Scatter", 3), 10), {zeros, idx, upd}), {3, 3}, example);

  const Tensor row = f32({1, 5}, {1, 2, 3, 4, 5});
  const Tensor pair = f32({1, 2}, {1.1f, 2.1f});
  auto along1 = [](const char* reduction) {
    return make_node("ScatterElements", 3, {{"axis", int_attr(1)}, {"reduction", str(reduction)}});
  };
  check_values(run1(along1("none"), {row, i64({1, 2}, {1, 3}), pair}), {1, 5}, {1, 1.1, 3, 2.1, 5});
  // Negative index -3 is 2.
  check_values(run1(along1("none"), {row, i64({1, 2}, {1, -3}), pair}), {1, 5}, {1, 1.1, 2.1, 4, 5});
  // Duplicate indices: the last one wins; add sums both; mul multiplies.
  const Tensor dup = i64({1, 2}, {1, 1});
  check_values(run1(along1("none"), {row, dup, pair}), {1, 5}, {1, 2.1, 3, 4, 5});
  check_values(run1(along1("add"), {row, dup, pair}), {1, 5}, {1, 5.2, 3, 4, 5});
  check_values(run1(along1("mul"), {row, dup, pair}), {1, 5}, {1, 2 * 1.1 * 2.1, 3, 4, 5});
  check_values(run1(along1("add"), {i64({1, 3}, {1, 2, 3}), i64({1, 2}, {0, 0}), i64({1, 2}, {10, 20})}), {1, 3},
               {31, 2, 3});

  CHECK(error_of(along1("max"), {row, dup, pair}) == Errc::unsupported);
  CHECK(error_of(along1("sum"), {row, dup, pair}) == Errc::invalid_input);
  CHECK(error_of(along1("none"), {row, dup, f32({1, 1}, {1})}) == Errc::invalid_input);
  CHECK(error_of(along1("none"), {row, i64({1, 2}, {5, 0}), pair}) == Errc::invalid_input);
  CHECK(error_of(along1("none"), {row, i64({1, 2}, {5, 0}), pair}, true) == Errc::invalid_input);
  CHECK(error_of(along1("add"), {tensor<bool>({1, 2}, {true, false}), dup, tensor<bool>({1, 2}, {true, true})}) ==
        Errc::unsupported);
}

TEST_CASE("index ops: GatherND with batch_dims") {
  const Tensor x = f32({2, 2}, {0, 1, 2, 3});
  // Full index tuples pick elements; shorter ones pick rows.
  check_values(run1(make_node("GatherND", 2), {x, i64({2, 2}, {0, 0, 1, 1})}), {2}, {0, 3});
  check_values(run1(make_node("GatherND", 2), {x, i64({2, 1}, {1, 0})}), {2, 2}, {2, 3, 0, 1});
  check_values(run1(make_node("GatherND", 2), {x, i64({1, 2}, {-1, -2})}, true), {1}, {2});
  // batch_dims 1: batch b picks row idx[b] of x[b]:
  // x = [[[0, 1], [2, 3]], [[4, 5], [6, 7]]], idx = [[1], [0]] -> [[2, 3], [4, 5]].
  const Node batched = make_node("GatherND", 2, {{"batch_dims", int_attr(1)}});
  check_values(run1(batched, {iota({2, 2, 2}), i64({2, 1}, {1, 0})}), {2, 2}, {2, 3, 4, 5});
  check_values(run1(batched, {tensor<int32_t>({2, 2}, {5, 6, 7, 8}), i64({2, 1}, {1, 0})}), {2}, {6, 7});
  CHECK(error_of(make_node("GatherND", 2), {x, i64({1, 3}, {0, 0, 0})}) == Errc::invalid_input);
  CHECK(error_of(make_node("GatherND", 2, {{"batch_dims", int_attr(2)}}), {x, i64({2, 1}, {0, 0})}) ==
        Errc::invalid_input);
  CHECK(error_of(batched, {iota({2, 2, 2}), i64({3, 1}, {0, 0, 0})}) == Errc::invalid_input);
  CHECK(error_of(make_node("GatherND", 2), {x, i64({1, 1}, {2})}, true) == Errc::invalid_input);
}

TEST_CASE("index ops: ScatterND with reductions") {
  const Tensor data = f32({8}, {1, 2, 3, 4, 5, 6, 7, 8});
  check_values(run1(make_node("ScatterND", 3), {data, i64({4, 1}, {4, 3, 1, 7}), f32({4}, {9, 10, 11, 12})}), {8},
               {1, 11, 3, 10, 9, 6, 7, 12});
  const Tensor twice = i64({2, 1}, {1, 1});
  check_values(run1(make_node("ScatterND", 3, {{"reduction", str("add")}}), {data, twice, f32({2}, {5, 6})}), {8},
               {1, 13, 3, 4, 5, 6, 7, 8});
  check_values(run1(make_node("ScatterND", 3, {{"reduction", str("mul")}}), {data, twice, f32({2}, {2, 3})}), {8},
               {1, 12, 3, 4, 5, 6, 7, 8});
  // A tuple shorter than the rank updates a row: row -1 of [[0, 1], [2, 3]].
  check_values(run1(make_node("ScatterND", 3), {iota({2, 2}), i64({1, 1}, {-1}), f32({1, 2}, {7, 8})}), {2, 2},
               {0, 1, 7, 8});
  CHECK(error_of(make_node("ScatterND", 3), {iota({2, 2}), i64({1, 1}, {1}), f32({2}, {7, 8})}) == Errc::invalid_input);
  CHECK(error_of(make_node("ScatterND", 3), {data, i64({1, 1}, {8}), f32({1}, {0})}, true) == Errc::invalid_input);
}

TEST_CASE("index ops: OneHot") {
  const Tensor values = f32({2}, {0, 1});
  // Default axis -1: one row per index; -1 is depth - 1 from opset 11.
  check_values(run1(make_node("OneHot", 3), {i64({3}, {0, 2, -1}), i64({}, {3}), values}), {3, 3},
               {1, 0, 0, 0, 0, 1, 0, 0, 1});
  // Opset 9: negative and out-of-range indices give rows of off_value.
  check_values(run1(at_opset(make_node("OneHot", 3), 9), {i64({3}, {0, -1, 3}), i64({}, {3}), values}), {3, 3},
               {1, 0, 0, 0, 0, 0, 0, 0, 0});
  // axis 0 with on_value 5: y[d][i] = idx[i] == d.
  const Tensor y = run1(make_node("OneHot", 3, {{"axis", int_attr(0)}}),
                        {i64({2}, {0, 2}), i64({1}, {3}), tensor<int32_t>({2}, {0, 5})});
  CHECK(y.dtype() == DType::i32);
  check_values(y, {3, 2}, {5, 0, 0, 0, 0, 5});
  // Float indices and depth (cast to int64): [[1.0], [2.0]] with depth 3.0 and axis 1.
  check_values(run1(make_node("OneHot", 3, {{"axis", int_attr(1)}}), {f32({2, 1}, {1, 2}), f32({}, {3}), values}),
               {2, 3, 1}, {0, 1, 0, 0, 0, 1});
  CHECK(error_of(make_node("OneHot", 3), {i64({1}, {0}), i64({}, {3}), values}, true) == Errc::unsupported);
  CHECK(error_of(make_node("OneHot", 3), {i64({1}, {0}), i64({}, {3}), f32({3}, {0, 1, 2})}) == Errc::invalid_input);
  CHECK(error_of(make_node("OneHot", 3, {{"axis", int_attr(2)}}), {i64({1}, {0}), i64({}, {3}), values}) ==
        Errc::invalid_input);
}

TEST_CASE("index ops: ReverseSequence") {
  // The ONNX examples on x = [[0..3], [4..7], [8..11], [12..15]].
  const Tensor x = iota({4, 4});
  check_values(run1(make_node("ReverseSequence", 2), {x, i64({4}, {4, 3, 2, 1})}), {4, 4},
               {12, 9, 6, 3, 8, 5, 2, 7, 4, 1, 10, 11, 0, 13, 14, 15});
  const Node batch_first = make_node("ReverseSequence", 2, {{"batch_axis", int_attr(0)}, {"time_axis", int_attr(1)}});
  check_values(run1(batch_first, {x, i64({4}, {1, 2, 3, 4})}), {4, 4},
               {0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12});
  // Rank 3 [time 2, batch 2, 2], lengths read at run time.
  check_values(run1(make_node("ReverseSequence", 2), {iota({2, 2, 2}), i64({2}, {2, 0})}, true), {2, 2, 2},
               {4, 5, 2, 3, 0, 1, 6, 7});
  CHECK(error_of(make_node("ReverseSequence", 2), {x, i64({4}, {5, 1, 1, 1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("ReverseSequence", 2), {x, i64({4}, {5, 1, 1, 1})}, true) == Errc::invalid_input);
  CHECK(error_of(make_node("ReverseSequence", 2, {{"batch_axis", int_attr(0)}}), {x, i64({4}, {1, 1, 1, 1})}) ==
        Errc::invalid_input);
  CHECK(error_of(make_node("ReverseSequence", 2), {x, i64({3}, {1, 1, 1})}) == Errc::invalid_input);
}

TEST_CASE("index ops: Compress with a constant condition") {
  const Tensor x = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  const Node axis0 = make_node("Compress", 2, {{"axis", int_attr(0)}});
  check_values(run1(axis0, {x, tensor<bool>({3}, {false, true, true})}), {2, 2}, {3, 4, 5, 6});
  check_values(run1(make_node("Compress", 2, {{"axis", int_attr(1)}}), {x, tensor<bool>({2}, {false, true})}), {3, 1},
               {2, 4, 6});
  check_values(run1(make_node("Compress", 2, {{"axis", int_attr(-1)}}), {x, tensor<bool>({2}, {true, false})}), {3, 1},
               {1, 3, 5});
  // No axis: the flattened input; a short condition drops the rest.
  check_values(run1(make_node("Compress", 2), {x, tensor<bool>({5}, {false, true, false, false, true})}), {2}, {2, 5});
  check_values(run1(axis0, {x, tensor<bool>({2}, {false, true})}), {1, 2}, {3, 4});
  check_values(run1(axis0, {x, tensor<bool>({4}, {true, false, false, false})}), {1, 2}, {1, 2});
  CHECK(error_of(axis0, {x, tensor<bool>({4}, {true, false, false, true})}) == Errc::invalid_input);
  CHECK(error_of(axis0, {x, tensor<bool>({3}, {true, false, true})}, true) == Errc::unsupported);
  CHECK(error_of(axis0, {x, i64({3}, {1, 0, 1})}) == Errc::invalid_input);
}
