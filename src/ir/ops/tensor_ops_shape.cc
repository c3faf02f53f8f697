// Shape/type inference of the tensor-op family, part 2: ops that move data
// without arithmetic (Concat, Reshape, Flatten, Transpose, Squeeze,
// Unsqueeze, Slice, Gather, Pad) and Resize.
#include <algorithm>
#include <limits>

#include "ir/ops/tensor_ops_util.h"

namespace caliprox::tensor_ops {
namespace {

using Types = Result<std::vector<TensorType>>;

Status check_single_output(const Node& node) {
  if (node.outputs.size() != 1)
    return invalid_input("{}: expects 1 output, found {}", node.describe(), node.outputs.size());
  return {};
}

Types infer_concat(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, std::numeric_limits<size_t>::max()));
  CP_TRY(check_single_output(node));
  if (!node.has("axis")) return invalid_input("{}: the attribute 'axis' is required", node.describe());
  const Shape& first = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(first.size());
  if (rank == 0) return invalid_input("{}: cannot concatenate scalars (rank 0)", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t a, axis_attr(node, 0, rank));
  Shape out = first;
  out[static_cast<size_t>(a)] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorType& t = inputs[i].type;
    if (!inputs[i].present()) return invalid_input("{}: input #{} was omitted", node.describe(), i);
    if (t.dtype != inputs[0].type.dtype)
      return invalid_input("{}: input #{} is {} but input #0 is {}", node.describe(), i, dtype_name(t.dtype),
                           dtype_name(inputs[0].type.dtype));
    bool compatible = t.shape.size() == first.size();
    for (size_t d = 0; compatible && d < first.size(); ++d)
      compatible = d == static_cast<size_t>(a) || t.shape[d] == first[d];
    if (!compatible)
      return invalid_input("{}: input #{} has shape {}, which does not match input #0 {} outside axis {}",
                           node.describe(), i, shape_str(t.shape), shape_str(first), a);
    out[static_cast<size_t>(a)] += t.shape[static_cast<size_t>(a)];
  }
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_reshape(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_single_output(node));
  const Shape& in = inputs[0].type.shape;
  CP_ASSIGN_OR_RETURN(std::vector<int64_t> target, constant_ints(node, inputs, 1, "shape", "the output shape"));
  CP_ASSIGN_OR_RETURN(int64_t allowzero, attr_int(node, "allowzero", 0));
  Shape out(target.size());
  int64_t infer_at = -1;
  int64_t known = 1;
  bool has_zero = false;
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t v = target[i];
    if (v == -1) {
      if (infer_at >= 0) return invalid_input("{}: 'shape' has more than one -1", node.describe());
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    if (v < -1) return invalid_input("{}: 'shape'[{}] is {} (expected >= -1)", node.describe(), i, v);
    if (v == 0) {
      has_zero = true;
      if (allowzero == 0) {
        if (i >= in.size())
          return invalid_input("{}: 'shape'[{}] is 0 (copy the input dimension) but the input {} has no dimension {}",
                               node.describe(), i, shape_str(in), i);
        v = in[i];
      }
    }
    out[i] = v;
    known *= v;
  }
  if (allowzero != 0 && has_zero && infer_at >= 0)
    return invalid_input("{}: with allowzero=1 'shape' cannot contain both 0 and -1", node.describe());
  const int64_t numel = shape_numel(in);
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0)
      return invalid_input("{}: cannot infer the -1 in 'shape' [{}] for an input of shape {}", node.describe(),
                           fmt::join(target, ", "), shape_str(in));
    out[static_cast<size_t>(infer_at)] = numel / known;
  }
  if (shape_numel(out) != numel)
    return invalid_input("{}: cannot reshape {} ({} elements) to {}", node.describe(), shape_str(in), numel,
                         shape_str(out));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_flatten(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_single_output(node));
  const Shape& in = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(in.size());
  CP_ASSIGN_OR_RETURN(int64_t axis, attr_int(node, "axis", 1));
  if (axis < -rank || axis > rank)
    return invalid_input("{}: 'axis' {} is out of range for an input of rank {} (expected {} to {})", node.describe(),
                         axis, rank, -rank, rank);
  const auto a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
  return std::vector<TensorType>{
      {inputs[0].type.dtype, {dims_product(in, 0, a), dims_product(in, a, in.size())}}};
}

Types infer_transpose(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_single_output(node));
  const Shape& in = inputs[0].type.shape;
  CP_ASSIGN_OR_RETURN(auto perm, resolve_perm(node, static_cast<int64_t>(in.size())));
  Shape out;
  for (int64_t p : perm) out.push_back(in[static_cast<size_t>(p)]);
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

// Squeeze/Unsqueeze axes: attribute before opset 13, input #1 after.
Result<std::optional<std::vector<int64_t>>> squeeze_axes(const Node& node, std::span<const InferInput> inputs) {
  if (optional_input(inputs, 1)) {
    CP_ASSIGN_OR_RETURN(auto axes, constant_ints(node, inputs, 1, "axes", "the output shape"));
    return std::optional(axes);
  }
  return attr_ints(node, "axes");
}

Types infer_squeeze(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  CP_TRY(check_single_output(node));
  const Shape& in = inputs[0].type.shape;
  CP_ASSIGN_OR_RETURN(auto axes, squeeze_axes(node, inputs));
  std::vector<bool> drop(in.size(), false);
  if (axes) {
    CP_ASSIGN_OR_RETURN(auto norm, normalize_axes(node, *axes, static_cast<int64_t>(in.size()), "'axes'"));
    for (int64_t a : norm) {
      if (in[static_cast<size_t>(a)] != 1)
        return invalid_input("{}: cannot squeeze axis {} of size {} (input shape {})", node.describe(), a,
                             in[static_cast<size_t>(a)], shape_str(in));
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (size_t a = 0; a < in.size(); ++a) drop[a] = in[a] == 1;
  }
  Shape out;
  for (size_t a = 0; a < in.size(); ++a)
    if (!drop[a]) out.push_back(in[a]);
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_unsqueeze(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  CP_TRY(check_single_output(node));
  const Shape& in = inputs[0].type.shape;
  CP_ASSIGN_OR_RETURN(auto axes, squeeze_axes(node, inputs));
  if (!axes) return invalid_input("{}: needs 'axes' (attribute before opset 13, input #1 after)", node.describe());
  const auto out_rank = static_cast<int64_t>(in.size() + axes->size());
  CP_ASSIGN_OR_RETURN(auto norm, normalize_axes(node, *axes, out_rank, "'axes'"));
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : norm) inserted[static_cast<size_t>(a)] = true;
  Shape out;
  size_t next = 0;
  for (size_t a = 0; a < inserted.size(); ++a) out.push_back(inserted[a] ? 1 : in[next++]);
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_slice(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 5));
  CP_TRY(check_single_output(node));
  if (inputs.size() == 2)
    return invalid_input("{}: expects 1 (before opset 10) or 3 to 5 inputs, found 2", node.describe());
  CP_ASSIGN_OR_RETURN(SliceParams p, resolve_slice(node, inputs));
  return std::vector<TensorType>{{inputs[0].type.dtype, p.out_shape}};
}

Types infer_gather(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_single_output(node));
  const Shape& data = inputs[0].type.shape;
  const Shape& indices = inputs[1].type.shape;
  if (inputs[1].type.dtype != DType::i64 && inputs[1].type.dtype != DType::i32)
    return invalid_input("{}: 'indices' must be int64 or int32, found {}", node.describe(),
                         dtype_name(inputs[1].type.dtype));
  if (data.empty()) return invalid_input("{}: cannot gather from a scalar (rank 0)", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t a, axis_attr(node, 0, static_cast<int64_t>(data.size())));
  const auto ua = static_cast<size_t>(a);
  Shape out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(ua));
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(ua) + 1, data.end());
  // Indices that are constants can be checked now rather than at run time.
  if (inputs[1].value != nullptr) {
    const int64_t dim = data[ua];
    for (int64_t i : inputs[1].value->to_int64_vector())
      if (i < -dim || i >= dim)
        return invalid_input("{}: index {} is out of range for axis {} of size {}", node.describe(), i, a, dim);
  }
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_pad(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 4));
  CP_TRY(check_single_output(node));
  CP_ASSIGN_OR_RETURN(PadParams p, resolve_pad(node, inputs));
  return std::vector<TensorType>{{inputs[0].type.dtype, p.out_shape}};
}

Types infer_resize(const Node& node, std::span<const InferInput> inputs) {
  // (X, scales) in opset 10; (X, roi, scales[, sizes]) after, roi optional.
  CP_TRY(check_inputs(node, inputs, 1, 4));
  CP_TRY(check_single_output(node));
  if (inputs.size() == 1 || (inputs.size() == 2 && !inputs[1].present()))
    return invalid_input("{}: needs 'scales' or 'sizes'", node.describe());
  CP_ASSIGN_OR_RETURN(ResizeParams p, resolve_resize(node, inputs));
  return std::vector<TensorType>{{inputs[0].type.dtype, p.out_shape}};
}

}  // namespace

void register_shape_ops(std::vector<OpDef>& table) {
  const OpDef ops[] = {
      {"Concat", infer_concat},       {"Reshape", infer_reshape}, {"Flatten", infer_flatten},
      {"Transpose", infer_transpose}, {"Squeeze", infer_squeeze}, {"Unsqueeze", infer_unsqueeze},
      {"Slice", infer_slice},         {"Gather", infer_gather},   {"Pad", infer_pad},
      {"Resize", infer_resize},
  };
  table.insert(table.end(), std::begin(ops), std::end(ops));
}

}  // namespace caliprox::tensor_ops
