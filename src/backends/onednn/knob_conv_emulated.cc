// Precision knobs emulated on the exact convolution (knob_conv.h): the
// layer computes what the knob defines (knobs/knobs.h, the reference's
// nn_knob_conv.cc) by running the exact fp32 convolution -- the same kernel,
// tuning included, as an exact Conv node (conv.h) -- on the knob's
// operands:
//
//   fp16: X, W, bias and the residual rounded to IEEE half, the output
//         rounded to half (no kernel here computes in half precision);
//   bf16: X and W rounded to bfloat16 (nearest even), fp32 bias, residual
//         and output (CPUs without AVX512-BF16);
//   int8: X and W replaced by their dequantised codes (code * scale, the
//         reference's quantisation); the fp32 sum of their products is the
//         reference's int32 sum times sx * sw[oc], up to float rounding
//         (CPUs without AVX512-VNNI, where oneDNN's int8 convolution
//         saturates pairs of u8 x s8 products in 16 bits).
//
// The rounding passes are vectorised where the compact loops are (half) or
// by the compiler (bf16, int8).
#include <algorithm>

#include "backends/onednn/knob_conv.h"

namespace caliprox::onednn {
namespace {

const OpEntry& exact_conv_entry() {
  static const std::vector<OpEntry> table = [] {
    std::vector<OpEntry> t;
    register_conv_ops(t);
    return t;
  }();
  for (const OpEntry& e : table)
    if (e.op_type == "Conv") return e;
  return table.front();
}

// The node as an exact Conv (no knob), reading `weights` / `bias` as its constants.
NodeContext exact_context(const NodeContext& ctx, const Tensor* weights, const Tensor* bias) {
  NodeContext exact = ctx;
  exact.knob = nullptr;
  exact.input_range.reset();
  if (exact.constants.size() > 1) exact.constants[1] = weights;
  if (exact.constants.size() > 2) exact.constants[2] = bias;
  return exact;
}

// What the knob does to X (and, for fp16, to bias, residual and Y).
struct Operands {
  KnobKind kind = KnobKind::fp16;
  Int8Input x;  // int8: X's quantisation

  void round(const float* in, float* out, int64_t n) const {
    switch (kind) {
      case KnobKind::fp16: round_to_half(in, out, n); return;
      case KnobKind::bf16:
        for (int64_t i = 0; i < n; ++i) out[i] = round_to_bf16(in[i]);
        return;
      case KnobKind::int8:
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(int8_code(in[i], x.scale, x.lo, x.hi)) * x.scale;
        return;
      default: std::copy(in, in + n, out);
    }
  }

  void round_parallel(const float* in, float* out, int64_t n, int threads) const {
    for_slices(n, threads, [&](int64_t b, int64_t e) { round(in + b, out + b, e - b); });
  }
};

// W as the knob multiplies it: half- or bfloat16-rounded, or int8 codes per
// output channel times their scale.
Tensor knob_weights(const KnobConvSetup& s) {
  Tensor out = s.weights->clone();
  float* w = out.data<float>();
  const int64_t n = out.numel();
  switch (s.knob->kind) {
    case KnobKind::fp16: round_to_half(w, w, n); break;
    case KnobKind::bf16:
      for (int64_t i = 0; i < n; ++i) w[i] = round_to_bf16(w[i]);
      break;
    case KnobKind::int8: {
      const int64_t filter = n / std::max<int64_t>(1, s.g.c_out);
      for (int64_t o = 0; o < s.g.c_out; ++o) {
        float* f = w + o * filter;
        const float sw = int8_weight_scale(f, filter);
        for (int64_t i = 0; i < filter; ++i) f[i] = static_cast<float>(int8_code(f[i], sw, -127, 127)) * sw;
      }
      break;
    }
    default: break;
  }
  return out;
}

class EmulatedConvKernel final : public Kernel {
 public:
  EmulatedConvKernel(const KnobConvSetup& s, int threads, Tensor weights, Tensor bias)
      : threads_(threads), weights_(std::move(weights)), bias_(std::move(bias)) {
    const ConvGeometry& g = s.g;
    op_.kind = s.knob->kind;
    if (op_.kind == KnobKind::int8) op_.x = int8_input_quantisation(*s.input_range);
    half_ = op_.kind == KnobKind::fp16;
    residual_ = s.residual;
    bias_runtime_ = s.has_bias && s.bias == nullptr;
    has_bias_ = s.has_bias;
    x_ = Tensor(DType::f32, {g.n, g.c_in, g.in_spatial[0], g.in_spatial[1]});
    if (residual_ && half_) residual_half_ = Tensor(DType::f32, g.output_shape());
  }

  void set_inner(std::unique_ptr<Kernel> inner) { inner_ = std::move(inner); }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    op_.round_parallel(inputs[0]->data<float>(), x_.data<float>(), x_.numel(), threads_);
    const Tensor* bias = has_bias_ ? &bias_ : nullptr;
    const Tensor* residual = residual_ ? inputs[3] : nullptr;
    if (half_) {
      if (bias_runtime_) round_to_half(inputs[2]->data<float>(), bias_.data<float>(), bias_.numel());
      if (residual_) {
        round_to_half_parallel(inputs[3]->data<float>(), residual_half_.data<float>(), residual_half_.numel(),
                               threads_);
        residual = &residual_half_;
      }
    } else if (bias_runtime_) {
      bias = inputs[2];
    }
    const Tensor* in[4] = {&x_, &weights_, bias, residual};
    const size_t count = std::min<size_t>(4, inputs.size());
    CP_TRY(inner_->run(std::span<const Tensor* const>(in, count), outputs));
    if (half_) {
      float* y = outputs[0]->data<float>();
      round_to_half_parallel(y, y, outputs[0]->numel(), threads_);
    }
    return {};
  }

 private:
  Operands op_;
  int threads_;
  bool half_ = false;
  bool residual_ = false;
  bool has_bias_ = false;
  bool bias_runtime_ = false;
  Tensor weights_;        // W as the knob multiplies it
  Tensor bias_;           // B (half-rounded under fp16; filled per run when B is not a constant)
  Tensor x_;              // X as the knob multiplies it
  Tensor residual_half_;  // fp16: the half-rounded residual
  std::unique_ptr<Kernel> inner_;
};

}  // namespace

Status check_emulated_conv(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt) {
  if (ctx.output_codes)
    return unsupported("{}: knob '{}' is emulated on this CPU and writes no low-precision activations",
                       ctx.node.describe(), s.knob->name);
  return exact_conv_entry().check(exact_context(ctx, s.weights, s.bias), rt);
}

bool emulated_conv_nhwc(const NodeContext& ctx, const Runtime& rt) {
  const OpEntry& e = exact_conv_entry();
  if (e.nhwc == nullptr || ctx.output_codes) return false;
  NodeContext exact = ctx;
  exact.knob = nullptr;
  return e.nhwc(exact, rt);
}

Result<std::unique_ptr<Kernel>> make_emulated_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                                   std::shared_ptr<const Runtime> rt, int threads) {
  CP_TRY(check_emulated_conv(ctx, s, *rt));
  // Tensor copies share their data, so the inner kernel's constants stay
  // the ones this kernel keeps.
  Tensor weights = knob_weights(s);
  Tensor bias;
  if (s.has_bias) {
    if (s.bias == nullptr) bias = Tensor(DType::f32, {s.g.c_out});
    else bias = s.bias->clone();
    if (s.bias != nullptr && s.knob->kind == KnobKind::fp16)
      round_to_half(bias.data<float>(), bias.data<float>(), bias.numel());
  }
  const NodeContext exact = exact_context(ctx, &weights, s.bias != nullptr ? &bias : nullptr);
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> inner, exact_conv_entry().make(exact, std::move(rt), threads));
  auto kernel = std::make_unique<EmulatedConvKernel>(s, threads, weights, bias);
  kernel->set_inner(std::move(inner));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace caliprox::onednn
