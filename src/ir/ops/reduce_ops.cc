// Shape/type inference of the reduce/normalisation family, part 1: the
// Reduce ops (ReduceSum ... ReduceMean), ArgMax/ArgMin, CumSum and TopK. The
// normalisations and the Softmax-like ops are in reduce_ops_norm.cc; the
// resolvers shared with the reference kernels in reduce_ops_params.cc.
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
using tensor_ops::optional_input;

// ReduceX(data[, axes]): axes are an attribute before opset 13 (ReduceSum)
// or 18 (the others), then an optional input; resolve_reduce reads both.
Types infer_reduce(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_ASSIGN_OR_RETURN(tensor_ops::ReduceParams p, tensor_ops::resolve_reduce(node, inputs));
  return std::vector<TensorType>{{inputs[0].type.dtype, p.out_shape}};
}

Types infer_arg(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_ASSIGN_OR_RETURN(ArgParams p, resolve_arg(node, inputs[0].type.shape));
  return std::vector<TensorType>{{DType::i64, p.out_shape}};
}

// CumSum(x, axis): the axis only picks the direction of the sums, so it may
// be a run-time value; a constant one is checked here.
Types infer_cumsum(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 2));
  CP_TRY(check_output_count(node, 1));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  const InferInput& axis = inputs[1];
  if ((axis.type.dtype != DType::i64 && axis.type.dtype != DType::i32) || shape_numel(axis.type.shape) != 1 ||
      axis.type.shape.size() > 1)
    return invalid_input("{}: input #1 'axis' must be an int32 or int64 scalar, found {} {}", node.describe(),
                         dtype_name(axis.type.dtype), shape_str(axis.type.shape));
  const auto rank = static_cast<int64_t>(inputs[0].type.shape.size());
  if (axis.value != nullptr) CP_TRY(cumsum_axis(node, *axis.value, rank).status());
  else if (rank == 0) return invalid_input("{}: needs an input of rank 1 or more", node.describe());
  CP_TRY(tensor_ops::attr_int(node, "exclusive", 0).status());
  CP_TRY(tensor_ops::attr_int(node, "reverse", 0).status());
  return std::vector<TensorType>{inputs[0].type};
}

// TopK(X[, K]) -> Values (X's type), Indices (int64), both of one shape.
Types infer_topk(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  CP_TRY(check_output_count(node, 2));
  CP_TRY(check_dtype(node, inputs[0], 0, Accepts::numeric));
  CP_ASSIGN_OR_RETURN(TopKParams p, resolve_topk(node, inputs));
  return std::vector<TensorType>{{inputs[0].type.dtype, p.out_shape}, {DType::i64, p.out_shape}};
}

}  // namespace
}  // namespace reduce_ops

void register_reduce_ops(std::vector<OpDef>& table) {
  using namespace reduce_ops;
  // One op per line.
  // clang-format off
  const OpDef ops[] = {
      {"ReduceSum", infer_reduce},
      {"ReduceMean", infer_reduce},
      {"ReduceMax", infer_reduce},
      {"ReduceMin", infer_reduce},
      {"ReduceProd", infer_reduce},
      {"ReduceL1", infer_reduce},
      {"ReduceL2", infer_reduce},
      {"ReduceLogSum", infer_reduce},
      {"ReduceLogSumExp", infer_reduce},
      {"ReduceSumSquare", infer_reduce},
      {"ArgMax", infer_arg},
      {"ArgMin", infer_arg},
      {"CumSum", infer_cumsum},
      {"TopK", infer_topk},
  };
  // clang-format on
  table.insert(table.end(), std::begin(ops), std::end(ops));
  register_norm_ops(table);
}

}  // namespace caliprox
