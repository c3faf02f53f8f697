// Recurrent ops RNN, GRU and LSTM: shape inference (ir/ops/rnn_ops.cc) and
// the reference kernel (backends/reference/rnn_kernels.cc). One hidden unit
// and one input feature keep every expected value a hand computation
// (written in the comments); tanh/sigmoid values to 8 digits.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

// Every input but X is a constant (weights).
Result<std::vector<Tensor>> run_rnn(const Node& node, const std::vector<Tensor>& inputs) {
  std::vector<bool> constant(inputs.size(), true);
  constant[0] = false;
  return run_node(node, inputs, constant);
}

std::vector<Tensor> run_ok(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_rnn(node, inputs);
  if (!r.ok()) FAIL(r.status().message());
  return r.value();
}

Errc error_of(const Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_rnn(node, inputs);
  return r.ok() ? Errc::ok : r.status().code();
}

using Attrs = std::map<std::string, Attribute>;

Node rnn_node(Attrs attrs, size_t inputs = 4, size_t outputs = 2) {
  attrs.emplace("hidden_size", int_attr(1));
  return make_node("RNN", inputs, std::move(attrs), outputs);
}

const Tensor kNone;  // an omitted optional input

}  // namespace

// RNN with Relu, W = 2, R = 0.5, Wb = 1, X = [1, -1]:
// h1 = relu(2 + 0 + 1) = 3, h2 = relu(-2 + 1.5 + 1) = 0.5.
TEST_CASE("rnn ops: RNN forward, reverse and bidirectional") {
  const Attrs relu{{"activations", strings({"Relu"})}};
  const Tensor x = f32({2, 1, 1}, {1, -1});
  const Tensor w = f32({1, 1, 1}, {2}), r = f32({1, 1, 1}, {0.5f}), b = f32({1, 2}, {1, 0});
  auto out = run_ok(rnn_node(relu), {x, w, r, b});
  check_values(out[0], {2, 1, 1, 1}, {3, 0.5});
  check_values(out[1], {1, 1, 1}, {0.5});
  // Reverse: t = 1 first: relu(-2 + 1) = 0, then relu(2 + 0 + 1) = 3.
  Attrs rev = relu;
  rev.emplace("direction", str("reverse"));
  out = run_ok(rnn_node(rev), {x, w, r, b});
  check_values(out[0], {2, 1, 1, 1}, {3, 0});
  check_values(out[1], {1, 1, 1}, {3});
  // Both directions (one Relu serves both): Y [seq, dirs, batch, hidden].
  Attrs bi = relu;
  bi.emplace("direction", str("bidirectional"));
  out = run_ok(rnn_node(bi), {x, f32({2, 1, 1}, {2, 2}), f32({2, 1, 1}, {0.5f, 0.5f}), f32({2, 2}, {1, 0, 1, 0})});
  check_values(out[0], {2, 2, 1, 1}, {3, 3, 0.5, 0});
  check_values(out[1], {2, 1, 1}, {0.5, 3});
  // Default activation Tanh, no bias: tanh(2).
  out = run_ok(rnn_node({}, 3, 1), {f32({1, 1, 1}, {1}), w, r});
  check_values(out[0], {1, 1, 1, 1}, {0.96402758});
}

TEST_CASE("rnn ops: RNN sequence_lens, initial_h, layout, clip and activation parameters") {
  const Tensor w = f32({1, 1, 1}, {2}), r = f32({1, 1, 1}, {0.5f}), b = f32({1, 2}, {1, 0});
  const Attrs relu{{"activations", strings({"Relu"})}};
  // Batch 2 with lengths [2, 1]: entry 1 stops after t = 0 and Y is 0 at t = 1.
  auto out = run_ok(rnn_node(relu, 5), {f32({2, 2, 1}, {1, 1, -1, 5}), w, r, b, tensor<int32_t>({2}, {2, 1})});
  check_values(out[0], {2, 1, 2, 1}, {3, 3, 0.5, 0});
  check_values(out[1], {1, 2, 1}, {0.5, 3});
  // initial_h = 2: relu(2 + 1 + 1) = 4, relu(-2 + 2 + 1) = 1.
  out = run_ok(rnn_node(relu, 6), {f32({2, 1, 1}, {1, -1}), w, r, b, kNone, f32({1, 1, 1}, {2})});
  check_values(out[0], {2, 1, 1, 1}, {4, 1});
  // layout 1 (opset 14): X [batch, seq, input], Y [batch, seq, dirs, hidden].
  Attrs batch_major = relu;
  batch_major.emplace("layout", int_attr(1));
  out = run_ok(rnn_node(batch_major), {f32({1, 2, 1}, {1, -1}), w, r, b});
  check_values(out[0], {1, 2, 1, 1}, {3, 0.5});
  check_values(out[1], {1, 1, 1}, {0.5});
  Node old = rnn_node(batch_major);
  old.opset = 13;
  CHECK(error_of(old, {f32({1, 2, 1}, {1, -1}), w, r, b}) == Errc::invalid_input);
  // clip 1 bounds the pre-activations: relu(min(3, 1)) = 1, relu(-2 + 0.5 + 1) = 0.
  Attrs clipped = relu;
  clipped.emplace("clip", float_attr(1));
  check_values(run_ok(rnn_node(clipped), {f32({2, 1, 1}, {1, -1}), w, r, b})[0], {2, 1, 1, 1}, {1, 0});
  // Affine alpha 2 beta 1: 2 * 3 + 1 = 7; 2 * (-2 + 3.5 + 1) + 1 = 6.
  const Attrs affine{{"activations", strings({"Affine"})},
                     {"activation_alpha", floats({2})},
                     {"activation_beta", floats({1})}};
  check_values(run_ok(rnn_node(affine), {f32({2, 1, 1}, {1, -1}), w, r, b})[0], {2, 1, 1, 1}, {7, 6});
  // HardSigmoid(0.5, 0.25): min(1, 1.75) = 1; 0.5 * (-2 + 0.5 + 1) + 0.25 = 0.
  const Attrs hard{{"activations", strings({"HardSigmoid"})},
                   {"activation_alpha", floats({0.5f})},
                   {"activation_beta", floats({0.25f})}};
  check_values(run_ok(rnn_node(hard), {f32({2, 1, 1}, {1, -1}), w, r, b})[0], {2, 1, 1, 1}, {1, 0});
}

TEST_CASE("rnn ops: RNN errors") {
  const Tensor x = f32({1, 1, 1}, {1});
  const Tensor w = f32({1, 1, 1}, {2}), r = f32({1, 1, 1}, {0.5f});
  CHECK(error_of(rnn_node({}, 3), {x, f32({1, 2, 1}, {1, 2}), r}) == Errc::invalid_input);
  CHECK(error_of(rnn_node({{"direction", str("sideways")}}, 3), {x, w, r}) == Errc::invalid_input);
  // Bidirectional needs W with two directions.
  CHECK(error_of(rnn_node({{"direction", str("bidirectional")}}, 3), {x, w, r}) == Errc::invalid_input);
  CHECK(error_of(rnn_node({{"activations", strings({"Tanh", "Tanh"})}}, 3), {x, w, r}) == Errc::invalid_input);
  CHECK(error_of(rnn_node({{"activations", strings({"Gelu"})}}, 3), {x, w, r}) == Errc::unsupported);
  CHECK(error_of(rnn_node({}, 5), {x, w, r, kNone, tensor<int64_t>({1}, {1})}) == Errc::invalid_input);
  CHECK(error_of(rnn_node({}, 5), {x, w, r, kNone, tensor<int32_t>({1}, {2})}) == Errc::invalid_input);
  CHECK(error_of(rnn_node({}, 3), {tensor<int32_t>({1, 1, 1}, {1}), w, r}) == Errc::invalid_input);
  CHECK(error_of(rnn_node({}, 3, 3), {x, w, r}) == Errc::invalid_input);
}

// GRU with z and r rows of W and R zero (z = r = sigmoid(0) = 0.5), Wh = Rh = 1,
// X = 1, initial_h = 0.5.
TEST_CASE("rnn ops: GRU gates zrh and linear_before_reset") {
  const Tensor x = f32({1, 1, 1}, {1});
  const Tensor w = f32({1, 3, 1}, {0, 0, 1}), r = f32({1, 3, 1}, {0, 0, 1});
  const Tensor h0 = f32({1, 1, 1}, {0.5f});
  const auto gru = [](int64_t lbr) {
    return make_node("GRU", 6, {{"hidden_size", int_attr(1)}, {"linear_before_reset", int_attr(lbr)}}, 2);
  };
  // ht = tanh(1 + (0.5 * 0.5) * 1) = tanh(1.25); H = 0.5 ht + 0.5 * 0.5.
  auto out = run_ok(gru(0), {x, w, r, kNone, kNone, h0});
  check_values(out[0], {1, 1, 1, 1}, {0.67414182});
  check_values(out[1], {1, 1, 1}, {0.67414182});
  // Rbh = 1: without linear_before_reset tanh(1 + 0.25 + 1); with it
  // tanh(1 + 0.5 * (0.5 + 1)).
  const Tensor b = f32({1, 6}, {0, 0, 0, 0, 0, 1});
  check_values(run_ok(gru(0), {x, w, r, b, kNone, h0})[0], {1, 1, 1, 1}, {0.73901306});
  check_values(run_ok(gru(1), {x, w, r, b, kNone, h0})[0], {1, 1, 1, 1}, {0.72068777});
  // Relu for both f and g, W = [1, 0, 2] (z = 1 keeps h): H = 0 * relu(2) + 1 * 0.5.
  const Node relu = make_node("GRU", 6, {{"hidden_size", int_attr(1)}, {"activations", strings({"Relu", "Relu"})}}, 1);
  check_values(run_ok(relu, {x, f32({1, 3, 1}, {1, 0, 2}), f32({1, 3, 1}, {0, 0, 0}), kNone, kNone, h0})[0],
               {1, 1, 1, 1}, {0.5});
  CHECK(error_of(gru(0), {x, f32({1, 1, 1}, {1}), r}) == Errc::invalid_input);
}

// LSTM gates iofc: W = [0, 0, 0, 1] gives i = o = f = 0.5 and c~ = tanh(1);
// initial_c = 2: C = 0.5 * 2 + 0.5 * tanh(1) = 1.38079708, H = 0.5 tanh(C).
TEST_CASE("rnn ops: LSTM gates iofc, peepholes and Y_c") {
  const Tensor x = f32({1, 1, 1}, {1});
  const Tensor r = f32({1, 4, 1}, {0, 0, 0, 0});
  const Tensor c0 = f32({1, 1, 1}, {2});
  const Node lstm = make_node("LSTM", 8, {{"hidden_size", int_attr(1)}}, 3);
  auto out = run_ok(lstm, {x, f32({1, 4, 1}, {0, 0, 0, 1}), r, kNone, kNone, kNone, c0, kNone});
  check_values(out[0], {1, 1, 1, 1}, {0.44056481});
  check_values(out[1], {1, 1, 1}, {0.44056481});
  check_values(out[2], {1, 1, 1}, {1.38079708});
  // f saturated to 1 (W row 2 = 100): C = 2 + 0.5 tanh(1); the o row stays 0.5.
  out = run_ok(lstm, {x, f32({1, 4, 1}, {0, 0, 100, 1}), r, kNone, kNone, kNone, c0, kNone});
  check_values(out[2], {1, 1, 1}, {2.38079708});
  check_values(out[1], {1, 1, 1}, {0.49152055});
  const Tensor w = f32({1, 4, 1}, {0, 0, 0, 1});
  // Pi = 1: i = sigmoid(2): C = 1 + sigmoid(2) tanh(1), H = 0.5 tanh(C).
  out = run_ok(lstm, {x, w, r, kNone, kNone, kNone, c0, f32({1, 3}, {1, 0, 0})});
  check_values(out[2], {1, 1, 1}, {1.67080991});
  check_values(out[1], {1, 1, 1}, {0.46582934});
  // Po = 1 sees the new C: H = sigmoid(1.38079708) tanh(1.38079708).
  out = run_ok(lstm, {x, w, r, kNone, kNone, kNone, c0, f32({1, 3}, {0, 1, 0})});
  check_values(out[1], {1, 1, 1}, {0.70412741});
  // input_forget: f = 1 - i with i saturated: C = tanh(1), H = 0.5 tanh(C).
  const Node coupled = make_node("LSTM", 8, {{"hidden_size", int_attr(1)}, {"input_forget", int_attr(1)}}, 3);
  out = run_ok(coupled, {x, f32({1, 4, 1}, {100, 0, 0, 1}), r, kNone, kNone, kNone, c0, kNone});
  check_values(out[2], {1, 1, 1}, {0.76159416});
  check_values(out[1], {1, 1, 1}, {0.32100750});
  // Only Y_c requested (Y and Y_h omitted).
  Node only_c = lstm;
  only_c.outputs = {"", "", "c"};
  out = run_ok(only_c, {x, w, r, kNone, kNone, kNone, c0, kNone});
  check_values(out[2], {1, 1, 1}, {1.38079708});
  CHECK(error_of(lstm, {x, w, r, kNone, kNone, kNone, c0, f32({1, 4}, {0, 0, 0, 0})}) == Errc::invalid_input);
  CHECK(error_of(make_node("LSTM", 3, {}, 4), {x, w, r}) == Errc::invalid_input);
}
