// Einsum and Det: inference and the reference kernels on values worked by
// hand; Einsum in the explicit and implicit forms, with diagonals, ellipses
// and broadcasting, and the errors that name the equation's problem.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

Node einsum(const std::string& equation, size_t inputs) {
  return make_node("Einsum", inputs, {{"equation", str(equation)}});
}

Result<std::vector<Tensor>> run(const std::string& equation, const std::vector<Tensor>& inputs) {
  return run_node(einsum(equation, inputs.size()), inputs, std::vector<bool>(inputs.size(), false));
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("einsum: matrix product, explicit and implicit") {
  const Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  for (const char* eq : {"ij,jk->ik", "ij,jk", " i j , j k -> i k "}) {
    INFO(eq);
    auto r = run(eq, {a, b});
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    check_values(r->at(0), {2, 2}, {4, 5, 10, 11});
  }
  // Implicit output: the letters used once, alphabetically ("ba,ac" -> "bc").
  auto r = run("ba,ac", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({3, 1}, {1, 1, 1})});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  check_values(r->at(0), {2, 1}, {6, 15});
}

TEST_CASE("einsum: transpose, sums, trace, diagonal, outer product") {
  const Tensor m = f32({2, 2}, {1, 2, 3, 4});
  auto t = run("ij->ji", {m});
  REQUIRE(t.ok());
  check_values(t->at(0), {2, 2}, {1, 3, 2, 4});
  auto total = run("ij->", {m});
  REQUIRE(total.ok());
  check_values(total->at(0), {}, {10});
  auto rows = run("ij->i", {m});
  REQUIRE(rows.ok());
  check_values(rows->at(0), {2}, {3, 7});
  auto trace = run("ii", {m});
  REQUIRE_MESSAGE(trace.ok(), trace.status().message());
  check_values(trace->at(0), {}, {5});
  auto diag = run("ii->i", {m});
  REQUIRE(diag.ok());
  check_values(diag->at(0), {2}, {1, 4});
  auto outer = run("i,j->ij", {f32({2}, {1, 2}), f32({3}, {1, 10, 100})});
  REQUIRE(outer.ok());
  check_values(outer->at(0), {2, 3}, {1, 10, 100, 2, 20, 200});
  auto inner = run("i,i", {f32({3}, {1, 2, 3}), f32({3}, {4, 5, 6})});
  REQUIRE(inner.ok());
  check_values(inner->at(0), {}, {32});
}

TEST_CASE("einsum: ellipsis batches broadcast; batch diagonal; integers") {
  // batch 2 against batch 1: the size-1 axis broadcasts
  const Tensor a = f32({2, 1, 2}, {1, 2, 3, 4});
  const Tensor b = f32({1, 2, 1}, {1, 1});
  auto r = run("...ij,...jk->...ik", {a, b});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  check_values(r->at(0), {2, 1, 1}, {3, 7});
  auto d = run("...ii->...i", {f32({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8})});
  REQUIRE_MESSAGE(d.ok(), d.status().message());
  check_values(d->at(0), {2, 2}, {1, 4, 5, 8});
  auto i = run("ij,j->i", {i64({2, 2}, {1, 2, 3, 4}), i64({2}, {10, 1})});
  REQUIRE_MESSAGE(i.ok(), i.status().message());
  CHECK(i->at(0).dtype() == DType::i64);
  check_values(i->at(0), {2}, {12, 34});
}

TEST_CASE("einsum: bad equations name the problem") {
  auto mismatch = run("ij,jk->ik", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({2, 2}, {1, 2, 3, 4})});
  REQUIRE_FALSE(mismatch.ok());
  CHECK(contains(mismatch.status().message(), "index 'j' has size 3 in one operand and 2 in another"));
  auto unknown = run("ij->ik", {f32({2, 2}, {1, 2, 3, 4})});
  REQUIRE_FALSE(unknown.ok());
  CHECK(contains(unknown.status().message(), "output index 'k' appears in no operand"));
  auto rank = run("ijk->i", {f32({2, 2}, {1, 2, 3, 4})});
  REQUIRE_FALSE(rank.ok());
  CHECK(contains(rank.status().message(), "operand 0 has rank 2 but its term names 3 axes"));
  auto count = run("ij,jk->ik", {f32({2, 2}, {1, 2, 3, 4})});
  REQUIRE_FALSE(count.ok());
  CHECK(contains(count.status().message(), "2 operands but the node 1 inputs"));
  auto symbol = run("i1->i", {f32({2, 2}, {1, 2, 3, 4})});
  REQUIRE_FALSE(symbol.ok());
  CHECK(contains(symbol.status().message(), "holds '1'"));
}

TEST_CASE("Det: determinants of single and batched matrices") {
  auto two = run_node(make_node("Det", 1), {f32({2, 2}, {1, 2, 3, 4})}, {false});
  REQUIRE_MESSAGE(two.ok(), two.status().message());
  check_values(two->at(0), {}, {-2});
  auto batch = run_node(make_node("Det", 1), {f32({2, 2, 2}, {2, 0, 0, 3, 0, 1, 1, 0})}, {false});
  REQUIRE(batch.ok());
  check_values(batch->at(0), {2}, {6, -1});  // the second needs a row swap
  auto three = run_node(make_node("Det", 1), {f32({3, 3}, {2, 0, 1, 1, 3, 2, 1, 1, 2})}, {false});
  REQUIRE(three.ok());
  check_values(three->at(0), {}, {6});
  auto singular = run_node(make_node("Det", 1), {f32({2, 2}, {1, 2, 2, 4})}, {false});
  REQUIRE(singular.ok());
  CHECK(singular->at(0).to_double_vector()[0] == 0.0);
  auto not_square = run_node(make_node("Det", 1), {f32({2, 3}, {1, 2, 3, 4, 5, 6})}, {false});
  REQUIRE_FALSE(not_square.ok());
  CHECK(contains(not_square.status().message(), "square matrices"));
}
