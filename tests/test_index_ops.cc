// index / data-movement op family, part 1: shape inference
// (ir/ops/index_ops.cc) and the reference kernels
// (backends/reference/index_kernels.cc) of Split, Tile, Expand,
// DepthToSpace, SpaceToDepth, Trilu and EyeLike. Expected values are worked
// out by hand in the comments; iota(shape) is 0, 1, 2, ... in row-major order.
#include <doctest/doctest.h>

#include <vector>

#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Input #0 is a run-time input; the others are constants (as shape-like
// inputs are in real models) unless `dynamic_all`.
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

TEST_CASE("index ops: Split sizes from the input (opset 13+), the attribute (before) or equal parts") {
  auto sized = run(make_node("Split", 2, {}, 2), {iota({6}), i64({2}, {2, 4})});
  REQUIRE(sized.ok());
  check_values(sized.value()[0], {2}, {0, 1});
  check_values(sized.value()[1], {4}, {2, 3, 4, 5});

  // Equal parts along axis 1 of [[0..5], [6..11]].
  auto equal = run(make_node("Split", 1, {{"axis", int_attr(1)}}, 3), {iota({2, 6})});
  REQUIRE(equal.ok());
  check_values(equal.value()[0], {2, 2}, {0, 1, 6, 7});
  check_values(equal.value()[1], {2, 2}, {2, 3, 8, 9});
  check_values(equal.value()[2], {2, 2}, {4, 5, 10, 11});

  // Opset 11: 'split' attribute, negative axis; [[0, 1, 2], [3, 4, 5]].
  auto legacy =
      run(at_opset(make_node("Split", 1, {{"axis", int_attr(-1)}, {"split", ints({1, 2})}}, 2), 11), {iota({2, 3})});
  REQUIRE(legacy.ok());
  check_values(legacy.value()[0], {2, 1}, {0, 3});
  check_values(legacy.value()[1], {2, 2}, {1, 2, 4, 5});

  // A zero-size part, and an integer type.
  auto zero = run(make_node("Split", 2, {}, 2), {i64({3}, {7, 8, 9}), i64({2}, {0, 3})});
  REQUIRE(zero.ok());
  check_values(zero.value()[0], {0}, {});
  check_values(zero.value()[1], {3}, {7, 8, 9});

  CHECK(error_of(make_node("Split", 2, {}, 2), {iota({6}), i64({2}, {2, 3})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Split", 1, {}, 4), {iota({6})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Split", 1, {{"split", ints({3, 3})}}, 2), {iota({6})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Split", 1, {{"axis", int_attr(2)}}, 2), {iota({2, 2})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Split", 2, {}, 2), {iota({6}), i64({2}, {3, 3})}, true) == Errc::unsupported);
}

TEST_CASE("index ops: Tile repeats each axis") {
  // [[0, 1], [2, 3]] repeated (1, 2) -> [[0, 1, 0, 1], [2, 3, 2, 3]].
  check_values(run1(make_node("Tile", 2), {iota({2, 2}), i64({2}, {1, 2})}), {2, 4}, {0, 1, 0, 1, 2, 3, 2, 3});
  check_values(run1(make_node("Tile", 2), {iota({2, 2}), i64({2}, {2, 1})}), {4, 2}, {0, 1, 2, 3, 0, 1, 2, 3});
  check_values(run1(make_node("Tile", 2), {i64({3}, {1, 2, 3}), i64({1}, {2})}), {6}, {1, 2, 3, 1, 2, 3});
  CHECK(run1(make_node("Tile", 2), {iota({2, 2}), i64({2}, {0, 3})}).shape() == Shape{0, 6});
  CHECK(error_of(make_node("Tile", 2), {iota({2, 2}), i64({1}, {2})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Tile", 2), {iota({2, 2}), i64({2}, {1, -1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Tile", 2), {iota({2, 2}), i64({2}, {1, 2})}, true) == Errc::unsupported);
}

TEST_CASE("index ops: Expand broadcasts both ways") {
  const Tensor col = f32({3, 1}, {1, 2, 3});
  // [3, 1] with [1, 3] -> [3, 3]; with [3] (lower rank) the same.
  check_values(run1(make_node("Expand", 2), {col, i64({2}, {1, 3})}), {3, 3}, {1, 1, 1, 2, 2, 2, 3, 3, 3});
  check_values(run1(make_node("Expand", 2), {col, i64({1}, {3})}), {3, 3}, {1, 1, 1, 2, 2, 2, 3, 3, 3});
  // A shape of higher rank with 1s keeps the input's dimensions: [2, 3, 1].
  check_values(run1(make_node("Expand", 2), {col, i64({3}, {2, 1, 1})}), {2, 3, 1}, {1, 2, 3, 1, 2, 3});
  check_values(run1(make_node("Expand", 2), {tensor<bool>({1}, {true}), i64({1}, {2})}), {2}, {1, 1});
  CHECK(error_of(make_node("Expand", 2), {col, i64({2}, {3, 2})}) == Errc::ok);
  CHECK(error_of(make_node("Expand", 2), {col, i64({2}, {2, 1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Expand", 2), {col, i64({1}, {3})}, true) == Errc::unsupported);
}

TEST_CASE("index ops: DepthToSpace in DCR and CRD order, SpaceToDepth") {
  // 8 channels of 1x1, blocksize 2 -> 2 channels of 2x2.
  // DCR: y[c, i, j] = x[(2i + j) * 2 + c]: c=0 reads 0, 2, 4, 6.
  const Node dcr = make_node("DepthToSpace", 1, {{"blocksize", int_attr(2)}});
  check_values(run1(dcr, {iota({1, 8, 1, 1})}), {1, 2, 2, 2}, {0, 2, 4, 6, 1, 3, 5, 7});
  // CRD: y[c, i, j] = x[4c + 2i + j], the input order.
  const Node crd = make_node("DepthToSpace", 1, {{"blocksize", int_attr(2)}, {"mode", str("CRD")}});
  check_values(run1(crd, {iota({1, 8, 1, 1})}), {1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  // 4 channels of 2x1 (x[ch, h] = 2 ch + h) -> 1 channel of 4x2:
  // y[2h + i, j] = x[2i + j, h].
  check_values(run1(dcr, {iota({1, 4, 2, 1})}), {1, 1, 4, 2}, {0, 2, 4, 6, 1, 3, 5, 7});
  // Opset 1 has no mode: DCR.
  check_values(run1(at_opset(dcr, 9), {iota({1, 8, 1, 1})}), {1, 2, 2, 2}, {0, 2, 4, 6, 1, 3, 5, 7});

  // SpaceToDepth of 2 channels of 2x2 (x[c, i, j] = 4c + 2i + j):
  // y[(2i + j) * 2 + c] = x[c, i, j].
  const Node s2d = make_node("SpaceToDepth", 1, {{"blocksize", int_attr(2)}});
  const Tensor packed = run1(s2d, {iota({1, 2, 2, 2})});
  check_values(packed, {1, 8, 1, 1}, {0, 4, 1, 5, 2, 6, 3, 7});
  // DCR DepthToSpace undoes it.
  check_values(run1(dcr, {packed}), {1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});

  CHECK(error_of(dcr, {iota({1, 6, 1, 1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("DepthToSpace", 1), {iota({1, 8, 1, 1})}) == Errc::invalid_input);
  CHECK(error_of(make_node("DepthToSpace", 1, {{"blocksize", int_attr(2)}, {"mode", str("XYZ")}}),
                 {iota({1, 8, 1, 1})}) == Errc::invalid_input);
  CHECK(error_of(dcr, {iota({8, 1, 1})}) == Errc::invalid_input);
  CHECK(error_of(s2d, {iota({1, 1, 3, 2})}) == Errc::invalid_input);
}

TEST_CASE("index ops: Trilu keeps the upper or lower triangle from diagonal k") {
  const Tensor x = iota({3, 3});
  check_values(run1(make_node("Trilu", 1), {x}), {3, 3}, {0, 1, 2, 0, 4, 5, 0, 0, 8});
  check_values(run1(make_node("Trilu", 1, {{"upper", int_attr(0)}}), {x}), {3, 3}, {0, 0, 0, 3, 4, 0, 6, 7, 8});
  check_values(run1(make_node("Trilu", 2), {x, i64({}, {1})}), {3, 3}, {0, 1, 2, 0, 0, 5, 0, 0, 0});
  check_values(run1(make_node("Trilu", 2, {{"upper", int_attr(0)}}), {x, i64({}, {-1})}), {3, 3},
               {0, 0, 0, 3, 0, 0, 6, 7, 0});
  // k is read at run time; a batch of two 2x3 matrices, k beyond the width.
  check_values(run1(make_node("Trilu", 2), {iota({2, 2, 3}, 1), i64({}, {-5})}, true), {2, 2, 3},
               {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  check_values(run1(make_node("Trilu", 2), {iota({2, 2, 3}, 1), i64({}, {3})}, true), {2, 2, 3},
               {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  check_values(run1(make_node("Trilu", 1, {{"upper", int_attr(0)}}), {tensor<int32_t>({2, 2}, {1, 2, 3, 4})}), {2, 2},
               {1, 0, 3, 4});
  CHECK(error_of(make_node("Trilu", 1), {iota({3})}) == Errc::invalid_input);
  CHECK(error_of(make_node("Trilu", 2), {x, tensor<int32_t>({}, {1})}) == Errc::invalid_input);
}

TEST_CASE("index ops: EyeLike writes ones on diagonal k") {
  const Tensor x = f32({2, 3}, {9, 9, 9, 9, 9, 9});
  check_values(run1(make_node("EyeLike", 1), {x}), {2, 3}, {1, 0, 0, 0, 1, 0});
  check_values(run1(make_node("EyeLike", 1, {{"k", int_attr(1)}}), {x}), {2, 3}, {0, 1, 0, 0, 0, 1});
  check_values(run1(make_node("EyeLike", 1, {{"k", int_attr(-1)}}), {x}), {2, 3}, {0, 0, 0, 1, 0, 0});
  check_values(run1(make_node("EyeLike", 1, {{"k", int_attr(5)}}), {x}), {2, 3}, {0, 0, 0, 0, 0, 0});
  // dtype 7 = int64, from an int32 input.
  const Tensor y = run1(make_node("EyeLike", 1, {{"dtype", int_attr(7)}}), {tensor<int32_t>({2, 2}, {0, 0, 0, 0})});
  CHECK(y.dtype() == DType::i64);
  check_values(y, {2, 2}, {1, 0, 0, 1});
  // dtype 8 = string.
  CHECK(error_of(make_node("EyeLike", 1, {{"dtype", int_attr(8)}}), {x}) == Errc::unsupported);
  CHECK(error_of(make_node("EyeLike", 1), {iota({2, 2, 2})}) == Errc::invalid_input);
}

TEST_CASE("index ops: NonZero of a constant; a run-time input is refused") {
  auto r = run_node(make_node("NonZero", 1), {tensor<bool>({2, 2}, {true, false, true, true})}, {true});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  check_values(r->at(0), {2, 3}, {0, 1, 1, 0, 0, 1});
  auto fed = infer_node(make_node("NonZero", 1), {f32({2}, {1, 0})}, {false});
  REQUIRE_FALSE(fed.ok());
  CHECK(fed.status().code() == Errc::unsupported);
  CHECK(fed.status().message().find("known only at run time") != std::string::npos);
}
