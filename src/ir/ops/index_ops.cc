// Shape/type inference of the index / data-movement family, part 1: ops
// whose output shape follows from the data's shape and constant shape-like
// inputs (Split, Tile, Expand, DepthToSpace, SpaceToDepth) or equals it
// (Trilu, EyeLike), and NonZero of a constant. Gathers, scatters and
// selections are in index_ops_gather.cc.
#include <limits>

#include "ir/ops/index_ops.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox {
namespace index_ops {

using namespace tensor_ops;

namespace {

using Types = Result<std::vector<TensorType>>;

Status check_one_output(const Node& node) {
  if (node.outputs.size() != 1)
    return invalid_input("{}: expects 1 output, found {}", node.describe(), node.outputs.size());
  return {};
}

// Split sizes: the 'split' attribute before opset 13, the optional input #1
// from 13; equal parts (one per output) when neither is given.
Result<std::vector<int64_t>> split_sizes(const Node& node, std::span<const InferInput> inputs, int64_t dim) {
  const size_t parts = node.outputs.size();
  std::optional<std::vector<int64_t>> sizes;
  if (node_opset(node) >= 13) {
    if (node.has("split"))
      return invalid_input("{}: from opset 13 'split' is input #1, not an attribute", node.describe());
    if (optional_input(inputs, 1) != nullptr) {
      CP_ASSIGN_OR_RETURN(auto v, constant_ints(node, inputs, 1, "split", "the output shapes"));
      sizes = std::move(v);
    }
  } else {
    if (inputs.size() > 1)
      return invalid_input("{}: before opset 13 'split' is an attribute; expects 1 input, found {}", node.describe(),
                           inputs.size());
    CP_ASSIGN_OR_RETURN(sizes, attr_ints(node, "split"));
  }
  if (!sizes) {
    if (dim % static_cast<int64_t>(parts) != 0)
      return invalid_input("{}: cannot split an axis of length {} into {} equal parts", node.describe(), dim, parts);
    return std::vector<int64_t>(parts, dim / static_cast<int64_t>(parts));
  }
  if (sizes->size() != parts)
    return invalid_input("{}: 'split' has {} sizes but the node has {} outputs", node.describe(), sizes->size(), parts);
  int64_t total = 0;
  for (int64_t s : *sizes) {
    if (s < 0) return invalid_input("{}: 'split' size {} is negative", node.describe(), s);
    total += s;
  }
  if (total != dim)
    return invalid_input("{}: 'split' sizes [{}] add up to {}, not the axis length {}", node.describe(),
                         fmt::join(*sizes, ", "), total, dim);
  return *sizes;
}

Types infer_split(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  if (node.outputs.empty()) return invalid_input("{}: expects at least 1 output", node.describe());
  const Shape& in = inputs[0].type.shape;
  if (in.empty()) return invalid_input("{}: cannot split a scalar (rank 0)", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t axis, axis_attr(node, 0, static_cast<int64_t>(in.size())));
  const auto ua = static_cast<size_t>(axis);
  CP_ASSIGN_OR_RETURN(auto sizes, split_sizes(node, inputs, in[ua]));
  std::vector<TensorType> out;
  for (int64_t s : sizes) {
    Shape shape = in;
    shape[ua] = s;
    out.push_back({inputs[0].type.dtype, shape});
  }
  return out;
}

Types infer_tile(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_one_output(node));
  const Shape& in = inputs[0].type.shape;
  CP_ASSIGN_OR_RETURN(auto repeats, constant_ints(node, inputs, 1, "repeats", "the output shape"));
  if (repeats.size() != in.size())
    return invalid_input("{}: 'repeats' has {} values but the input {} has rank {}", node.describe(), repeats.size(),
                         shape_str(in), in.size());
  Shape out = in;
  for (size_t a = 0; a < in.size(); ++a) {
    if (repeats[a] < 0) return invalid_input("{}: 'repeats'[{}] is {} (expected >= 0)", node.describe(), a, repeats[a]);
    out[a] *= repeats[a];
  }
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_expand(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_one_output(node));
  CP_ASSIGN_OR_RETURN(auto target, constant_ints(node, inputs, 1, "shape", "the output shape"));
  for (size_t i = 0; i < target.size(); ++i)
    if (target[i] < 0) return invalid_input("{}: 'shape'[{}] is {} (expected >= 0)", node.describe(), i, target[i]);
  const Shape shapes[] = {inputs[0].type.shape, Shape(target.begin(), target.end())};
  CP_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(node, shapes));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Result<int64_t> blocksize_attr(const Node& node) {
  if (!node.has("blocksize")) return invalid_input("{}: the attribute 'blocksize' is required", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t b, attr_int(node, "blocksize", 1));
  if (b < 1) return invalid_input("{}: 'blocksize' is {} (expected >= 1)", node.describe(), b);
  return b;
}

Types infer_depth_to_space(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_one_output(node));
  const Shape& in = inputs[0].type.shape;
  if (in.size() != 4) return invalid_input("{}: expects a 4-D input, found shape {}", node.describe(), shape_str(in));
  CP_ASSIGN_OR_RETURN(DepthToSpaceParams p, resolve_depth_to_space(node));
  const int64_t b = p.blocksize;
  if (in[1] % (b * b) != 0)
    return invalid_input("{}: {} channels are not a multiple of blocksize^2 = {}", node.describe(), in[1], b * b);
  return std::vector<TensorType>{{inputs[0].type.dtype, {in[0], in[1] / (b * b), in[2] * b, in[3] * b}}};
}

Types infer_space_to_depth(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_one_output(node));
  const Shape& in = inputs[0].type.shape;
  if (in.size() != 4) return invalid_input("{}: expects a 4-D input, found shape {}", node.describe(), shape_str(in));
  CP_ASSIGN_OR_RETURN(int64_t b, blocksize_attr(node));
  if (in[2] % b != 0 || in[3] % b != 0)
    return invalid_input("{}: height {} and width {} must be multiples of 'blocksize' {}", node.describe(), in[2],
                         in[3], b);
  return std::vector<TensorType>{{inputs[0].type.dtype, {in[0], in[1] * b * b, in[2] / b, in[3] / b}}};
}

// Trilu: k (input #1) does not change the shape; the kernel reads it.
Types infer_trilu(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  CP_TRY(check_one_output(node));
  const Shape& in = inputs[0].type.shape;
  if (in.size() < 2)
    return invalid_input("{}: expects an input of rank >= 2, found shape {}", node.describe(), shape_str(in));
  CP_TRY(attr_int(node, "upper", 1).status());
  if (const InferInput* k = optional_input(inputs, 1)) {
    if (k->type.dtype != DType::i64)
      return invalid_input("{}: input #1 'k' must be int64, found {}", node.describe(), dtype_name(k->type.dtype));
    if (shape_numel(k->type.shape) != 1)
      return invalid_input("{}: input #1 'k' must hold one value, found shape {}", node.describe(),
                           shape_str(k->type.shape));
  }
  return std::vector<TensorType>{inputs[0].type};
}

// NonZero: [rank, count] coordinates of the non-zero elements. The count
// depends on the values, and sessions plan static shapes: only a constant
// input (folded when the session is built) is supported.
Types infer_non_zero(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_one_output(node));
  if (!inputs[0].value)
    return unsupported("{}: NonZero's output shape depends on the values of '{}', which are known only at run time; "
                       "caliprox plans static shapes and runs NonZero on constants only",
                       node.describe(), node.inputs[0]);
  int64_t count = 0;
  for (int64_t i = 0; i < inputs[0].value->numel(); ++i) count += inputs[0].value->at_double(i) != 0 ? 1 : 0;
  return std::vector<TensorType>{{DType::i64, {static_cast<int64_t>(inputs[0].type.shape.size()), count}}};
}

Types infer_eye_like(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_one_output(node));
  const Shape& in = inputs[0].type.shape;
  if (in.size() != 2) return invalid_input("{}: expects a 2-D input, found shape {}", node.describe(), shape_str(in));
  CP_TRY(attr_int(node, "k", 0).status());
  DType dtype = inputs[0].type.dtype;
  if (node.has("dtype")) {
    CP_ASSIGN_OR_RETURN(int64_t code, attr_int(node, "dtype", 0));
    if (code <= 0 || code > std::numeric_limits<int>::max() || !dtype_known(static_cast<int>(code)))
      return unsupported("{}: 'dtype' ONNX element type {} is not supported (supported: float32, float64, float16, "
                         "int64, int32, int8, uint8, bool)",
                         node.describe(), code);
    dtype = static_cast<DType>(code);
  }
  return std::vector<TensorType>{{dtype, in}};
}

}  // namespace

Result<ScatterReduction> resolve_scatter_reduction(const Node& node) {
  if (node.op_type == "Scatter") return ScatterReduction::none;
  CP_ASSIGN_OR_RETURN(std::string r, attr_string(node, "reduction", "none"));
  if (r == "none") return ScatterReduction::none;
  if (r == "add") return ScatterReduction::add;
  if (r == "mul") return ScatterReduction::mul;
  if (r == "max" || r == "min")
    return unsupported("{}: 'reduction' {} (opset 18) is not supported (supported: none, add, mul)", node.describe(),
                       r);
  return invalid_input("{}: 'reduction' must be none, add or mul, found '{}'", node.describe(), r);
}

Result<DepthToSpaceParams> resolve_depth_to_space(const Node& node) {
  DepthToSpaceParams p;
  CP_ASSIGN_OR_RETURN(p.blocksize, blocksize_attr(node));
  CP_ASSIGN_OR_RETURN(std::string mode, attr_string(node, "mode", "DCR"));
  if (mode == "CRD") p.mode = DepthMode::crd;
  else if (mode != "DCR") return invalid_input("{}: 'mode' must be DCR or CRD, found '{}'", node.describe(), mode);
  return p;
}

}  // namespace index_ops

void register_index_ops(std::vector<OpDef>& table) {
  const OpDef ops[] = {
      {"Split", index_ops::infer_split},
      {"Tile", index_ops::infer_tile},
      {"Expand", index_ops::infer_expand},
      {"DepthToSpace", index_ops::infer_depth_to_space},
      {"SpaceToDepth", index_ops::infer_space_to_depth},
      {"Trilu", index_ops::infer_trilu},
      {"EyeLike", index_ops::infer_eye_like},
      {"NonZero", index_ops::infer_non_zero},
  };
  table.insert(table.end(), std::begin(ops), std::end(ops));
  index_ops::register_gather_ops(table);
}

}  // namespace caliprox
