// Nodes of opsets < 10 rewritten into their newer forms at import
// (ir/onnx_legacy.h), then inferred and run like any other node.
#include <doctest/doctest.h>

#include <string>

#include "ir/onnx_legacy.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

Node legacy(std::string op, size_t inputs, std::map<std::string, Attribute> attrs, int64_t opset) {
  Node n = make_node(std::move(op), inputs, std::move(attrs));
  n.opset = opset;
  return n;
}

Graph graph_of(Node node) {
  Graph g;
  g.opset = node.opset;
  g.nodes.push_back(std::move(node));
  return g;
}

}  // namespace

TEST_CASE("onnx legacy: Reshape's shape attribute becomes a constant input") {
  Graph g = graph_of(legacy("Reshape", 1, {{"shape", ints({3, -1})}, {"consumed_inputs", ints({0})}}, 4));
  REQUIRE(upgrade_legacy_nodes(g).ok());
  const Node& n = g.nodes[0];
  REQUIRE(n.inputs.size() == 2);
  CHECK_FALSE(n.has("shape"));
  CHECK_FALSE(n.has("consumed_inputs"));
  REQUIRE(g.initializers.count(n.inputs[1]) == 1);
  CHECK(g.initializers.at(n.inputs[1]).to_int64_vector() == std::vector<int64_t>{3, -1});
  auto out = run_node(n, {iota({2, 3}), g.initializers.at(n.inputs[1])}, {false, true});
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  CHECK(out.value()[0].shape() == Shape{3, 2});
  // Opset 5 already has the input form: left alone.
  Graph modern = graph_of(legacy("Reshape", 2, {}, 5));
  REQUIRE(upgrade_legacy_nodes(modern).ok());
  CHECK(modern.initializers.empty());
}

TEST_CASE("onnx legacy: Cast by type name, Pad paddings, Concat's default axis") {
  Graph cast = graph_of(legacy("Cast", 1, {{"to", str("INT32")}}, 5));
  REQUIRE(upgrade_legacy_nodes(cast).ok());
  CHECK(cast.nodes[0].attr_int("to", 0) == 6);
  Graph bad = graph_of(legacy("Cast", 1, {{"to", str("COMPLEX")}}, 5));
  CHECK(upgrade_legacy_nodes(bad).code() == Errc::invalid_input);

  Graph pad = graph_of(legacy("Pad", 1, {{"paddings", ints({1, 0, 1, 0})}}, 1));
  REQUIRE(upgrade_legacy_nodes(pad).ok());
  CHECK(pad.nodes[0].attr_ints("pads") == std::vector<int64_t>{1, 0, 1, 0});
  auto padded = run_node(pad.nodes[0], {iota({1, 2})}, {false});
  REQUIRE_MESSAGE(padded.ok(), padded.status().message());
  check_values(padded.value()[0], {3, 2}, {0, 0, 0, 1, 0, 0});

  Graph concat = graph_of(legacy("Concat", 2, {}, 3));
  REQUIRE(upgrade_legacy_nodes(concat).ok());
  CHECK(concat.nodes[0].attr_int("axis", -1) == 1);
}

TEST_CASE("onnx legacy: Upsample becomes Resize in its opset-10 form") {
  // legacy_op_type renames it when the node is read; the scales attribute
  // of opsets 7-8 becomes a constant input.
  CHECK(legacy_op_type("Upsample", 8) == "Resize");
  CHECK(legacy_op_type("Upsample", 10) == "Upsample");
  CHECK(legacy_op_type("Reshape", 4) == "Reshape");
  Graph g = graph_of(legacy("Resize", 1, {{"scales", floats({1, 1, 2, 2})}, {"mode", str("nearest")}}, 7));
  REQUIRE(upgrade_legacy_nodes(g).ok());
  const Node& n = g.nodes[0];
  REQUIRE(n.inputs.size() == 2);
  auto out = run_node(n, {iota({1, 1, 2, 2}), g.initializers.at(n.inputs[1])}, {false, true});
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  // Nearest, asymmetric, floor: each pixel doubled both ways.
  check_values(out.value()[0], {1, 1, 4, 4}, {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3});
  Graph missing = graph_of(legacy("Resize", 1, {}, 7));
  CHECK(upgrade_legacy_nodes(missing).code() == Errc::invalid_input);
}

TEST_CASE("onnx legacy: forms caliprox refuses name the node and the opset") {
  Graph bn = graph_of(legacy("BatchNormalization", 5, {{"is_test", int_attr(0)}}, 6));
  Status st = upgrade_legacy_nodes(bn);
  CHECK(st.code() == Errc::unsupported);
  CHECK(st.message().find("opset 6") != std::string::npos);
  CHECK(st.message().find("t_BatchNormalization") != std::string::npos);
  Graph bn_test = graph_of(legacy("BatchNormalization", 5, {{"is_test", int_attr(1)}}, 6));
  CHECK(upgrade_legacy_nodes(bn_test).ok());
  Graph tile = graph_of(legacy("Tile", 3, {}, 5));
  CHECK(upgrade_legacy_nodes(tile).code() == Errc::unsupported);
}
