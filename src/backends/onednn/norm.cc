// Softmax and standalone BatchNormalization (inference: global statistics).
// Softmax is run on the [outer, axis, inner] view that engine/ops resolves for
// both opset conventions (one axis from opset 13, the input coerced to 2-D
// before), so either maps exactly onto a single-axis oneDNN softmax.
#include <cmath>
#include <vector>

#include "backends/onednn/common.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::onednn {
namespace {

// ---- Softmax ---------------------------------------------------------------

Result<memory::desc> softmax_desc(const NodeContext& ctx) {
  if (!all_f32(ctx) || !has_input(ctx, 0) || ctx.output_types.empty())
    return unsupported("{}: the oneDNN backend runs float32 Softmax only", ctx.node.describe());
  CP_ASSIGN_OR_RETURN(tensor_ops::SoftmaxLayout l, tensor_ops::resolve_softmax(ctx.node, ctx.input_types[0].shape));
  if (l.outer * l.axis_len * l.inner < kMinElementwiseElements)
    return unsupported("{}: tiny tensors are faster on the reference backend", ctx.node.describe());
  return plain_desc(memory::dims{l.outer, l.axis_len, l.inner});
}

dnnl::softmax_forward::primitive_desc softmax_pd(const memory::desc& md, const Runtime& rt) {
  dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, md, 1);
  return dnnl::softmax_forward::primitive_desc(d, base_attr(), rt.engine);
}

class SoftmaxKernel final : public OnednnKernel {
 public:
  SoftmaxKernel(std::shared_ptr<const Runtime> rt, int threads, const memory::desc& md,
                const dnnl::softmax_forward::primitive_desc& pd)
      : OnednnKernel(std::move(rt), threads) {
    src_ = user_memory(md, this->rt());
    dst_ = user_memory(md, this->rt());
    softmax_ = BoundPrimitive(dnnl::softmax_forward(pd),
                              {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}, {DNNL_ARG_SCRATCHPAD, scratchpad_for(pd, this->rt())}});
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    bind(src_, inputs[0]);
    bind(dst_, outputs[0]);
    return softmax_.execute(stream());
  }

 private:
  memory src_, dst_;
  BoundPrimitive softmax_;
};

Status check_softmax(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(memory::desc md, softmax_desc(ctx));
  try {
    CP_TRY(require_optimized(ctx.node, softmax_pd(md, rt), "softmax"));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a softmax", e);
  }
  return {};
}

Result<std::unique_ptr<Kernel>> make_softmax(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  CP_ASSIGN_OR_RETURN(memory::desc md, softmax_desc(ctx));
  const int team = team_for_elements(threads, shape_numel(ctx.input_types[0].shape));
  use_threads(team);
  try {
    auto pd = softmax_pd(md, *rt);
    CP_TRY(require_optimized(ctx.node, pd, "softmax"));
    return std::unique_ptr<Kernel>(std::make_unique<SoftmaxKernel>(std::move(rt), team, md, pd));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a softmax", e);
  }
}

// ---- BatchNormalization ----------------------------------------------------
// Inference BN is y = (x - mean) * factor + B per channel, with factor =
// scale / sqrt(var + eps) computed in double as the reference does. Neither
// oneDNN primitive that expresses it is fast on NCHW here: batch
// normalization (ncsp_bnorm) measured 4x and a binary sub with mul/add
// post-ops 2x slower than the reference loop. So this kernel is that loop,
// over (n, c) planes split across the OpenMP team; it stays in this backend
// because the team and the thread plumbing are the backend's. Channels-last
// (rank 4), the loop runs over pixels, each a row of `channels` values.

struct BatchNormSetup {
  int64_t planes = 0, channels = 0, plane = 1;
  double epsilon = 1e-5;
  bool constant_params = false;
  bool nhwc = false;  // X and Y channels-last
};

Result<BatchNormSetup> batch_norm_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  if (!all_f32(ctx) || ctx.output_types.empty())
    return unsupported("{}: the oneDNN backend runs float32 BatchNormalization only", node.describe());
  for (size_t i = 0; i < 5; ++i)
    if (!has_input(ctx, i)) return invalid_input("{}: input #{} is required", node.describe(), i);
  for (size_t i = 1; i < node.outputs.size(); ++i)
    if (has_output(ctx, i)) return unsupported("{}: training statistics outputs are not computed", node.describe());
  if (node.attr_int("training_mode", 0) != 0 || node.attr_int("spatial", 1) != 1)
    return unsupported("{}: only inference with per-channel statistics is supported", node.describe());
  const Shape& x = ctx.input_types[0].shape;
  if (x.size() < 2) return invalid_input("{}: X must have rank >= 2, found {}", node.describe(), shape_str(x));
  if (shape_numel(x) < kMinElementwiseElements)
    return unsupported("{}: tiny tensors are faster on the reference backend", node.describe());
  for (size_t i = 1; i < 5; ++i)
    if (ctx.input_types[i].shape != Shape{x[1]})
      return invalid_input("{}: input #{} must have shape [{}]", node.describe(), i, x[1]);
  BatchNormSetup s;
  s.channels = x[1];
  s.planes = x[0] * x[1];
  for (size_t d = 2; d < x.size(); ++d) s.plane *= x[d];
  s.epsilon = node.attr_float("epsilon", 1e-5f);
  s.nhwc = output_is_nhwc(ctx, 0);
  if (s.nhwc != input_is_nhwc(ctx, 0))
    return unsupported("{}: X and Y must share their memory order", node.describe());
  s.constant_params = true;
  for (size_t i = 1; i < 5; ++i) s.constant_params = s.constant_params && i < ctx.constants.size() && ctx.constants[i];
  return s;
}

class BatchNormKernel final : public OnednnKernel {
 public:
  BatchNormKernel(std::shared_ptr<const Runtime> rt, int threads, const BatchNormSetup& s, const NodeContext& ctx)
      : OnednnKernel(std::move(rt), threads),
        s_(s),
        team_(threads),
        factor_(static_cast<size_t>(s.channels)),
        mean_(static_cast<size_t>(s.channels)),
        shift_(static_cast<size_t>(s.channels)) {
    // Statistics fixed for the session are folded once.
    if (s.constant_params) fold(ctx.constants[1], ctx.constants[2], ctx.constants[3], ctx.constants[4]);
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (!s_.constant_params) fold(inputs[1], inputs[2], inputs[3], inputs[4]);
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const int64_t planes = s_.planes, plane = s_.plane, channels = s_.channels;
    const float* f = factor_.data();
    const float* m = mean_.data();
    const float* b = shift_.data();
    if (s_.nhwc) {
      const int64_t pixels = planes / channels * plane;
#pragma omp parallel for num_threads(team_) if (team_ > 1) schedule(static)
      for (int64_t p = 0; p < pixels; ++p) {
        const float* xp = x + p * channels;
        float* yp = y + p * channels;
        for (int64_t c = 0; c < channels; ++c) yp[c] = (xp[c] - m[c]) * f[c] + b[c];
      }
      return {};
    }
#pragma omp parallel for num_threads(team_) if (team_ > 1) schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t c = p % channels;
      const float fc = f[c], mc = m[c], bc = b[c];
      const float* xp = x + p * plane;
      float* yp = y + p * plane;
      for (int64_t i = 0; i < plane; ++i) yp[i] = (xp[i] - mc) * fc + bc;
    }
    return {};
  }

 private:
  void fold(const Tensor* scale, const Tensor* bias, const Tensor* mean, const Tensor* var) {
    for (int64_t c = 0; c < s_.channels; ++c) {
      const auto i = static_cast<size_t>(c);
      factor_[i] = static_cast<float>(static_cast<double>(scale->data<float>()[c]) /
                                      std::sqrt(static_cast<double>(var->data<float>()[c]) + s_.epsilon));
      mean_[i] = mean->data<float>()[c];
      shift_[i] = bias->data<float>()[c];
    }
  }

  BatchNormSetup s_;
  int team_;
  std::vector<float> factor_, mean_, shift_;
};

Status check_batch_norm(const NodeContext& ctx, const Runtime&) { return batch_norm_setup(ctx).status(); }

Result<std::unique_ptr<Kernel>> make_batch_norm(const NodeContext& ctx, std::shared_ptr<const Runtime> rt,
                                                int threads) {
  CP_ASSIGN_OR_RETURN(BatchNormSetup s, batch_norm_setup(ctx));
  const int team = team_for_elements(threads, s.planes * s.plane);
  return std::unique_ptr<Kernel>(std::make_unique<BatchNormKernel>(std::move(rt), team, s, ctx));
}

bool batch_norm_nhwc(const NodeContext& ctx, const Runtime&) {
  if (ctx.input_types.empty() || ctx.input_types[0].shape.size() != 4) return false;
  return batch_norm_setup(nhwc_context(ctx)).ok();
}

}  // namespace

void register_norm_ops(std::vector<OpEntry>& table) {
  table.push_back({"Softmax", check_softmax, make_softmax});
  table.push_back({"BatchNormalization", check_batch_norm, make_batch_norm, batch_norm_nhwc});
}

}  // namespace caliprox::onednn
