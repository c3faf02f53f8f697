// Shape/type inference of the reduce/normalisation family, part 2: the
// Softmax-like ops (LogSoftmax, Hardmax: Softmax's axis rules) and the
// normalisations (LayerNormalization, InstanceNormalization, LRN,
// MeanVarianceNormalization). BatchNormalization is an nn op (nn_ops.cc).
#include "ir/ops/infer_checks.h"
#include "ir/ops/reduce_ops_util.h"

namespace caliprox {
namespace reduce_ops {
namespace {

using Types = Result<std::vector<TensorType>>;
using tensor_ops::Accepts;
using tensor_ops::check_dtype;
using tensor_ops::check_inputs;
using tensor_ops::check_output_count;
using tensor_ops::check_same_dtype;
using tensor_ops::optional_input;

// LogSoftmax, Hardmax: one floating-point input, one output of its type;
// the axis is Softmax's (the input coerced to 2-D before opset 13).
Types infer_softmax_like(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_TRY(tensor_ops::resolve_softmax(node, inputs[0].type.shape).status());
  return std::vector<TensorType>{inputs[0].type};
}

// LayerNormalization(X, Scale[, B]) -> Y[, Mean, InvStdDev].
Types infer_layer_norm(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 3));
  CP_TRY(check_output_count(node, 3));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_TRY(check_same_dtype(node, inputs, 0, inputs.size()));
  CP_ASSIGN_OR_RETURN(LayerNormParams p, resolve_layer_norm(node, inputs));
  return std::vector<TensorType>{inputs[0].type, {p.stash, p.stat_shape}, {p.stash, p.stat_shape}};
}

// InstanceNormalization(input, scale, B): scale and B hold one value per
// channel (axis 1).
Types infer_instance_norm(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 3, 3));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  const Shape& shape = inputs[0].type.shape;
  if (shape.size() < 2) return invalid_input("{}: needs an input of rank 2 or more (N, C, ...)", node.describe());
  CP_TRY(check_same_dtype(node, inputs, 0, 3));
  for (size_t i = 1; i < 3; ++i) {
    if (inputs[i].type.shape != Shape{shape[1]})
      return invalid_input("{}: input #{} '{}' must have shape [{}] (one value per channel), found {}", node.describe(),
                           i, i == 1 ? "scale" : "B", shape[1], shape_str(inputs[i].type.shape));
  }
  CP_TRY(tensor_ops::attr_float(node, "epsilon", 1e-5f).status());
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_lrn(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_TRY(resolve_lrn(node, inputs[0].type.shape).status());
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_mvn(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_TRY(resolve_mvn_axes(node, inputs[0].type.shape).status());
  return std::vector<TensorType>{inputs[0].type};
}

}  // namespace

void register_norm_ops(std::vector<OpDef>& table) {
  const OpDef ops[] = {
      {"LogSoftmax", infer_softmax_like},
      {"Hardmax", infer_softmax_like},
      {"LayerNormalization", infer_layer_norm},
      {"InstanceNormalization", infer_instance_norm},
      {"LRN", infer_lrn},
      {"MeanVarianceNormalization", infer_mvn},
  };
  table.insert(table.end(), std::begin(ops), std::end(ops));
}

}  // namespace reduce_ops
}  // namespace caliprox
