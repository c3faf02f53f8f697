// Resolvers of the reduce/normalisation family shared by shape inference and
// the reference kernels.
#include <algorithm>
#include <numeric>

#include "ir/ops/reduce_ops_util.h"

namespace caliprox::reduce_ops {

using tensor_ops::attr_float;
using tensor_ops::attr_int;
using tensor_ops::attr_ints;
using tensor_ops::dims_product;
using tensor_ops::normalize_axes;
using tensor_ops::normalize_axis;

std::optional<ReduceKind> reduce_kind(std::string_view op_type) {
  static constexpr std::pair<std::string_view, ReduceKind> kKinds[] = {
      {"ReduceSum", ReduceKind::sum},
      {"ReduceMean", ReduceKind::mean},
      {"ReduceMax", ReduceKind::max},
      {"ReduceMin", ReduceKind::min},
      {"ReduceProd", ReduceKind::prod},
      {"ReduceL1", ReduceKind::l1},
      {"ReduceL2", ReduceKind::l2},
      {"ReduceLogSum", ReduceKind::log_sum},
      {"ReduceLogSumExp", ReduceKind::log_sum_exp},
      {"ReduceSumSquare", ReduceKind::sum_square},
  };
  for (const auto& [name, kind] : kKinds)
    if (name == op_type) return kind;
  return std::nullopt;
}

AxisBlocks axis_blocks(const Shape& shape, size_t axis) {
  AxisBlocks b;
  b.outer = dims_product(shape, 0, axis);
  b.axis_len = axis < shape.size() ? shape[axis] : 1;
  b.inner = dims_product(shape, axis + 1, shape.size());
  return b;
}

Result<ArgParams> resolve_arg(const Node& node, const Shape& shape) {
  const auto rank = static_cast<int64_t>(shape.size());
  if (rank == 0) return invalid_input("{}: needs an input of rank 1 or more", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t axis, tensor_ops::axis_attr(node, 0, rank));
  CP_ASSIGN_OR_RETURN(int64_t keepdims, attr_int(node, "keepdims", 1));
  CP_ASSIGN_OR_RETURN(int64_t select_last, attr_int(node, "select_last_index", 0));
  const auto a = static_cast<size_t>(axis);
  if (shape[a] == 0 && dims_product(shape, 0, a) * dims_product(shape, a + 1, shape.size()) > 0)
    return invalid_input("{}: axis {} is empty, so it has no {} index", node.describe(), axis,
                         node.op_type == "ArgMin" ? "smallest" : "largest");
  ArgParams p;
  p.blocks = axis_blocks(shape, a);
  p.select_last = select_last != 0;
  p.out_shape = shape;
  if (keepdims != 0) p.out_shape[a] = 1;
  else p.out_shape.erase(p.out_shape.begin() + axis);
  return p;
}

Result<int64_t> cumsum_axis(const Node& node, const Tensor& axis, int64_t rank) {
  if ((axis.dtype() != DType::i64 && axis.dtype() != DType::i32) || axis.numel() != 1 || axis.rank() > 1)
    return invalid_input("{}: input #1 'axis' must be an int32 or int64 scalar, found {} {}", node.describe(),
                         dtype_name(axis.dtype()), shape_str(axis.shape()));
  if (rank == 0) return invalid_input("{}: needs an input of rank 1 or more", node.describe());
  return normalize_axis(node, axis.to_int64_vector()[0], rank, "input #1 'axis'");
}

Result<TopKParams> resolve_topk(const Node& node, std::span<const InferInput> inputs) {
  const Shape& shape = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(shape.size());
  if (rank == 0) return invalid_input("{}: needs an input of rank 1 or more", node.describe());
  TopKParams p;
  if (tensor_ops::optional_input(inputs, 1)) {  // opset 10
    CP_ASSIGN_OR_RETURN(auto k, tensor_ops::constant_ints(node, inputs, 1, "K", "the output shape"));
    if (k.size() != 1)
      return invalid_input("{}: input #1 'K' must hold one value, found {}", node.describe(), k.size());
    p.k = k[0];
  } else {
    if (!node.has("k"))
      return invalid_input("{}: needs the attribute 'k' (or, from opset 10, input #1 'K')", node.describe());
    CP_ASSIGN_OR_RETURN(p.k, attr_int(node, "k", 0));
  }
  CP_ASSIGN_OR_RETURN(int64_t axis, tensor_ops::axis_attr(node, -1, rank));
  CP_ASSIGN_OR_RETURN(int64_t largest, attr_int(node, "largest", 1));
  CP_ASSIGN_OR_RETURN(int64_t sorted, attr_int(node, "sorted", 1));
  const auto a = static_cast<size_t>(axis);
  if (p.k < 0 || p.k > shape[a])
    return invalid_input("{}: k = {} is outside [0, {}] (the length of axis {})", node.describe(), p.k, shape[a], axis);
  p.blocks = axis_blocks(shape, a);
  p.largest = largest != 0;
  p.sorted = sorted != 0;
  p.out_shape = shape;
  p.out_shape[a] = p.k;
  return p;
}

Result<LayerNormParams> resolve_layer_norm(const Node& node, std::span<const InferInput> inputs) {
  const Shape& shape = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(shape.size());
  if (rank == 0) return invalid_input("{}: needs an input of rank 1 or more", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t axis, tensor_ops::axis_attr(node, -1, rank));
  CP_ASSIGN_OR_RETURN(float epsilon, attr_float(node, "epsilon", 1e-5f));
  CP_ASSIGN_OR_RETURN(int64_t stash, attr_int(node, "stash_type", 1));
  if (stash != static_cast<int64_t>(DType::f32))
    return unsupported("{}: stash_type {} is not supported (only 1, float32)", node.describe(), stash);
  LayerNormParams p;
  const auto a = static_cast<size_t>(axis);
  p.outer = dims_product(shape, 0, a);
  p.size = dims_product(shape, a, shape.size());
  p.epsilon = epsilon;
  p.stash = DType::f32;
  p.stat_shape = shape;
  for (size_t i = a; i < shape.size(); ++i) p.stat_shape[i] = 1;
  // Scale and B broadcast to X (unidirectionally: X's shape is the result).
  for (size_t i = 1; i < 3; ++i) {
    const InferInput* in = tensor_ops::optional_input(inputs, i);
    if (in == nullptr) continue;
    const Shape pair[] = {shape, in->type.shape};
    auto b = tensor_ops::broadcast_shapes(node, pair);
    if (!b.ok() || b.value() != shape)
      return invalid_input("{}: input #{} '{}' of shape {} does not broadcast to X's shape {}", node.describe(), i,
                           i == 1 ? "Scale" : "B", shape_str(in->type.shape), shape_str(shape));
  }
  return p;
}

Result<LrnParams> resolve_lrn(const Node& node, const Shape& shape) {
  if (shape.size() < 2) return invalid_input("{}: needs an input of rank 2 or more (N, C, ...)", node.describe());
  if (!node.has("size")) return invalid_input("{}: the attribute 'size' is required", node.describe());
  LrnParams p;
  CP_ASSIGN_OR_RETURN(p.size, attr_int(node, "size", 1));
  CP_ASSIGN_OR_RETURN(p.alpha, attr_float(node, "alpha", 1e-4f));
  CP_ASSIGN_OR_RETURN(p.beta, attr_float(node, "beta", 0.75f));
  CP_ASSIGN_OR_RETURN(p.bias, attr_float(node, "bias", 1.0f));
  if (p.size < 1) return invalid_input("{}: 'size' is {} (expected 1 or more)", node.describe(), p.size);
  return p;
}

Result<std::vector<int64_t>> resolve_mvn_axes(const Node& node, const Shape& shape) {
  CP_ASSIGN_OR_RETURN(auto given, attr_ints(node, "axes"));
  const std::vector<int64_t> axes = given ? *given : std::vector<int64_t>{0, 2, 3};
  CP_ASSIGN_OR_RETURN(auto norm, normalize_axes(node, axes, static_cast<int64_t>(shape.size()), "'axes'"));
  std::sort(norm.begin(), norm.end());
  return norm;
}

}  // namespace caliprox::reduce_ops
