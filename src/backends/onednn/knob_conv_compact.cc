// Perforation and sampling on the compact im2col + GEMM kernel (plan and
// loops in knob_conv_compact.h / knob_conv_compact_loops.h): the plan is
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

#include <oneapi/dnnl/dnnl.h>

#include "backends/onednn/knob_conv.h"
#include "backends/onednn/knob_conv_compact.h"
#include "backends/onednn/knob_conv_simd.h"

namespace caliprox::onednn {
namespace {

using compact::Plan;
using compact::Tap;

// Floats of one thread's column buffer: long GEMM panels, yet in L2 (1 MB
// per core on the target) with the input rows and the packed weights.
constexpr int64_t kColumnBudget = 48 * 1024;
// Operations per GEMM call below which images are batched into one call
// (oneDNN's sgemm costs a few microseconds per call).
constexpr double kMinGemmFlops = 4e6;

std::vector<int64_t> all_of(int64_t extent) {
  std::vector<int64_t> v(static_cast<size_t>(extent));
  for (int64_t i = 0; i < extent; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

std::vector<int32_t> slots(const std::vector<int64_t>& kept, int64_t extent) {
  std::vector<int32_t> f(static_cast<size_t>(extent), -1);
  for (size_t i = 0; i < kept.size(); ++i) f[static_cast<size_t>(kept[i])] = static_cast<int32_t>(i);
  return f;
}

float round_half_value(float v) { return half_to_float(float_to_half(v)); }

void set_geometry(Plan& p, const ConvGeometry& g) {
  p.n = g.n;
  p.c = g.c_in;
  p.h = g.in_spatial[0];
  p.w = g.in_spatial[1];
  p.oc = g.c_out;
  p.oh = g.out_spatial[0];
  p.ow = g.out_spatial[1];
  p.group = g.group;
  p.cg = g.c_in_per_group();
  p.ocg = g.c_out_per_group();
  p.kh = g.kernel[0];
  p.kw = g.kernel[1];
  p.sh = g.strides[0];
  p.sw = g.strides[1];
  p.ph = g.pads_begin[0];
  p.pw = g.pads_begin[1];
  p.dh = g.dilations[0];
  p.dw = g.dilations[1];
}

// Kept taps in the order the gather writes them, and the gather tables.
void set_taps(Plan& p, const std::vector<bool>& keep, int64_t rate) {
  const auto kept = [&](int64_t c, int64_t kh, int64_t kw) {
    return keep[static_cast<size_t>((c * p.kh + kh) * p.kw + kw)];
  };
  const auto tap = [](int64_t c, int64_t kh, int64_t kw) {
    return Tap{static_cast<int32_t>(c), static_cast<int32_t>(kh), static_cast<int32_t>(kw)};
  };
  const int64_t kept_count = std::count(keep.begin(), keep.end(), true);
  p.depthwise = p.cg == 1 && p.ocg == 1 && p.group > 1;
  // The tiled kernel (AVX-512): NHWC, one group, whole rows computed; it
  // also beats the direct loop on layers with few taps. The direct loop
  // takes depthwise layers and few-tap layers the tiled kernel cannot.
  p.tiled = simd::cpu_has_avx512() && p.layout == Layout::nhwc && p.group == 1 && !(p.perforated && !p.perf_rows);
  p.direct = p.depthwise || (!p.tiled && p.group == 1 && kept_count <= compact::kDirectTaps);
  // NHWC sampling: channels grouped by residue class (what sampling drops
  // per kernel position) so that the kept ones form contiguous runs.
  const bool permuted = p.layout == Layout::nhwc && p.sampled && !p.direct;
  if (permuted)
    for (int64_t r = 0; r < rate; ++r)
      for (int64_t c = r; c < p.cg; c += rate) p.channel_perm.push_back(static_cast<int32_t>(c));
  if (p.layout == Layout::nchw || p.direct) {
    for (int64_t c = 0; c < p.cg; ++c)
      for (int64_t kh = 0; kh < p.kh; ++kh)
        for (int64_t kw = 0; kw < p.kw; ++kw)
          if (kept(c, kh, kw)) p.taps.push_back(tap(c, kh, kw));
  } else {
    for (int64_t kh = 0; kh < p.kh; ++kh)
      for (int64_t kw = 0; kw < p.kw; ++kw)
        for (int64_t j = 0; j < p.cg; ++j) {
          const int64_t c = permuted ? p.channel_perm[static_cast<size_t>(j)] : j;
          if (kept(c, kh, kw)) p.taps.push_back(tap(c, kh, kw));
        }
  }
  p.k = static_cast<int64_t>(p.taps.size());

  // NCHW gather: input column of every computed output column.
  p.contiguous_cols = p.sw == 1 && static_cast<int64_t>(p.cols.size()) == p.ow;
  for (int64_t kw = 0; kw < p.kw; ++kw)
    for (int64_t q : p.cols) {
      const int64_t iw = q * p.sw - p.pw + kw * p.dw;
      p.iw_of.push_back(iw >= 0 && iw < p.w ? static_cast<int32_t>(iw) : -1);
    }

  // NHWC gather: kept taps per kernel position, and (sampling) the runs of
  // kept channels in residue-class order.
  p.kpos_begin.push_back(0);
  int64_t count = 0;
  for (int64_t kh = 0; kh < p.kh; ++kh)
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      for (int64_t c = 0; c < p.cg; ++c) count += kept(c, kh, kw) ? 1 : 0;
      p.kpos_begin.push_back(static_cast<int32_t>(count));
    }
  if (!permuted && !p.tiled) return;
  p.run_begin.push_back(0);
  for (int64_t kh = 0; kh < p.kh; ++kh)
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      for (int64_t j = 0; j < p.cg; ++j) {
        if (!kept(permuted ? p.channel_perm[static_cast<size_t>(j)] : j, kh, kw)) continue;
        const bool extends = !p.run_start.empty() && p.run_begin.back() < static_cast<int32_t>(p.run_start.size()) &&
                             p.run_start.back() + p.run_len.back() == j;
        if (extends) {
          ++p.run_len.back();
        } else {
          p.run_start.push_back(static_cast<int32_t>(j));
          p.run_len.push_back(1);
        }
      }
      p.run_begin.push_back(static_cast<int32_t>(p.run_start.size()));
    }
  if (!p.tiled) return;
  // Staged, padded input: every window of every output position fits.
  p.hp = std::max(p.h + p.ph, (p.oh - 1) * p.sh + (p.kh - 1) * p.dh + 1);
  p.wp = std::max(p.w + p.pw, (p.ow - 1) * p.sw + (p.kw - 1) * p.dw + 1);
  for (int64_t kh = 0; kh < p.kh; ++kh)
    for (int64_t kw = 0; kw < p.kw; ++kw) p.kpos_offset.push_back((kh * p.dh * p.wp + kw * p.dw) * p.c);
  // Positions per tile: as many as the registers hold for the channel
  // block width (24 accumulators), spread evenly over the row. Narrow
  // images take 32-channel blocks so that a tile still spans a whole row
  // (measured: 4 x 64 tiles on 7-wide rows ran at 60% of 7 x 32 ones).
  p.tile_n = std::min<int64_t>(p.ow >= 10 ? 64 : 32, (p.oc + 15) / 16 * 16);
  const int64_t most = p.tile_n > 48 ? 6 : p.tile_n > 32 ? 8 : 12;
  const int64_t tiles = (p.ow + most - 1) / most;
  p.tile_m = (p.ow + tiles - 1) / tiles;
  // Weight blocks of at most ~32 KB (tile_n channels of every kept tap of the
  // block's kernel positions), at least one kernel position each.
  constexpr int64_t kL1Floats = 8 * 1024;
  p.kblock_begin.push_back(0);
  for (int64_t kp = 0; kp < p.kh * p.kw; ++kp) {
    const int64_t taps = p.kpos_begin[static_cast<size_t>(kp) + 1] - p.kpos_begin[static_cast<size_t>(p.kblock_begin.back())];
    if (kp > p.kblock_begin.back() && taps * p.tile_n > kL1Floats) p.kblock_begin.push_back(kp);
  }
  p.kblock_begin.push_back(p.kh * p.kw);
}

// Effective weights: sampling's rescale of the kept ones, then (half knobs)
// IEEE-half values, i.e. half(w * s/(s-1)) as the reference does.
void set_weights(Plan& p, const KnobConvSetup& s) {
  const float* w = s.weights->data<float>();
  const float scale = p.sampled ? sampling_scale(*s.knob) : 1.0f;
  p.weights.resize(static_cast<size_t>(p.oc * p.k));
  for (int64_t gi = 0; gi < p.group; ++gi)
    for (int64_t o = 0; o < p.ocg; ++o)
      for (int64_t t = 0; t < p.k; ++t) {
        const Tap& tap = p.taps[static_cast<size_t>(t)];
        const int64_t oc = gi * p.ocg + o;
        float v = w[((oc * p.cg + tap.c) * p.kh + tap.kh) * p.kw + tap.kw];
        if (p.sampled) v *= scale;
        if (p.half) v = round_half_value(v);
        int64_t index = 0;
        if (p.layout == Layout::nchw) index = oc * p.k + t;
        else if (p.depthwise) index = t * p.oc + oc;
        else index = (gi * p.k + t) * p.ocg + o;
        p.weights[static_cast<size_t>(index)] = v;
      }
}

Plan build_plan(const KnobConvSetup& s, int team) {
  const Knob& knob = *s.knob;
  Plan p;
  set_geometry(p, s.g);
  p.layout = s.layout;
  p.half = knob.half;
  p.residual = s.residual;
  p.act = s.act;

  p.perforated = knob.kind == KnobKind::perforation;
  p.perf_rows = knob.rows;
  p.rows = p.perforated && knob.rows ? perforation_kept(knob, p.oh) : all_of(p.oh);
  p.cols = p.perforated && !knob.rows ? perforation_kept(knob, p.ow) : all_of(p.ow);
  p.row_slot = slots(p.rows, p.oh);
  p.col_slot = slots(p.cols, p.ow);
  p.nq = static_cast<int64_t>(p.cols.size());
  p.npos = static_cast<int64_t>(p.rows.size()) * p.nq;

  p.sampled = knob.kind == KnobKind::sampling;
  set_taps(p,
           p.sampled ? sampling_mask(knob, p.cg, p.kh, p.kw)
                     : std::vector<bool>(static_cast<size_t>(p.cg * p.kh * p.kw), true),
           knob.rate);
  set_weights(p, s);

  if (!p.direct && !p.tiled) {
    const double item_flops = 2.0 * static_cast<double>(p.npos * p.k * p.oc);
    const int64_t wanted = static_cast<int64_t>(std::ceil(kMinGemmFlops / std::max(item_flops, 1.0)));
    p.images = std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, p.n / team));
  }
  const int64_t positions = p.images * p.npos;
  int64_t chunk = std::max<int64_t>(kColumnBudget / std::max<int64_t>(p.k, 1), p.nq);
  if (p.n < team) chunk = std::min(chunk, (positions + team - 1) / team);
  p.chunk = std::clamp<int64_t>(chunk, 1, positions);
  return p;
}

class CompactConvKernel final : public OnednnKernel {
 public:
  CompactConvKernel(std::shared_ptr<const Runtime> rt, int threads, Plan plan, const KnobConvSetup& s)
      : OnednnKernel(std::move(rt), threads), p_(std::move(plan)), ops_(compact::ops()), team_(threads) {
    // NHWC epilogues read the bias repeated along a row of positions.
    bias_.assign(static_cast<size_t>(p_.oc * (p_.layout == Layout::nhwc ? p_.ow : 1)), 0.f);
    bias_runtime_ = s.has_bias && s.bias == nullptr;
    if (s.bias != nullptr) set_bias(s.bias->data<float>());
    items_ = (p_.n + p_.images - 1) / p_.images;
    // Items spread over the team, or the whole team on one image at a time.
    per_item_ = items_ >= team_ || team_ == 1;
    const size_t buffers = per_item_ ? static_cast<size_t>(team_) : 1;
    col_.resize(static_cast<size_t>(team_));
    if (!p_.direct && !p_.tiled)
      for (auto& c : col_) c.assign(static_cast<size_t>(p_.k * p_.chunk + 16), 0.f);
    // A separate compact buffer when the computed values cannot go straight
    // into the output: perforation, or NCHW planes of several images.
    if (p_.perforated || (p_.layout == Layout::nchw && p_.images > 1))
      comp_.assign(buffers, std::vector<float>(static_cast<size_t>(p_.oc * p_.npos * p_.images)));
    staged_ = p_.tiled || p_.half || !p_.channel_perm.empty();
    const int64_t staged_image = p_.tiled ? p_.hp * p_.wp * p_.c : p_.in_image();
    if (staged_) stage_.assign(buffers, std::vector<float>(static_cast<size_t>(staged_image * p_.images)));
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (bias_runtime_) set_bias(inputs[2]->data<float>());
    const float* x = inputs[0]->data<float>();
    const float* res = p_.residual ? inputs[3]->data<float>() : nullptr;
    float* y = outputs[0]->data<float>();
    std::atomic<bool> failed{false};
    if (per_item_) {
#pragma omp parallel for num_threads(team_) schedule(dynamic, 1)
      for (int64_t item = 0; item < items_; ++item)
        if (!run_item(x, res, y, item, static_cast<size_t>(omp_get_thread_num()))) failed = true;
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
      float* dst = p_.layout == Layout::nchw ? col + (m - m0) : col + (m - m0) * p_.k;
      ops_.gather(p_, xb + img * p_.in_image(), g, local, local + (end - m), dst, len);
      m = end;
    }
    dnnl_status_t st;
    if (p_.layout == Layout::nchw) {
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
    } else if (p_.tiled) {
      ops_.tiled_rows(p_, xb, comp, 0, static_cast<int64_t>(p_.rows.size()));
    } else {
      for (int64_t g = 0; g < p_.group; ++g)
        for (int64_t m0 = 0; m0 < comp_ld; m0 += p_.chunk)
          ok = gather_and_multiply(xb, g, m0, std::min(comp_ld, m0 + p_.chunk), col_[t].data(), comp, comp_ld) && ok;
    }
    for (int64_t i = 0; i < count; ++i) {
      // Without a separate buffer, ci is this image's output itself.
      const float* ci = p_.layout == Layout::nchw ? comp + i * p_.npos : comp + i * p_.npos * p_.oc;
      const int64_t off = (n0 + i) * p_.out_image();
      ops_.epilogue(p_, ci, comp_ld, bias_.data(), res ? res + off : nullptr, y + off, 0, p_.oc);
    }
    return ok;
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
        const auto [i0, i1] = slice(static_cast<int64_t>(p_.rows.size()), t, team, 1);
        ops_.tiled_rows(p_, src, comp, i0, i1);
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
  bool staged_ = false;  // the input goes through a staging pass (half, channel permutation)
  std::vector<float> bias_;                // [OC] (NHWC: [OW][OC]), half-rounded under a half knob
  std::vector<std::vector<float>> col_;    // per thread: gathered columns
  std::vector<std::vector<float>> comp_;   // per thread: computed positions, when not written in place
  std::vector<std::vector<float>> stage_;  // per thread: staged input images
};

}  // namespace

namespace compact {

const Ops& ops() { return simd::cpu_has_avx512() ? avx512_ops() : portable_ops(); }

}  // namespace compact

Result<std::unique_ptr<Kernel>> make_compact_conv(const KnobConvSetup& s, std::shared_ptr<const Runtime> rt,
                                                  int threads) {
  const double flops = conv_layer_flops(s.g) / layer_nominal_speedup(*s.knob, s.g) * (s.knob->half ? 2.0 : 1.0);
  const int team = team_for_flops(threads, flops);
  Plan plan = build_plan(s, team);
  return std::unique_ptr<Kernel>(std::make_unique<CompactConvKernel>(std::move(rt), team, std::move(plan), s));
}

}  // namespace caliprox::onednn
