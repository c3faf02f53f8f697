// Shape/type inference for the nn op family: Conv, ConvTranspose, Gemm,
// MatMul, BatchNormalization and pooling. Geometry rules (auto_pad, ceil_mode,
// output_shape) live in conv_geometry.cc, shared with the backends.
#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "ir/op_registry.h"
#include "ir/ops/conv_geometry.h"

namespace caliprox {

namespace {

using Inputs = std::span<const InferInput>;
using Outputs = Result<std::vector<TensorType>>;

bool is_float(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::f16; }

// Input `i` exists (and is not an omitted optional input).
bool has_input(Inputs in, size_t i) { return i < in.size() && in[i].present(); }

Status require_inputs(const Node& node, Inputs in, size_t min, size_t max) {
  if (in.size() < min || in.size() > max)
    return invalid_input("{}: expected {} to {} inputs, found {}", node.describe(), min, max, in.size());
  for (size_t i = 0; i < min; ++i)
    if (!in[i].present()) return invalid_input("{}: required input #{} is missing", node.describe(), i);
  return {};
}

Status require_outputs(const Node& node, size_t max) {
  if (node.outputs.empty() || node.outputs.size() > max)
    return invalid_input("{}: expected 1 to {} outputs, found {}", node.describe(), max, node.outputs.size());
  return {};
}

Status require_float(const Node& node, const InferInput& in, const char* what) {
  // Some of these ops accept integer types in ONNX: "this build cannot".
  if (!is_float(in.type.dtype))
    return unsupported("{}: {} must be a floating-point tensor, found {}", node.describe(), what,
                         dtype_name(in.type.dtype));
  return {};
}

Status require_same_dtype(const Node& node, const InferInput& ref, const InferInput& other, const char* what) {
  if (other.type.dtype != ref.type.dtype)
    return invalid_input("{}: {} must have the dtype of the first input ({}), found {}", node.describe(), what,
                         dtype_name(ref.type.dtype), dtype_name(other.type.dtype));
  return {};
}

Status require_shape(const Node& node, const InferInput& in, const Shape& expected, const char* what) {
  if (in.type.shape != expected)
    return invalid_input("{}: {} must have shape {}, found {}", node.describe(), what, shape_str(expected),
                         shape_str(in.type.shape));
  return {};
}

// Conv: X, W, optional B, and (fused residual) input #3 of the output's shape.
Outputs infer_conv(const Node& node, Inputs in) {
  const bool residual = node.attr_int(kAttrResidual, 0) == 1;
  CP_TRY(require_inputs(node, in, 2, residual ? 4 : 3));
  CP_TRY(require_outputs(node, 1));
  // Input #2 (bias) stays optional next to a fused residual.
  if (residual && !has_input(in, 3))
    return invalid_input("{}: {}=1 needs the residual tensor as input #3", node.describe(), kAttrResidual);
  CP_TRY(require_float(node, in[0], "input X"));
  CP_TRY(require_same_dtype(node, in[0], in[1], "weight W"));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, in[0].type.shape, in[1].type.shape));
  if (has_input(in, 2)) {
    CP_TRY(require_same_dtype(node, in[0], in[2], "bias B"));
    CP_TRY(require_shape(node, in[2], {g.c_out}, "bias B"));
  }
  const Shape out = g.output_shape();
  if (residual) {
    CP_TRY(require_same_dtype(node, in[0], in[3], "fused residual input #3"));
    CP_TRY(require_shape(node, in[3], out, "fused residual input #3"));
  }
  if (node.has(kAttrActivation)) {
    static constexpr std::string_view kKnown[] = {"Relu", "LeakyRelu", "Clip", "Sigmoid",
                                                  "HardSigmoid", "HardSwish", "Tanh"};
    const std::string act = node.attr_string(kAttrActivation, "");
    if (std::find(std::begin(kKnown), std::end(kKnown), act) == std::end(kKnown))
      return invalid_input("{}: {} must be one of {}, found '{}'", node.describe(), kAttrActivation,
                           fmt::join(kKnown, ", "), act);
  }
  return std::vector<TensorType>{{in[0].type.dtype, out}};
}

Outputs infer_conv_transpose(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 2, 3));
  CP_TRY(require_outputs(node, 1));
  CP_TRY(require_float(node, in[0], "input X"));
  CP_TRY(require_same_dtype(node, in[0], in[1], "weight W"));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_transpose_geometry(node, in[0].type.shape, in[1].type.shape));
  if (has_input(in, 2)) {
    CP_TRY(require_same_dtype(node, in[0], in[2], "bias B"));
    CP_TRY(require_shape(node, in[2], {g.c_out}, "bias B"));
  }
  return std::vector<TensorType>{{in[0].type.dtype, g.output_shape()}};
}

// Y = alpha * A' * B' + beta * C, C unidirectionally broadcast to [M, N].
Outputs infer_gemm(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 2, 3));
  CP_TRY(require_outputs(node, 1));
  CP_TRY(require_float(node, in[0], "input A"));
  CP_TRY(require_same_dtype(node, in[0], in[1], "input B"));
  const Shape& a = in[0].type.shape;
  const Shape& b = in[1].type.shape;
  if (a.size() != 2 || b.size() != 2)
    return invalid_input("{}: A and B must be matrices, found A {} and B {}", node.describe(), shape_str(a),
                         shape_str(b));
  const bool trans_a = node.attr_int("transA", 0) != 0;
  const bool trans_b = node.attr_int("transB", 0) != 0;
  const int64_t m = trans_a ? a[1] : a[0];
  const int64_t k = trans_a ? a[0] : a[1];
  const int64_t k_b = trans_b ? b[1] : b[0];
  const int64_t n = trans_b ? b[0] : b[1];
  if (k != k_b)
    return invalid_input("{}: inner dimensions differ: A{} {} and B{} {} give K = {} and {}", node.describe(),
                         trans_a ? "'" : "", shape_str(a), trans_b ? "'" : "", shape_str(b), k, k_b);
  if (has_input(in, 2)) {
    CP_TRY(require_same_dtype(node, in[0], in[2], "input C"));
    const Shape& c = in[2].type.shape;
    const Shape target{m, n};
    bool ok = c.size() <= 2;
    for (size_t i = 0; ok && i < c.size(); ++i) {
      const int64_t want = target[2 - c.size() + i];
      ok = c[i] == want || c[i] == 1;
    }
    if (!ok)
      return invalid_input("{}: C {} cannot be broadcast to the output shape {}", node.describe(), shape_str(c),
                           shape_str(target));
  }
  return std::vector<TensorType>{{in[0].type.dtype, {m, n}}};
}

Outputs infer_matmul(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 2, 2));
  CP_TRY(require_outputs(node, 1));
  CP_TRY(require_float(node, in[0], "input A"));
  CP_TRY(require_same_dtype(node, in[0], in[1], "input B"));
  Shape a = in[0].type.shape;
  Shape b = in[1].type.shape;
  if (a.empty() || b.empty())
    return invalid_input("{}: MatMul operands must have rank >= 1, found A {} and B {}", node.describe(),
                         shape_str(a), shape_str(b));
  // numpy.matmul: a 1-D A is a row vector, a 1-D B a column vector; the
  // added axis is removed from the result.
  const bool vec_a = a.size() == 1;
  const bool vec_b = b.size() == 1;
  if (vec_a) a.insert(a.begin(), 1);
  if (vec_b) b.push_back(1);
  if (a.back() != b[b.size() - 2])
    return invalid_input("{}: inner dimensions differ: A {} and B {}", node.describe(), shape_str(in[0].type.shape),
                         shape_str(in[1].type.shape));
  const size_t batch_rank = std::max(a.size(), b.size()) - 2;
  Shape out(batch_rank);
  for (size_t i = 0; i < batch_rank; ++i) {
    // Right-aligned batch axes; missing ones count as 1.
    const size_t from_end = batch_rank - i;  // 1 = the batch axis next to the matrix
    const int64_t da = from_end + 2 <= a.size() ? a[a.size() - 2 - from_end] : 1;
    const int64_t db = from_end + 2 <= b.size() ? b[b.size() - 2 - from_end] : 1;
    if (da != db && da != 1 && db != 1)
      return invalid_input("{}: batch dimensions of A {} and B {} do not broadcast", node.describe(),
                           shape_str(in[0].type.shape), shape_str(in[1].type.shape));
    out[i] = da == 1 ? db : da;
  }
  if (!vec_a) out.push_back(a[a.size() - 2]);
  if (!vec_b) out.push_back(b.back());
  return std::vector<TensorType>{{in[0].type.dtype, out}};
}

// Inference mode only: Y = scale * (X - mean) / sqrt(var + epsilon) + B.
Outputs infer_batch_norm(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 5, 5));
  CP_TRY(require_outputs(node, 5));
  if (node.attr_int("training_mode", 0) != 0)
    return unsupported("{}: training_mode=1 (batch statistics) is not supported; export the model in eval mode",
                       node.describe());
  if (node.attr_int("spatial", 1) != 1)
    return unsupported("{}: spatial=0 (per-activation statistics, opset < 9) is not supported", node.describe());
  for (size_t i = 1; i < node.outputs.size(); ++i)
    if (!node.outputs[i].empty())
      return unsupported("{}: output #{} ('{}') holds training statistics; only Y is supported", node.describe(), i,
                         node.outputs[i]);
  CP_TRY(require_float(node, in[0], "input X"));
  const Shape& x = in[0].type.shape;
  if (x.size() < 2)
    return invalid_input("{}: input X must have rank >= 2 ([N, C, ...]), found {}", node.describe(), shape_str(x));
  static constexpr const char* kNames[] = {"", "scale", "B", "input_mean", "input_var"};
  std::vector<TensorType> out{{in[0].type.dtype, x}};
  for (size_t i = 1; i < 5; ++i) {
    CP_TRY(require_float(node, in[i], kNames[i]));
    CP_TRY(require_shape(node, in[i], {x[1]}, kNames[i]));
  }
  for (size_t i = 1; i < node.outputs.size(); ++i) out.push_back({in[0].type.dtype, {x[1]}});
  return out;
}

Outputs infer_max_pool(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 1, 1));
  CP_TRY(require_outputs(node, 2));
  // Opset 12 added 8-bit integer MaxPool (quantized models).
  if (in[0].type.dtype != DType::u8 && in[0].type.dtype != DType::i8) CP_TRY(require_float(node, in[0], "input X"));
  CP_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(node, in[0].type.shape));
  std::vector<TensorType> out{{in[0].type.dtype, g.output_shape()}};
  if (node.outputs.size() > 1) out.push_back({DType::i64, g.output_shape()});
  return out;
}

Outputs infer_average_pool(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 1, 1));
  CP_TRY(require_outputs(node, 1));
  CP_TRY(require_float(node, in[0], "input X"));
  CP_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(node, in[0].type.shape));
  return std::vector<TensorType>{{in[0].type.dtype, g.output_shape()}};
}

// GlobalAveragePool / GlobalMaxPool: [N, C, D...] -> [N, C, 1...].
Outputs infer_global_pool(const Node& node, Inputs in) {
  CP_TRY(require_inputs(node, in, 1, 1));
  CP_TRY(require_outputs(node, 1));
  CP_TRY(require_float(node, in[0], "input X"));
  const Shape& x = in[0].type.shape;
  if (x.size() < 3)
    return invalid_input("{}: input X must have rank >= 3 ([N, C, spatial...]), found {}", node.describe(),
                         shape_str(x));
  for (size_t d = 2; d < x.size(); ++d)
    if (x[d] < 1) return invalid_input("{}: input X has an empty spatial axis: {}", node.describe(), shape_str(x));
  Shape out(x.size(), 1);
  out[0] = x[0];
  out[1] = x[1];
  return std::vector<TensorType>{{in[0].type.dtype, out}};
}

}  // namespace

void register_nn_ops(std::vector<OpDef>& table) {
  table.push_back({"Conv", infer_conv});
  table.push_back({"ConvTranspose", infer_conv_transpose});
  table.push_back({"Gemm", infer_gemm});
  table.push_back({"MatMul", infer_matmul});
  table.push_back({"BatchNormalization", infer_batch_norm});
  table.push_back({"MaxPool", infer_max_pool});
  table.push_back({"AveragePool", infer_average_pool});
  table.push_back({"GlobalAveragePool", infer_global_pool});
  table.push_back({"GlobalMaxPool", infer_global_pool});
}

}  // namespace caliprox
