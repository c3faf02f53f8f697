#pragma once
// Semantics shared by the recurrent ops' shape inference (ir/ops/rnn_ops.cc)
// and their reference kernels (backends/reference/rnn_kernels.cc): RNN, GRU
// and LSTM attributes and input shapes resolved once, and the activation
// functions their 'activations' attribute names.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::rnn {

enum class Cell { rnn, gru, lstm };
enum class Direction { forward, reverse, bidirectional };

// The ONNX recurrent activation functions; alpha and beta as the spec
// defines them per function.
enum class ActivationKind {
  relu,
  tanh,
  sigmoid,
  affine,
  leaky_relu,
  thresholded_relu,
  scaled_tanh,
  hard_sigmoid,
  elu,
  softsign,
  softplus
};
struct Activation {
  ActivationKind kind = ActivationKind::tanh;
  float alpha = 0;
  float beta = 0;

  template <typename T> T operator()(T x) const {
    const T a = T(alpha), b = T(beta);
    switch (kind) {
      case ActivationKind::relu: return x > T(0) ? x : T(0);
      case ActivationKind::tanh: return std::tanh(x);
      case ActivationKind::sigmoid:
        // Split by sign so exp never overflows.
        return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
      case ActivationKind::affine: return a * x + b;
      case ActivationKind::leaky_relu: return x >= T(0) ? x : a * x;
      case ActivationKind::thresholded_relu: return x > a ? x : T(0);
      case ActivationKind::scaled_tanh: return a * std::tanh(b * x);
      case ActivationKind::hard_sigmoid: return std::max(T(0), std::min(T(1), a * x + b));
      case ActivationKind::elu: return x >= T(0) ? x : a * (std::exp(x) - T(1));
      case ActivationKind::softsign: return x / (T(1) + std::abs(x));
      case ActivationKind::softplus: return std::log1p(std::exp(x));
    }
    return x;
  }
};

struct Params {
  Cell cell = Cell::rnn;
  Direction direction = Direction::forward;
  int64_t num_directions = 1;
  int64_t hidden = 0;  // hidden_size
  int64_t seq_length = 0;
  int64_t batch = 0;
  int64_t input_size = 0;
  bool batch_major = false;  // layout = 1: X [batch, seq, input], states [batch, dirs, hidden]
  bool has_clip = false;
  float clip = 0;                    // gate pre-activations are clamped to [-clip, clip]
  bool linear_before_reset = false;  // GRU
  bool input_forget = false;         // LSTM: forget gate = 1 - input gate
  // gate_functions() per direction, direction 0 first.
  std::vector<Activation> activations;

  // Gates per direction in W and R: RNN 1 (i), GRU 3 (zrh), LSTM 4 (iofc).
  int64_t gates() const { return cell == Cell::rnn ? 1 : cell == Cell::gru ? 3 : 4; }
  // Activation functions per direction: RNN f; GRU f, g; LSTM f, g, h.
  size_t gate_functions() const { return cell == Cell::rnn ? 1 : cell == Cell::gru ? 2 : 3; }
  const Activation& activation(int64_t direction, size_t i) const {
    return activations[static_cast<size_t>(direction) * gate_functions() + i];
  }
  // Output shapes: Y, and Y_h / Y_c (and initial_h / initial_c).
  Shape y_shape() const;
  Shape state_shape() const;
};

// Checks the inputs (X, W, R, B, sequence_lens, initial_h, initial_c, P, as
// far as the cell has them) and resolves the attributes, for every opset
// from 7 (layout from opset 14).
Result<Params> resolve(const Node& node, std::span<const InferInput> inputs, Cell cell);

}  // namespace caliprox::rnn
