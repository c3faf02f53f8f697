// Conv (with the fused residual/activation attributes) and ConvTranspose on
// oneDNN's convolution_forward / deconvolution_forward. Host activations are
// NCHW, or NHWC when the executor prepares the node channels-last
// (Backend::supports_nhwc, 2-D only); the primitive may pick another layout,
// and the kernel then owns those buffers and the reorders into and out of
// them. Constant weights are reordered once, here at prepare time; weights
// fed as graph inputs are reordered on every run into a buffer allocated at
// prepare time.
#include <algorithm>

#include "backends/onednn/conv.h"
#include "ir/op_registry.h"

namespace caliprox::onednn {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

// Everything about a Conv / ConvTranspose node that does not depend on the
// variant (layout, algorithm, threads).
struct ConvSetup {
  ConvGeometry g;
  Layout layout = Layout::nchw;  // of the host activations (ctx.layout)
  bool transpose = false;
  bool residual = false;
  // oneDNN 2.6's brgconv mishandles a sum post-op when some output sees
  // only padding (see choose_conv_variant): only the GEMM-based
  // implementation may run such a node.
  bool gemm_only = false;
  bool has_bias = false;
  const Tensor* constant_weights = nullptr;
  // The host tensors as the executor hands them over.
  memory::desc src_host, wei_host, bias_host, dst_host, residual_host;
  memory::dims strides, dilates, pad_l, pad_r;
  std::vector<EltwiseOp> activation;  // fused activation, as eltwise steps
};

// oneDNN weight descriptor over the ONNX weight buffer, without copying:
// Conv W [C_out, C_in/G, K...] is goihw (oihw for G = 1); ConvTranspose W
// [C_in, C_out/G, K...] is the same dims with the o and i strides swapped.
// A channels-last W (run-time weights of a node prepared in NHWC) holds
// [D0][K...][D1] instead of [D0][D1][K...].
memory::desc weights_desc(const ConvGeometry& g, bool transpose, bool channels_last) {
  int64_t kernel_size = 1;
  for (int64_t k : g.kernel) kernel_size *= k;
  const int64_t oc_g = g.c_out_per_group(), ic_g = g.c_in_per_group();
  // Strides of the ONNX dims D0 (per group: o for Conv, i for ConvTranspose),
  // D1 and the kernel axes.
  const int64_t d1 = transpose ? oc_g : ic_g;
  const int64_t s_d0 = d1 * kernel_size;
  const int64_t s_d1 = channels_last ? 1 : kernel_size;
  memory::dims dims, strides;
  if (g.group > 1) {
    dims.push_back(g.group);
    strides.push_back((transpose ? ic_g : oc_g) * s_d0);
  }
  dims.push_back(oc_g);
  dims.push_back(ic_g);
  strides.push_back(transpose ? s_d1 : s_d0);  // o
  strides.push_back(transpose ? s_d0 : s_d1);  // i
  int64_t inner = kernel_size;
  for (int64_t k : g.kernel) {
    dims.push_back(k);
    inner /= k;
    strides.push_back(channels_last ? inner * d1 : inner);
  }
  return memory::desc(dims, memory::data_type::f32, strides);
}

// Both descriptors address the same bytes for every logical element: equal,
// or plain (unblocked) with the same strides on every axis longer than 1
// (NCHW and NHWC coincide when C == 1 or H * W == 1).
bool same_memory_order(const memory::desc& a, const memory::desc& b) {
  if (a == b) return true;
  const dnnl_memory_desc_t &x = a.data, &y = b.data;
  if (x.ndims != y.ndims || x.data_type != y.data_type || x.format_kind != dnnl_blocked ||
      y.format_kind != dnnl_blocked || x.offset0 != y.offset0 || x.extra.flags != 0 || y.extra.flags != 0 ||
      x.format_desc.blocking.inner_nblks != 0 || y.format_desc.blocking.inner_nblks != 0)
    return false;
  for (int d = 0; d < x.ndims; ++d) {
    if (x.dims[d] != y.dims[d] || x.padded_dims[d] != y.padded_dims[d]) return false;
    if (x.dims[d] > 1 && x.format_desc.blocking.strides[d] != y.format_desc.blocking.strides[d]) return false;
  }
  return true;
}

// The descriptor a user memory over a host tensor gets: the primitive's own
// when it addresses the host bytes identically (no reorder then), else the
// host's.
memory::desc user_desc(const memory::desc& host, const memory::desc& primitive) {
  return same_memory_order(host, primitive) ? primitive : host;
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
  s.gemm_only = s.residual && has_padding_only_outputs(g);
  s.layout = ctx.layout;
  if (s.layout == Layout::nhwc && g.rank() != 2)
    return unsupported("{}: channels-last convolutions are 2-D", node.describe());

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
  s.src_host = input_host_desc(ctx, 0);
  s.dst_host = output_host_desc(ctx, 0);
  s.wei_host = weights_desc(g, s.transpose, input_is_nhwc(ctx, 1));
  if (s.has_bias) s.bias_host = plain_desc(memory::dims{g.c_out});
  if (s.residual) {
    if (ctx.input_types[3].shape != ctx.output_types[0].shape)
      return invalid_input("{}: the residual input is {}, the output {}", node.describe(),
                           shape_str(ctx.input_types[3].shape), shape_str(ctx.output_types[0].shape));
    s.residual_host = input_host_desc(ctx, 3);
  }

  CP_ASSIGN_OR_RETURN(s.activation, fused_activation_ops(node));
  return s;
}

// The plain layout of a gemm_only node must land on the GEMM-based
// implementation (oneDNN's first pick on NHWC tensors is brgconv).
bool needs_gemm(const ConvSetup& s, const ConvVariant& v) { return s.gemm_only && v.layout == ConvLayout::plain; }

dnnl::primitive_desc conv_pd_with(const ConvSetup& s, const ConvVariant& v, bool fuse_activation, const Runtime& rt) {
  const auto activation_desc = [&](const memory::desc& host) {
    switch (v.layout) {
      case ConvLayout::plain: return host;
      case ConvLayout::channels16: {
        const int rank = host.data.ndims;
        const auto tag = rank == 3 ? memory::format_tag::nCw16c
                       : rank == 4 ? memory::format_tag::nChw16c
                                   : memory::format_tag::nCdhw16c;
        return memory::desc(host.dims(), memory::data_type::f32, tag);
      }
      case ConvLayout::any:
      case ConvLayout::plain_src: break;
    }
    return memory::desc(host.dims(), memory::data_type::f32, memory::format_tag::any);
  };
  const memory::desc src = v.layout == ConvLayout::plain_src ? s.src_host : activation_desc(s.src_host);
  const memory::desc dst = activation_desc(s.dst_host);
  const memory::desc wei(s.wei_host.dims(), memory::data_type::f32, memory::format_tag::any);
  // Residual first (a sum post-op adds what dst holds before the kernel
  // writes; a binary one reads the residual tensor), then the activation:
  // y = act(conv + bias + residual).
  dnnl::post_ops ops;
  if (s.residual && v.binary_residual) ops.append_binary(algorithm::binary_add, s.residual_host);
  else if (s.residual) ops.append_sum(1.f);
  if (fuse_activation) append_eltwise_ops(ops, s.activation);
  dnnl::primitive_attr attr = base_attr();
  attr.set_post_ops(ops);
  // oneDNN's iterator over implementations keeps a pointer to the operation
  // descriptor, so it lives as long as pd may still be advanced.
  std::optional<dnnl::deconvolution_forward::desc> deconv;
  std::optional<dnnl::convolution_forward::desc> conv;
  dnnl::primitive_desc pd;
  if (s.transpose) {
    deconv.emplace(prop_kind::forward_inference, algorithm::deconvolution_direct, src, wei, s.bias_host, dst,
                   s.strides, s.dilates, s.pad_l, s.pad_r);
    pd = dnnl::deconvolution_forward::primitive_desc(*deconv, attr, rt.engine);
  } else {
    conv.emplace(prop_kind::forward_inference, v.algorithm, src, wei, s.bias_host, dst, s.strides, s.dilates, s.pad_l,
                 s.pad_r);
    pd = dnnl::convolution_forward::primitive_desc(*conv, attr, rt.engine);
  }
  if (needs_gemm(s, v))
    while (!is_gemm(pd))
      if (!pd.next_impl()) throw dnnl::error(dnnl_unimplemented, "no GEMM-based convolution for this geometry");
  // oneDNN 2.6's GEMM-based convolution (x64:gemm:jit) adds a binary
  // post-op's operand at wrong offsets (found by the variant fuzz test, on
  // grouped and on dilated strided layers: relative errors 0.4-0.6): the
  // binary residual runs on the other implementations only.
  if (s.residual && v.binary_residual)
    while (is_gemm(pd))
      if (!pd.next_impl()) throw dnnl::error(dnnl_unimplemented, "no non-GEMM convolution with a binary residual");
  if (v.jit) {
    while (std::string_view(pd.impl_info_str()).starts_with("brg"))
      if (!pd.next_impl()) throw dnnl::error(dnnl_unimplemented, "no convolution other than brgemm-based ones");
    if (is_gemm(pd)) throw dnnl::error(dnnl_unimplemented, "no direct JIT convolution for this geometry");
  }
  return pd;
}

struct ConvPd {
  dnnl::primitive_desc pd;
  // False: the activation runs as separate in-place eltwise primitives.
  bool activation_fused = true;
};

// The GEMM-based implementation applies eltwise post-ops in a scalar loop
// whose branches mispredict on signed data (measured 5-8x the convolution
// itself at batch 64), so there the activation runs as separate in-place
// eltwise primitives after the convolution.
ConvPd conv_pd(const ConvSetup& s, const ConvVariant& v, const Runtime& rt) {
  dnnl::primitive_desc pd = conv_pd_with(s, v, true, rt);
  if (s.activation.empty() || !is_gemm(pd)) return {pd, true};
  return {conv_pd_with(s, v, false, rt), false};
}

// Only the plain layout (GEMM-based, see needs_gemm) with the sum post-op is
// safe for gemm_only nodes; a residual variant needs a residual (and never
// runs on the GEMM-based implementation, see conv_pd_with).
bool variant_is_safe(const ConvSetup& s, const ConvVariant& v) {
  if (v.binary_residual && (!s.residual || s.gemm_only)) return false;
  return v.layout == ConvLayout::plain || !s.gemm_only;
}

// Tries the requested variant, then oneDNN's own pick (when safe), then the
// plain layout; the first that oneDNN implements with an optimized kernel.
Result<std::pair<ConvPd, ConvVariant>> pick_pd(const Node& node, const ConvSetup& s, ConvVariant v,
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
      ConvPd cpd = conv_pd(s, c, rt);
      last = require_optimized(node, cpd.pd, what);
      if (last.ok()) return std::make_pair(cpd, c);
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
  void build(const ConvSetup& s, const ConvVariant& v, const ConvPd& cpd) {
    const Runtime& r = rt();
    const dnnl::primitive_desc& pd = cpd.pd;
    impl_ = pd.impl_info_str();
    residual_ = s.residual;
    binary_residual_ = s.residual && v.binary_residual;
    has_bias_ = s.has_bias;
    src_user_ = user_memory(user_desc(s.src_host, pd.src_desc(0)), r);
    dst_user_ = user_memory(user_desc(s.dst_host, pd.dst_desc(0)), r);
    wei_user_ = user_memory(user_desc(s.wei_host, pd.weights_desc(0)), r);
    memory src = src_user_.get_desc() == pd.src_desc(0) ? src_user_ : memory(pd.src_desc(0), r.engine);
    dst_ = dst_user_.get_desc() == pd.dst_desc(0) ? dst_user_ : memory(pd.dst_desc(0), r.engine);
    memory wei = wei_user_.get_desc() == pd.weights_desc(0) ? wei_user_ : memory(pd.weights_desc(0), r.engine);
    if (s.has_bias) bias_user_ = user_memory(s.bias_host, r);
    if (binary_residual_) residual_user_ = user_memory(s.residual_host, r);
    else if (s.residual) residual_user_ = user_memory(user_desc(s.residual_host, pd.dst_desc(0)), r);

    src_reorder_ = bound_reorder(src_user_, src, r);
    dst_reorder_ = bound_reorder(dst_, dst_user_, r);
    // The residual may share the output's buffer (the session reuses it)
    // only when it is laid out as dst: then it is already in place.
    residual_in_place_ = s.residual && dst_.get() == dst_user_.get() && residual_user_.get_desc() == dst_.get_desc();
    if (s.residual && !binary_residual_) residual_reorder_ = bound_reorder(residual_user_, dst_, r);
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
    conv_ = BoundPrimitive(dnnl::primitive(pd),
                           {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_WEIGHTS, wei},
                            {DNNL_ARG_BIAS, bias_user_},
                            {DNNL_ARG_DST, dst_},
                            {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, binary_residual_ ? residual_user_ : memory()},
                            {DNNL_ARG_SCRATCHPAD, scratchpad_for(pd, r)}});
    if (!cpd.activation_fused) {
      // In place on the host output, after the convolution (elementwise, so
      // its memory order does not matter).
      const memory::desc flat = plain_desc(memory::dims{static_cast<int64_t>(s.dst_host.get_size() / sizeof(float))});
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
  // The sum post-op reads the residual from dst itself; the binary one reads
  // it while writing dst, so only through a private dst.
  bool residual_in_place() const override { return !binary_residual_ || dst_.get() != dst_user_.get(); }

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
      // (nothing to do when the session handed us the residual's buffer);
      // the binary post-op reads it directly.
      bind(residual_user_, inputs[3]);
      if (!binary_residual_ && (!residual_in_place_ || inputs[3]->raw() != outputs[0]->raw()))
        CP_TRY(residual_reorder_.execute(s));
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
  bool binary_residual_ = false;
  bool has_bias_ = false;
  bool weights_runtime_ = false;
  bool residual_in_place_ = false;
  Tensor constant_copy_;
  memory src_user_, dst_user_, wei_user_, bias_user_, residual_user_, dst_, flat_dst_;
  BoundPrimitive src_reorder_, wei_reorder_, residual_reorder_, conv_, dst_reorder_;
  std::vector<BoundPrimitive> activation_;  // GEMM-based implementation only
};

ConvVariant default_variant(const ConvSetup& s, int threads) {
  return s.transpose ? ConvVariant{ConvLayout::any, algorithm::convolution_direct, threads}
                     : choose_conv_variant(s.g, threads, s.residual, s.layout);
}

Status check_conv(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(ConvSetup s, conv_setup(ctx));
  return pick_pd(ctx.node, s, default_variant(s, context_threads(ctx, 1)), rt).status();
}

// Channels-last for 2-D convolutions that oneDNN runs optimized with NHWC
// host tensors (the primitive itself then mostly reads and writes them
// directly: brgconv's native layout).
bool conv_nhwc(const NodeContext& ctx, const Runtime& rt) {
  if (ctx.input_types.empty() || ctx.input_types[0].shape.size() != 4) return false;
  return check_conv(nhwc_context(ctx), rt).ok();
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
    if (want.binary_residual && !s.residual)
      return unsupported("{}: a binary residual variant needs a fused residual", ctx.node.describe());
    if (!variant_is_safe(s, want))
      return unsupported("{}: this variant miscomputes in oneDNN 2.6 for this geometry", ctx.node.describe());
    try {
      use_threads(want.threads);
      const ConvPd cpd = conv_pd(s, want, *rt);
      CP_TRY(require_optimized(ctx.node, cpd.pd, "convolution variant"));
      auto kernel = std::make_unique<ConvKernel>(rt, want.threads);
      kernel->build(s, want, cpd);
      return std::unique_ptr<Kernel>(std::move(kernel));
    } catch (const dnnl::error& e) {
      return dnnl_status(ctx.node, "create the requested convolution variant", e);
    }
  }
  if (!s.transpose && conv_tuning_enabled())
    return fastest_conv_kernel(ctx, std::move(rt), threads, conv_candidates(s.g, threads, s.residual, s.layout,
                                                                            s.residual && ctx.residual_in_place));
  CP_ASSIGN_OR_RETURN(auto picked, pick_pd(ctx.node, s, default_variant(s, threads), *rt));
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
  table.push_back({"Conv", check_conv, make_conv, conv_nhwc});
  table.push_back({"ConvTranspose", check_conv, make_conv, conv_nhwc});
}

}  // namespace caliprox::onednn
