// Perforation and sampling on the compact im2col + GEMM kernel (plan and
// loops in src/kernels/: knob_plan.h, knob_loops-inl.h): the plan is
// built here at prepare time, and the driver spreads the work over the
// OpenMP team: items of one or more images (small layers batch images so
// that each GEMM call has work enough to hide its overhead), or, below one
// item per thread, the column chunks and channel slices of each image.
// Each thread owns its column buffer, sized to stay in L2 next to the
// GEMM's packed panels; the GEMM is oneDNN's sgemm, single-threaded inside
// the parallel region.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include <oneapi/dnnl/dnnl.h>

#include "backends/onednn/conv.h"
#include "backends/onednn/knob_conv.h"
#include "backends/onednn/knob_conv_compact_plan.h"
#include "util/cpu.h"
#include "util/log.h"

namespace caliprox::onednn {
namespace {

using compact::Plan;
using compact::Tap;

// body(i, t) for i in [0, count) across a team of `team` threads, t the
// calling thread's index in it. On one thread no parallel region is
// entered: libgomp's region cost ~1.3 us here even for a team of one (and
// inside the batch split's worker region omp_get_thread_num() would name
// the worker, not 0), a few percent of a knob layer's time per chunk.
template <class Body>
void team_for(int team, int64_t count, Body&& body) {
  if (team <= 1) {
    for (int64_t i = 0; i < count; ++i) body(i, 0);
    return;
  }
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) body(i, omp_get_thread_num());
}

class CompactConvKernel final : public OnednnKernel {
 public:
  CompactConvKernel(std::shared_ptr<const Runtime> rt, int threads, Plan plan, const KnobConvSetup& s)
      : OnednnKernel(std::move(rt), threads), p_(std::move(plan)), ops_(*compact::ops_for(p_.isa)), team_(threads) {
    // NHWC epilogues read the bias repeated along a row of positions.
    bias_.assign(static_cast<size_t>(p_.oc * (p_.nhwc ? p_.ow : 1)), 0.f);
    bias_runtime_ = s.has_bias && s.bias == nullptr;
    if (s.bias != nullptr) set_bias(s.bias->data<float>());
    items_ = (p_.n + p_.images - 1) / p_.images;
    // Items spread over the team, or the whole team on one image at a time.
    per_item_ = items_ >= team_ || team_ == 1;
    const size_t buffers = per_item_ ? static_cast<size_t>(team_) : 1;
    col_.resize(static_cast<size_t>(team_));
    if (!p_.direct && !p_.tiled)
      for (auto& c : col_) c.assign(static_cast<size_t>(p_.k * p_.chunk + 16), 0.f);
    if (p_.pointwise) {
      // On one thread, image by image, so that each image's packed input,
      // computed values and output stay in cache between the passes and
      // the output's stores overlap the next image's multiplications
      // (whole-batch passes: 35 against 31 us for perf-row-2-0 of 8 images
      // of a 128-channel 7x7 layer); on a team, the batch at once, each
      // pass split across it.
      pw_images_ = team_ == 1 ? 1 : p_.n;
      packed_.assign(static_cast<size_t>(pw_images_ * p_.npos * p_.k), 0.f);
      if (p_.perforated) comp_.assign(1, std::vector<float>(static_cast<size_t>(pw_images_ * p_.npos * p_.oc)));
      return;
    }
    // A separate compact buffer when the computed values cannot go straight
    // into the output: perforation, or NCHW planes of several images.
    if (p_.perforated || (!p_.nhwc && p_.images > 1))
      comp_.assign(buffers, std::vector<float>(static_cast<size_t>(p_.oc * p_.npos * p_.images)));
    if (p_.winograd) {
      const int64_t maps = p_.wr > 0 ? (p_.wr + 2) * 6 : 6;
      const int64_t v = p_.wr > 0 ? maps * p_.wpos * p_.c : 6 * p_.hp * p_.wt * p_.c;
      wino_v_.assign(buffers, std::vector<float>(static_cast<size_t>(v)));
      wino_m_.assign(buffers, std::vector<float>(static_cast<size_t>(maps * p_.wpos * p_.oc)));
    }
    staged_ = p_.tiled ? p_.staged_input : p_.half || !p_.channel_perm.empty();
    const int64_t staged_image = p_.tiled ? p_.hp * p_.wp * p_.c : p_.in_image();
    if (staged_) stage_.assign(buffers, std::vector<float>(static_cast<size_t>(staged_image * p_.images)));
    if (p_.bf16) {
      bf16_ = compact::bf16_ops(p_.isa);
      x16_.assign(buffers, std::vector<uint16_t>(static_cast<size_t>(2 * p_.in_image() * p_.images)));
    }
  }

  bool tiled() const { return p_.tiled; }
  // The tile the plan settled on (tiled path).
  int64_t tile_n() const { return p_.tile_n; }
  int64_t tile_m() const { return p_.tile_m; }

  // The residual may be the output's own buffer (the executor then skips
  // copying it) when every output value is written only after its residual
  // value was read: on tiles that start from bias + residual and end in
  // registers (Plan::tile_bias; their skipped rows are formed value by
  // value, their skipped columns in the tiles). Elsewhere y is written
  // before the residual is added: the GEMM, the direct loops and raw tiles
  // write conv values into it, the epilogues interpolate a row into it
  // first (and formed_run takes its output and residual as __restrict).
  // (The pointwise path would qualify without perforation; it does not
  // claim it, untested.)
  bool residual_in_place() const override { return p_.tile_bias; }

  // bf16: X as bfloat16 codes in NHWC, as the conversion here writes them.
  std::optional<ActivationCodes> input_codes() const override {
    if (!p_.bf16) return std::nullopt;
    return ActivationCodes{DType::bf16, 1.0f};
  }

  Status quantize_input(const Tensor& value, Tensor& codes) override {
    if (!p_.bf16 || value.dtype() != DType::f32 || codes.dtype() != DType::bf16 || value.shape() != codes.shape())
      return runtime_error("compact convolution: cannot convert a {} {} into {} {}", dtype_name(value.dtype()),
                           shape_str(value.shape()), dtype_name(codes.dtype()), shape_str(codes.shape()));
    const int64_t per_image = value.numel() / p_.n;
    team_for(team_, p_.n, [&](int64_t n, int) {
      bf16_->to_bf16(value.data<float>() + n * per_image, static_cast<uint16_t*>(codes.raw()) + n * per_image,
                     per_image);
    });
    return {};
  }

  // The pointwise path's oneDNN convolution: the packed input [N][rows][cols][k]
  // (NHWC over dims N, k, rows, cols) by the effective weights into comp
  // (perforation: no bias, the epilogue adds it) or into the output with the
  // bias, residual (sum post-op) and activation fused. Throws dnnl::error.
  Status build_pointwise(const KnobConvSetup& s) {
    const Runtime& r = rt();
    use_threads(team_);
    const int64_t rows = static_cast<int64_t>(p_.rows.size());
    const memory::desc src({pw_images_, p_.k, rows, p_.nq}, memory::data_type::f32, memory::format_tag::nhwc);
    const memory::desc dst({pw_images_, p_.oc, rows, p_.nq}, memory::data_type::f32, memory::format_tag::nhwc);
    const memory::desc wei_user({p_.oc, p_.k, 1, 1}, memory::data_type::f32, memory::format_tag::iohw);
    const memory::desc wei_any({p_.oc, p_.k, 1, 1}, memory::data_type::f32, memory::format_tag::any);
    memory::desc bias;
    dnnl::post_ops ops;
    if (!p_.perforated) {
      if (s.has_bias) bias = memory::desc({p_.oc}, memory::data_type::f32, memory::format_tag::x);
      if (p_.residual) ops.append_sum(1.f);
      append_eltwise_ops(ops, s.act_ops);
    }
    dnnl::primitive_attr attr = base_attr();
    attr.set_post_ops(ops);
    const dnnl::convolution_forward::desc cd(dnnl::prop_kind::forward_inference,
                                             dnnl::algorithm::convolution_direct, src, wei_any, bias, dst, {1, 1},
                                             {0, 0}, {0, 0});
    const dnnl::convolution_forward::primitive_desc pd(cd, attr, r.engine);
    // oneDNN's reference loops would be slower than the tiled kernel.
    if (std::string_view(pd.impl_info_str()).starts_with("ref"))
      return unsupported("knob '{}': oneDNN has no optimized 1x1 convolution for the pointwise path", s.knob->name);
    if (pd.src_desc() != src || pd.dst_desc() != dst)
      return unsupported("knob '{}': oneDNN's 1x1 convolution wants other layouts than NHWC", s.knob->name);
    memory wei(pd.weights_desc(), r.engine);
    CP_TRY(execute_once(bound_reorder(memory(wei_user, r.engine, p_.weights.data()), wei, r), r));
    pw_src_ = memory(src, r.engine, packed_.data());
    pw_dst_ = user_memory(dst, r);
    pw_bias_ = bias ? memory(bias, r.engine, bias_.data()) : memory();
    pw_conv_ = BoundPrimitive(dnnl::primitive(pd), {{DNNL_ARG_SRC, pw_src_},
                                                     {DNNL_ARG_WEIGHTS, wei},
                                                     {DNNL_ARG_BIAS, pw_bias_},
                                                     {DNNL_ARG_DST, pw_dst_},
                                                     {DNNL_ARG_SCRATCHPAD, scratchpad_for(pd, r)}});
    return {};
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (bias_runtime_) set_bias(inputs[2]->data<float>());
    const float* res = p_.residual ? inputs[3]->data<float>() : nullptr;
    if (p_.bf16) return run_bf16(*inputs[0], res, *outputs[0]);
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    if (p_.pointwise) return run_pointwise(x, res, y);
    std::atomic<bool> failed{false};
    if (per_item_) {
      team_for(team_, items_, [&](int64_t item, int t) {
        if (!run_item(x, res, y, item, static_cast<size_t>(t))) failed = true;
      });
    } else {
      for (int64_t n = 0; n < p_.n; ++n) share_image(x, res, y, n, failed);
    }
    if (failed) return runtime_error("oneDNN sgemm failed in a knob convolution");
    return {};
  }

 private:
  void set_bias(const float* b) {
    for (size_t i = 0; i < bias_.size(); ++i) {
      const float v = b[i % static_cast<size_t>(p_.oc)];
      bias_[i] = p_.half ? round_half_value(v) : v;
    }
  }

  // Images [n0, n0 + count) of x, staged (half-rounded, channels permuted)
  // into `stage` when the plan asks for it.
  const float* input_of(const float* x, int64_t n0, int64_t count, float* stage) const {
    const float* xn = x + n0 * p_.in_image();
    if (!staged_) return xn;
    ops_.stage(p_, xn, stage, 0, p_.tiled ? p_.h : count * p_.in_image());
    return stage;
  }

  // Gathers positions [m0, m1) of group g (positions run over the item's
  // images) and multiplies them into comp (NCHW rows comp_ld apart).
  bool gather_and_multiply(const float* xb, int64_t g, int64_t m0, int64_t m1, float* col, float* comp,
                           int64_t comp_ld) const {
    const int64_t len = m1 - m0;
    for (int64_t m = m0; m < m1;) {
      const int64_t img = m / p_.npos, local = m % p_.npos, end = std::min(m1, (img + 1) * p_.npos);
      float* dst = !p_.nhwc ? col + (m - m0) : col + (m - m0) * p_.k;
      ops_.gather(p_, xb + img * p_.in_image(), g, local, local + (end - m), dst, len);
      m = end;
    }
    dnnl_status_t st;
    if (!p_.nhwc) {
      const float* a = p_.weights.data() + g * p_.ocg * p_.k;
      st = dnnl_sgemm('N', 'N', p_.ocg, len, p_.k, 1.f, a, p_.k, col, len, 0.f, comp + g * p_.ocg * comp_ld + m0,
                      comp_ld);
    } else {
      const float* b = p_.weights.data() + g * p_.k * p_.ocg;
      st = dnnl_sgemm('N', 'N', len, p_.ocg, p_.k, 1.f, col, p_.k, b, p_.ocg, 0.f, comp + m0 * p_.oc + g * p_.ocg,
                      p_.oc);
    }
    return st == dnnl_success;
  }

  // One item (p_.images images, fewer at the end) on thread t.
  bool run_item(const float* x, const float* res, float* y, int64_t item, size_t t) {
    const int64_t n0 = item * p_.images, count = std::min(p_.images, p_.n - n0);
    const float* xb = input_of(x, n0, count, staged_ ? stage_[t].data() : nullptr);
    float* yb = y + n0 * p_.out_image();
    float* comp = comp_.empty() ? yb : comp_[t].data();
    const int64_t comp_ld = count * p_.npos;  // NCHW: positions of the item's images
    bool ok = true;
    if (p_.direct) {
      ops_.direct(p_, xb, comp, 0, p_.oc);
    } else if (p_.winograd) {
      ops_.winograd(p_, xb, wino_v_[t].data(), wino_m_[t].data(), comp);
    } else if (p_.tiled) {
      ops_.tiled(p_, xb, comp, bias_.data(), res ? res + n0 * p_.out_image() : nullptr, yb, 0, count * p_.npos);
    } else {
      for (int64_t g = 0; g < p_.group; ++g)
        for (int64_t m0 = 0; m0 < comp_ld; m0 += p_.chunk)
          ok = gather_and_multiply(xb, g, m0, std::min(comp_ld, m0 + p_.chunk), col_[t].data(), comp, comp_ld) && ok;
    }
    for (int64_t i = 0; i < count; ++i) {
      // Without a separate buffer, ci is this image's output itself.
      const float* ci = !p_.nhwc ? comp + i * p_.npos : comp + i * p_.npos * p_.oc;
      const int64_t off = (n0 + i) * p_.out_image();
      ops_.epilogue(p_, ci, comp_ld, bias_.data(), res ? res + off : nullptr, y + off, 0, p_.oc);
    }
    return ok;
  }

  // bf16: images [n0, n0 + count) of X as bfloat16 pairs (Plan::bf16): X
  // itself when it holds codes, else its floats converted into buf; then
  // staged when the plan pads.
  const float* bf16_input(const Tensor& x, int64_t n0, int64_t count, uint16_t* buf, float* stage) const {
    const int64_t per_image = 2 * p_.in_image();  // bfloat16 values
    const uint16_t* codes = static_cast<const uint16_t*>(x.raw()) + n0 * per_image;
    if (x.dtype() == DType::f32) {
      bf16_->to_bf16(x.data<float>() + n0 * per_image, buf, count * per_image);
      codes = buf;
    }
    // (The tiles load each pair as 32 bits of any type.)
    return input_of(reinterpret_cast<const float*>(codes), 0, count, stage);
  }

  // bf16: the items across the team, or, with fewer items than threads,
  // each image converted on one thread and its positions split. No
  // epilogue: the tiles finish every position.
  Status run_bf16(const Tensor& x, const float* res, Tensor& out) {
    if (x.dtype() != DType::f32 && x.dtype() != DType::bf16)
      return runtime_error("compact bf16 convolution: input #0 is {}, expected float32 or bfloat16",
                           dtype_name(x.dtype()));
    if (out.dtype() != (p_.codes_out ? DType::bf16 : DType::f32))
      return runtime_error("compact bf16 convolution: output #0 is {}, expected {}", dtype_name(out.dtype()),
                           p_.codes_out ? "bfloat16" : "float32");
    float* y = p_.codes_out ? nullptr : out.data<float>();
    uint16_t* codes = p_.codes_out ? static_cast<uint16_t*>(out.raw()) : nullptr;
    const int64_t oi = p_.out_image();
    // Positions [m0, m1) of images from n0 on.
    const auto tiles = [&](const float* xb, int64_t n0, int64_t m0, int64_t m1) {
      float* yb = y != nullptr ? y + n0 * oi : nullptr;
      bf16_->tiled(p_, xb, yb, bias_.data(), res != nullptr ? res + n0 * oi : nullptr, yb,
                   codes != nullptr ? codes + n0 * oi : nullptr, m0, m1);
    };
    if (per_item_) {
      team_for(team_, items_, [&](int64_t item, int t) {
        const size_t b = static_cast<size_t>(t);
        const int64_t n0 = item * p_.images, count = std::min(p_.images, p_.n - n0);
        tiles(bf16_input(x, n0, count, x16_[b].data(), staged_ ? stage_[b].data() : nullptr), n0, 0,
              count * p_.npos);
      });
      return {};
    }
    for (int64_t n = 0; n < p_.n; ++n) {
      const float* xb = bf16_input(x, n, 1, x16_[0].data(), staged_ ? stage_[0].data() : nullptr);
#pragma omp parallel num_threads(team_)
      {
        const auto [m0, m1] = slice(p_.npos, omp_get_thread_num(), omp_get_num_threads(), p_.tile_m);
        tiles(xb, n, m0, m1);
      }
    }
    return {};
  }

  // Images [n0, n0 + pw_images_) at a time: packed, multiplied, finished.
  Status run_pointwise(const float* x, const float* res, float* y) {
    const int64_t per = pw_images_;
    float* comp = p_.perforated ? comp_[0].data() : nullptr;
    for (int64_t n0 = 0; n0 < p_.n; n0 += per) {
      team_for(team_, per, [&](int64_t i, int) {
        ops_.gather_pixels(p_, x + (n0 + i) * p_.in_image(), packed_.data() + i * p_.npos * p_.k);
      });
      float* yb = y + n0 * p_.out_image();
      if (!p_.perforated) {
        // The sum post-op adds what the output holds.
        if (p_.residual && res != y)
          std::copy(res + n0 * p_.out_image(), res + (n0 + per) * p_.out_image(), yb);
        pw_dst_.set_data_handle(yb);
        CP_TRY(pw_conv_.execute(stream()));
        continue;
      }
      pw_dst_.set_data_handle(comp);
      CP_TRY(pw_conv_.execute(stream()));
      team_for(team_, per, [&](int64_t i, int) {
        const int64_t off = (n0 + i) * p_.out_image();
        ops_.epilogue(p_, comp + i * p_.npos * p_.oc, p_.npos, bias_.data(), res ? res + off : nullptr, y + off, 0,
                      p_.oc);
      });
    }
    return {};
  }

  // Slice [begin, end) of `total` items for thread t of `team`, in units of
  // `align` (channel slices stay whole vectors).
  static std::pair<int64_t, int64_t> slice(int64_t total, int t, int team, int64_t align) {
    const int64_t units = (total + align - 1) / align;
    const int64_t b = units * t / team, e = units * (t + 1) / team;
    return {std::min(total, b * align), std::min(total, e * align)};
  }

  // Fewer images than threads: the team splits each image's column chunks
  // (or channels, for the direct loops), then its output channels.
  void share_image(const float* x, const float* res, float* y, int64_t n, std::atomic<bool>& failed) {
    const float* xn = x + n * p_.in_image();
    float* yn = y + n * p_.out_image();
    float* comp = comp_.empty() ? yn : comp_[0].data();
    const float* src = staged_ ? stage_[0].data() : xn;
    const int64_t chunks = (p_.npos + p_.chunk - 1) / p_.chunk;
#pragma omp parallel num_threads(team_)
    {
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      if (staged_) {
        // Whole pixels when channels are permuted; input rows when tiled.
        const auto [b, e] = p_.tiled ? slice(p_.h, t, team, 1)
                                     : slice(p_.in_image(), t, team, p_.channel_perm.empty() ? 16 : p_.c);
        ops_.stage(p_, xn, stage_[0].data(), b, e);
#pragma omp barrier
      }
      const auto [c0, c1] = slice(p_.oc, t, team, 16);
      if (p_.direct) {
        ops_.direct(p_, src, comp, c0, c1);
      } else if (p_.tiled) {
        // (Plan::tile_skips: each thread's positions start at a row start.)
        const auto [m0, m1] = slice(p_.npos, t, team, p_.tile_skips ? p_.nq : p_.tile_m);
        ops_.tiled(p_, src, comp, bias_.data(), res ? res + n * p_.out_image() : nullptr, yn, m0, m1);
#pragma omp barrier
      } else {
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < p_.group * chunks; ++item) {
          const int64_t m0 = (item % chunks) * p_.chunk;
          if (!gather_and_multiply(src, item / chunks, m0, std::min(p_.npos, m0 + p_.chunk),
                                   col_[static_cast<size_t>(t)].data(), comp, p_.npos))
            failed = true;
        }
      }
      ops_.epilogue(p_, comp, p_.npos, bias_.data(), res ? res + n * p_.out_image() : nullptr, yn, c0, c1);
    }
  }

  Plan p_;
  const compact::Ops& ops_;
  int team_;
  int64_t items_ = 0;
  bool per_item_ = true;
  bool bias_runtime_ = false;
  bool staged_ = false;  // the input goes through a staging pass (padding, half, channel permutation)
  std::vector<float> bias_;                // [OC] (NHWC: [OW][OC]), half-rounded under a half knob
  std::vector<std::vector<float>> col_;    // per thread: gathered columns
  std::vector<std::vector<float>> comp_;   // per thread: computed positions, when not written in place
  std::vector<std::vector<float>> stage_;  // per thread: staged input images
  std::vector<std::vector<float>> wino_v_, wino_m_;  // per thread: Winograd maps (Plan::winograd)
  // Pointwise path: the packed input, and the convolution reading it and
  // writing comp_[0] or the output.
  std::vector<float> packed_;
  int64_t pw_images_ = 1;  // images per convolution call
  memory pw_src_, pw_dst_, pw_bias_;
  BoundPrimitive pw_conv_;
  // bf16 (Plan::bf16): the tiles, and per thread X's images as codes.
  const compact::Bf16Ops* bf16_ = nullptr;
  std::vector<std::vector<uint16_t>> x16_;
};

// A kernel candidate: tile shape, and which path.
struct KernelChoice {
  int64_t tile_n = 64, tile_m = 0;
  CompactPath path = CompactPath::tiled;
};

}  // namespace

// The work the team is sized by: the knob's FLOPs, twice that under half
// rounding (its passes cost about as much again).
double compact_flops(const KnobConvSetup& s) {
  return conv_layer_flops(s.g) / layer_nominal_speedup(*s.knob, s.g) * (s.knob->half ? 2.0 : 1.0);
}

namespace {

// The kernel of one candidate (its plan, and the pointwise path's oneDNN
// convolution); Errc::unsupported when the path does not apply. codes_out:
// bf16 writing codes.
Result<std::unique_ptr<CompactConvKernel>> build_kernel(const KnobConvSetup& s, std::shared_ptr<const Runtime> rt,
                                                        int team, const KernelChoice& c, bool codes_out = false) {
  if (compact::ops_for(s.isa) == nullptr || !simd::kernel_isa_runs(s.isa))
    return unsupported("knob '{}': the compact loops' {} variant does not run on this CPU ({})", s.knob->name,
                       simd::kernel_isa_name(s.isa), cpu::describe(cpu::features()));
  if (s.knob->kind == KnobKind::bf16) {
    CP_TRY(check_compact_bf16(s, codes_out));
    if (c.path != CompactPath::tiled)
      return unsupported("knob 'bf16': the compact kernel runs it on its tiled path only");
  }
  if (c.path == CompactPath::strided)
    return unsupported("knob '{}': the strided path is make_strided_perforation, not the compact kernel", s.knob->name);
  if (c.path == CompactPath::winograd_rows && !winograd_applies(s, team))
    return unsupported("knob '{}': Winograd rows take perforation of 3x3 stride-1 NHWC layers", s.knob->name);
  if (c.path == CompactPath::winograd_tiles && (!winograd_applies(s, team) || s.knob->rate < 3))
    return unsupported("knob '{}': Winograd tiles take perforation at rate 3 or 4 of 3x3 stride-1 NHWC layers",
                       s.knob->name);
  if (c.path == CompactPath::pointwise && !pointwise_applies(s))
    return unsupported("knob '{}': the pointwise path takes fp32 perforation and sampling of unpadded, ungrouped "
                       "1x1 NHWC layers",
                       s.knob->name);
  auto kernel = std::make_unique<CompactConvKernel>(std::move(rt), team,
                                                    build_plan(s, team, c.tile_n, c.tile_m, c.path, codes_out), s);
  if (c.path == CompactPath::pointwise) {
    try {
      CP_TRY(kernel->build_pointwise(s));
    } catch (const dnnl::error& e) {
      return unsupported("knob '{}': oneDNN cannot build the pointwise path's 1x1 convolution: {}", s.knob->name,
                         e.what());
    }
  }
  return kernel;
}

}  // namespace

Result<std::unique_ptr<Kernel>> make_compact_conv_shaped(const KnobConvSetup& s, std::shared_ptr<const Runtime> rt,
                                                         int threads, int64_t tile_n, int64_t tile_m,
                                                         CompactPath path) {
  const int team = team_for_flops(threads, compact_flops(s));
  CP_ASSIGN_OR_RETURN(auto kernel, build_kernel(s, std::move(rt), team, {tile_n, tile_m, path}));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

Status check_compact_bf16(const KnobConvSetup& s, bool codes_out) {
  const ConvGeometry& g = s.g;
  if (s.knob->kind != KnobKind::bf16) return unsupported("knob '{}': the bf16 tiles take the bf16 knob", s.knob->name);
  if (compact::bf16_ops(s.isa) == nullptr)
    return unsupported("knob 'bf16': the compact kernel's bf16 tiles need the avx512 loops and a CPU with AVX-512 "
                       "BF16");
  if (s.layout != Layout::nhwc || g.group != 1 || g.c_in % 2 != 0)
    return unsupported("knob 'bf16': the compact kernel's bf16 tiles take NHWC layers of one group and an even "
                       "channel count");
  if (codes_out && (s.residual || !compact::has_vector_form(s.act.kind)))
    return unsupported("knob 'bf16': the compact kernel's bf16 tiles write codes only without a residual and with "
                       "an activation other than sigmoid or tanh");
  return {};
}

Result<std::unique_ptr<Kernel>> make_compact_bf16(const KnobConvSetup& s, std::shared_ptr<const Runtime> rt,
                                                  int threads, bool codes_out, int64_t tile_n, int64_t tile_m) {
  CP_TRY(check_compact_bf16(s, codes_out));  // (build_kernel checks only bf16 knobs)
  const int team = lowp_team(s, threads);
  CP_ASSIGN_OR_RETURN(auto kernel, build_kernel(s, std::move(rt), team, {tile_n, tile_m}, codes_out));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

Result<std::unique_ptr<Kernel>> make_compact_conv(const NodeContext& ctx, const KnobConvSetup& s,
                                                  std::shared_ptr<const Runtime> rt, int threads) {
  const double flops = compact_flops(s);
  const int team = team_for_flops(threads, flops);
  // Which tile shape runs a layer fastest depends on its extents: 64 x 6
  // tiles led on 14- and 28-wide maps, but on 7-wide ones 32 x 12 tiles or
  // 32-channel tiles of one output row ran up to 1.15x faster, by no rule
  // the measurements showed. Winograd rows and tiles, where they apply,
  // trade a half to two thirds of the multiplications for transform passes
  // (with tiles as a candidate, perf-row-3-0 ran ResNet-style's four 3x3
  // stride-1 layers 1.5-1.9x faster than with rows alone). On 1x1 layers
  // the pointwise path (oneDNN's own 1x1 kernel, for a packing pass and,
  // under perforation, an epilogue pass) and the tiled kernel ran within
  // 10 % of each other in isolation, either ahead depending on the layer
  // (8 images of 128 -> 256 channels on 7x7, perf-row-2-0: 57 against
  // 61 us; of 32 -> 64 on 14x14: 25 against 24 us). So layers whose work
  // is enough to matter time their candidates (tile shapes when the
  // computed rows are shorter than 14, Winograd rows and tiles and the
  // pointwise path where they apply) on scratch tensors and keep the
  // fastest, with the Conv tuner's timing (conv.h), and the choice is
  // remembered for the process.
  static TuningCache<KernelChoice> choices;
  const std::string key =
      fmt::format("{}|{}|{}", s.knob->name, simd::kernel_isa_name(s.isa), tuning_key(ctx, team));
  if (auto known = choices.find(key)) {
    // (A remembered strided path was built for this key once already.)
    if (known->path == CompactPath::strided) return make_strided_perforation(ctx, s, std::move(rt), threads);
    CP_ASSIGN_OR_RETURN(auto kernel, build_kernel(s, rt, team, *known));
    return std::unique_ptr<Kernel>(std::move(kernel));
  }
  // Perforation as strided oneDNN convolutions (knob_conv_strided.cc) where
  // the compact loops run without AVX-512 (AVX2, aarch64): there the gather
  // + sgemm kernel reached 0.57-0.74 of nominal on the bundled networks'
  // layers (AVX2 tier, batch 64) and the strided path 0.85-0.97 on the
  // ResNet-style 3x3 ones, and the depthwise layers ran 1.3-1.6x faster
  // strided than in the direct loop. A timed candidate on layers of 4+
  // MFLOP, the default below (then tried first; the compact kernel where
  // oneDNN has no optimized kernel for a class, e.g. a stride wider than
  // the kernel on a tiny map). With AVX-512 the tiles and the direct loop's
  // register blocks were faster (the MobileNet-style network, every layer
  // perforated: 1.61x against 0.92x) and the prepare time tripled.
  const bool strided = s.isa != simd::KernelIsa::avx512 && check_strided_perforation(s).ok();
  const bool timed_strided = strided && flops >= 4e6 && conv_tuning_enabled();
  if (strided && !timed_strided)
    if (auto k = make_strided_perforation(ctx, s, rt, threads); k.ok()) return std::move(*k);
  CP_ASSIGN_OR_RETURN(std::unique_ptr<CompactConvKernel> first, build_kernel(s, rt, team, {}));
  // The narrower tile candidates: half the default width (32 channels
  // with AVX-512, 8 with AVX2 or NEON) with more positions.
  const int64_t lanes = simd::kernel_lanes(s.isa);
  const int64_t narrow = lanes * simd::max_tile_vectors(simd::vector_registers(s.isa)) / 2;
  const int64_t widest = (s.g.c_out + lanes - 1) / lanes * lanes;
  const int64_t row = s.knob->kind == KnobKind::perforation && !s.knob->rows
                          ? static_cast<int64_t>(perforation_kept(*s.knob, s.g.out_spatial[1]).size())
                          : s.g.out_spatial[1];
  std::vector<KernelChoice> field;
  if (flops >= 4e6 && conv_tuning_enabled()) {
    if (first->tiled() && widest > narrow && row < 14) {
      field.push_back({narrow, 0});
      if (row < 12) field.push_back({narrow, row});
    }
    if (first->tiled() && winograd_applies(s, team)) {
      field.push_back({64, 0, CompactPath::winograd_rows});
      if (s.knob->rate >= 3) field.push_back({64, 0, CompactPath::winograd_tiles});
    }
    if (pointwise_applies(s)) field.push_back({64, 0, CompactPath::pointwise});
  }
  if (timed_strided) field.push_back({0, 0, CompactPath::strided});
  std::vector<KernelChoice> tried{{}};
  std::vector<std::unique_ptr<Kernel>> built;
  std::vector<std::string> labels;
  static constexpr const char* kPaths[] = {"tiled", "Winograd rows", "Winograd tiles", "pointwise", "strided"};
  const auto label = [&](const CompactConvKernel& k, CompactPath path) {
    return fmt::format("{}: {} path{}", s.knob->name, kPaths[static_cast<int>(path)],
                       k.tiled() ? fmt::format(", tile {} x {}", k.tile_n(), k.tile_m()) : "");
  };
  labels.push_back(label(*first, CompactPath::tiled));
  built.push_back(std::move(first));
  for (const KernelChoice& c : field) {
    if (c.path == CompactPath::strided) {
      auto kernel = make_strided_perforation(ctx, s, rt, threads);
      if (!kernel.ok()) {
        log_debug("{}: no strided path: {}", s.knob->name, kernel.status().message());
        continue;
      }
      built.push_back(std::move(*kernel));
      labels.push_back(fmt::format("{}: strided path", s.knob->name));
    } else {
      auto kernel = build_kernel(s, rt, team, c);
      if (!kernel.ok()) continue;  // a path oneDNN has no kernel for
      labels.push_back(label(**kernel, c.path));
      built.push_back(std::move(*kernel));
    }
    tried.push_back(c);
  }
  if (built.size() == 1) return std::move(built.front());
  std::vector<Kernel*> kernels;
  for (const auto& k : built) kernels.push_back(k.get());
  // Two runs per kernel and round: these layers take 0.1 ms and more.
  CP_ASSIGN_OR_RETURN(const size_t winner, pick_fastest(ctx, kernels, labels, false, 0, 2));
  choices.remember(key, tried[winner]);
  return std::move(built[winner]);
}

}  // namespace caliprox::onednn
