// Shape/type inference of the elementwise family: unary math (Exp, Log, the
// trigonometric functions, Erf, rounding, Neg/Abs/Sign/Reciprocal and the
// parametric activations Elu, Selu, Celu, Softplus, Softsign,
// ThresholdedRelu, Shrink), the float tests IsNaN/IsInf, comparisons and
// logic (-> bool), Mod, BitShift, PRelu, Where, Sum/Mean, CastLike, Size and
// Range. The reference kernels are backends/reference/elementwise_*.cc.
#include <cmath>
#include <limits>

#include "ir/ops/infer_checks.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox {
namespace tensor_ops {
namespace {

using Types = Result<std::vector<TensorType>>;
using Inputs = std::span<const InferInput>;

// One input of an accepted type; the output has its type (or kOut).
template <Accepts kAccepts, DType kOut = DType::undefined> Types infer_unary(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, kAccepts));
  const DType out = kOut == DType::undefined ? inputs[0].type.dtype : kOut;
  return std::vector<TensorType>{{out, inputs[0].type.shape}};
}

// A unary op with float attributes: each must be a float (or int) if given.
template <Accepts kAccepts> Types infer_unary_with_attrs(const Node& node, Inputs inputs) {
  for (const char* key : {"alpha", "beta", "gamma", "bias", "lambd"}) CP_TRY(attr_float(node, key, 0).status());
  return infer_unary<kAccepts>(node, inputs);
}

Types infer_is_inf(const Node& node, Inputs inputs) {
  CP_TRY(attr_int(node, "detect_negative", 1).status());
  CP_TRY(attr_int(node, "detect_positive", 1).status());
  return infer_unary<Accepts::floating, DType::boolean>(node, inputs);
}

// Two inputs of one type (kAccepts), broadcast; the output is bool for
// comparisons and logic (kOut), else the inputs' type.
template <Accepts kAccepts, DType kOut = DType::undefined> Types infer_binary(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, kAccepts));
  CP_TRY(check_same_dtype(node, inputs, 0, 2));
  CP_TRY(check_legacy_broadcast(node, inputs));
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, input_shapes(inputs)));
  return std::vector<TensorType>{{kOut == DType::undefined ? inputs[0].type.dtype : kOut, out}};
}

// Equal takes numbers and bools; the ordering comparisons numbers only.
Types infer_equal(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  if (inputs[0].type.dtype == DType::boolean) return infer_binary<Accepts::boolean, DType::boolean>(node, inputs);
  return infer_binary<Accepts::numeric, DType::boolean>(node, inputs);
}

// Mod: fmod=0 (integers only) takes the divisor's sign, like Python's %;
// fmod=1 takes the dividend's, like C's fmod.
Types infer_mod(const Node& node, Inputs inputs) {
  CP_ASSIGN_OR_RETURN(int64_t fmod, attr_int(node, "fmod", 0));
  if (fmod != 0 && fmod != 1) return invalid_input("{}: 'fmod' is {} (expected 0 or 1)", node.describe(), fmod);
  CP_TRY(check_inputs(node, inputs, 2, 2));
  if (fmod == 0 && is_float_dtype(inputs[0].type.dtype))
    return invalid_input("{}: Mod of floating-point inputs ({}) needs fmod=1", node.describe(),
                         dtype_name(inputs[0].type.dtype));
  return infer_binary<Accepts::numeric>(node, inputs);
}

Types infer_bit_shift(const Node& node, Inputs inputs) {
  CP_ASSIGN_OR_RETURN(std::string direction, attr_string(node, "direction", ""));
  if (direction != "LEFT" && direction != "RIGHT")
    return invalid_input("{}: 'direction' is '{}' (expected LEFT or RIGHT)", node.describe(), direction);
  CP_TRY(check_inputs(node, inputs, 2, 2));
  if (!is_unsigned_dtype(inputs[0].type.dtype))
    return invalid_input("{}: BitShift takes unsigned integers, found {}", node.describe(),
                         dtype_name(inputs[0].type.dtype));
  return infer_binary<Accepts::numeric>(node, inputs);
}

// PRelu: the slope broadcasts to X (unidirectionally from opset 7).
Types infer_prelu(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::signed_numeric));
  CP_TRY(check_same_dtype(node, inputs, 0, 2));
  const Shape slope = prelu_slope_shape(node, inputs[0].type.shape, inputs[1].type.shape);
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, std::vector<Shape>{inputs[0].type.shape, slope}));
  if (out != inputs[0].type.shape)
    return invalid_input("{}: slope of shape {} does not broadcast to X of shape {}", node.describe(),
                         shape_str(inputs[1].type.shape), shape_str(inputs[0].type.shape));
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_where(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 3, 3));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::boolean));
  CP_TRY(check_same_dtype(node, inputs, 1, 3));
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, input_shapes(inputs)));
  return std::vector<TensorType>{{inputs[1].type.dtype, out}};
}

// Sum, Mean: one or more float inputs, broadcast together.
Types infer_variadic_float(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 1, std::numeric_limits<size_t>::max()));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_all_present(node, inputs));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::floating));
  CP_TRY(check_same_dtype(node, inputs, 0, inputs.size()));
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, input_shapes(inputs)));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_cast_like(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_output_count(node, 1));
  return std::vector<TensorType>{{inputs[1].type.dtype, inputs[0].type.shape}};
}

Types infer_size(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  return std::vector<TensorType>{{DType::i64, {}}};
}

}  // namespace

// Range's length, max(ceil((limit - start) / delta), 0): shared with the
// kernel. start, limit and delta are scalars of one numeric type that must be
// constants (the length is the output's shape).
Result<int64_t> range_length(const Node& node, Inputs inputs) {
  static constexpr const char* kNames[] = {"start", "limit", "delta"};
  double v[3];
  for (size_t i = 0; i < 3; ++i) {
    const InferInput& in = inputs[i];
    if (shape_numel(in.type.shape) != 1 || in.type.shape.size() > 1)
      return invalid_input("{}: input #{} '{}' must be a scalar, found shape {}", node.describe(), i, kNames[i],
                           shape_str(in.type.shape));
    if (in.value == nullptr)
      return unsupported("{}: input #{} '{}' must be a constant because the output's length depends on it",
                         node.describe(), i, kNames[i]);
    v[i] = in.value->at_double(0);
  }
  if (v[2] == 0) return invalid_input("{}: 'delta' is 0", node.describe());
  const double n = std::ceil((v[1] - v[0]) / v[2]);
  if (!(n < static_cast<double>(kMaxTensorElements)))
    return invalid_input("{}: Range from {} to {} by {} is too long", node.describe(), v[0], v[1], v[2]);
  return n > 0 ? static_cast<int64_t>(n) : int64_t{0};
}

Shape prelu_slope_shape(const Node& node, const Shape& x, const Shape& slope) {
  // Before opset 7 a 1-D slope of more than one value is per channel (axis 1).
  if (node_opset(node) >= 7 || slope.size() != 1 || slope[0] == 1 || x.size() < 2) return slope;
  Shape s(x.size() - 1, 1);
  s[0] = slope[0];
  return s;
}

namespace {
Types infer_range(const Node& node, Inputs inputs) {
  CP_TRY(check_inputs(node, inputs, 3, 3));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::signed_numeric));
  CP_TRY(check_same_dtype(node, inputs, 0, 3));
  CP_ASSIGN_OR_RETURN(int64_t n, range_length(node, inputs));
  return std::vector<TensorType>{{inputs[0].type.dtype, {n}}};
}
}  // namespace

}  // namespace tensor_ops

void register_elementwise_ops(std::vector<OpDef>& table) {
  using namespace tensor_ops;
  using enum Accepts;
  const OpDef ops[] = {
      {"Exp", infer_unary<floating>},
      {"Log", infer_unary<floating>},
      {"Sin", infer_unary<floating>},
      {"Cos", infer_unary<floating>},
      {"Tan", infer_unary<floating>},
      {"Asin", infer_unary<floating>},
      {"Acos", infer_unary<floating>},
      {"Atan", infer_unary<floating>},
      {"Sinh", infer_unary<floating>},
      {"Cosh", infer_unary<floating>},
      {"Asinh", infer_unary<floating>},
      {"Acosh", infer_unary<floating>},
      {"Atanh", infer_unary<floating>},
      {"Erf", infer_unary<numeric>},
      {"Reciprocal", infer_unary<floating>},
      {"Floor", infer_unary<floating>},
      {"Ceil", infer_unary<floating>},
      {"Round", infer_unary<floating>},
      {"Softplus", infer_unary<floating>},
      {"Softsign", infer_unary<floating>},
      {"Elu", infer_unary_with_attrs<floating>},
      {"Selu", infer_unary_with_attrs<floating>},
      {"Celu", infer_unary_with_attrs<floating>},
      {"ThresholdedRelu", infer_unary_with_attrs<floating>},
      {"Shrink", infer_unary_with_attrs<numeric>},
      {"Neg", infer_unary<signed_numeric>},
      {"Abs", infer_unary<numeric>},
      {"Sign", infer_unary<numeric>},
      {"Not", infer_unary<boolean>},
      {"IsNaN", infer_unary<floating, DType::boolean>},
      {"IsInf", infer_is_inf},
      {"Equal", infer_equal},
      {"Less", infer_binary<numeric, DType::boolean>},
      {"Greater", infer_binary<numeric, DType::boolean>},
      {"LessOrEqual", infer_binary<numeric, DType::boolean>},
      {"GreaterOrEqual", infer_binary<numeric, DType::boolean>},
      {"And", infer_binary<boolean, DType::boolean>},
      {"Or", infer_binary<boolean, DType::boolean>},
      {"Xor", infer_binary<boolean, DType::boolean>},
      {"Mod", infer_mod},
      {"BitShift", infer_bit_shift},
      {"PRelu", infer_prelu},
      {"Where", infer_where},
      {"Sum", infer_variadic_float},
      {"Mean", infer_variadic_float},
      {"CastLike", infer_cast_like},
      {"Size", infer_size},
      {"Range", infer_range},
  };
  table.insert(table.end(), std::begin(ops), std::end(ops));
}

}  // namespace caliprox
