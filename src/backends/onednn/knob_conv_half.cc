// The fp16 knob: this CPU has no half-precision arithmetic (oneDNN's f16
// convolutions have no implementation here), so the layer is emulated as
// the knob defines it: X, W, bias and the residual rounded to IEEE half, the
// exact fp32 convolution (the same kernel, tuning included, as an exact
// Conv node: conv.h) run on those values, its output rounded to half. The
// rounding passes are vectorised (AVX-512 / F16C conversions).
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

Tensor rounded_copy(const Tensor& t) {
  Tensor out = t.clone();
  round_to_half(out.data<float>(), out.data<float>(), out.numel());
  return out;
}

class HalfConvKernel final : public Kernel {
 public:
  HalfConvKernel(const KnobConvSetup& s, int threads, Tensor weights, Tensor bias)
      : threads_(threads), weights_(std::move(weights)), bias_(std::move(bias)) {
    const ConvGeometry& g = s.g;
    residual_ = s.residual;
    bias_runtime_ = s.has_bias && s.bias == nullptr;
    has_bias_ = s.has_bias;
    x_ = Tensor(DType::f32, {g.n, g.c_in, g.in_spatial[0], g.in_spatial[1]});
    if (residual_) residual_half_ = Tensor(DType::f32, g.output_shape());
  }

  void set_inner(std::unique_ptr<Kernel> inner) { inner_ = std::move(inner); }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    round_to_half_parallel(inputs[0]->data<float>(), x_.data<float>(), x_.numel(), threads_);
    if (bias_runtime_) round_to_half(inputs[2]->data<float>(), bias_.data<float>(), bias_.numel());
    if (residual_) round_to_half_parallel(inputs[3]->data<float>(), residual_half_.data<float>(),
                                          residual_half_.numel(), threads_);
    const Tensor* in[4] = {&x_, &weights_, has_bias_ ? &bias_ : nullptr, residual_ ? &residual_half_ : nullptr};
    const size_t count = std::min<size_t>(4, inputs.size());
    CP_TRY(inner_->run(std::span<const Tensor* const>(in, count), outputs));
    float* y = outputs[0]->data<float>();
    round_to_half_parallel(y, y, outputs[0]->numel(), threads_);
    return {};
  }

 private:
  int threads_;
  bool residual_ = false;
  bool has_bias_ = false;
  bool bias_runtime_ = false;
  Tensor weights_;         // half-rounded W
  Tensor bias_;            // half-rounded B (filled per run when B is not a constant)
  Tensor x_;               // half-rounded X
  Tensor residual_half_;   // half-rounded residual
  std::unique_ptr<Kernel> inner_;
};

}  // namespace

Status check_half_conv(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt) {
  return exact_conv_entry().check(exact_context(ctx, s.weights, s.bias), rt);
}

bool half_conv_nhwc(const NodeContext& ctx, const Runtime& rt) {
  const OpEntry& e = exact_conv_entry();
  if (e.nhwc == nullptr) return false;
  NodeContext exact = ctx;
  exact.knob = nullptr;
  return e.nhwc(exact, rt);
}

Result<std::unique_ptr<Kernel>> make_half_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                               std::shared_ptr<const Runtime> rt, int threads) {
  // Tensor copies share their data, so the inner kernel's constants stay
  // the ones this kernel keeps.
  Tensor weights = rounded_copy(*s.weights);
  Tensor bias;
  if (s.has_bias) bias = s.bias != nullptr ? rounded_copy(*s.bias) : Tensor(DType::f32, {s.g.c_out});
  const NodeContext exact = exact_context(ctx, &weights, s.bias != nullptr ? &bias : nullptr);
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> inner, exact_conv_entry().make(exact, std::move(rt), threads));
  auto kernel = std::make_unique<HalfConvKernel>(s, threads, weights, bias);
  kernel->set_inner(std::move(inner));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace caliprox::onednn
