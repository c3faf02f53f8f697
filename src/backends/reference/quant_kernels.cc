// Reference QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
// MatMulInteger and QLinearMatMul, and the registration of the whole
// quantized-op family (integer convolutions in quant_conv.cc). The float
// steps run in float32, as the ONNX formulas do; rounding is half to even.
// Matrix products take numpy.matmul on the operands minus their zero points,
// summed exactly in integers (kept to 32 bits, as the spec lets the sum wrap
// only there); QLinearMatMul then requantizes each sum with
// a_scale * b_scale / y_scale.
#include <algorithm>
#include <memory>
#include <vector>

#include "backends/reference/quant_util.h"

namespace caliprox::reference {
namespace quant_kernels {
namespace {

using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

using quant::QuantGranularity;

const Tensor* optional(Inputs in, size_t i) { return i < in.size() ? in[i] : nullptr; }

// y = saturate(round(x / scale) + zero_point), per tensor or per axis slice.
class QuantizeKernel final : public Kernel {
 public:
  explicit QuantizeKernel(const quant::LinearQuantParams& p) : p_(p) {}

  Status run(Inputs in, Outputs out) override {
    const Tensor& x = *in[0];
    const float* scale = in[1]->data<float>();
    const Tensor* zp = optional(in, 2);
    Tensor& y = *out[0];
    int64_t i = 0;
    for (int64_t o = 0; o < p_.outer; ++o) {
      for (int64_t c = 0; c < p_.channels; ++c) {
        const float s = scale[c];
        const int32_t z = zp != nullptr ? int_at(*zp, c) : 0;
        for (int64_t e = 0; e < p_.inner; ++e, ++i) {
          const float v = x.dtype() == DType::f32 ? x.data<float>()[i] : static_cast<float>(x.data<int32_t>()[i]);
          store_requantized(y, i, v / s, z);
        }
      }
    }
    return {};
  }

 private:
  quant::LinearQuantParams p_;
};

// y = (x - zero_point) * scale, per tensor or per axis slice.
class DequantizeKernel final : public Kernel {
 public:
  explicit DequantizeKernel(const quant::LinearQuantParams& p) : p_(p) {}

  Status run(Inputs in, Outputs out) override {
    const Tensor& x = *in[0];
    const float* scale = in[1]->data<float>();
    const Tensor* zp = optional(in, 2);
    float* y = out[0]->data<float>();
    int64_t i = 0;
    for (int64_t o = 0; o < p_.outer; ++o) {
      for (int64_t c = 0; c < p_.channels; ++c) {
        const int64_t z = zp != nullptr ? int_at(*zp, c) : 0;
        for (int64_t e = 0; e < p_.inner; ++e, ++i)
          y[i] = static_cast<float>(static_cast<int64_t>(int_at(x, i)) - z) * scale[c];
      }
    }
    return {};
  }

 private:
  quant::LinearQuantParams p_;
};

// uint8 quantization over the range of x extended to include 0:
// scale = (max - min) / 255, zero_point = saturate(round(0 - min / scale)).
Status run_dynamic_quantize(Inputs in, Outputs out) {
  const Tensor& x = *in[0];
  const float* xv = x.data<float>();
  const int64_t n = x.numel();
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, xv[i]);
    hi = std::max(hi, xv[i]);
  }
  const float scale = (hi - lo) / 255.0f;
  // An all-zero x has scale 0: every code is the zero point 0.
  const float zp_real = scale > 0 ? 0.0f - lo / scale : 0.0f;
  const uint8_t zp = quant::saturate<uint8_t>(quant::round_half_even(std::clamp(zp_real, 0.0f, 255.0f)));
  if (out[0] != nullptr) {
    for (int64_t i = 0; i < n; ++i)
      if (scale > 0) store_requantized(*out[0], i, xv[i] / scale, zp);
      else out[0]->data<uint8_t>()[i] = zp;
  }
  if (out.size() > 1 && out[1] != nullptr) out[1]->data<float>()[0] = scale;
  if (out.size() > 2 && out[2] != nullptr) out[2]->data<uint8_t>()[0] = zp;
  return {};
}

class DynamicQuantizeKernel final : public Kernel {
 public:
  Status run(Inputs in, Outputs out) override { return run_dynamic_quantize(in, out); }
};

bool supports_quantize(const NodeContext& ctx) {
  const DType x = ctx.input_types[0].dtype;
  return (x == DType::f32 || x == DType::i32) && ctx.input_types.size() >= 2 &&
         ctx.input_types[1].dtype == DType::f32 && is_8bit(ctx.output_types[0].dtype);
}

bool supports_dequantize(const NodeContext& ctx) {
  const DType x = ctx.input_types[0].dtype;
  return (is_8bit(x) || x == DType::i32) && ctx.input_types.size() >= 2 && ctx.input_types[1].dtype == DType::f32 &&
         ctx.output_types[0].dtype == DType::f32;
}

bool supports_dynamic_quantize(const NodeContext& ctx) { return ctx.input_types[0].dtype == DType::f32; }

Result<quant::LinearQuantParams> linear_params(const NodeContext& ctx) {
  const std::vector<InferInput> in = infer_inputs(ctx);
  return quant::resolve_linear_quant(ctx.node, in);
}

Result<std::unique_ptr<Kernel>> make_quantize(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(quant::LinearQuantParams p, linear_params(ctx));
  return std::unique_ptr<Kernel>(std::make_unique<QuantizeKernel>(p));
}

Result<std::unique_ptr<Kernel>> make_dequantize(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(quant::LinearQuantParams p, linear_params(ctx));
  return std::unique_ptr<Kernel>(std::make_unique<DequantizeKernel>(p));
}

Result<std::unique_ptr<Kernel>> make_dynamic_quantize(const NodeContext&) {
  return std::unique_ptr<Kernel>(std::make_unique<DynamicQuantizeKernel>());
}

// Where a matmul's operands and their parameters sit among the inputs.
struct MatMulSlots {
  size_t a = 0, a_scale = 0, a_zp = 2, b = 1, b_scale = 0, b_zp = 3, y_scale = 0, y_zp = 0;
  bool qlinear = false;
};
constexpr MatMulSlots kMatMulInteger{};
constexpr MatMulSlots kQLinearMatMul{0, 1, 2, 3, 4, 5, 6, 7, true};

class IntegerMatMulKernel final : public Kernel {
 public:
  IntegerMatMulKernel(const quant::MatMulGeometry& g, MatMulSlots slots, QuantGranularity a_scale,
                      QuantGranularity b_scale, int64_t a_count, int64_t b_count)
      : g_(g),
        slots_(slots),
        a_scale_(a_scale),
        b_scale_(b_scale),
        a_(static_cast<size_t>(a_count)),
        b_(static_cast<size_t>(b_count)) {}

  Status run(Inputs in, Outputs out) override {
    const Tensor& a = *in[slots_.a];
    const Tensor& b = *in[slots_.b];
    // Per-row zero points of A step every K elements, per-column ones of B
    // every element (modulo M and N).
    widen_minus_zero_point(a, optional(in, slots_.a_zp), g_.k, a_);
    widen_minus_zero_point(b, optional(in, slots_.b_zp), 1, b_);
    Tensor& y = *out[0];
    const int64_t plane = g_.m * g_.n;
    for (size_t batch = 0; batch < g_.a_offsets.size(); ++batch) {
      const int32_t* ab = a_.data() + g_.a_offsets[batch];
      const int32_t* bb = b_.data() + g_.b_offsets[batch];
      for (int64_t m = 0; m < g_.m; ++m) {
        for (int64_t n = 0; n < g_.n; ++n) {
          int64_t sum = 0;
          for (int64_t k = 0; k < g_.k; ++k) sum += int64_t{ab[m * g_.k + k]} * bb[k * g_.n + n];
          const int64_t o = static_cast<int64_t>(batch) * plane + m * g_.n + n;
          const auto acc = static_cast<int32_t>(sum);  // modular, as int32 accumulation
          if (slots_.qlinear) requantize(in, y, o, m, n, acc);
          else y.data<int32_t>()[o] = acc;
        }
      }
    }
    return {};
  }

 private:
  void requantize(Inputs in, Tensor& y, int64_t o, int64_t m, int64_t n, int32_t acc) const {
    const float sa = in[slots_.a_scale]->data<float>()[quant::granular_index(a_scale_, m, n)];
    const float sb = in[slots_.b_scale]->data<float>()[quant::granular_index(b_scale_, m, n)];
    const float sy = in[slots_.y_scale]->data<float>()[0];
    store_requantized(y, o, static_cast<double>(acc) * requant_multiplier(sa, sb, sy), int_at(*in[slots_.y_zp], 0));
  }

  quant::MatMulGeometry g_;
  MatMulSlots slots_;
  QuantGranularity a_scale_, b_scale_;
  std::vector<int32_t> a_, b_;  // operands minus zero points
};

bool supports_matmul_integer(const NodeContext& ctx) {
  return ctx.input_types.size() >= 2 && is_8bit(ctx.input_types[0].dtype) && is_8bit(ctx.input_types[1].dtype) &&
         ctx.output_types[0].dtype == DType::i32;
}

bool supports_qlinear_matmul(const NodeContext& ctx) {
  const auto& t = ctx.input_types;
  return t.size() == 8 && is_8bit(t[0].dtype) && is_8bit(t[3].dtype) && is_8bit(t[7].dtype) &&
         t[1].dtype == DType::f32 && t[4].dtype == DType::f32 && t[6].dtype == DType::f32;
}

Result<std::unique_ptr<Kernel>> make_matmul(const NodeContext& ctx, MatMulSlots slots) {
  const auto& t = ctx.input_types;
  CP_ASSIGN_OR_RETURN(quant::MatMulGeometry g, quant::matmul_geometry(ctx.node, t[slots.a].shape, t[slots.b].shape));
  if (g.out_shape != ctx.output_types[0].shape)
    return runtime_error("{}: the planned output shape {} differs from the kernel's {}", ctx.node.describe(),
                         shape_str(ctx.output_types[0].shape), shape_str(g.out_shape));
  const std::vector<InferInput> in = infer_inputs(ctx);
  QuantGranularity a_scale = QuantGranularity::per_tensor, b_scale = QuantGranularity::per_tensor;
  if (slots.qlinear) {
    CP_ASSIGN_OR_RETURN(a_scale, quant::matmul_quant_granularity(ctx.node, in[slots.a_scale], g, 0, "the scale"));
    CP_ASSIGN_OR_RETURN(b_scale, quant::matmul_quant_granularity(ctx.node, in[slots.b_scale], g, 1, "the scale"));
  }
  return std::unique_ptr<Kernel>(std::make_unique<IntegerMatMulKernel>(g, slots, a_scale, b_scale,
                                                                       shape_numel(t[slots.a].shape),
                                                                       shape_numel(t[slots.b].shape)));
}

Result<std::unique_ptr<Kernel>> make_matmul_integer(const NodeContext& ctx) { return make_matmul(ctx, kMatMulInteger); }
Result<std::unique_ptr<Kernel>> make_qlinear_matmul(const NodeContext& ctx) { return make_matmul(ctx, kQLinearMatMul); }

}  // namespace
}  // namespace quant_kernels

void register_quant_kernels(std::vector<KernelEntry>& table) {
  using namespace quant_kernels;
  table.push_back({"QuantizeLinear", supports_quantize, make_quantize});
  table.push_back({"DequantizeLinear", supports_dequantize, make_dequantize});
  table.push_back({"DynamicQuantizeLinear", supports_dynamic_quantize, make_dynamic_quantize});
  table.push_back({"MatMulInteger", supports_matmul_integer, make_matmul_integer});
  table.push_back({"QLinearMatMul", supports_qlinear_matmul, make_qlinear_matmul});
  add_quant_conv_kernels(table);
}

}  // namespace caliprox::reference
