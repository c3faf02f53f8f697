// If, Loop and Scan: imported with their subgraphs, inlined when a session
// is built (engine/fold_control.cc), exported back. Models are made in
// memory; each runs on the reference backend and is checked against values
// worked by hand.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "engine/session.h"
#include "ir/onnx_export.h"
#include "ir/onnx_import.h"
#include "node_harness.h"
#include "onnx_builder.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

Result<Graph> load(const onnx::ModelProto& m) { return load_onnx_from_bytes(m.SerializeAsString(), "cf.onnx", ""); }

// Runs `g` on the reference backend: `fed` at run time, `bound` folded in.
Result<std::vector<Tensor>> run_graph(const Graph& g, const std::map<std::string, Tensor>& fed,
                                      const std::map<std::string, Tensor>& bound = {}) {
  auto backend = make_reference_backend({});
  SessionOptions options;
  options.bound_inputs = bound;
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : fed) shapes[name] = t.shape();
  CP_ASSIGN_OR_RETURN(auto session, Session::create(g, *backend, shapes, options));
  std::vector<Tensor> inputs;
  for (const auto& name : session->input_names()) inputs.push_back(fed.at(name));
  CP_TRY(session->run(inputs));
  std::vector<Tensor> outs;
  for (size_t i = 0; i < session->output_names().size(); ++i) outs.push_back(session->output(i));
  return outs;
}

// y = If(sr == 16000) then x + [1, 2, 3] (a Constant in the branch)
//                     else x * k (k an outer initializer: a capture)
onnx::ModelProto sample_rate_model() {
  auto m = make_model(16);
  auto& g = *m.mutable_graph();
  add_value(g.mutable_input(), "x", onnx::TensorProto::FLOAT, {"3"});
  add_value(g.mutable_input(), "sr", onnx::TensorProto::INT64, {});
  add_value(g.mutable_output(), "y", onnx::TensorProto::FLOAT, {"3"});
  *g.add_initializer() = float_tensor("k", {}, {10});
  add_constant(g, "rate", int64_tensor("", {}, {16000}));
  add_node(g, "Equal", {"sr", "rate"}, {"is16k"}, "eq");
  auto* n = add_node(g, "If", {"is16k"}, {"y"}, "select");
  auto* then_branch = add_graph_attr(n, "then_branch");
  add_constant(*then_branch, "w", float_tensor("", {3}, {1, 2, 3}));
  add_node(*then_branch, "Add", {"x", "w"}, {"t"}, "then_add");
  add_value(then_branch->mutable_output(), "t", onnx::TensorProto::FLOAT, {"3"});
  auto* else_branch = add_graph_attr(n, "else_branch");
  add_node(*else_branch, "Mul", {"x", "k"}, {"e"}, "else_mul");
  add_value(else_branch->mutable_output(), "e", onnx::TensorProto::FLOAT, {"3"});
  return m;
}

}  // namespace

TEST_CASE("control flow: If imports its branches; outer values are captures") {
  auto g = load(sample_rate_model());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  const Node* n = g->find_node("select");
  REQUIRE(n != nullptr);
  // then reads x, else reads x and k: the union, sorted, follows the condition.
  CHECK(n->inputs == std::vector<std::string>{"is16k", "k", "x"});
  CHECK(explicit_input_count(*n) == 1);
  CHECK(n->attrs.at("then_branch").g->captures == std::vector<std::string>{"x"});
  CHECK(n->attrs.at("then_branch").g->initializers.count("w") == 1);
  CHECK(n->attrs.at("else_branch").g->captures == std::vector<std::string>{"k", "x"});
}

TEST_CASE("control flow: If with a condition from a bound input runs the branch it selects") {
  auto g = load(sample_rate_model());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  const Tensor x = f32({3}, {1, -2, 0.5f});
  auto at16k = run_graph(*g, {{"x", x}}, {{"sr", i64({}, {16000})}});
  REQUIRE_MESSAGE(at16k.ok(), at16k.status().message());
  check_values(at16k->at(0), {3}, {2, 0, 3.5});
  auto at8k = run_graph(*g, {{"x", x}}, {{"sr", i64({}, {8000})}});
  REQUIRE_MESSAGE(at8k.ok(), at8k.status().message());
  check_values(at8k->at(0), {3}, {10, -20, 5});
}

TEST_CASE("control flow: a condition known only at run time is refused, naming the node") {
  auto g = load(sample_rate_model());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  auto r = run_graph(*g, {{"x", f32({3}, {1, 2, 3})}, {"sr", i64({}, {16000})}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::unsupported);
  CHECK(contains(r.status().message(), "node 'select' (If"));
  CHECK(contains(r.status().message(), "depends on run-time data"));
}

namespace {

// y, n = If(dim0(x) == 2) then (If(true) then Relu(x) else Neg(x), 7)
//                         else (Neg(x), 0)
onnx::ModelProto shape_conditioned_model() {
  auto m = make_model(13);
  auto& g = *m.mutable_graph();
  add_value(g.mutable_input(), "x", onnx::TensorProto::FLOAT, {"N"});
  add_value(g.mutable_output(), "y", onnx::TensorProto::FLOAT, {"N"});
  add_value(g.mutable_output(), "n", onnx::TensorProto::INT64, {});
  add_node(g, "Shape", {"x"}, {"shape"});
  add_constant(g, "zero", int64_tensor("", {}, {0}));
  add_constant(g, "two", int64_tensor("", {}, {2}));
  add_node(g, "Gather", {"shape", "zero"}, {"dim0"});
  add_node(g, "Equal", {"dim0", "two"}, {"c"});
  auto* outer = add_node(g, "If", {"c"}, {"y", "n"}, "outer");
  auto* then_branch = add_graph_attr(outer, "then_branch");
  onnx::TensorProto yes;
  yes.set_data_type(onnx::TensorProto::BOOL);
  yes.add_int32_data(1);
  add_constant(*then_branch, "yes", yes);
  add_constant(*then_branch, "seven", int64_tensor("", {}, {7}));
  auto* inner = add_node(*then_branch, "If", {"yes"}, {"r"}, "inner");
  auto* inner_then = add_graph_attr(inner, "then_branch");
  add_node(*inner_then, "Relu", {"x"}, {"relu"}, "inner_relu");
  add_value(inner_then->mutable_output(), "relu", onnx::TensorProto::FLOAT, {});
  auto* inner_else = add_graph_attr(inner, "else_branch");
  add_node(*inner_else, "Neg", {"x"}, {"neg_inner"});
  add_value(inner_else->mutable_output(), "neg_inner", onnx::TensorProto::FLOAT, {});
  add_value(then_branch->mutable_output(), "r", onnx::TensorProto::FLOAT, {});
  add_value(then_branch->mutable_output(), "seven", onnx::TensorProto::INT64, {});
  auto* else_branch = add_graph_attr(outer, "else_branch");
  add_constant(*else_branch, "none", int64_tensor("", {}, {0}));
  add_node(*else_branch, "Neg", {"x"}, {"neg"});
  add_value(else_branch->mutable_output(), "neg", onnx::TensorProto::FLOAT, {});
  add_value(else_branch->mutable_output(), "none", onnx::TensorProto::INT64, {});

  return m;
}

}  // namespace

TEST_CASE("control flow: nested If on shapes, captures two levels up, a constant branch output") {
  auto m = shape_conditioned_model();
  auto graph = load(m);
  REQUIRE_MESSAGE(graph.ok(), graph.status().message());
  // The inner If's capture x is the outer branch's capture too.
  CHECK(graph->find_node("outer")->attrs.at("then_branch").g->captures == std::vector<std::string>{"x"});
  auto two = run_graph(*graph, {{"x", f32({2}, {-1, 4})}});
  REQUIRE_MESSAGE(two.ok(), two.status().message());
  check_values(two->at(0), {2}, {0, 4});
  check_values(two->at(1), {}, {7});
  auto three = run_graph(*graph, {{"x", f32({3}, {-1, 4, 0})}});
  REQUIRE_MESSAGE(three.ok(), three.status().message());
  check_values(three->at(0), {3}, {1, -4, 0});
  check_values(three->at(1), {}, {0});
}

TEST_CASE("control flow: a branch chosen by the batch length keeps the batch whole") {
  auto m = shape_conditioned_model();
  m.mutable_graph()->mutable_output()->RemoveLast();  // only y, which keeps the batch
  auto graph = load(m);
  REQUIRE_MESSAGE(graph.ok(), graph.status().message());
  auto backend = make_reference_backend({});
  SessionOptions options;
  options.threads = 2;
  // Split in chunks of one sample, the condition would select Neg.
  auto session = Session::create(*graph, *backend, {{"x", {2}}}, options);
  REQUIRE_MESSAGE(session.ok(), session.status().message());
  CHECK((*session)->batch_split().chunk == 0);
  const Tensor x = f32({2}, {-1, 4});
  REQUIRE((*session)->run(std::span<const Tensor>(&x, 1)).ok());
  check_values((*session)->output(0), {2}, {0, 4});
}

TEST_CASE("control flow: malformed If nodes are named") {
  SUBCASE("a branch with another output count") {
    auto m = sample_rate_model();
    auto* else_branch = m.mutable_graph()->mutable_node(2)->mutable_attribute(1)->mutable_g();
    add_value(else_branch->mutable_output(), "x", onnx::TensorProto::FLOAT, {"3"});
    auto g = load(m);
    REQUIRE_MESSAGE(g.ok(), g.status().message());
    auto r = run_graph(*g, {{"x", f32({3}, {1, 2, 3})}}, {{"sr", i64({}, {8000})}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "else_branch has 2 outputs but the node has 1"));
  }
  SUBCASE("a missing branch") {
    auto m = sample_rate_model();
    m.mutable_graph()->mutable_node(2)->mutable_attribute()->RemoveLast();
    auto g = load(m);
    REQUIRE_MESSAGE(g.ok(), g.status().message());
    auto r = run_graph(*g, {{"x", f32({3}, {1, 2, 3})}}, {{"sr", i64({}, {8000})}});
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.status().message(), "needs the subgraph attribute 'else_branch'"));
  }
  SUBCASE("a branch reading a value no scope defines") {
    auto m = sample_rate_model();
    auto* then_branch = m.mutable_graph()->mutable_node(2)->mutable_attribute(0)->mutable_g();
    then_branch->mutable_node(1)->set_input(1, "nowhere");
    auto g = load(m);
    REQUIRE_FALSE(g.ok());
    CHECK(g.status().code() == Errc::invalid_input);
    CHECK(contains(g.status().message(), "'nowhere'"));
  }
}

TEST_CASE("control flow: If exports with its branches and implicit captures") {
  auto g = load(sample_rate_model());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  auto bytes = serialize_onnx(*g);
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().message());
  onnx::ModelProto written;
  REQUIRE(written.ParseFromString(*bytes));
  const onnx::NodeProto* if_node = nullptr;
  for (const auto& n : written.graph().node())
    if (n.op_type() == "If") if_node = &n;
  REQUIRE(if_node != nullptr);
  CHECK(if_node->input_size() == 1);  // ONNX keeps captures implicit
  CHECK(if_node->attribute_size() == 2);
  auto again = load_onnx_from_bytes(*bytes, "again.onnx", "");
  REQUIRE_MESSAGE(again.ok(), again.status().message());
  CHECK(again->find_node("select")->inputs == g->find_node("select")->inputs);
  auto r = run_graph(*again, {{"x", f32({3}, {1, 1, 1})}}, {{"sr", i64({}, {16000})}});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  check_values(r->at(0), {3}, {2, 3, 4});
}

namespace {

// acc, steps = Loop(M, cond, x): body acc += w * float(iteration), with w an
// outer initializer; the body's condition is `iteration < stop_before`
// when `stop_before` >= 0, else it passes its input on.
onnx::ModelProto accumulate_loop(int64_t stop_before) {
  auto m = make_model(13);
  auto& g = *m.mutable_graph();
  add_value(g.mutable_input(), "x", onnx::TensorProto::FLOAT, {"2"});
  add_value(g.mutable_input(), "M", onnx::TensorProto::INT64, {});
  add_value(g.mutable_output(), "acc", onnx::TensorProto::FLOAT, {"2"});
  add_value(g.mutable_output(), "steps", onnx::TensorProto::FLOAT, {"?", "2"});
  *g.add_initializer() = float_tensor("w", {2}, {1, 10});
  onnx::TensorProto yes;
  yes.set_data_type(onnx::TensorProto::BOOL);
  yes.add_int32_data(1);
  add_constant(g, "go", yes);
  auto* loop = add_node(g, "Loop", {"M", "go", "x"}, {"acc", "steps"}, "loop");
  auto* body = add_graph_attr(loop, "body");
  add_value(body->mutable_input(), "i", onnx::TensorProto::INT64, {});
  add_value(body->mutable_input(), "c", onnx::TensorProto::BOOL, {});
  add_value(body->mutable_input(), "a", onnx::TensorProto::FLOAT, {"2"});
  auto* cast = add_node(*body, "Cast", {"i"}, {"i_f"}, "to_float");
  add_int_attr(cast, "to", onnx::TensorProto::FLOAT);
  add_node(*body, "Mul", {"w", "i_f"}, {"wi"}, "scale");
  add_node(*body, "Add", {"a", "wi"}, {"a_next"}, "accumulate");
  add_node(*body, "Identity", {"a_next"}, {"step"}, "record");
  if (stop_before >= 0) {
    add_constant(*body, "stop", int64_tensor("", {}, {stop_before}));
    add_node(*body, "Less", {"i", "stop"}, {"c_next"}, "keep_going");
  } else {
    add_node(*body, "Identity", {"c"}, {"c_next"}, "pass_condition");
  }
  add_value(body->mutable_output(), "c_next", onnx::TensorProto::BOOL, {});
  add_value(body->mutable_output(), "a_next", onnx::TensorProto::FLOAT, {"2"});
  add_value(body->mutable_output(), "step", onnx::TensorProto::FLOAT, {"2"});
  return m;
}

// state, ys = Scan(s0, xs): state += x_t, ys_t = state.
onnx::ModelProto cumulative_scan(const std::vector<int64_t>& input_dirs, const std::vector<int64_t>& output_axes) {
  auto m = make_model(11);
  auto& g = *m.mutable_graph();
  add_value(g.mutable_input(), "s0", onnx::TensorProto::FLOAT, {"2"});
  add_value(g.mutable_input(), "xs", onnx::TensorProto::FLOAT, {"3", "2"});
  add_value(g.mutable_output(), "state", onnx::TensorProto::FLOAT, {"2"});
  add_value(g.mutable_output(), "ys", onnx::TensorProto::FLOAT, {"?", "?"});
  auto* scan = add_node(g, "Scan", {"s0", "xs"}, {"state", "ys"}, "scan");
  add_int_attr(scan, "num_scan_inputs", 1);
  if (!input_dirs.empty()) add_ints_attr(scan, "scan_input_directions", input_dirs);
  if (!output_axes.empty()) add_ints_attr(scan, "scan_output_axes", output_axes);
  auto* body = add_graph_attr(scan, "body");
  add_value(body->mutable_input(), "s", onnx::TensorProto::FLOAT, {"2"});
  add_value(body->mutable_input(), "x_t", onnx::TensorProto::FLOAT, {"2"});
  add_node(*body, "Add", {"s", "x_t"}, {"s_next"}, "sum");
  add_node(*body, "Identity", {"s_next"}, {"y_t"}, "emit");
  add_value(body->mutable_output(), "s_next", onnx::TensorProto::FLOAT, {"2"});
  add_value(body->mutable_output(), "y_t", onnx::TensorProto::FLOAT, {"2"});
  return m;
}

}  // namespace

TEST_CASE("control flow: Loop unrolls a constant trip count, with captures and scan outputs") {
  auto g = load(accumulate_loop(-1));
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  CHECK(g->find_node("loop")->inputs == std::vector<std::string>{"M", "go", "x", "w"});
  const Tensor x = f32({2}, {1, 2});
  auto r = run_graph(*g, {{"x", x}}, {{"M", i64({}, {4})}});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  // acc = x + w * (0 + 1 + 2 + 3)
  check_values(r->at(0), {2}, {7, 62});
  check_values(r->at(1), {4, 2}, {1, 2, 2, 12, 4, 32, 7, 62});
  SUBCASE("zero iterations pass the initial values on") {
    auto none = run_graph(*g, {{"x", x}}, {{"M", i64({}, {0})}});
    REQUIRE_FALSE(none.ok());  // the scan output would be empty
    CHECK(contains(none.status().message(), "runs no iteration"));
  }
  SUBCASE("a trip count known only at run time is refused") {
    auto fed = run_graph(*g, {{"x", x}, {"M", i64({}, {4})}});
    REQUIRE_FALSE(fed.ok());
    CHECK(fed.status().code() == Errc::unsupported);
    CHECK(contains(fed.status().message(), "node 'loop' (Loop"));
    CHECK(contains(fed.status().message(), "trip count 'M' depends on run-time data"));
  }
}

TEST_CASE("control flow: Loop stops when its body's condition turns false") {
  auto g = load(accumulate_loop(1));
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  // Iteration 0 returns 0 < 1, iteration 1 returns false: two iterations.
  auto r = run_graph(*g, {{"x", f32({2}, {1, 2})}}, {{"M", i64({}, {10})}});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  check_values(r->at(0), {2}, {2, 12});
  check_values(r->at(1), {2, 2}, {1, 2, 2, 12});
}

TEST_CASE("control flow: Scan unrolls over its input's length, in either direction and output axis") {
  const Tensor s0 = f32({2}, {0, 0});
  const Tensor xs = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  SUBCASE("forward") {
    auto g = load(cumulative_scan({}, {}));
    REQUIRE_MESSAGE(g.ok(), g.status().message());
    auto r = run_graph(*g, {{"s0", s0}, {"xs", xs}});
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    check_values(r->at(0), {2}, {9, 12});
    check_values(r->at(1), {3, 2}, {1, 2, 4, 6, 9, 12});
  }
  SUBCASE("reversed input, stacked along the last axis") {
    auto g = load(cumulative_scan({1}, {-1}));
    REQUIRE_MESSAGE(g.ok(), g.status().message());
    auto r = run_graph(*g, {{"s0", s0}, {"xs", xs}});
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    check_values(r->at(0), {2}, {9, 12});
    // rows taken 2, 1, 0: states [5,6], [8,10], [9,12], one per column
    check_values(r->at(1), {2, 3}, {5, 8, 9, 6, 10, 12});
  }
  SUBCASE("a bad direction is named") {
    auto g = load(cumulative_scan({2}, {}));
    REQUIRE_MESSAGE(g.ok(), g.status().message());
    auto r = run_graph(*g, {{"s0", s0}, {"xs", xs}});
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.status().message(), "'scan_input_directions' holds 2"));
  }
}

TEST_CASE("control flow: each unrolled iteration's nodes have names of their own") {
  auto g = load(accumulate_loop(-1));
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  auto backend = make_reference_backend({});
  SessionOptions options;
  options.bound_inputs["M"] = i64({}, {3});
  auto session = Session::create(*g, *backend, {{"x", {2}}}, options);
  REQUIRE_MESSAGE(session.ok(), session.status().message());
  std::set<std::string> names;
  for (const auto& [node, ran_on] : (*session)->node_backends()) CHECK_MESSAGE(names.insert(node).second, node);
  CHECK(names.count("loop/0/accumulate") == 1);
  CHECK(names.count("loop/2/accumulate") == 1);
}
