// Shape/type inference of the tensor-op family, part 1: activations,
// elementwise arithmetic, Softmax, Cast, Shape, Identity and Dropout.
// Data-movement ops are in tensor_ops_shape.cc; the parameter resolvers both
// share with the reference kernels are in tensor_ops_params.cc. The Reduce
// ops (ReduceMean too) are the reduce family's (reduce_ops.cc), which reads
// their axes with resolve_reduce from here.
#include <algorithm>
#include <limits>

#include "ir/ops/infer_checks.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox {
namespace tensor_ops {
namespace {

using Types = Result<std::vector<TensorType>>;

// One input, one output of the same type (unary activations, Identity).
template <Accepts kAccepts>
Types infer_unary(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, kAccepts));
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_leaky_relu(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(attr_float(node, "alpha", 0.01f).status());
  return infer_unary<Accepts::floating>(node, inputs);
}

Types infer_hard_sigmoid(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(attr_float(node, "alpha", 0.2f).status());
  CP_TRY(attr_float(node, "beta", 0.5f).status());
  return infer_unary<Accepts::floating>(node, inputs);
}

Types infer_clip(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 3));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_TRY(check_same_dtype(node, inputs, 0, 3));
  for (size_t i = 1; i < 3; ++i)
    if (const InferInput* b = optional_input(inputs, i); b && shape_numel(b->type.shape) != 1)
      return invalid_input("{}: input #{} ('{}') must be a scalar, found shape {}", node.describe(), i,
                           i == 1 ? "min" : "max", shape_str(b->type.shape));
  CP_TRY(attr_float(node, "min", 0).status());  // opset < 11
  CP_TRY(attr_float(node, "max", 0).status());
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_softmax(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_TRY(resolve_softmax(node, inputs[0].type.shape).status());
  return std::vector<TensorType>{inputs[0].type};
}

// Add, Sub, Mul, Div: two inputs of one numeric type, broadcast.
Types infer_binary(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_TRY(check_same_dtype(node, inputs, 0, 2));
  CP_TRY(check_legacy_broadcast(node, inputs));
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, input_shapes(inputs)));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

// Pow: from opset 12 the exponent may have another numeric type; the result
// has the base's type.
Types infer_pow(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_TRY(check_dtype(node, inputs[1], 1, Accepts::numeric));
  CP_TRY(check_legacy_broadcast(node, inputs));
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, input_shapes(inputs)));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

// Max, Min: one or more inputs of one numeric type, broadcast together.
Types infer_variadic(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, std::numeric_limits<size_t>::max()));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_TRY(check_same_dtype(node, inputs, 0, inputs.size()));
  CP_TRY(check_all_present(node, inputs));
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, input_shapes(inputs)));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_cast(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  if (!node.has("to")) return invalid_input("{}: the attribute 'to' is required", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t to, attr_int(node, "to", 0));
  if (to == 0 || to > std::numeric_limits<int>::max() || !dtype_known(static_cast<int>(to)))
    return unsupported("{}: Cast to ONNX element type {} is not supported (supported: float32, float64, float16, "
                       "int64, int32, int8, uint8, bool)",
                       node.describe(), to);
  return std::vector<TensorType>{{static_cast<DType>(to), inputs[0].type.shape}};
}

Types infer_shape(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  const auto rank = static_cast<int64_t>(inputs[0].type.shape.size());
  CP_ASSIGN_OR_RETURN(int64_t start, attr_int(node, "start", 0));
  CP_ASSIGN_OR_RETURN(int64_t end, attr_int(node, "end", rank));
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  return std::vector<TensorType>{{DType::i64, {std::max<int64_t>(0, end - start)}}};
}

// ConstantOfShape: the output's shape is input #0's values (a constant:
// the engine plans static shapes), filled with the one-element 'value'
// attribute (float32 zero when absent).
Types infer_constant_of_shape(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  if (inputs[0].type.dtype != DType::i64 || inputs[0].type.shape.size() != 1)
    return invalid_input("{}: input #0 'input' must be a 1-D int64 shape, found {} {}", node.describe(),
                         dtype_name(inputs[0].type.dtype), shape_str(inputs[0].type.shape));
  CP_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_ints(node, inputs, 0, "input", "the output shape"));
  for (int64_t d : dims)
    if (d < 0) return invalid_input("{}: input #0 'input' holds a negative dimension {}", node.describe(), d);
  CP_ASSIGN_OR_RETURN(Tensor fill, constant_of_shape_value(node));
  return std::vector<TensorType>{{fill.dtype(), Shape(dims.begin(), dims.end())}};
}

Types infer_dropout(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 3));
  CP_TRY(check_output_count(node, 2));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_ASSIGN_OR_RETURN(float ratio, attr_float(node, "ratio", 0.5f));  // opset < 12
  if (ratio < 0 || ratio >= 1)
    return invalid_input("{}: 'ratio' is {} (expected a value in [0, 1))", node.describe(), ratio);
  if (const InferInput* r = optional_input(inputs, 1); r && shape_numel(r->type.shape) != 1)
    return invalid_input("{}: input #1 'ratio' must be a scalar, found shape {}", node.describe(),
                         shape_str(r->type.shape));
  if (const InferInput* t = optional_input(inputs, 2)) {
    if (t->type.dtype != DType::boolean || shape_numel(t->type.shape) != 1)
      return invalid_input("{}: input #2 'training_mode' must be a bool scalar, found {} {}", node.describe(),
                           dtype_name(t->type.dtype), shape_str(t->type.shape));
    if (t->value != nullptr && t->value->at_double(0) != 0) {
      const InferInput* r = optional_input(inputs, 1);
      // Training with ratio 0 keeps everything; any other ratio is random.
      if (r == nullptr || r->value == nullptr || r->value->at_double(0) != 0)
        return unsupported("{}: Dropout in training mode (random masking) is not supported", node.describe());
    }
  }
  const DType mask_type = node_opset(node) < 10 ? inputs[0].type.dtype : DType::boolean;
  std::vector<TensorType> out{inputs[0].type};
  if (node.outputs.size() > 1) out.push_back({mask_type, inputs[0].type.shape});
  return out;
}

}  // namespace
}  // namespace tensor_ops

void register_tensor_ops(std::vector<OpDef>& table) {
  using namespace tensor_ops;
  const OpDef ops[] = {
      {"Relu", infer_unary<Accepts::numeric>},
      {"LeakyRelu", infer_leaky_relu},
      {"Clip", infer_clip},
      {"Sigmoid", infer_unary<Accepts::floating>},
      {"HardSigmoid", infer_hard_sigmoid},
      {"HardSwish", infer_unary<Accepts::floating>},
      {"Tanh", infer_unary<Accepts::floating>},
      {"Sqrt", infer_unary<Accepts::floating>},
      {"Softmax", infer_softmax},
      {"Add", infer_binary},
      {"Sub", infer_binary},
      {"Mul", infer_binary},
      {"Div", infer_binary},
      {"Pow", infer_pow},
      {"Max", infer_variadic},
      {"Min", infer_variadic},
      {"Cast", infer_cast},
      {"Shape", infer_shape},
      {"ConstantOfShape", infer_constant_of_shape},
      {"Identity", infer_unary<Accepts::any>},
      {"Dropout", infer_dropout},
  };
  table.insert(table.end(), std::begin(ops), std::end(ops));
  register_shape_ops(table);
}

}  // namespace caliprox
