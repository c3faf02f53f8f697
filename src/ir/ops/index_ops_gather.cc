// Shape/type inference of the index / data-movement family, part 2: ops
// driven by index tensors (GatherElements, GatherND, ScatterElements,
// Scatter, ScatterND, OneHot, ReverseSequence) and Compress, whose output
// length is its (constant) condition's count of true values.
#include "ir/ops/index_ops.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::index_ops {

using namespace tensor_ops;

namespace {

using Types = Result<std::vector<TensorType>>;

Status check_one_output(const Node& node) {
  if (node.outputs.size() != 1)
    return invalid_input("{}: expects 1 output, found {}", node.describe(), node.outputs.size());
  return {};
}

Status check_index_dtype(const Node& node, const InferInput& in, size_t i, std::string_view name) {
  if (in.type.dtype != DType::i64 && in.type.dtype != DType::i32)
    return invalid_input("{}: input #{} '{}' must be int64 or int32, found {}", node.describe(), i, name,
                         dtype_name(in.type.dtype));
  return {};
}

// Constant indices are checked now rather than at run time: each in
// [-dim, dim) along the axis it indexes.
Status check_constant_indices(const Node& node, const InferInput& indices, int64_t dim, int64_t axis) {
  if (indices.value == nullptr) return {};
  for (int64_t i : indices.value->to_int64_vector())
    if (i < -dim || i >= dim)
      return invalid_input("{}: index {} is out of range for axis {} of size {}", node.describe(), i, axis, dim);
  return {};
}

// GatherElements and ScatterElements/Scatter: indices of the data's rank,
// no longer than the data on the axes other than `axis`.
Result<int64_t> check_elements_indices(const Node& node, std::span<const InferInput> inputs) {
  const Shape& data = inputs[0].type.shape;
  const Shape& indices = inputs[1].type.shape;
  CP_TRY(check_index_dtype(node, inputs[1], 1, "indices"));
  if (data.empty()) return invalid_input("{}: the data cannot be a scalar (rank 0)", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t axis, axis_attr(node, 0, static_cast<int64_t>(data.size())));
  bool fits = indices.size() == data.size();
  for (size_t d = 0; fits && d < data.size(); ++d) fits = d == static_cast<size_t>(axis) || indices[d] <= data[d];
  if (!fits)
    return invalid_input("{}: 'indices' {} must have the rank of the data {} and fit in it outside axis {}",
                         node.describe(), shape_str(indices), shape_str(data), axis);
  CP_TRY(check_constant_indices(node, inputs[1], data[static_cast<size_t>(axis)], axis));
  return axis;
}

Types infer_gather_elements(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_one_output(node));
  CP_TRY(check_elements_indices(node, inputs).status());
  return std::vector<TensorType>{{inputs[0].type.dtype, inputs[1].type.shape}};
}

Types infer_scatter_elements(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 3, 3));
  CP_TRY(check_one_output(node));
  CP_TRY(check_elements_indices(node, inputs).status());
  CP_TRY(resolve_scatter_reduction(node).status());
  if (inputs[2].type != TensorType{inputs[0].type.dtype, inputs[1].type.shape})
    return invalid_input("{}: 'updates' is {} {} but must be {} of the indices' shape {}", node.describe(),
                         dtype_name(inputs[2].type.dtype), shape_str(inputs[2].type.shape),
                         dtype_name(inputs[0].type.dtype), shape_str(inputs[1].type.shape));
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_gather_nd(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_one_output(node));
  CP_TRY(check_index_dtype(node, inputs[1], 1, "indices"));
  const Shape& data = inputs[0].type.shape;
  const Shape& indices = inputs[1].type.shape;
  CP_ASSIGN_OR_RETURN(int64_t b, attr_int(node, "batch_dims", 0));
  const auto r = static_cast<int64_t>(data.size());
  const auto q = static_cast<int64_t>(indices.size());
  if (r < 1 || q < 1) return invalid_input("{}: data and indices must have rank >= 1", node.describe());
  if (b < 0 || b >= std::min(r, q))
    return invalid_input("{}: 'batch_dims' {} must be in [0, {})", node.describe(), b, std::min(r, q));
  const int64_t m = indices.back();
  if (m < 1 || m > r - b)
    return invalid_input("{}: the last dimension of 'indices' {} must be in [1, {}] (data {}, batch_dims {})",
                         node.describe(), m, r - b, shape_str(data), b);
  for (size_t d = 0; d < static_cast<size_t>(b); ++d)
    if (data[d] != indices[d])
      return invalid_input("{}: the batch dimensions of the data {} and 'indices' {} differ", node.describe(),
                           shape_str(data), shape_str(indices));
  Shape out(indices.begin(), indices.end() - 1);
  out.insert(out.end(), data.begin() + b + m, data.end());
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_scatter_nd(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 3, 3));
  CP_TRY(check_one_output(node));
  CP_TRY(check_index_dtype(node, inputs[1], 1, "indices"));
  CP_TRY(resolve_scatter_reduction(node).status());
  const Shape& data = inputs[0].type.shape;
  const Shape& indices = inputs[1].type.shape;
  if (data.empty() || indices.empty())
    return invalid_input("{}: data and indices must have rank >= 1", node.describe());
  const int64_t m = indices.back();
  if (m < 1 || m > static_cast<int64_t>(data.size()))
    return invalid_input("{}: the last dimension of 'indices' {} must be in [1, {}]", node.describe(), m, data.size());
  Shape expected(indices.begin(), indices.end() - 1);
  expected.insert(expected.end(), data.begin() + m, data.end());
  if (inputs[2].type != TensorType{inputs[0].type.dtype, expected})
    return invalid_input("{}: 'updates' is {} {} but must be {} {}", node.describe(), dtype_name(inputs[2].type.dtype),
                         shape_str(inputs[2].type.shape), dtype_name(inputs[0].type.dtype), shape_str(expected));
  return std::vector<TensorType>{inputs[0].type};
}

// OneHot's depth: a one-element numeric input, cast to int64 (floats too).
Result<int64_t> one_hot_depth(const Node& node, std::span<const InferInput> inputs) {
  const InferInput& d = inputs[1];
  if (shape_numel(d.type.shape) != 1 || d.type.shape.size() > 1)
    return invalid_input("{}: input #1 'depth' must be a scalar or hold one value, found shape {}", node.describe(),
                         shape_str(d.type.shape));
  int64_t depth = 0;
  if (is_float_dtype(d.type.dtype)) {
    CP_ASSIGN_OR_RETURN(auto v, constant_floats(node, inputs, 1, "depth", "the output shape"));
    depth = static_cast<int64_t>(v[0]);
  } else if (is_integer_dtype(d.type.dtype)) {
    if (d.value == nullptr)
      return unsupported("{}: input #1 'depth' must be a constant (initializer or computable from constants) "
                         "because the output shape depends on its value",
                         node.describe());
    depth = d.value->to_int64_vector()[0];
  } else {
    return invalid_input("{}: input #1 'depth' must be numeric, found {}", node.describe(), dtype_name(d.type.dtype));
  }
  if (depth < 0) return invalid_input("{}: 'depth' is {} (expected >= 0)", node.describe(), depth);
  return depth;
}

Types infer_one_hot(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 3, 3));
  CP_TRY(check_one_output(node));
  const DType index_type = inputs[0].type.dtype;
  if (!is_float_dtype(index_type) && !is_integer_dtype(index_type))
    return invalid_input("{}: input #0 'indices' must be numeric, found {}", node.describe(), dtype_name(index_type));
  if (inputs[2].type.shape != Shape{2})
    return invalid_input("{}: input #2 'values' must be [off_value, on_value] (shape [2]), found shape {}",
                         node.describe(), shape_str(inputs[2].type.shape));
  CP_ASSIGN_OR_RETURN(int64_t depth, one_hot_depth(node, inputs));
  Shape out = inputs[0].type.shape;
  CP_ASSIGN_OR_RETURN(int64_t axis, resolve_one_hot_axis(node, static_cast<int64_t>(out.size()) + 1));
  out.insert(out.begin() + axis, depth);
  return std::vector<TensorType>{{inputs[2].type.dtype, out}};
}

Types infer_reverse_sequence(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_one_output(node));
  const Shape& in = inputs[0].type.shape;
  if (in.size() < 2)
    return invalid_input("{}: expects an input of rank >= 2, found shape {}", node.describe(), shape_str(in));
  CP_ASSIGN_OR_RETURN(int64_t batch_axis, attr_int(node, "batch_axis", 1));
  CP_ASSIGN_OR_RETURN(int64_t time_axis, attr_int(node, "time_axis", 0));
  if ((batch_axis != 0 && batch_axis != 1) || (time_axis != 0 && time_axis != 1) || batch_axis == time_axis)
    return invalid_input("{}: 'batch_axis' {} and 'time_axis' {} must be 0 and 1 in some order", node.describe(),
                         batch_axis, time_axis);
  if (inputs[1].type.dtype != DType::i64 || inputs[1].type.shape != Shape{in[static_cast<size_t>(batch_axis)]})
    return invalid_input("{}: 'sequence_lens' must be int64 of shape [{}], found {} {}", node.describe(),
                         in[static_cast<size_t>(batch_axis)], dtype_name(inputs[1].type.dtype),
                         shape_str(inputs[1].type.shape));
  const int64_t time_len = in[static_cast<size_t>(time_axis)];
  if (inputs[1].value != nullptr)
    for (int64_t len : inputs[1].value->to_int64_vector())
      if (len < 0 || len > time_len)
        return invalid_input("{}: sequence length {} is outside [0, {}]", node.describe(), len, time_len);
  return std::vector<TensorType>{inputs[0].type};
}

Types infer_compress(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_one_output(node));
  CP_ASSIGN_OR_RETURN(CompressParams p, resolve_compress(node, inputs));
  int64_t kept = 0;
  for (bool k : p.keep) kept += k ? 1 : 0;
  Shape out = {kept};
  if (p.axis >= 0) {
    out = inputs[0].type.shape;
    out[static_cast<size_t>(p.axis)] = kept;
  }
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

}  // namespace

Result<int64_t> resolve_one_hot_axis(const Node& node, int64_t out_rank) {
  CP_ASSIGN_OR_RETURN(int64_t axis, attr_int(node, "axis", -1));
  return normalize_axis(node, axis, out_rank, "'axis'");
}

Result<CompressParams> resolve_compress(const Node& node, std::span<const InferInput> inputs) {
  const InferInput& cond = inputs[1];
  if (cond.type.dtype != DType::boolean || cond.type.shape.size() != 1)
    return invalid_input("{}: input #1 'condition' must be a 1-D bool tensor, found {} {}", node.describe(),
                         dtype_name(cond.type.dtype), shape_str(cond.type.shape));
  if (cond.value == nullptr)
    return unsupported("{}: input #1 'condition' must be a constant (initializer or computable from constants) "
                       "because the output shape is its count of true values",
                       node.describe());
  const Shape& in = inputs[0].type.shape;
  CompressParams p;
  int64_t len = shape_numel(in);
  if (node.has("axis")) {
    CP_ASSIGN_OR_RETURN(p.axis, axis_attr(node, 0, static_cast<int64_t>(in.size())));
    len = in[static_cast<size_t>(p.axis)];
  }
  // A condition shorter than the axis drops the rest; a longer one may only
  // have false past its end.
  p.keep.assign(static_cast<size_t>(len), false);
  const std::vector<double> values = cond.value->to_double_vector();
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] == 0) continue;
    if (static_cast<int64_t>(i) >= len)
      return invalid_input("{}: 'condition' selects index {} but the {} has length {}", node.describe(), i,
                           p.axis >= 0 ? "axis" : "flattened input", len);
    p.keep[i] = true;
  }
  return p;
}

void register_gather_ops(std::vector<OpDef>& table) {
  const OpDef ops[] = {
      {"GatherElements", infer_gather_elements},
      {"ScatterElements", infer_scatter_elements},
      {"Scatter", infer_scatter_elements},
      {"GatherND", infer_gather_nd},
      {"ScatterND", infer_scatter_nd},
      {"OneHot", infer_one_hot},
      {"ReverseSequence", infer_reverse_sequence},
      {"Compress", infer_compress},
  };
  table.insert(table.end(), std::begin(ops), std::end(ops));
}

}  // namespace caliprox::index_ops
