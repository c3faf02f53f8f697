#pragma once
// Scalar activation functions (the ONNX formulas), written once so the fused-Conv epilogue and the
// elementwise kernels compute exactly the same thing. The fused form is read
// from the internal attributes documented in ir/op_registry.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "util/status.h"

namespace caliprox::act {

template <typename T> T relu(T x) { return x > T(0) ? x : T(0); }
template <typename T> T leaky_relu(T x, T alpha) { return x >= T(0) ? x : alpha * x; }
// A NaN input stays NaN (both comparisons are false).
template <typename T> T clip(T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); }
template <typename T> T sigmoid(T x) {
  // Split by sign so exp never overflows.
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}
template <typename T> T hard_sigmoid(T x, T alpha, T beta) { return std::max(T(0), std::min(T(1), alpha * x + beta)); }
template <typename T> T hard_swish(T x) { return x * hard_sigmoid(x, T(1) / T(6), T(0.5)); }

enum class ActivationKind { none, relu, leaky_relu, clip, sigmoid, hard_sigmoid, hard_swish, tanh };

struct Activation {
  ActivationKind kind = ActivationKind::none;
  float alpha = 0;  // LeakyRelu alpha, Clip min, HardSigmoid alpha
  float beta = 0;   // Clip max, HardSigmoid beta

  template <typename T> T operator()(T x) const {
    switch (kind) {
      case ActivationKind::none: return x;
      case ActivationKind::relu: return relu(x);
      case ActivationKind::leaky_relu: return leaky_relu(x, T(alpha));
      case ActivationKind::clip: return clip(x, T(alpha), T(beta));
      case ActivationKind::sigmoid: return sigmoid(x);
      case ActivationKind::hard_sigmoid: return hard_sigmoid(x, T(alpha), T(beta));
      case ActivationKind::hard_swish: return hard_swish(x);
      case ActivationKind::tanh: return std::tanh(x);
    }
    return x;
  }
  // In place over n contiguous values.
  template <typename T> void apply(T* data, int64_t n) const {
    if (kind == ActivationKind::none) return;
    for (int64_t i = 0; i < n; ++i) data[i] = (*this)(data[i]);
  }
};

// The activation an ONNX op type stands for, with its parameters; absent
// parameters take the ONNX defaults (LeakyRelu alpha 0.01, HardSigmoid
// 0.2/0.5, Clip unbounded). Errc::unsupported for other op types.
inline Result<Activation> make_activation(std::string_view op_type, const float* alpha, const float* beta) {
  Activation a;
  const auto pick = [](const float* v, float fallback) { return v != nullptr ? *v : fallback; };
  if (op_type == "Relu") {
    a.kind = ActivationKind::relu;
  } else if (op_type == "LeakyRelu") {
    a.kind = ActivationKind::leaky_relu;
    a.alpha = pick(alpha, 0.01f);
  } else if (op_type == "Clip") {
    a.kind = ActivationKind::clip;
    a.alpha = pick(alpha, -std::numeric_limits<float>::infinity());
    a.beta = pick(beta, std::numeric_limits<float>::infinity());
  } else if (op_type == "Sigmoid") {
    a.kind = ActivationKind::sigmoid;
  } else if (op_type == "HardSigmoid") {
    a.kind = ActivationKind::hard_sigmoid;
    a.alpha = pick(alpha, 0.2f);
    a.beta = pick(beta, 0.5f);
  } else if (op_type == "HardSwish") {
    a.kind = ActivationKind::hard_swish;
  } else if (op_type == "Tanh") {
    a.kind = ActivationKind::tanh;
  } else {
    return unsupported("activation '{}' is not one of Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh",
                       op_type);
  }
  return a;
}

// The fused activation of a Conv node (kind none when the node has none).
inline Result<Activation> fused_activation(const Node& node) {
  if (!node.has(kAttrActivation)) return Activation{};
  const float alpha = node.attr_float(kAttrAlpha, 0);
  const float beta = node.attr_float(kAttrBeta, 0);
  Result<Activation> a = make_activation(node.attr_string(kAttrActivation, ""), node.has(kAttrAlpha) ? &alpha : nullptr,
                                         node.has(kAttrBeta) ? &beta : nullptr);
  if (!a.ok()) return a.status().with_context(node.describe());
  return a;
}

}  // namespace caliprox::act
