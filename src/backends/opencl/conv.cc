// Conv on the device, exact and under the kernel knobs it runs natively:
// im2col of the kept filter taps at the computed output positions, one
// CLBlast GEMM (grouped convolutions: a direct kernel), then one pass that
// adds the bias, fills perforated rows or columns by interpolation, adds the
// fused residual and applies the activation (kernels_cl.cc, conv_finish).
//
//   perforation  im2col of the computed rows / columns only: a GEMM with
//                1/r fewer columns, then the interpolation in conv_finish;
//   sampling     im2col of the kept taps only: a GEMM with K * (s-1)/s;
//   half (fp16)  x, weights, bias and residual rounded to IEEE half and the
//                output too, as the reference knob does, the GEMM in fp32
//                (emulated precision: see OpenClBackend::knob_support).
//
// The batch runs in chunks of samples so the im2col and GEMM scratch stay
// within kScratchBytes (shared by the backend's kernels, Runtime::scratch).
#include <clblast.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <vector>

#include "backends/opencl/ops.h"
#include "ir/ops/activation.h"
#include "ir/ops/conv_geometry.h"

namespace caliprox::opencl {

namespace {

constexpr size_t kScratchBytes = size_t{64} << 20;
enum ScratchSlot { kColsSlot = 0, kGemmSlot = 1 };

bool is_f32(const TensorType& t) { return t.dtype == DType::f32; }

Status clblast_check(clblast::StatusCode code, std::string_view what) {
  if (code == clblast::StatusCode::kSuccess) return {};
  return runtime_error("CLBlast: {} failed with status {}", what, static_cast<int>(code));
}

// Position of each index in `kept`, -1 where it is not kept.
std::vector<int> index_of(const std::vector<int64_t>& kept, int64_t extent) {
  std::vector<int> idx(static_cast<size_t>(extent), -1);
  for (size_t i = 0; i < kept.size(); ++i) idx[static_cast<size_t>(kept[i])] = static_cast<int>(i);
  return idx;
}

std::vector<int64_t> all_of(int64_t extent) {
  std::vector<int64_t> v(static_cast<size_t>(extent));
  for (int64_t i = 0; i < extent; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

class ConvKernel final : public Kernel {
 public:
  ConvKernel(Runtime& rt, const ConvGeometry& g) : rt_(rt), g_(g) {}

  Status prepare(const NodeContext& ctx);

  // The residual is read and the output written at the same index by one
  // work item, so one buffer for both is fine.
  bool residual_in_place() const override { return true; }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    auto lock = rt_.run_lock();
    const cl_mem x = mem_of(*inputs[0]);
    const cl_mem y = mem_of(*outputs[0]);
    const cl_mem residual = residual_ ? mem_of(*inputs[3]) : y;
    for (int n0 = 0; n0 < n_; n0 += chunk_) CP_TRY(run_chunk(x, residual, y, n0, std::min(chunk_, n_ - n0)));
    return {};
  }

 private:
  Status run_chunk(cl_mem x, cl_mem residual, cl_mem y, int n0, int nc);

  Runtime& rt_;
  ConvGeometry g_;
  act::Activation act_;
  bool residual_ = false;
  int half_ = 0;
  int perf_ = 0;  // 0 none, 1 rows, 2 columns
  bool gemm_ = true;
  int n_ = 0, ntaps_ = 0, n_rows_ = 0, n_cols_ = 0, chunk_ = 1;
  std::shared_ptr<void> w_, bias_, tap_c_, tap_kh_, tap_kw_, rows_, cols_, row_index_, col_index_;
  KernelHandle im2col_, direct_, finish_;
};

Result<std::shared_ptr<void>> upload_ints(Runtime& rt, const std::vector<int>& v) {
  return upload_constant(rt, v.data(), v.size() * sizeof(int));
}

Status ConvKernel::prepare(const NodeContext& ctx) {
  const Knob* knob = ctx.knob && ctx.knob->kind != KnobKind::exact ? ctx.knob : nullptr;
  CP_ASSIGN_OR_RETURN(act_, act::fused_activation(ctx.node));
  residual_ = ctx.node.attr_int(kAttrResidual, 0) == 1;
  half_ = knob && knob->half ? 1 : 0;
  gemm_ = g_.group == 1;
  n_ = static_cast<int>(g_.n);
  const int64_t oh = g_.out_spatial[0], ow = g_.out_spatial[1], kh = g_.kernel[0], kw = g_.kernel[1];
  const bool perforated = knob && knob->kind == KnobKind::perforation;
  perf_ = perforated ? (knob->rows ? 1 : 2) : 0;
  const std::vector<int64_t> rows = perf_ == 1 ? perforation_kept(*knob, oh) : all_of(oh);
  const std::vector<int64_t> cols = perf_ == 2 ? perforation_kept(*knob, ow) : all_of(ow);
  n_rows_ = static_cast<int>(rows.size());
  n_cols_ = static_cast<int>(cols.size());

  // Kept taps in filter order, and the effective weights [c_out][taps].
  const int64_t filter = g_.c_in_per_group() * kh * kw;
  std::vector<bool> keep(static_cast<size_t>(filter), true);
  if (knob && knob->kind == KnobKind::sampling) keep = sampling_mask(*knob, g_.c_in_per_group(), kh, kw);
  std::vector<int> tc, tkh, tkw, tindex;
  for (int64_t i = 0; i < filter; ++i)
    if (keep[static_cast<size_t>(i)]) {
      tc.push_back(static_cast<int>(i / (kh * kw)));
      tkh.push_back(static_cast<int>((i / kw) % kh));
      tkw.push_back(static_cast<int>(i % kw));
      tindex.push_back(static_cast<int>(i));
    }
  ntaps_ = static_cast<int>(tindex.size());
  const float scale = knob && knob->kind == KnobKind::sampling ? sampling_scale(*knob) : 1.0f;
  const float* w = ctx.constants[1]->data<float>();
  std::vector<float> weights(static_cast<size_t>(g_.c_out) * tindex.size());
  for (int64_t oc = 0; oc < g_.c_out; ++oc)
    for (size_t t = 0; t < tindex.size(); ++t) {
      float v = w[oc * filter + tindex[t]];
      if (scale != 1.0f) v *= scale;
      weights[static_cast<size_t>(oc) * tindex.size() + t] = half_ ? half_to_float(float_to_half(v)) : v;
    }
  std::vector<float> bias(static_cast<size_t>(g_.c_out), 0.0f);
  const Tensor* b =
      ctx.input_types.size() > 2 && ctx.input_types[2].dtype != DType::undefined ? ctx.constants[2] : nullptr;
  for (int64_t oc = 0; oc < g_.c_out; ++oc) {
    const float v = b ? b->data<float>()[oc] : 0.0f;
    bias[static_cast<size_t>(oc)] = half_ ? half_to_float(float_to_half(v)) : v;
  }

  // Chunks of samples whose scratch fits kScratchBytes (at least one sample).
  const size_t per_sample = static_cast<size_t>(n_rows_) * static_cast<size_t>(n_cols_);
  const size_t rows_of_scratch = static_cast<size_t>(std::max<int64_t>(gemm_ ? ntaps_ : 0, g_.c_out));
  const size_t sample_bytes = rows_of_scratch * per_sample * sizeof(float);
  const size_t limit = std::min<size_t>(kScratchBytes, rt_.info().max_allocation);
  chunk_ = static_cast<int>(std::clamp<size_t>(limit / std::max<size_t>(sample_bytes, 1), 1, static_cast<size_t>(n_)));
  const size_t m_max = static_cast<size_t>(chunk_) * per_sample;
  if (rows_of_scratch * m_max >= static_cast<size_t>(INT_MAX))
    return unsupported("the convolution is too large for 32-bit indexing on the device");
  if (gemm_) CP_TRY(rt_.fits(static_cast<size_t>(ntaps_) * m_max * sizeof(float), "its im2col scratch"));
  CP_TRY(rt_.fits(static_cast<size_t>(g_.c_out) * m_max * sizeof(float), "its GEMM scratch"));
  if (gemm_) CP_TRY(rt_.reserve_scratch(kColsSlot, static_cast<size_t>(ntaps_) * m_max * sizeof(float)));
  CP_TRY(rt_.reserve_scratch(kGemmSlot, static_cast<size_t>(g_.c_out) * m_max * sizeof(float)));

  std::vector<int> rows_i(rows.begin(), rows.end()), cols_i(cols.begin(), cols.end());
  CP_ASSIGN_OR_RETURN(w_, upload_constant(rt_, weights.data(), weights.size() * sizeof(float)));
  CP_ASSIGN_OR_RETURN(bias_, upload_constant(rt_, bias.data(), bias.size() * sizeof(float)));
  CP_ASSIGN_OR_RETURN(tap_c_, upload_ints(rt_, tc));
  CP_ASSIGN_OR_RETURN(tap_kh_, upload_ints(rt_, tkh));
  CP_ASSIGN_OR_RETURN(tap_kw_, upload_ints(rt_, tkw));
  CP_ASSIGN_OR_RETURN(rows_, upload_ints(rt_, rows_i));
  CP_ASSIGN_OR_RETURN(cols_, upload_ints(rt_, cols_i));
  CP_ASSIGN_OR_RETURN(row_index_, upload_ints(rt_, index_of(rows, oh)));
  CP_ASSIGN_OR_RETURN(col_index_, upload_ints(rt_, index_of(cols, ow)));
  CP_ASSIGN_OR_RETURN(cl_kernel k, rt_.kernel(gemm_ ? "im2col" : "conv_direct"));
  (gemm_ ? im2col_ : direct_) = KernelHandle(k);
  CP_ASSIGN_OR_RETURN(k, rt_.kernel("conv_finish"));
  finish_ = KernelHandle(k);
  if (!gemm_) return {};
  // CLBlast compiles its GEMM kernels on first use (seconds on PoCL): that
  // happens here, once per shape class, not inside the first timed run.
  auto lock = rt_.run_lock();
  return clblast_check(clblast::Gemm(clblast::Layout::kRowMajor, clblast::Transpose::kNo, clblast::Transpose::kNo,
                                     static_cast<size_t>(g_.c_out), m_max, static_cast<size_t>(ntaps_), 1.0f,
                                     static_cast<cl_mem>(w_.get()), 0, static_cast<size_t>(ntaps_),
                                     rt_.scratch(kColsSlot), 0, m_max, 0.0f, rt_.scratch(kGemmSlot), 0, m_max,
                                     &rt_.queue()),
                       "the warm-up GEMM");
}

Status ConvKernel::run_chunk(cl_mem x, cl_mem residual, cl_mem y, int n0, int nc) {
  const int m_total = nc * n_rows_ * n_cols_;
  const auto geometry = [&](cl_kernel k, cl_uint first) {
    return set_args_from(k, first, static_cast<int>(g_.c_in), static_cast<int>(g_.in_spatial[0]),
                         static_cast<int>(g_.in_spatial[1]), static_cast<int>(g_.strides[0]),
                         static_cast<int>(g_.strides[1]), static_cast<int>(g_.pads_begin[0]),
                         static_cast<int>(g_.pads_begin[1]), static_cast<int>(g_.dilations[0]),
                         static_cast<int>(g_.dilations[1]), static_cast<cl_mem>(tap_c_.get()),
                         static_cast<cl_mem>(tap_kh_.get()), static_cast<cl_mem>(tap_kw_.get()),
                         static_cast<cl_mem>(rows_.get()), static_cast<cl_mem>(cols_.get()), n_rows_, n_cols_, n0,
                         m_total);
  };
  const cl_mem g = rt_.scratch(kGemmSlot);
  if (gemm_) {
    const cl_mem cols = rt_.scratch(kColsSlot);
    CP_TRY(set_args(im2col_.k, x, cols));
    CP_TRY(geometry(im2col_.k, 2));
    CP_TRY(set_args_from(im2col_.k, 20, half_));
    CP_TRY(launch(rt_.queue(), im2col_.k, static_cast<size_t>(ntaps_), static_cast<size_t>(m_total)));
    const auto m = static_cast<size_t>(m_total);
    CP_TRY(clblast_check(clblast::Gemm(clblast::Layout::kRowMajor, clblast::Transpose::kNo, clblast::Transpose::kNo,
                                       static_cast<size_t>(g_.c_out), m, static_cast<size_t>(ntaps_), 1.0f,
                                       static_cast<cl_mem>(w_.get()), 0, static_cast<size_t>(ntaps_), cols, 0, m, 0.0f,
                                       g, 0, m, &rt_.queue()),
                         "the convolution GEMM"));
  } else {
    CP_TRY(set_args(direct_.k, x, static_cast<cl_mem>(w_.get()), g));
    CP_TRY(geometry(direct_.k, 3));
    CP_TRY(set_args_from(direct_.k, 21, ntaps_, static_cast<int>(g_.c_out_per_group()),
                         static_cast<int>(g_.c_in_per_group()), half_));
    CP_TRY(launch(rt_.queue(), direct_.k, static_cast<size_t>(g_.c_out), static_cast<size_t>(m_total)));
  }
  CP_TRY(set_args(finish_.k, g, static_cast<cl_mem>(bias_.get()), residual, y, static_cast<int>(g_.c_out),
                  static_cast<int>(g_.out_spatial[0]), static_cast<int>(g_.out_spatial[1]), n0, m_total,
                  static_cast<cl_mem>(row_index_.get()), static_cast<cl_mem>(col_index_.get()), n_rows_, n_cols_, perf_,
                  residual_ ? 1 : 0, static_cast<int>(act_.kind), act_.alpha, act_.beta, half_));
  const size_t outputs =
      static_cast<size_t>(nc) * static_cast<size_t>(g_.c_out * g_.out_spatial[0] * g_.out_spatial[1]);
  return launch(rt_.queue(), finish_.k, outputs);
}

}  // namespace

bool supports_conv(const NodeContext& ctx) {
  if (ctx.node.op_type != "Conv" || ctx.input_types.size() < 2 || ctx.output_types.empty()) return false;
  if (ctx.input_types[0].shape.size() != 4 || !is_f32(ctx.input_types[0]) || !is_f32(ctx.input_types[1]) ||
      !is_f32(ctx.output_types[0]))
    return false;
  // Weights and bias are constants (uploaded once); the residual an f32 value.
  if (ctx.constants[1] == nullptr) return false;
  if (ctx.input_types.size() > 2 && ctx.input_types[2].dtype != DType::undefined &&
      (ctx.constants[2] == nullptr || !is_f32(ctx.input_types[2])))
    return false;
  if (ctx.input_types.size() > 3 && ctx.input_types[3].dtype != DType::undefined && !is_f32(ctx.input_types[3]))
    return false;
  if (ctx.output_codes || !act::fused_activation(ctx.node).ok()) return false;
  if (ctx.knob && ctx.knob->kind != KnobKind::exact) {
    const KnobKind kind = ctx.knob->kind;
    if (kind != KnobKind::perforation && kind != KnobKind::sampling && kind != KnobKind::fp16) return false;
    if (!knob_applies(*ctx.knob, ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape).ok()) return false;
  }
  return conv_geometry(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape).ok();
}

Result<std::unique_ptr<Kernel>> make_conv(Runtime& rt, const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape));
  if (ctx.output_types[0].shape != g.output_shape())
    return runtime_error("{}: the planned output shape {} differs from the kernel's {}", ctx.node.describe(),
                         shape_str(ctx.output_types[0].shape), shape_str(g.output_shape()));
  if (ctx.node.attr_int(kAttrResidual, 0) == 1 &&
      (ctx.input_types.size() < 4 || ctx.input_types[3].shape != g.output_shape()))
    return invalid_input("{}: {}=1 needs input #3 of the output shape {}", ctx.node.describe(), kAttrResidual,
                         shape_str(g.output_shape()));
  auto kernel = std::make_unique<ConvKernel>(rt, g);
  CP_TRY(kernel->prepare(ctx));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace caliprox::opencl
