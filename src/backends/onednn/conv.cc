// Conv (with the fused residual/activation attributes) and ConvTranspose on
// oneDNN's convolution_forward / deconvolution_forward. Host tensors are
// NCHW; the primitive may pick a blocked layout, and the kernel then owns the
// blocked buffers and the reorders into and out of them. Constant weights are
// reordered once, here at prepare time; weights fed as graph inputs are
// reordered on every run into a buffer allocated at prepare time.
#include <algorithm>

#include "backends/onednn/conv.h"
#include "engine/op_registry.h"

namespace caliprox::onednn {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

// Everything about a Conv / ConvTranspose node that does not depend on the
// variant (layout, algorithm, threads).
struct ConvSetup {
  ConvGeometry g;
  bool transpose = false;
  bool residual = false;
  bool has_bias = false;
  const Tensor* constant_weights = nullptr;
  memory::desc src_plain, wei_plain, bias_plain, dst_plain;
  memory::dims strides, dilates, pad_l, pad_r;
  std::vector<EltwiseOp> activation;  // fused activation, as eltwise steps
};

// oneDNN weight descriptor over the ONNX weight buffer, without copying:
// Conv W [C_out, C_in/G, K...] is goihw (oihw for G = 1); ConvTranspose W
// [C_in, C_out/G, K...] is the same dims with the o and i strides swapped.
memory::desc weights_desc(const ConvGeometry& g, bool transpose) {
  int64_t kernel_size = 1;
  for (int64_t k : g.kernel) kernel_size *= k;
  const int64_t oc_g = g.c_out_per_group(), ic_g = g.c_in_per_group();
  memory::dims dims, strides;
  if (g.group > 1) {
    dims.push_back(g.group);
    strides.push_back(oc_g * ic_g * kernel_size);
  }
  dims.push_back(oc_g);
  dims.push_back(ic_g);
  if (!transpose) {
    strides.push_back(ic_g * kernel_size);  // o
    strides.push_back(kernel_size);         // i
  } else {
    strides.push_back(kernel_size);         // o
    strides.push_back(oc_g * kernel_size);  // i
  }
  int64_t inner = kernel_size;
  for (int64_t k : g.kernel) {
    dims.push_back(k);
    inner /= k;
    strides.push_back(inner);
  }
  return memory::desc(dims, memory::data_type::f32, strides);
}

Result<ConvSetup> conv_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  ConvSetup s;
  s.transpose = node.op_type == "ConvTranspose";
  if (!all_f32(ctx)) return unsupported("{}: the oneDNN backend runs float32 convolutions only", node.describe());
  if (!has_input(ctx, 0) || !has_input(ctx, 1) || ctx.output_types.empty())
    return invalid_input("{}: X and W are required", node.describe());
  const Shape& x = ctx.input_types[0].shape;
  const Shape& w = ctx.input_types[1].shape;
  CP_ASSIGN_OR_RETURN(s.g, s.transpose ? conv_transpose_geometry(node, x, w) : conv_geometry(node, x, w));
  const ConvGeometry& g = s.g;
  if (g.rank() < 1 || g.rank() > 3)
    return unsupported("{}: oneDNN convolutions have 1 to 3 spatial axes, found {}", node.describe(), g.rank());
  if (ctx.output_types[0].shape != g.output_shape())
    return invalid_input("{}: output shape {} differs from the geometry's {}", node.describe(),
                         shape_str(ctx.output_types[0].shape), shape_str(g.output_shape()));
  for (int64_t v : g.output_shape())
    if (v < 1) return unsupported("{}: empty tensors are not run on oneDNN", node.describe());
  if (g.c_in < 1) return unsupported("{}: empty tensors are not run on oneDNN", node.describe());

  s.residual = node.attr_int(kAttrResidual, 0) == 1;
  if (s.transpose && (s.residual || node.has(kAttrActivation)))
    return unsupported("{}: fused attributes are defined for Conv only", node.describe());
  if (s.residual && !has_input(ctx, 3))
    return invalid_input("{}: {} is set but input #3 is missing", node.describe(), kAttrResidual);
  s.has_bias = has_input(ctx, 2);
  if (ctx.constants.size() > 1) s.constant_weights = ctx.constants[1];

  for (size_t d = 0; d < g.rank(); ++d) {
    s.strides.push_back(g.strides[d]);
    s.dilates.push_back(g.dilations[d] - 1);  // oneDNN counts the gaps
    s.pad_l.push_back(g.pads_begin[d]);
    // oneDNN's deconvolution size rule has no output_padding term: the
    // extra end positions are the same as less end cropping.
    s.pad_r.push_back(s.transpose ? g.pads_end[d] - g.output_padding[d] : g.pads_end[d]);
    if (s.pad_l.back() < 0 || s.pad_r.back() < 0)
      return unsupported("{}: output_shape/output_padding beyond the full result has no oneDNN mapping",
                         node.describe());
  }
  memory::dims src{g.n, g.c_in}, dst{g.n, g.c_out};
  for (int64_t v : g.in_spatial) src.push_back(v);
  for (int64_t v : g.out_spatial) dst.push_back(v);
  s.src_plain = plain_desc(src);
  s.dst_plain = plain_desc(dst);
  s.wei_plain = weights_desc(g, s.transpose);
  if (s.has_bias) s.bias_plain = plain_desc(memory::dims{g.c_out});

  CP_ASSIGN_OR_RETURN(s.activation, fused_activation_ops(node));
  return s;
}

// The GEMM-based implementation (plain layout) applies eltwise post-ops in a
// scalar loop whose branches mispredict on signed data (measured 5-8x the
// convolution itself at batch 64), so there the activation runs as separate
// in-place eltwise primitives after the convolution.
bool activation_as_post_op(const ConvVariant& v) { return v.layout != ConvLayout::plain; }

dnnl::primitive_desc conv_pd(const ConvSetup& s, const ConvVariant& v, const Runtime& rt) {
  const auto activation_desc = [&](const memory::desc& plain) {
    switch (v.layout) {
      case ConvLayout::plain: return plain;
      case ConvLayout::channels16: {
        const int rank = plain.data.ndims;
        const auto tag = rank == 3 ? memory::format_tag::nCw16c
                       : rank == 4 ? memory::format_tag::nChw16c
                                   : memory::format_tag::nCdhw16c;
        return memory::desc(plain.dims(), memory::data_type::f32, tag);
      }
      case ConvLayout::any:
      case ConvLayout::plain_src: break;
    }
    return memory::desc(plain.dims(), memory::data_type::f32, memory::format_tag::any);
  };
  const memory::desc src = v.layout == ConvLayout::plain_src ? s.src_plain : activation_desc(s.src_plain);
  const memory::desc dst = activation_desc(s.dst_plain);
  const memory::desc wei(s.wei_plain.dims(), memory::data_type::f32, memory::format_tag::any);
  // Residual first (a sum post-op adds what dst holds before the kernel
  // writes), then the activation: y = act(conv + bias + residual).
  dnnl::post_ops ops;
  if (s.residual) ops.append_sum(1.f);
  if (activation_as_post_op(v)) append_eltwise_ops(ops, s.activation);
  dnnl::primitive_attr attr = base_attr();
  attr.set_post_ops(ops);
  if (s.transpose) {
    dnnl::deconvolution_forward::desc d(prop_kind::forward_inference, algorithm::deconvolution_direct, src, wei,
                                        s.bias_plain, dst, s.strides, s.dilates, s.pad_l, s.pad_r);
    return dnnl::deconvolution_forward::primitive_desc(d, attr, rt.engine);
  }
  dnnl::convolution_forward::desc d(prop_kind::forward_inference, v.algorithm, src, wei, s.bias_plain, dst, s.strides,
                                    s.dilates, s.pad_l, s.pad_r);
  return dnnl::convolution_forward::primitive_desc(d, attr, rt.engine);
}

// oneDNN 2.6's brgconv mishandles a sum post-op when some output sees only
// padding (see choose_conv_variant): such nodes must run with the plain
// layout.
bool variant_is_safe(const ConvSetup& s, const ConvVariant& v) {
  return v.layout == ConvLayout::plain || !s.residual || !has_padding_only_outputs(s.g);
}

// Tries the requested variant, then oneDNN's own pick (when safe), then the
// plain layout; the first that oneDNN implements with an optimized kernel.
Result<std::pair<dnnl::primitive_desc, ConvVariant>> pick_pd(const Node& node, const ConvSetup& s, ConvVariant v,
                                                            const Runtime& rt) {
  const char* what = s.transpose ? "deconvolution" : "convolution";
  std::vector<ConvVariant> order{v};
  const ConvVariant own{ConvLayout::any, algorithm::convolution_direct, v.threads};
  if (variant_is_safe(s, own)) order.push_back(own);
  if (!s.transpose) order.push_back({ConvLayout::plain, algorithm::convolution_direct, v.threads});
  use_threads(v.threads);
  Status last;
  for (const ConvVariant& c : order) {
    try {
      dnnl::primitive_desc pd = conv_pd(s, c, rt);
      last = require_optimized(node, pd, what);
      if (last.ok()) return std::make_pair(pd, c);
    } catch (const dnnl::error& e) {
      last = dnnl_status(node, fmt::format("create a {}", what), e);
    }
  }
  return last;
}

class ConvKernel final : public OnednnKernel {
 public:
  ConvKernel(std::shared_ptr<const Runtime> rt, int threads) : OnednnKernel(std::move(rt), threads) {}

  // Builds memories and bound primitives for pd (threads already set).
  void build(const ConvSetup& s, const ConvVariant& v, const dnnl::primitive_desc& pd) {
    const Runtime& r = rt();
    impl_ = pd.impl_info_str();
    residual_ = s.residual;
    has_bias_ = s.has_bias;
    src_user_ = user_memory(s.src_plain, r);
    dst_user_ = user_memory(s.dst_plain, r);
    wei_user_ = user_memory(s.wei_plain, r);
    memory src = pd.src_desc(0) == s.src_plain ? src_user_ : memory(pd.src_desc(0), r.engine);
    dst_ = pd.dst_desc(0) == s.dst_plain ? dst_user_ : memory(pd.dst_desc(0), r.engine);
    memory wei = pd.weights_desc(0) == s.wei_plain ? wei_user_ : memory(pd.weights_desc(0), r.engine);
    if (s.has_bias) bias_user_ = user_memory(s.bias_plain, r);
    if (s.residual) residual_user_ = user_memory(s.dst_plain, r);

    src_reorder_ = bound_reorder(src_user_, src, r);
    dst_reorder_ = bound_reorder(dst_, dst_user_, r);
    dst_is_user_ = dst_.get() == dst_user_.get();
    if (s.residual) residual_reorder_ = bound_reorder(residual_user_, dst_, r);
    BoundPrimitive wei_reorder = bound_reorder(wei_user_, wei, r);
    weights_runtime_ = s.constant_weights == nullptr;
    if (weights_runtime_) {
      wei_reorder_ = std::move(wei_reorder);
    } else {
      // The constant may be freed or moved by the session later: keep a copy
      // when oneDNN reads the ONNX layout directly, else reorder it now.
      if (wei_reorder.empty()) {
        constant_copy_ = s.constant_weights->clone();
        bind(wei_user_, &constant_copy_);
      } else {
        bind(wei_user_, s.constant_weights);
        if (!execute_once(wei_reorder, r).ok()) throw dnnl::error(dnnl_runtime_error, "weight reorder failed");
      }
    }
    conv_ = BoundPrimitive(dnnl::primitive(pd), {{DNNL_ARG_SRC, src},
                                                  {DNNL_ARG_WEIGHTS, wei},
                                                  {DNNL_ARG_BIAS, bias_user_},
                                                  {DNNL_ARG_DST, dst_},
                                                  {DNNL_ARG_SCRATCHPAD, scratchpad_for(pd, r)}});
    if (!activation_as_post_op(v)) {
      // In place on the plain output, after the convolution.
      const memory::desc flat = plain_desc(memory::dims{static_cast<int64_t>(s.dst_plain.get_size() / sizeof(float))});
      flat_dst_ = user_memory(flat, r);
      for (const EltwiseOp& e : s.activation) {
        dnnl::eltwise_forward::desc d(prop_kind::forward_inference, e.alg, flat, e.alpha, e.beta);
        dnnl::eltwise_forward::primitive_desc epd(d, base_attr(), r.engine);
        activation_.emplace_back(dnnl::eltwise_forward(epd), std::vector<std::pair<int, memory>>{
                                                                {DNNL_ARG_SRC, flat_dst_},
                                                                {DNNL_ARG_DST, flat_dst_},
                                                                {DNNL_ARG_SCRATCHPAD, scratchpad_for(epd, r)}});
      }
    }
  }

  const std::string& impl() const { return impl_; }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const dnnl::stream& s = stream();
    bind(src_user_, inputs[0]);
    if (weights_runtime_) bind(wei_user_, inputs[1]);
    if (has_bias_) bind(bias_user_, inputs[2]);
    bind(dst_user_, outputs[0]);
    if (!src_reorder_.empty()) CP_TRY(src_reorder_.execute(s));
    if (!wei_reorder_.empty()) CP_TRY(wei_reorder_.execute(s));
    if (residual_) {
      // The sum post-op adds what dst holds: put the residual there first
      // (nothing to do when the session handed us the residual's buffer).
      bind(residual_user_, inputs[3]);
      if (!dst_is_user_ || inputs[3]->raw() != outputs[0]->raw()) CP_TRY(residual_reorder_.execute(s));
    }
    CP_TRY(conv_.execute(s));
    if (!dst_reorder_.empty()) CP_TRY(dst_reorder_.execute(s));
    if (!activation_.empty()) {
      bind(flat_dst_, outputs[0]);
      for (const BoundPrimitive& step : activation_) CP_TRY(step.execute(s));
    }
    return {};
  }

 private:
  std::string impl_;
  bool residual_ = false;
  bool has_bias_ = false;
  bool weights_runtime_ = false;
  bool dst_is_user_ = false;
  Tensor constant_copy_;
  memory src_user_, dst_user_, wei_user_, bias_user_, residual_user_, dst_, flat_dst_;
  BoundPrimitive src_reorder_, wei_reorder_, residual_reorder_, conv_, dst_reorder_;
  std::vector<BoundPrimitive> activation_;  // plain layout only
};

Status check_conv(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(ConvSetup s, conv_setup(ctx));
  const ConvVariant v = s.transpose ? ConvVariant{ConvLayout::any, algorithm::convolution_direct, context_threads(ctx, 1)}
                                    : choose_conv_variant(s.g, context_threads(ctx, 1), s.residual);
  return pick_pd(ctx.node, s, v, rt).status();
}

Result<std::unique_ptr<Kernel>> make_conv(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  return make_conv_kernel(ctx, std::move(rt), threads, nullptr);
}

}  // namespace

Result<std::unique_ptr<Kernel>> make_conv_kernel(const NodeContext& ctx, std::shared_ptr<const Runtime> rt,
                                                 int threads, const ConvVariant* forced) {
  CP_ASSIGN_OR_RETURN(ConvSetup s, conv_setup(ctx));
  if (forced != nullptr) {
    // A forced variant must be honoured exactly or reported missing.
    const ConvVariant want = *forced;
    if (s.transpose && want.algorithm != algorithm::convolution_direct)
      return unsupported("{}: deconvolution has no Winograd variant", ctx.node.describe());
    if (!variant_is_safe(s, want))
      return unsupported("{}: this variant miscomputes in oneDNN 2.6 for this geometry", ctx.node.describe());
    try {
      use_threads(want.threads);
      dnnl::primitive_desc pd = conv_pd(s, want, *rt);
      CP_TRY(require_optimized(ctx.node, pd, "convolution variant"));
      auto kernel = std::make_unique<ConvKernel>(rt, want.threads);
      kernel->build(s, want, pd);
      return std::unique_ptr<Kernel>(std::move(kernel));
    } catch (const dnnl::error& e) {
      return dnnl_status(ctx.node, "create the requested convolution variant", e);
    }
  }
  if (!s.transpose && conv_tuning_enabled())
    return fastest_conv_kernel(ctx, std::move(rt), threads, conv_candidates(s.g, threads, s.residual));
  const ConvVariant want = s.transpose ? ConvVariant{ConvLayout::any, algorithm::convolution_direct, threads}
                                       : choose_conv_variant(s.g, threads, s.residual);
  CP_ASSIGN_OR_RETURN(auto picked, pick_pd(ctx.node, s, want, *rt));
  try {
    use_threads(picked.second.threads);
    auto kernel = std::make_unique<ConvKernel>(rt, picked.second.threads);
    kernel->build(s, picked.second, picked.first);
    return std::unique_ptr<Kernel>(std::move(kernel));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "prepare the convolution", e);
  }
}

std::string conv_impl_name(const Kernel& kernel) {
  const auto* k = dynamic_cast<const ConvKernel*>(&kernel);
  return k != nullptr ? k->impl() : std::string();
}

void register_conv_ops(std::vector<OpEntry>& table) {
  table.push_back({"Conv", check_conv, make_conv});
  table.push_back({"ConvTranspose", check_conv, make_conv});
}

}  // namespace caliprox::onednn
