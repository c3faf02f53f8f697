// Approximated convolutions on oneDNN: validation shared by every knob
// kernel and the routing from a knob's kind to its kernel family
// (knob_conv.h lists them).
#include "backends/onednn/knob_conv.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "ir/op_registry.h"
#include "kernels/knob_plan.h"
#include "util/cpu.h"

namespace caliprox::onednn {

bool lowp_native(KnobKind kind) {
  const cpu::Features& f = cpu::features();
  if (kind == KnobKind::bf16) return f.avx512_bf16;
  if (kind == KnobKind::int8) return f.avx512_vnni;
  return false;
}

KnobSupport onednn_knob_support(KnobKind kind) {
  const std::string_view isa = simd::kernel_isa_name(simd::best_kernel_isa());
  switch (kind) {
    case KnobKind::exact: return {KnobRun::native, "oneDNN convolution"};
    case KnobKind::perforation:
    case KnobKind::sampling:
      return {KnobRun::native, simd::has_tiles(simd::best_kernel_isa())
                                   ? fmt::format("compact kernel: {} register tiles, Winograd, oneDNN 1x1", isa)
                                   : fmt::format("compact kernel: {} gather + oneDNN sgemm, direct loops", isa)};
    case KnobKind::fp16:
      return {KnobRun::emulated, "no kernel computes in half precision: operands rounded around the fp32 convolution"};
    case KnobKind::bf16:
      if (lowp_native(kind)) return {KnobRun::native, "oneDNN bf16 convolution and avx512_bf16 tiles"};
      if (cpu::features().arch != cpu::Arch::x86_64)
        return {KnobRun::emulated,
                "no bf16 kernel on this architecture yet: operands rounded to bfloat16 around the fp32 convolution"};
      return {KnobRun::emulated,
              "no AVX512-BF16 here (oneDNN 2.6 has no bf16 convolution): operands rounded to bfloat16 around the fp32 "
              "convolution"};
    case KnobKind::int8:
      if (lowp_native(kind)) return {KnobRun::native, "oneDNN int8 convolution with AVX512-VNNI"};
      if (cpu::features().arch != cpu::Arch::x86_64)
        return {KnobRun::emulated,
                "no int8 kernel on this architecture yet: quantised operands through the fp32 convolution"};
      return {KnobRun::emulated,
              "no AVX512-VNNI here (oneDNN's int8 convolution would saturate pairs of products in 16 bits): "
              "quantised operands through the fp32 convolution"};
    case KnobKind::prune:
    case KnobKind::lowrank: break;
  }
  return {KnobRun::unavailable, "unknown knob kind"};
}

namespace {

bool is_f32(const TensorType& t) { return t.dtype == DType::f32; }

}  // namespace

void round_to_half(const float* in, float* out, int64_t n) {
  compact::ops_for(simd::best_kernel_isa())->round_half(in, out, n);
}

void round_to_half_parallel(const float* in, float* out, int64_t n, int threads) {
  for_slices(n, threads, [&](int64_t b, int64_t e) { round_to_half(in + b, out + b, e - b); });
}

Result<KnobConvSetup> knob_conv_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  if (ctx.knob == nullptr || ctx.knob->kind == KnobKind::exact)
    return runtime_error("{}: a knob kernel was asked for without an approximation knob", node.describe());
  KnobConvSetup s;
  s.knob = ctx.knob;
  s.layout = ctx.layout;
  s.isa = simd::best_kernel_isa();
  if (node.op_type != "Conv") return unsupported("{}: knobs apply to Conv only", node.describe());
  if (ctx.input_types.size() < 2 || ctx.output_types.empty() || !is_f32(ctx.input_types[0]) ||
      !is_f32(ctx.input_types[1]) || !is_f32(ctx.output_types[0]))
    return unsupported("{}: knob '{}' runs on float32 X, W and Y only", node.describe(), ctx.knob->name);
  for (size_t i = 2; i < ctx.input_types.size(); ++i)
    if (ctx.input_types[i].dtype != DType::undefined && !is_f32(ctx.input_types[i]))
      return unsupported("{}: input #{} is not float32", node.describe(), i);
  const Shape& x = ctx.input_types[0].shape;
  const Shape& w = ctx.input_types[1].shape;
  if (x.size() != 4) return unsupported("{}: knobs apply to 2-D convolutions only", node.describe());
  CP_TRY(knob_applies(*ctx.knob, node, x, w));
  CP_ASSIGN_OR_RETURN(s.g, conv_geometry(node, x, w));
  if (ctx.output_types[0].shape != s.g.output_shape())
    return invalid_input("{}: output shape {} differs from the geometry's {}", node.describe(),
                         shape_str(ctx.output_types[0].shape), shape_str(s.g.output_shape()));
  for (int64_t v : s.g.output_shape())
    if (v < 1) return unsupported("{}: empty tensors are left to the reference backend", node.describe());
  if (s.g.c_in < 1) return unsupported("{}: empty tensors are left to the reference backend", node.describe());

  s.weights = ctx.constants.size() > 1 ? ctx.constants[1] : nullptr;
  if (s.weights == nullptr)
    return unsupported("{}: knob '{}' needs constant weights on the oneDNN backend (W is a graph input)",
                       node.describe(), ctx.knob->name);
  s.has_bias = has_input(ctx, 2);
  if (s.has_bias) {
    if (ctx.input_types[2].shape != Shape{s.g.c_out})
      return invalid_input("{}: bias B must have shape [{}], found {}", node.describe(), s.g.c_out,
                           shape_str(ctx.input_types[2].shape));
    s.bias = ctx.constants.size() > 2 ? ctx.constants[2] : nullptr;
  }
  s.residual = node.attr_int(kAttrResidual, 0) == 1;
  if (s.residual && (!has_input(ctx, 3) || ctx.input_types[3].shape != s.g.output_shape()))
    return invalid_input("{}: {}=1 needs input #3 of the output shape {}", node.describe(), kAttrResidual,
                         shape_str(s.g.output_shape()));
  CP_ASSIGN_OR_RETURN(s.act, act::fused_activation(node));
  auto ops = fused_activation_ops(node);
  s.act_ops_ok = ops.ok();
  if (ops.ok()) s.act_ops = std::move(ops).value();

  if (ctx.knob->kind == KnobKind::int8) {
    if (!ctx.input_range)
      return invalid_input("{}: knob '{}' needs the calibrated range of input #0 (from the experiment's calibrate "
                           "split), and none was given",
                           node.describe(), ctx.knob->name);
    const ValueRange& r = *ctx.input_range;
    if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max)
      return invalid_input("{}: knob '{}': the calibrated range of input #0 must be finite with min <= max, found "
                           "[{}, {}]",
                           node.describe(), ctx.knob->name, r.min, r.max);
    s.input_range = r;
  }
  if (ctx.output_codes && s.knob->kind != KnobKind::int8 && s.knob->kind != KnobKind::bf16)
    return unsupported("{}: only int8 and bf16 kernels write low-precision activations", node.describe());
  return s;
}

Status check_knob_conv(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(KnobConvSetup s, knob_conv_setup(ctx));
  switch (s.knob->kind) {
    case KnobKind::perforation:
    case KnobKind::sampling: return {};
    case KnobKind::bf16:
    case KnobKind::int8:
      if (lowp_native(s.knob->kind)) return check_lowp_conv(ctx, s, rt);
      [[fallthrough]];
    case KnobKind::fp16: return check_emulated_conv(ctx, s, rt);
    case KnobKind::exact:
    case KnobKind::prune:
    case KnobKind::lowrank: break;  // exact runs oneDNN's own; reshape knobs rewrite the graph
  }
  return unsupported("{}: knob '{}' has no oneDNN kernel", ctx.node.describe(), ctx.knob->name);
}

Result<std::unique_ptr<Kernel>> make_knob_conv(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  CP_ASSIGN_OR_RETURN(KnobConvSetup s, knob_conv_setup(ctx));
  switch (s.knob->kind) {
    case KnobKind::perforation:
    case KnobKind::sampling: return make_compact_conv(ctx, s, std::move(rt), threads);
    case KnobKind::bf16:
    case KnobKind::int8:
      if (lowp_native(s.knob->kind)) return make_lowp_conv(ctx, s, std::move(rt), threads);
      [[fallthrough]];
    case KnobKind::fp16: return make_emulated_conv(ctx, s, std::move(rt), threads);
    case KnobKind::exact:
    case KnobKind::prune:
    case KnobKind::lowrank: break;  // exact runs oneDNN's own; reshape knobs rewrite the graph
  }
  return unsupported("{}: knob '{}' has no oneDNN kernel", ctx.node.describe(), ctx.knob->name);
}

bool knob_conv_nhwc(const NodeContext& ctx, const Runtime& rt) {
  NodeContext nhwc = ctx;
  nhwc.layout = Layout::nhwc;
  auto s = knob_conv_setup(nhwc);
  if (!s.ok()) return false;
  switch (s.value().knob->kind) {
    case KnobKind::perforation:
    case KnobKind::sampling: return true;
    case KnobKind::bf16:
    case KnobKind::int8:
      if (lowp_native(s.value().knob->kind)) return check_lowp_conv(nhwc, s.value(), rt).ok();
      [[fallthrough]];
    case KnobKind::fp16: return emulated_conv_nhwc(nhwc, rt);
    case KnobKind::exact:
    case KnobKind::prune:
    case KnobKind::lowrank: break;  // exact runs oneDNN's own; reshape knobs rewrite the graph
  }
  return false;
}

}  // namespace caliprox::onednn
