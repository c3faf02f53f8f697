#pragma once
// Semantics shared by the reduce/normalisation op family's shape inference
// (ir/ops/reduce_ops*.cc) and its reference kernels
// (backends/reference/reduce_*.cc): the Reduce ops, ArgMax/ArgMin, CumSum,
// TopK, LogSoftmax/Hardmax and the normalisations (LayerNormalization,
// InstanceNormalization, LRN, MeanVarianceNormalization). The Reduce ops'
// axes come from tensor_ops::resolve_reduce and the Softmax-like ops' layout
// from tensor_ops::resolve_softmax, so every op that reduces axes or works
// along Softmax's axis reads them one way.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/ops/tensor_ops_util.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::reduce_ops {

// What a Reduce op computes over each group of reduced elements. The value
// of an empty group follows ONNX (opset 18): sum, l1, l2, sum_square 0, prod
// 1, max -inf (the type's lowest for integers), min +inf (its highest),
// log_sum and log_sum_exp -inf, mean NaN (0 / 0).
enum class ReduceKind { sum, mean, max, min, prod, l1, l2, log_sum, log_sum_exp, sum_square };
// nullopt for an op type outside the Reduce family.
std::optional<ReduceKind> reduce_kind(std::string_view op_type);

// A row-major shape seen as [outer, axis_len, inner] around one axis.
struct AxisBlocks {
  int64_t outer = 1;
  int64_t axis_len = 1;
  int64_t inner = 1;
};
AxisBlocks axis_blocks(const Shape& shape, size_t axis);

// ArgMax / ArgMin: the axis (attribute, default 0), and the int64 output's
// shape (the axis kept as 1 or dropped).
struct ArgParams {
  AxisBlocks blocks;
  bool select_last = false;  // ties go to the last index (opset 12)
  Shape out_shape;
};
Result<ArgParams> resolve_arg(const Node& node, const Shape& shape);

// CumSum's axis: a scalar (or one-element) int32/int64 tensor, in
// [-rank, rank). The kernel reads it at run time when it is not a constant.
Result<int64_t> cumsum_axis(const Node& node, const Tensor& axis, int64_t rank);

// TopK: k from the attribute (opset < 10) or the constant input #1, the axis
// (default -1), and the shape of both outputs.
struct TopKParams {
  AxisBlocks blocks;
  int64_t k = 0;
  bool largest = true;
  bool sorted = true;
  Shape out_shape;
};
Result<TopKParams> resolve_topk(const Node& node, std::span<const InferInput> inputs);

// LayerNormalization (opset 17): X seen as [outer, size] where size is the
// product of the axes from `axis` on; Mean and InvStdDev have X's shape with
// those axes 1 and the stash type (float32, the only one supported).
struct LayerNormParams {
  int64_t outer = 1;
  int64_t size = 1;
  float epsilon = 1e-5f;
  DType stash = DType::f32;
  Shape stat_shape;
};
Result<LayerNormParams> resolve_layer_norm(const Node& node, std::span<const InferInput> inputs);

// LRN: the window over channels is [c - (size - 1) / 2, c + ceil((size - 1) / 2)].
struct LrnParams {
  float alpha = 1e-4f;
  float beta = 0.75f;
  float bias = 1.0f;
  int64_t size = 1;
};
Result<LrnParams> resolve_lrn(const Node& node, const Shape& shape);

// MeanVarianceNormalization: the sorted, normalised axes (default 0, 2, 3).
Result<std::vector<int64_t>> resolve_mvn_axes(const Node& node, const Shape& shape);
// The epsilon MeanVarianceNormalization's ONNX function adds to the
// standard deviation (not to the variance).
inline constexpr double kMvnEpsilon = 1e-9;

// Registers the normalisation ops (reduce_ops_norm.cc); called by
// register_reduce_ops().
void register_norm_ops(std::vector<OpDef>& table);

}  // namespace caliprox::reduce_ops
