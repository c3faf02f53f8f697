#pragma once
// The ops caliprox understands: one entry per ONNX op type (default domain),
// with its shape/type inference. Kernels live in the backends; this table is
// what "supported op" means for import errors and conformance skips.
#include <span>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

// One input of a node as seen by shape inference. `value` is non-null when the
// input is a constant (initializer, Constant node, folded subgraph, or a bound
// graph input); ops whose output shape depends on an input's values (Reshape,
// Slice, Resize, Pad, ...) need it and report `unsupported` without it.
// An omitted optional input has type.dtype == DType::undefined.
struct InferInput {
  TensorType type;
  const Tensor* value = nullptr;
  bool present() const { return type.dtype != DType::undefined; }
};

// Returns the type of every output of the node (omitted outputs included,
// with the type they would have). Errors name the node (node.describe()).
using InferFn = Result<std::vector<TensorType>> (*)(const Node& node, std::span<const InferInput> inputs);

struct OpDef {
  std::string_view op_type;
  InferFn infer;
};

// nullptr when the op type is not supported.
const OpDef* find_op(std::string_view op_type);
std::vector<std::string_view> supported_op_types();

// Registration functions, one per op family file under src/ir/ops/.
// Each appends its ops; the table in op_registry.cc calls them in order.
void register_tensor_ops(std::vector<OpDef>& table);  // ops/tensor_ops*.cc
void register_nn_ops(std::vector<OpDef>& table);      // ops/nn_ops*.cc
void register_elementwise_ops(std::vector<OpDef>& table);  // ops/elementwise_ops.cc
void register_index_ops(std::vector<OpDef>& table);   // ops/index_ops*.cc
void register_quant_ops(std::vector<OpDef>& table);   // ops/quant_ops.cc
void register_rnn_ops(std::vector<OpDef>& table);     // ops/rnn_ops.cc
void register_reduce_ops(std::vector<OpDef>& table);       // ops/reduce_ops*.cc
void register_control_ops(std::vector<OpDef>& table);      // ops/control_ops.cc
void register_linalg_ops(std::vector<OpDef>& table);       // ops/linalg_ops.cc
void register_sample_ops(std::vector<OpDef>& table);       // ops/sample_ops.cc
void register_tfidf_ops(std::vector<OpDef>& table);        // ops/tfidf_ops.cc
void register_signal_ops(std::vector<OpDef>& table);       // ops/signal_ops.cc

// Internal attributes set by graph passes (engine/passes.h) on fused Conv
// nodes. Every backend's Conv kernel must honour them:
//   "caliprox.activation": string, one of Relu, LeakyRelu, Clip, Sigmoid,
//       HardSigmoid, HardSwish, Tanh; applied after bias (and residual).
//   "caliprox.alpha", "caliprox.beta": floats, the activation's parameters
//       (LeakyRelu alpha; Clip min/max; HardSigmoid alpha/beta).
//   "caliprox.residual": int 1 when input #3 is a tensor of the output's shape
//       added after bias and before the activation (a fused residual Add).
//       Input #2 (bias) may then be "" (omitted).
inline constexpr const char* kAttrActivation = "caliprox.activation";
inline constexpr const char* kAttrAlpha = "caliprox.alpha";
inline constexpr const char* kAttrBeta = "caliprox.beta";
inline constexpr const char* kAttrResidual = "caliprox.residual";

}  // namespace caliprox
