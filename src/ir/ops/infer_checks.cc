#include "ir/ops/infer_checks.h"

#include <algorithm>
#include <iterator>
#include <string_view>

#include "ir/ops/tensor_ops_util.h"

namespace caliprox::tensor_ops {

namespace {
bool accepted(DType t, Accepts accepts) {
  switch (accepts) {
    case Accepts::any: return true;
    case Accepts::numeric: return is_float_dtype(t) || is_integer_dtype(t);
    case Accepts::floating: return is_float_dtype(t);
    case Accepts::signed_numeric: return is_float_dtype(t) || (is_integer_dtype(t) && !is_unsigned_dtype(t));
    case Accepts::boolean: return t == DType::boolean;
  }
  return false;
}

std::string_view accepted_name(Accepts accepts) {
  switch (accepts) {
    case Accepts::any: return "any type";
    case Accepts::numeric: return "a numeric type";
    case Accepts::floating: return "a floating-point type";
    case Accepts::signed_numeric: return "a signed numeric type";
    case Accepts::boolean: return "bool";
  }
  return "?";
}
}  // namespace

Status check_dtype(const Node& node, const InferInput& in, size_t index, Accepts accepts) {
  if (!accepted(in.type.dtype, accepts))
    return invalid_input("{}: input #{} must be {}, found {}", node.describe(), index, accepted_name(accepts),
                         dtype_name(in.type.dtype));
  return {};
}

Status check_same_dtype(const Node& node, std::span<const InferInput> inputs, size_t first, size_t last) {
  for (size_t i = first; i < last && i < inputs.size(); ++i)
    if (inputs[i].present() && inputs[i].type.dtype != inputs[first].type.dtype)
      return invalid_input("{}: input #{} is {} but input #{} is {} (they must have the same type)", node.describe(), i,
                           dtype_name(inputs[i].type.dtype), first, dtype_name(inputs[first].type.dtype));
  return {};
}

Status check_output_count(const Node& node, size_t max_count) {
  if (node.outputs.empty() || node.outputs.size() > max_count)
    return invalid_input("{}: expects 1 to {} output(s), found {}", node.describe(), max_count, node.outputs.size());
  return {};
}

Status check_all_present(const Node& node, std::span<const InferInput> inputs) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i].present()) return invalid_input("{}: input #{} was omitted", node.describe(), i);
  return {};
}

std::vector<Shape> input_shapes(std::span<const InferInput> inputs) {
  std::vector<Shape> shapes;
  for (const auto& in : inputs) shapes.push_back(in.type.shape);
  return shapes;
}

Status check_legacy_broadcast(const Node& node, std::span<const InferInput> inputs) {
  static constexpr std::string_view kLegacyOps[] = {"Add", "Sub", "Mul",   "Div",     "Pow", "And",
                                                    "Or",  "Xor", "Equal", "Greater", "Less"};
  if (node_opset(node) >= 7 || inputs.size() != 2) return {};
  if (std::find(std::begin(kLegacyOps), std::end(kLegacyOps), node.op_type) == std::end(kLegacyOps)) return {};
  const Shape& a = inputs[0].type.shape;
  const Shape& b = inputs[1].type.shape;
  CP_ASSIGN_OR_RETURN(int64_t broadcast, attr_int(node, "broadcast", 0));
  if (broadcast == 0) {
    if (a != b)
      return invalid_input("{}: shapes {} and {} differ and broadcast=0 (opset {} broadcasts only with broadcast=1)",
                           node.describe(), shape_str(a), shape_str(b), node_opset(node));
    return {};
  }
  const auto rank_a = static_cast<int64_t>(a.size());
  const auto rank_b = static_cast<int64_t>(b.size());
  CP_ASSIGN_OR_RETURN(int64_t axis, attr_int(node, "axis", rank_a - rank_b));
  if (axis < 0) axis += rank_a;
  if (axis < 0 || axis + rank_b > rank_a)
    return invalid_input("{}: B of shape {} does not fit A of shape {} from axis {}", node.describe(), shape_str(b),
                         shape_str(a), axis);
  if (axis + rank_b != rank_a)
    return unsupported("{}: legacy broadcasting of B {} from axis {} of A {} (opset {}) is not supported: only "
                       "alignments with A's trailing dimensions are; re-export the model at opset 7 or newer",
                       node.describe(), shape_str(b), axis, shape_str(a), node_opset(node));
  return {};
}

}  // namespace caliprox::tensor_ops
