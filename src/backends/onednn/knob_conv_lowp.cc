// bf16 and int8 knobs on oneDNN convolutions (brgconv with AVX-512 BF16 /
// VNNI on the target). The fused bias, residual and activation ride along as
// they do for the exact Conv: bias argument, sum post-op (the residual is put
// into the destination first), eltwise post-ops. (bf16 layers may instead
// run on the compact kernel's tiles, make_compact_bf16, which convert X
// and W with the same rounding; make_lowp_conv times both.)
//
//   bf16: X and W converted to bfloat16 by oneDNN reorders (round to nearest
//         even), fp32 accumulation, fp32 bias and output.
//   int8: W quantised here, symmetric per output channel exactly as the
//         reference does (sw = max|W[oc]| / 127, codes rne(W / sw) in
//         [-127, 127]); X quantised by a reorder with scale 1/sx into u8
//         (calibrated min >= 0: sx = max / 255) or s8 (sx = max(|min|, |max|)
//         / 127), saturating, round to nearest even; int32 accumulation; the
//         output scale sx * sw[oc] turns the sum back into floats. oneDNN
//         2.x computes scale * (acc + bias), so the bias is pre-divided by
//         the scale.
// The reorder multiplies by 1/sx where the reference divides by sx: the two
// can differ in the last bit before rounding, so an input lying within
// ~1e-7 (relative) of a rounding boundary may get the neighbouring code.
//
// int8 kernels also take input #0 as codes already quantised with their sx
// (Kernel::input_codes: the executor quantises a value once for all its int8
// readers), and write output #0 as the codes of the next int8 layer
// (NodeContext::output_codes): the float result, activation applied, times
// 1 / that layer's scale (an eltwise_linear post-op), rounded to nearest
// even and saturated by the conversion to u8 / s8, as that layer's reorder
// would have done. That saves writing and re-reading the float tensor.
// bf16 kernels do the same with bfloat16 activations (scale 1): the producer
// rounds its float result to bf16 (nearest even) as the reader's reorder
// would.
#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "backends/onednn/conv.h"
#include "backends/onednn/knob_conv.h"
#include "util/log.h"

namespace caliprox::onednn {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;
using dt = memory::data_type;
using tag = memory::format_tag;

memory::desc activation_desc(const Shape& dims, Layout layout, dt type = dt::f32) {
  return memory::desc(dims, type, layout == Layout::nhwc ? tag::nhwc : tag::nchw);
}

dt codes_type(DType t) { return t == DType::u8 ? dt::u8 : t == DType::bf16 ? dt::bf16 : dt::s8; }
DType codes_dtype(dt t) { return t == dt::u8 ? DType::u8 : t == dt::bf16 ? DType::bf16 : DType::i8; }

memory::dims weight_dims(const ConvGeometry& g) {
  if (g.group > 1) return {g.group, g.c_out_per_group(), g.c_in_per_group(), g.kernel[0], g.kernel[1]};
  return {g.c_out, g.c_in, g.kernel[0], g.kernel[1]};
}

memory::desc plain_weights(const ConvGeometry& g, dt type) {
  return memory::desc(weight_dims(g), type, g.group > 1 ? tag::goihw : tag::oihw);
}

// int8 quantisation of the layer (input scale and type, weight codes and
// per-output-channel scales), as the reference backend defines it.
struct Quantization {
  dt src_type = dt::u8;
  float sx = 1;
  std::vector<float> sw;         // [OC]
  std::vector<int8_t> codes;     // W's layout [OC][C/group][KH][KW]
  std::vector<float> out_scale;  // sx * sw[oc]
};

float input_scale(const ValueRange& r, dt* type) {
  const Int8Input q = int8_input_quantisation(r);
  *type = q.lo == 0 ? dt::u8 : dt::s8;
  return q.scale;
}

Quantization quantize(const KnobConvSetup& s) {
  Quantization q;
  q.sx = input_scale(*s.input_range, &q.src_type);
  const int64_t filter = s.g.c_in_per_group() * s.g.kernel[0] * s.g.kernel[1];
  const float* w = s.weights->data<float>();
  q.codes.resize(static_cast<size_t>(s.g.c_out * filter));
  for (int64_t o = 0; o < s.g.c_out; ++o) {
    const float* f = w + o * filter;
    const float sw = int8_weight_scale(f, filter);
    q.sw.push_back(sw);
    q.out_scale.push_back(q.sx * sw);
    for (int64_t i = 0; i < filter; ++i)
      q.codes[static_cast<size_t>(o * filter + i)] = static_cast<int8_t>(int8_code(f[i], sw, -127, 127));
  }
  return q;
}

struct LowpDescs {
  memory::desc src_user, dst_user, wei_user, bias;
  dnnl::convolution_forward::primitive_desc pd;
};

// Implementations whose results are wrong in oneDNN 2.6 (below) are never
// run; neither are the unoptimized reference ones.
// oneDNN 2.6's AMX brgconv crashes (SIGSEGV inside the primitive) on
// layers where an output's window lies wholly in the padding (a 1x1 layer
// that pads; a 2x2 stride-2 one whose last window starts past the input):
// the int8 fuzz tests hit it on a Xeon with AMX on every such layer they
// ran, and on no other (3x3 layers padding 1, strided or not, ran
// correctly thousands of times).
bool broken_amx_impl(const KnobConvSetup& s, const dnnl::primitive_desc& pd) {
  const ConvGeometry& g = s.g;
  bool padding_only = false;
  for (size_t i = 0; i < g.rank(); ++i) {
    const int64_t reach = (g.kernel[i] - 1) * g.dilations[i];  // the window's extent past its start
    const int64_t last_start = (g.out_spatial[i] - 1) * g.strides[i] - g.pads_begin[i];
    padding_only = padding_only || reach < g.pads_begin[i] || last_start >= g.in_spatial[i];
  }
  return padding_only && std::string_view(pd.impl_info_str()).find("amx") != std::string_view::npos;
}

Status acceptable_impl(const NodeContext& ctx, const KnobConvSetup& s, const Quantization* q,
                       const dnnl::primitive_desc& pd) {
  CP_TRY(require_optimized(ctx.node, pd, q != nullptr ? "int8 convolution" : "bf16 convolution"));
  if (broken_amx_impl(s, pd))
    return unsupported("{}: oneDNN's AMX convolution crashes where a window lies wholly in the padding",
                       ctx.node.describe());
  // oneDNN 2.6's GEMM-based convolution on signed 8-bit sources
  // (x64:gemm_s8s8s32) miscomputes grouped layers (found by the int8 fuzz
  // test on padded ones: errors of 10-20 on outputs of ~1; the cause is not
  // known, so every grouped layer it would run is refused). Only odd channel
  // counts route there; the reference backend runs them.
  if (q != nullptr && q->src_type == dt::s8 && s.g.group > 1 && is_gemm(pd))
    return unsupported("{}: oneDNN's GEMM-based signed int8 convolution miscomputes grouped layers",
                       ctx.node.describe());
  return {};
}

// The ISA an implementation was generated for: "avx512_core_vnni" of
// "jit_int8_1x1:avx512_core_vnni".
std::string_view impl_isa(std::string_view impl) {
  const size_t colon = impl.find(':');
  return colon == std::string_view::npos ? std::string_view() : impl.substr(colon + 1);
}

// The convolution: source in oneDNN's preferred layout (or, with
// impl.src_host, in the host layout), destination in the host layout when
// oneDNN has an optimized kernel writing it (NHWC), else in its preferred one
// with a reorder after.
//
// impl: which of oneDNN's implementations (default: its own pick, the first
// it lists); Errc::unsupported when it has no acceptable one of that kind.
// alternatives (with the default impl): receives the pick, then the other
// implementations worth timing against it (make_lowp_conv): those listed
// for either source layout that are generated for the pick's ISA, are not
// GEMM-based, pass acceptable_impl and differ from those before them in name
// or in the layouts they read.
Result<LowpDescs> lowp_descs(const NodeContext& ctx, const KnobConvSetup& s, const Quantization* q, const Runtime& rt,
                             const LowpImpl& impl = {}, std::vector<LowpImpl>* alternatives = nullptr) {
  const ConvGeometry& g = s.g;
  if (!s.act_ops_ok)
    return unsupported("{}: the fused activation has no exact oneDNN post-op", ctx.node.describe());
  // oneDNN 2.6's brgconv miscomputes (or crashes on) a sum post-op when
  // some output sees only padding (conv_select.cc); such layers, which no
  // real network has, are left to the reference backend.
  if (s.residual && has_padding_only_outputs(g))
    return unsupported("{}: a fused residual with padding-only outputs has no safe low-precision oneDNN kernel",
                       ctx.node.describe());
  const bool int8 = q != nullptr;
  const std::optional<ActivationCodes>& codes = ctx.output_codes;
  const bool codes_ok = !codes || (int8 ? (codes->type == DType::u8 || codes->type == DType::i8) && codes->scale > 0
                                          : codes->type == DType::bf16 && codes->scale == 1);
  if (codes && (s.residual || !codes_ok))
    return unsupported("{}: only int8 (bf16) convolutions without a fused residual write int8 (bf16) activations",
                       ctx.node.describe());
  LowpDescs d;
  const Shape x{g.n, g.c_in, g.in_spatial[0], g.in_spatial[1]};
  d.src_user = activation_desc(x, s.layout);
  d.dst_user = activation_desc(g.output_shape(), s.layout, codes ? codes_type(codes->type) : dt::f32);
  d.wei_user = plain_weights(g, int8 ? dt::s8 : dt::f32);
  if (s.has_bias) d.bias = memory::desc({g.c_out}, dt::f32, tag::x);
  const dt src_type = int8 ? q->src_type : dt::bf16;
  const memory::desc src_any(x, src_type, tag::any), src_host = activation_desc(x, s.layout, src_type);
  const memory::desc wei(weight_dims(g), int8 ? dt::s8 : dt::bf16, tag::any);
  dnnl::post_ops ops;
  if (s.residual) ops.append_sum(1.f);
  append_eltwise_ops(ops, s.act_ops);
  if (codes && int8) ops.append_eltwise(1.f, algorithm::eltwise_linear, 1.f / codes->scale, 0.f);
  dnnl::primitive_attr attr = base_attr();
  attr.set_post_ops(ops);
  if (int8) attr.set_output_scales(1 << 1, q->out_scale);
  const memory::dims strides{g.strides[0], g.strides[1]}, dilates{g.dilations[0] - 1, g.dilations[1] - 1};
  const memory::dims pad_l{g.pads_begin[0], g.pads_begin[1]}, pad_r{g.pads_end[0], g.pads_end[1]};
  std::vector<memory::desc> dst_choices;
  if (s.layout == Layout::nhwc || codes) dst_choices.push_back(d.dst_user);
  if (!codes) dst_choices.push_back(memory::desc(g.output_shape(), dt::f32, tag::any));
  const char* what = int8 ? "create an int8 convolution" : "create a bf16 convolution";
  Status last;
  for (const memory::desc& dst : dst_choices) {
    try {
      // oneDNN's iterator over implementations keeps a pointer to the
      // descriptor, so both outlive every primitive descriptor made here
      // that may still be advanced.
      const dnnl::convolution_forward::desc cd_any(prop_kind::forward_inference, algorithm::convolution_direct,
                                                   src_any, wei, d.bias, dst, strides, dilates, pad_l, pad_r);
      const dnnl::convolution_forward::desc cd_host(prop_kind::forward_inference, algorithm::convolution_direct,
                                                    src_host, wei, d.bias, dst, strides, dilates, pad_l, pad_r);
      auto conv_pd = [&](bool host_src) {
        return dnnl::convolution_forward::primitive_desc(host_src ? cd_host : cd_any, attr, rt.engine);
      };
      d.pd = conv_pd(false);
      // (Past a broken AMX pick to oneDNN's next implementation.)
      while (broken_amx_impl(s, d.pd) && d.pd.next_impl()) {
      }
      last = acceptable_impl(ctx, s, q, d.pd);
      // A refused GEMM-based pick is final (the other destination layout
      // gets the same implementation); an unoptimized one tries the next.
      if (!last.ok() && is_gemm(d.pd)) return last;
      if (!last.ok()) continue;
      const std::string pick = d.pd.impl_info_str();
      if (!impl.name.empty()) {
        // oneDNN may list an implementation twice (once more after its
        // primitive was created), so it is found by what it is.
        d.pd = conv_pd(impl.src_host);
        do {
          if (impl.name == d.pd.impl_info_str() && impl.src == d.pd.src_desc() && impl.wei == d.pd.weights_desc() &&
              acceptable_impl(ctx, s, q, d.pd).ok())
            return d;
        } while (d.pd.next_impl());
        return unsupported("{}: oneDNN has no usable implementation '{}'{} of this {} convolution", ctx.node.describe(),
                           impl.name, impl.src_host ? " (host-layout source)" : "", int8 ? "int8" : "bf16");
      }
      if (alternatives != nullptr) {
        // Fresh iterators, so that d.pd stays at the pick.
        alternatives->push_back({false, pick, d.pd.src_desc(), d.pd.weights_desc()});
        for (const bool host_src : {false, true}) {
          auto other = conv_pd(host_src);
          do {
            const LowpImpl found{host_src, other.impl_info_str(), other.src_desc(), other.weights_desc()};
            const bool fresh = std::none_of(alternatives->begin(), alternatives->end(), [&](const LowpImpl& e) {
              return e.name == found.name && e.src == found.src && e.wei == found.wei;
            });
            if (fresh && impl_isa(found.name) == impl_isa(pick) && !is_gemm(other) &&
                acceptable_impl(ctx, s, q, other).ok())
              alternatives->push_back(found);
          } while (other.next_impl());
        }
      }
      return d;
    } catch (const dnnl::error& e) {
      last = dnnl_status(ctx.node, what, e);
    }
  }
  return last;
}

class LowpConvKernel final : public OnednnKernel {
 public:
  LowpConvKernel(std::shared_ptr<const Runtime> rt, int threads) : OnednnKernel(std::move(rt), threads) {}

  // Throws dnnl::error (caught by the backend).
  Status build(const KnobConvSetup& s, LowpDescs d, std::optional<Quantization> q) {
    const Runtime& r = rt();
    q_ = std::move(q);
    residual_ = s.residual;
    src_user_ = user_memory(d.src_user, r);
    dst_user_ = user_memory(d.dst_user, r);
    // src_ is re-pointed at codes handed in by the executor, so it must not
    // own its buffer (oneDNN frees an owned buffer when the handle changes).
    src_own_ = Tensor(DType::u8, Shape{static_cast<int64_t>(d.pd.src_desc().get_size())});
    src_ = memory(d.pd.src_desc(), r.engine, src_own_.raw());
    const memory& src = src_;
    // Codes in the host layout can be read as they are.
    const dt src_type = q_ ? q_->src_type : dt::bf16;
    if (d.pd.src_desc() == activation_desc(d.src_user.dims(), s.layout, src_type))
      input_codes_ = ActivationCodes{codes_dtype(src_type), q_ ? q_->sx : 1.0f};
    dst_ = d.pd.dst_desc() == d.dst_user ? dst_user_ : memory(d.pd.dst_desc(), r.engine);
    dst_is_user_ = dst_.get() == dst_user_.get();
    {
      // The source conversion (and int8 quantisation) runs on every call.
      dnnl::primitive_attr attr;
      if (q_) attr.set_output_scales(0, {1.0f / q_->sx});
      dnnl::reorder::primitive_desc rpd(r.engine, d.src_user, r.engine, d.pd.src_desc(), attr);
      src_reorder_ = BoundPrimitive(dnnl::reorder(rpd), {{DNNL_ARG_FROM, src_user_}, {DNNL_ARG_TO, src}});
    }
    dst_reorder_ = bound_reorder(dst_, dst_user_, r);
    if (residual_) {
      residual_user_ = user_memory(d.dst_user, r);
      residual_reorder_ = bound_reorder(residual_user_, dst_, r);
    }
    // Constant weights, converted / reordered once.
    memory wei(d.pd.weights_desc(), r.engine);
    memory wei_user = q_ ? memory(d.wei_user, r.engine, q_->codes.data())
                         : memory(d.wei_user, r.engine, const_cast<void*>(s.weights->raw()));
    CP_TRY(execute_once(bound_reorder(wei_user, wei, r), r));
    if (s.has_bias) {
      bias_runtime_ = s.bias == nullptr;
      bias_.resize(static_cast<size_t>(s.g.c_out));
      bias_mem_ = memory(d.bias, r.engine, bias_.data());
      if (!bias_runtime_) set_bias(s.bias->data<float>());
    }
    conv_ = BoundPrimitive(dnnl::primitive(d.pd), {{DNNL_ARG_SRC, src},
                                                    {DNNL_ARG_WEIGHTS, wei},
                                                    {DNNL_ARG_BIAS, bias_mem_},
                                                    {DNNL_ARG_DST, dst_},
                                                    {DNNL_ARG_SCRATCHPAD, scratchpad_for(d.pd, r)}});
    return {};
  }

 protected:
  std::optional<ActivationCodes> input_codes() const override { return input_codes_; }
  // The residual is put into dst (or read from it in place) before the
  // convolution writes it.
  bool residual_in_place() const override { return true; }

  Status quantize_input(const Tensor& value, Tensor& codes) override {
    if (!input_codes_ || value.dtype() != DType::f32 || codes.dtype() != input_codes_->type ||
        value.shape() != codes.shape())
      return runtime_error("low-precision convolution: cannot convert a {} {} into {} {}", dtype_name(value.dtype()),
                           shape_str(value.shape()), dtype_name(codes.dtype()), shape_str(codes.shape()));
    use_threads(threads());
    bind(src_user_, &value);
    src_.set_data_handle(codes.raw());
    Status st = src_reorder_.execute(stream());
    src_.set_data_handle(src_own_.raw());
    return st;
  }

  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const dnnl::stream& s = stream();
    if (bias_runtime_) set_bias(inputs[2]->data<float>());
    bind(dst_user_, outputs[0]);
    if (input_codes_ && inputs[0]->dtype() == input_codes_->type) {
      src_.set_data_handle(const_cast<void*>(inputs[0]->raw()));
    } else if (inputs[0]->dtype() != DType::f32) {
      return runtime_error("low-precision convolution: input #0 is {}, expected float32{}",
                           dtype_name(inputs[0]->dtype()),
                           input_codes_ ? fmt::format(" or {}", dtype_name(input_codes_->type)) : std::string());
    } else {
      src_.set_data_handle(src_own_.raw());
      bind(src_user_, inputs[0]);
      CP_TRY(src_reorder_.execute(s));
    }
    if (residual_) {
      // The sum post-op adds what the destination holds.
      bind(residual_user_, inputs[3]);
      if (!dst_is_user_ || inputs[3]->raw() != outputs[0]->raw()) CP_TRY(residual_reorder_.execute(s));
    }
    CP_TRY(conv_.execute(s));
    if (!dst_reorder_.empty()) CP_TRY(dst_reorder_.execute(s));
    return {};
  }

 private:
  // int8: oneDNN adds the bias before the output scale, so it is divided by it.
  void set_bias(const float* b) {
    for (size_t o = 0; o < bias_.size(); ++o) bias_[o] = q_ ? b[o] / q_->out_scale[o] : b[o];
  }

  std::optional<Quantization> q_;
  std::optional<ActivationCodes> input_codes_;
  Tensor src_own_;  // src_'s own buffer (codes from the reorder)
  bool residual_ = false;
  bool dst_is_user_ = false;
  bool bias_runtime_ = false;
  std::vector<float> bias_;
  memory src_user_, dst_user_, residual_user_, src_, dst_, bias_mem_;
  BoundPrimitive src_reorder_, residual_reorder_, conv_, dst_reorder_;
};

std::optional<Quantization> quantization_for(const KnobConvSetup& s) {
  if (s.knob->kind != KnobKind::int8) return std::nullopt;
  return quantize(s);
}

}  // namespace

int lowp_team(const KnobConvSetup& s, int threads) { return team_for_flops(threads, conv_layer_flops(s.g)); }

Status check_lowp_conv(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt) {
  use_threads(lowp_team(s, context_threads(ctx, 1)));
  // Only the output scales' count matters to the primitive descriptor.
  std::optional<Quantization> q;
  if (s.knob->kind == KnobKind::int8) {
    q.emplace();
    q->sx = input_scale(*s.input_range, &q->src_type);
    q->out_scale.assign(static_cast<size_t>(s.g.c_out), 1.0f);
  }
  return lowp_descs(ctx, s, q ? &*q : nullptr, rt).status();
}

Result<std::unique_ptr<Kernel>> make_lowp_conv_impl(const NodeContext& ctx, const KnobConvSetup& s,
                                                    std::shared_ptr<const Runtime> rt, int threads,
                                                    const LowpImpl& impl) {
  if (impl.compact)
    return make_compact_bf16(s, std::move(rt), threads, ctx.output_codes.has_value(), impl.tile_n, impl.tile_m);
  const int team = lowp_team(s, threads);
  use_threads(team);
  std::optional<Quantization> q = quantization_for(s);
  CP_ASSIGN_OR_RETURN(LowpDescs d, lowp_descs(ctx, s, q ? &*q : nullptr, *rt, impl));
  auto kernel = std::make_unique<LowpConvKernel>(rt, team);
  CP_TRY(kernel->build(s, std::move(d), std::move(q)));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

Result<std::vector<LowpImpl>> lowp_conv_impls(const NodeContext& ctx, const KnobConvSetup& s, const Runtime& rt,
                                              int threads) {
  use_threads(lowp_team(s, threads));
  std::optional<Quantization> q = quantization_for(s);
  std::vector<LowpImpl> impls;
  CP_TRY(lowp_descs(ctx, s, q ? &*q : nullptr, rt, {}, &impls).status());
  // bf16 also on the compact kernel's tiles, where they apply: 64 x 6
  // tiles, and 32 x 12 on layers of more than 32 output channels (on
  // MobileNet-style's 32 -> 64 pointwise layer, 4 images: 19-20 against
  // 21-22 us).
  if (s.knob->kind == KnobKind::bf16 && check_compact_bf16(s, ctx.output_codes.has_value()).ok()) {
    impls.push_back({false, "caliprox:compact_bf16 64", {}, {}, true, 64, 0});
    if (s.g.c_out > 32) impls.push_back({false, "caliprox:compact_bf16 32", {}, {}, true, 32, 0});
  }
  return impls;
}

Result<std::unique_ptr<Kernel>> make_lowp_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                               std::shared_ptr<const Runtime> rt, int threads) {
  // oneDNN lists several implementations of these convolutions and runs the
  // first; on this backend's target others were often faster on the bundled
  // networks' layers (one thread, NHWC, in isolation: int8 jit_int8_1x1
  // 5.3 us against brgconv_1x1's 7.7 on 4 images of 64 -> 128 channels 1x1
  // stride 2; jit_int8 59 against brgconv's 67 us on 128 -> 128 3x3 on 7x7;
  // bf16 jit_bf16 9.1 against brgconv_1x1's 11.9 us on 32 -> 64 1x1 stride
  // 2, with the source in NHWC, which oneDNN's own pick of source layout
  // rules out). bf16 also has the compact kernel's tiles, which multiply
  // channel pairs with the same instruction and finish (or write codes)
  // in registers: on MobileNet-style's 16 -> 32 pointwise layer, 4 images,
  // 6.2-6.4 us against 8.2-8.9 for oneDNN's. So layers of 1+ MFLOP
  // time them all, as the Conv tuner times its variants (conv.h), and keep
  // the fastest; the choice is remembered for the process.
  const int team = lowp_team(s, threads);
  static TuningCache<LowpImpl> choices;
  // The int8 source type follows from the calibrated range.
  dt src_type = dt::bf16;
  if (s.knob->kind == KnobKind::int8) input_scale(*s.input_range, &src_type);
  const std::string key = fmt::format("{}|{}|{}|{}", s.knob->name, static_cast<int>(src_type),
                                      ctx.output_codes ? dtype_name(ctx.output_codes->type) : "f32",
                                      tuning_key(ctx, team));
  if (auto known = choices.find(key)) {
    auto kernel = make_lowp_conv_impl(ctx, s, rt, threads, *known);
    if (kernel.ok()) return kernel;
  }
  if (!conv_tuning_enabled() || conv_layer_flops(s.g) < 1e6) return make_lowp_conv_impl(ctx, s, rt, threads, {});
  CP_ASSIGN_OR_RETURN(std::vector<LowpImpl> impls, lowp_conv_impls(ctx, s, *rt, threads));
  std::vector<std::unique_ptr<Kernel>> built;
  std::vector<LowpImpl> tried;
  for (const LowpImpl& impl : impls) {
    auto kernel = make_lowp_conv_impl(ctx, s, rt, threads, impl);
    if (!kernel.ok()) {
      if (built.empty()) return kernel.status();  // oneDNN's own pick
      continue;
    }
    // Timed with the residual in the output's buffer (when the session
    // lends it), a kernel that cannot read it there would compute from the
    // wrong residual and skip the copy the session then makes for it
    // (the compact tiles with sigmoid or tanh; oneDNN's are always in place).
    if (ctx.residual_in_place && s.residual && !(*kernel)->residual_in_place()) continue;
    built.push_back(std::move(kernel).value());
    tried.push_back(impl);
  }
  if (built.size() == 1) return std::move(built.front());
  std::vector<Kernel*> kernels;
  std::vector<std::string> labels;
  for (size_t i = 0; i < built.size(); ++i) {
    kernels.push_back(built[i].get());
    labels.push_back(fmt::format("{}: implementation {}{}", s.knob->name, tried[i].name,
                                 tried[i].src_host ? " (host-layout source)" : ""));
  }
  CP_ASSIGN_OR_RETURN(const size_t winner, pick_fastest(ctx, kernels, labels, ctx.residual_in_place, 1e-3, 2));
  choices.remember(key, tried[winner]);
  return std::move(built[winner]);
}

}  // namespace caliprox::onednn
