// Shape/type inference for the quantized ops (pre-quantized models):
// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
// ConvInteger, QLinearMatMul and QLinearConv, and the resolvers of
// quant_params.h that the reference kernels share.
#include <algorithm>
#include <string>

#include "ir/ops/conv_geometry.h"
#include "ir/ops/quant_params.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox {

namespace quant {

using tensor_ops::node_opset;

Result<LinearQuantParams> resolve_linear_quant(const Node& node, std::span<const InferInput> inputs) {
  const Shape& x = inputs[0].type.shape;
  const Shape& scale = inputs[1].type.shape;
  const InferInput* zp = tensor_ops::optional_input(inputs, 2);
  if (zp != nullptr && zp->type.shape != scale)
    return invalid_input("{}: the zero point's shape {} differs from the scale's {}", node.describe(),
                         shape_str(zp->type.shape), shape_str(scale));
  LinearQuantParams p;
  p.inner = shape_numel(x);
  if (scale.size() <= 1 && shape_numel(scale) == 1) return p;
  if (node_opset(node) < 13 || scale.size() != 1)
    return invalid_input("{}: the scale must be a scalar{}, found shape {}", node.describe(),
                         node_opset(node) < 13 ? " before opset 13" : " or a 1-D tensor", shape_str(scale));
  CP_ASSIGN_OR_RETURN(const int64_t axis, tensor_ops::axis_attr(node, 1, static_cast<int64_t>(x.size())));
  if (scale[0] != x[static_cast<size_t>(axis)])
    return invalid_input("{}: a 1-D scale needs one value per index of axis {} ({}), found {}", node.describe(), axis,
                         x[static_cast<size_t>(axis)], scale[0]);
  p.per_axis = true;
  p.outer = tensor_ops::dims_product(x, 0, static_cast<size_t>(axis));
  p.channels = scale[0];
  p.inner = tensor_ops::dims_product(x, static_cast<size_t>(axis) + 1, x.size());
  return p;
}

Result<MatMulGeometry> matmul_geometry(const Node& node, const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty())
    return invalid_input("{}: operands must have rank >= 1, found A {} and B {}", node.describe(), shape_str(a_in),
                         shape_str(b_in));
  // numpy.matmul: a 1-D A is a row vector, a 1-D B a column vector; the added
  // axis is removed from the result.
  Shape a = a_in, b = b_in;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  MatMulGeometry g;
  g.m = a[a.size() - 2];
  g.k = a.back();
  g.n = b.back();
  if (b[b.size() - 2] != g.k)
    return invalid_input("{}: inner dimensions differ: A {} and B {}", node.describe(), shape_str(a_in),
                         shape_str(b_in));
  const size_t batch_rank = std::max(a.size(), b.size()) - 2;
  Shape a_batch(batch_rank, 1), b_batch(batch_rank, 1), out_batch(batch_rank);
  std::copy(a.begin(), a.end() - 2, a_batch.end() - static_cast<std::ptrdiff_t>(a.size() - 2));
  std::copy(b.begin(), b.end() - 2, b_batch.end() - static_cast<std::ptrdiff_t>(b.size() - 2));
  std::vector<int64_t> a_strides(batch_rank), b_strides(batch_rank);
  int64_t a_step = g.m * g.k, b_step = g.k * g.n;
  for (size_t i = batch_rank; i-- > 0;) {
    if (a_batch[i] != b_batch[i] && a_batch[i] != 1 && b_batch[i] != 1)
      return invalid_input("{}: batch dimensions of A {} and B {} do not broadcast", node.describe(), shape_str(a_in),
                           shape_str(b_in));
    out_batch[i] = std::max(a_batch[i], b_batch[i]);
    a_strides[i] = a_batch[i] == 1 ? 0 : a_step;
    b_strides[i] = b_batch[i] == 1 ? 0 : b_step;
    a_step *= a_batch[i];
    b_step *= b_batch[i];
  }
  const int64_t batches = shape_numel(out_batch);
  for (int64_t flat = 0; flat < batches; ++flat) {
    int64_t rest = flat, a_off = 0, b_off = 0;
    for (size_t i = batch_rank; i-- > 0;) {
      const int64_t idx = rest % out_batch[i];
      rest /= out_batch[i];
      a_off += idx * a_strides[i];
      b_off += idx * b_strides[i];
    }
    g.a_offsets.push_back(a_off);
    g.b_offsets.push_back(b_off);
  }
  g.out_shape = out_batch;
  if (a_in.size() > 1) g.out_shape.push_back(g.m);
  if (b_in.size() > 1) g.out_shape.push_back(g.n);
  return g;
}

Result<QuantGranularity> matmul_quant_granularity(const Node& node, const InferInput& q, const MatMulGeometry& g,
                                                  int operand, std::string_view what) {
  const Shape& s = q.type.shape;
  const int64_t count = shape_numel(s);
  if (count == 1) return QuantGranularity::per_tensor;
  // Per row of A: [M] or [1..., M, 1]; per column of B: [N] or [1..., 1, N].
  // The per-batch forms ([D1, D2, M, 1] with D > 1) are not handled.
  const int64_t want = operand == 0 ? g.m : g.n;
  bool ok = count == want && !s.empty();
  if (ok && s.size() > 1) {
    const size_t along = operand == 0 ? s.size() - 2 : s.size() - 1;
    ok = s[along] == want;
  }
  if (!ok)
    return unsupported("{}: {} must hold one value or one per {} ({}), found shape {}", node.describe(), what,
                       operand == 0 ? "row of A" : "column of B", want, shape_str(s));
  return operand == 0 ? QuantGranularity::per_row : QuantGranularity::per_column;
}

}  // namespace quant

namespace {

using Inputs = std::span<const InferInput>;
using Types = Result<std::vector<TensorType>>;

bool is_8bit(DType t) { return t == DType::u8 || t == DType::i8; }

Status check_outputs(const Node& node, size_t count) {
  if (node.outputs.empty() || node.outputs.size() > count)
    return invalid_input("{}: expects 1 to {} output(s), found {}", node.describe(), count, node.outputs.size());
  return {};
}

Status check_dtype(const Node& node, Inputs in, size_t i, bool ok, std::string_view expected) {
  if (!ok)
    return invalid_input("{}: input #{} must be {}, found {}", node.describe(), i, expected,
                         dtype_name(in[i].type.dtype));
  return {};
}

Status check_8bit(const Node& node, Inputs in, size_t i) {
  return check_dtype(node, in, i, is_8bit(in[i].type.dtype), "uint8 or int8");
}

Status check_scale(const Node& node, Inputs in, size_t i) {
  return check_dtype(node, in, i, in[i].type.dtype == DType::f32, "a float32 scale");
}

// Zero point i (when present) has the dtype of its quantized operand.
Status check_zero_point(const Node& node, Inputs in, size_t i, DType operand) {
  const InferInput* zp = tensor_ops::optional_input(in, i);
  if (zp != nullptr && zp->type.dtype != operand)
    return invalid_input("{}: zero point input #{} must have its operand's type {}, found {}", node.describe(), i,
                         dtype_name(operand), dtype_name(zp->type.dtype));
  return {};
}

Status check_scalar(const Node& node, Inputs in, size_t i) {
  const InferInput* q = tensor_ops::optional_input(in, i);
  if (q != nullptr && (q->type.shape.size() > 1 || shape_numel(q->type.shape) != 1))
    return invalid_input("{}: input #{} must be a scalar, found shape {}", node.describe(), i,
                         shape_str(q->type.shape));
  return {};
}

// ConvInteger / QLinearConv: a weight scale or zero point holds one value or
// one per output channel.
Status check_per_channel(const Node& node, Inputs in, size_t i, int64_t c_out) {
  const InferInput* q = tensor_ops::optional_input(in, i);
  if (q == nullptr || (q->type.shape.size() <= 1 && shape_numel(q->type.shape) == 1)) return {};
  if (q->type.shape != Shape{c_out})
    return invalid_input("{}: input #{} must be a scalar or hold one value per output channel ([{}]), found {}",
                         node.describe(), i, c_out, shape_str(q->type.shape));
  return {};
}

Types infer_quantize(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 2, 3));
  CP_TRY(check_outputs(node, 1));
  const DType x = in[0].type.dtype;
  CP_TRY(check_dtype(node, in, 0, x == DType::f32 || x == DType::i32, "float32 or int32"));
  CP_TRY(check_scale(node, in, 1));
  DType out = DType::u8;
  if (const InferInput* zp = tensor_ops::optional_input(in, 2)) {
    CP_TRY(check_8bit(node, in, 2));
    out = zp->type.dtype;
  }
  CP_TRY(quant::resolve_linear_quant(node, in).status());
  return std::vector<TensorType>{{out, in[0].type.shape}};
}

Types infer_dequantize(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 2, 3));
  CP_TRY(check_outputs(node, 1));
  const DType x = in[0].type.dtype;
  CP_TRY(check_dtype(node, in, 0, is_8bit(x) || x == DType::i32, "uint8, int8 or int32"));
  CP_TRY(check_scale(node, in, 1));
  CP_TRY(check_zero_point(node, in, 2, x));
  CP_TRY(quant::resolve_linear_quant(node, in).status());
  return std::vector<TensorType>{{DType::f32, in[0].type.shape}};
}

Types infer_dynamic_quantize(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 1, 1));
  CP_TRY(check_outputs(node, 3));
  CP_TRY(check_dtype(node, in, 0, in[0].type.dtype == DType::f32, "float32"));
  return std::vector<TensorType>{{DType::u8, in[0].type.shape}, {DType::f32, {}}, {DType::u8, {}}};
}

Types infer_matmul_integer(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 2, 4));
  CP_TRY(check_outputs(node, 1));
  CP_TRY(check_8bit(node, in, 0));
  CP_TRY(check_8bit(node, in, 1));
  CP_TRY(check_zero_point(node, in, 2, in[0].type.dtype));
  CP_TRY(check_zero_point(node, in, 3, in[1].type.dtype));
  CP_ASSIGN_OR_RETURN(quant::MatMulGeometry g, quant::matmul_geometry(node, in[0].type.shape, in[1].type.shape));
  for (int operand = 0; operand < 2; ++operand)
    if (const InferInput* zp = tensor_ops::optional_input(in, 2 + static_cast<size_t>(operand)))
      CP_TRY(quant::matmul_quant_granularity(node, *zp, g, operand, "the zero point").status());
  return std::vector<TensorType>{{DType::i32, g.out_shape}};
}

Types infer_qlinear_matmul(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 8, 8));
  CP_TRY(check_outputs(node, 1));
  for (size_t i : {0, 3, 7}) CP_TRY(check_8bit(node, in, i));
  for (size_t i : {1, 4, 6}) CP_TRY(check_scale(node, in, i));
  CP_TRY(check_zero_point(node, in, 2, in[0].type.dtype));
  CP_TRY(check_zero_point(node, in, 5, in[3].type.dtype));
  CP_TRY(check_scalar(node, in, 6));
  CP_TRY(check_scalar(node, in, 7));
  CP_ASSIGN_OR_RETURN(quant::MatMulGeometry g, quant::matmul_geometry(node, in[0].type.shape, in[3].type.shape));
  for (size_t i : {1, 2, 4, 5})
    CP_TRY(quant::matmul_quant_granularity(node, in[i], g, i < 3 ? 0 : 1, i % 3 == 1 ? "the scale" : "the zero point")
               .status());
  return std::vector<TensorType>{{in[7].type.dtype, g.out_shape}};
}

Types infer_conv_integer(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 2, 4));
  CP_TRY(check_outputs(node, 1));
  CP_TRY(check_8bit(node, in, 0));
  CP_TRY(check_8bit(node, in, 1));
  CP_TRY(check_zero_point(node, in, 2, in[0].type.dtype));
  CP_TRY(check_zero_point(node, in, 3, in[1].type.dtype));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, in[0].type.shape, in[1].type.shape));
  CP_TRY(check_scalar(node, in, 2));
  CP_TRY(check_per_channel(node, in, 3, g.c_out));
  return std::vector<TensorType>{{DType::i32, g.output_shape()}};
}

Types infer_qlinear_conv(const Node& node, Inputs in) {
  CP_TRY(tensor_ops::check_inputs(node, in, 8, 9));
  CP_TRY(check_outputs(node, 1));
  for (size_t i : {0, 3, 7}) CP_TRY(check_8bit(node, in, i));
  for (size_t i : {1, 4, 6}) CP_TRY(check_scale(node, in, i));
  CP_TRY(check_zero_point(node, in, 2, in[0].type.dtype));
  CP_TRY(check_zero_point(node, in, 5, in[3].type.dtype));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, in[0].type.shape, in[3].type.shape));
  for (size_t i : {1, 2, 6, 7}) CP_TRY(check_scalar(node, in, i));
  CP_TRY(check_per_channel(node, in, 4, g.c_out));
  CP_TRY(check_per_channel(node, in, 5, g.c_out));
  if (const InferInput* b = tensor_ops::optional_input(in, 8)) {
    CP_TRY(check_dtype(node, in, 8, b->type.dtype == DType::i32, "an int32 bias"));
    if (b->type.shape != Shape{g.c_out})
      return invalid_input("{}: bias B must have shape [{}], found {}", node.describe(), g.c_out,
                           shape_str(b->type.shape));
  }
  return std::vector<TensorType>{{in[7].type.dtype, g.output_shape()}};
}

}  // namespace

void register_quant_ops(std::vector<OpDef>& table) {
  table.push_back({"QuantizeLinear", infer_quantize});
  table.push_back({"DequantizeLinear", infer_dequantize});
  table.push_back({"DynamicQuantizeLinear", infer_dynamic_quantize});
  table.push_back({"MatMulInteger", infer_matmul_integer});
  table.push_back({"QLinearMatMul", infer_qlinear_matmul});
  table.push_back({"ConvInteger", infer_conv_integer});
  table.push_back({"QLinearConv", infer_qlinear_conv});
}

}  // namespace caliprox
