// The compact kernel's per-image loops, part 2 of 5: the direct loops
// (depthwise, and dense layers with few taps). A Highway per-target header
// (knob_gather-inl.h).
#if defined(CALIPROX_KERNELS_KNOB_DIRECT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CALIPROX_KERNELS_KNOB_DIRECT_INL_H_
#undef CALIPROX_KERNELS_KNOB_DIRECT_INL_H_
#else
#define CALIPROX_KERNELS_KNOB_DIRECT_INL_H_
#endif

#include "kernels/knob_gather-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

// ---- direct loops (depthwise, and dense layers with few taps) -------------------

// NCHW, output channels [c0, c1): each kept output row accumulates the kept
// taps of its group's input channels, vectorised along the row. Weights
// [OC][k]. Taps in filter order, from zero: the reference's summation order.
CP_KNOB_INLINE void direct_nchw(const Plan& p, const float* x, float* comp, int64_t c0, int64_t c1) {
  for (int64_t o = c0; o < c1; ++o) {
    const float* xg = x + (o / p.ocg) * p.cg * p.h * p.w;
    const float* wo = p.weights.data() + o * p.k;
    for (size_t i = 0; i < p.rows.size(); ++i) {
      float* d = comp + o * p.npos + static_cast<int64_t>(i) * p.nq;
      fill_zero(d, p.nq);
      for (int64_t ti = 0; ti < p.k; ++ti) {
        const Tap& t = p.taps[static_cast<size_t>(ti)];
        const int64_t ih = p.rows[i] * p.sh - p.ph + t.kh * p.dh;
        if (ih < 0 || ih >= p.h) continue;
        const float* row = xg + (t.c * p.h + ih) * p.w;
        const float wv = wo[ti];
        if (p.contiguous_cols) {
          const int64_t shift = t.kw * p.dw - p.pw;
          const int64_t lo = std::clamp<int64_t>(-shift, 0, p.nq), hi = std::clamp(p.w - shift, lo, p.nq);
          for (int64_t j = lo; j < hi; ++j) d[j] += wv * row[j + shift];
        } else {
          const int32_t* iw = p.iw_of.data() + static_cast<int64_t>(t.kw) * p.nq;
          for (int64_t j = 0; j < p.nq; ++j)
            if (iw[j] >= 0) d[j] += wv * row[iw[j]];
        }
      }
    }
  }
}

#if CP_KNOB_VECTOR
// A block of width (1..4 kL) channels: nv vectors of kL, the last masked
// by `tail`.
struct ChannelBlock {
  int64_t width;
  int nv;
  MF tail;
};
CP_KNOB_INLINE ChannelBlock channel_block(int64_t width) {
  const int nv = static_cast<int>((width + kL - 1) / kL);
  return {width, nv, first_lanes(width - kL * (nv - 1))};
}

// The masks of a block's NV vectors: all lanes, the last one `tail`.
template <int NV> CP_KNOB_INLINE void block_masks(MF tail, MF (&mask)[NV]) {
  CP_KNOB_UNROLL
  for (int v = 0; v < NV; ++v) mask[v] = v + 1 < NV ? first_lanes(kL) : tail;
}

// NV (1..4) vectors of kL channels starting at channel c of one output
// position, accumulated in registers over the kept taps.
template <int NV>
CP_KNOB_INLINE void direct_nhwc_block(const Plan& p, const float* x, int64_t oh, int64_t ow, float* d, int64_t c,
                                      int64_t len) {
  MF mask[NV];
  VF acc[NV];
  for (int j = 0; j < NV; ++j) {
    mask[j] = first_lanes(len - kL * j);
    acc[j] = hn::Zero(DF());
  }
  for (int64_t ti = 0; ti < p.k; ++ti) {
    const Tap& t = p.taps[static_cast<size_t>(ti)];
    const int64_t ih = oh * p.sh - p.ph + t.kh * p.dh, iw = ow * p.sw - p.pw + t.kw * p.dw;
    if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
    const float* px = x + (ih * p.w + iw) * p.c;
    const float* wt = p.weights.data() + ti * p.oc + c;
    if (p.depthwise) {
      for (int j = 0; j < NV; ++j)
        acc[j] = hn::MulAdd(load(mask[j], wt + kL * j), load(mask[j], px + c + kL * j), acc[j]);
    } else {
      const VF v = hn::Set(DF(), px[t.c]);
      for (int j = 0; j < NV; ++j) acc[j] = hn::MulAdd(v, load(mask[j], wt + kL * j), acc[j]);
    }
  }
  for (int j = 0; j < NV; ++j) store(acc[j], mask[j], d + kL * j);
}
#endif

// Accumulates the kept taps of one output position into channels
// [c0, c0 + len) of d.
CP_KNOB_INLINE void direct_nhwc_position(const Plan& p, const float* x, int64_t oh, int64_t ow, float* d, int64_t c0,
                                         int64_t len) {
#if CP_KNOB_VECTOR
  int64_t b = 0;
  for (; b + 4 * kL <= len; b += 4 * kL) direct_nhwc_block<4>(p, x, oh, ow, d + b, c0 + b, 4 * kL);
  // The rest: 1 to 4 vectors (4 when it is more than 3 * kL channels).
  switch ((len - b + kL - 1) / kL) {
    case 4: direct_nhwc_block<4>(p, x, oh, ow, d + b, c0 + b, len - b); break;
    case 3: direct_nhwc_block<3>(p, x, oh, ow, d + b, c0 + b, len - b); break;
    case 2: direct_nhwc_block<2>(p, x, oh, ow, d + b, c0 + b, len - b); break;
    case 1: direct_nhwc_block<1>(p, x, oh, ow, d + b, c0 + b, len - b); break;
    default: break;
  }
#else
  fill_zero(d, len);
  for (int64_t ti = 0; ti < p.k; ++ti) {
    const Tap& t = p.taps[static_cast<size_t>(ti)];
    const int64_t ih = oh * p.sh - p.ph + t.kh * p.dh, iw = ow * p.sw - p.pw + t.kw * p.dw;
    if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
    const float* __restrict px = x + (ih * p.w + iw) * p.c;
    const float* __restrict wt = p.weights.data() + ti * p.oc + c0;
    float* __restrict dd = d;
    if (p.depthwise) {
      for (int64_t c = 0; c < len; ++c) dd[c] += wt[c] * px[c0 + c];
    } else {
      const float v = px[t.c];
      for (int64_t c = 0; c < len; ++c) dd[c] += v * wt[c];
    }
  }
#endif
}

#if CP_KNOB_VECTOR
// Depthwise, MR positions of one computed row whose windows lie inside the
// input's columns (input columns iw0[m] + kw * dw), NV vectors of channels
// from c (the last masked by tail), accumulated in registers over the kept
// taps into d[m]. A kernel row outside the input is skipped for all of
// them at once; per tap the weights are loaded once for the MR positions.
template <int NV, int MR>
CP_KNOB_INLINE void depthwise_tile(const Plan& p, const float* x, int64_t oh, const int64_t* iw0, float* const* d,
                                   int64_t c, MF tail) {
  VF acc[MR][NV];
  MF mask[NV];
  block_masks(tail, mask);
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = hn::Zero(DF());
  for (int64_t ti = 0; ti < p.k; ++ti) {
    const Tap& t = p.taps[static_cast<size_t>(ti)];
    const int64_t ih = oh * p.sh - p.ph + t.kh * p.dh;
    if (ih < 0 || ih >= p.h) continue;
    const float* xr = x + (ih * p.w + t.kw * p.dw) * p.c + c;
    const float* wt = p.weights.data() + ti * p.oc + c;
    VF w[NV];
    for (int v = 0; v < NV; ++v) w[v] = load(mask[v], wt + kL * v);
    for (int m = 0; m < MR; ++m) {
      const float* px = xr + iw0[m] * p.c;
      for (int v = 0; v < NV; ++v) acc[m][v] = hn::MulAdd(w[v], load(mask[v], px + kL * v), acc[m][v]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) store(acc[m][v], mask[v], d[m] + kL * v);
}

template <int MR>
CP_KNOB_INLINE void depthwise_tiles(const Plan& p, const float* x, int64_t oh, const int64_t* iw0, float* const* d,
                                    int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; c += 4 * kL) {
    const ChannelBlock cb = channel_block(std::min<int64_t>(4 * kL, c1 - c));
    float* dc[MR];
    for (int m = 0; m < MR; ++m) dc[m] = d[m] + (c - c0);
    switch (cb.nv) {
      case 1: depthwise_tile<1, MR>(p, x, oh, iw0, dc, c, cb.tail); break;
      case 2: depthwise_tile<2, MR>(p, x, oh, iw0, dc, c, cb.tail); break;
      case 3: depthwise_tile<3, MR>(p, x, oh, iw0, dc, c, cb.tail); break;
      default: depthwise_tile<4, MR>(p, x, oh, iw0, dc, c, cb.tail); break;
    }
  }
}
#endif

// NHWC, channels [c0, c1) of every computed position, vectorised along the
// channels. Depthwise: weights [k][C], each channel reads its own input
// channel. Dense (one group): weights [k][OC], one input value broadcast
// to every output channel. (The vector variants accumulate with FMA, the
// reference without: the sums differ in rounding only.) There, depthwise
// positions whose windows lie inside the input's columns run
// four at a time (depthwise_tile), the others one by one.
CP_KNOB_INLINE void direct_nhwc(const Plan& p, const float* x, float* comp, int64_t c0, int64_t c1) {
  for (size_t i = 0; i < p.rows.size(); ++i)
    for (size_t j = 0; j < p.cols.size();) {
      const int64_t m = static_cast<int64_t>(i) * p.nq + static_cast<int64_t>(j);
#if CP_KNOB_VECTOR
      if (p.depthwise) {
        // Up to 4 consecutive positions inside the input's columns.
        int64_t iw0[4];
        float* d[4];
        int mr = 0;
        for (size_t q = j; q < p.cols.size() && mr < 4; ++q, ++mr) {
          const int64_t first = p.cols[q] * p.sw - p.pw;
          if (first < 0 || first + (p.kw - 1) * p.dw >= p.w) break;
          iw0[mr] = first;
          d[mr] = comp + (m + mr) * p.oc + c0;
        }
        if (mr > 0) {
          switch (mr) {
            case 1: depthwise_tiles<1>(p, x, p.rows[i], iw0, d, c0, c1); break;
            case 2: depthwise_tiles<2>(p, x, p.rows[i], iw0, d, c0, c1); break;
            case 3: depthwise_tiles<3>(p, x, p.rows[i], iw0, d, c0, c1); break;
            default: depthwise_tiles<4>(p, x, p.rows[i], iw0, d, c0, c1); break;
          }
          j += static_cast<size_t>(mr);
          continue;
        }
      }
#endif
      direct_nhwc_position(p, x, p.rows[i], p.cols[j], comp + m * p.oc + c0, c0, c1 - c0);
      ++j;
    }
}

#if CP_KNOB_VECTOR
// activate<K> on a vector, with the same results (on x86 NaN and -0
// included; NEON's max and min return NaN for a NaN operand), for the
// kinds with a vector form (has_vector_form).
template <ActivationKind K>
inline constexpr bool kVectorActivation = has_vector_form(K);

template <ActivationKind K> CP_KNOB_INLINE VF activate_vector(VF x, float alpha, float beta) {
  // max / min return their second operand when the first is NaN or both
  // are zeros, which is what the scalar x > 0 ? x : 0 and v < 1 ? v : 1
  // give (+0 for a NaN or a -0 x); one instruction instead of a comparison
  // and a blend.
  const VF zero = hn::Zero(DF());
  if constexpr (K == ActivationKind::relu) return hn::Max(x, zero);
  if constexpr (K == ActivationKind::leaky_relu) return hn::IfThenElse(x >= zero, x, hn::Mul(hn::Set(DF(), alpha), x));
  if constexpr (K == ActivationKind::clip) {
    const VF lo = hn::Set(DF(), alpha), hi = hn::Set(DF(), beta);
    const VF upper = hn::IfThenElse(x > hi, hi, x);
    return hn::IfThenElse(x < lo, lo, upper);
  }
  if constexpr (K == ActivationKind::hard_sigmoid || K == ActivationKind::hard_swish) {
    const float a = K == ActivationKind::hard_swish ? 1.f / 6.f : alpha;
    const float b = K == ActivationKind::hard_swish ? 0.5f : beta;
    // a * x + b rounded twice, as the scalar form (no contraction) does.
    const VF v = hn::Add(hn::Mul(hn::Set(DF(), a), x), hn::Set(DF(), b));
    const VF h = hn::Max(hn::Min(v, hn::Set(DF(), 1.f)), zero);
    return K == ActivationKind::hard_swish ? hn::Mul(x, h) : h;
  }
  return x;
}

// One skipped position's n channels (or a run of them) of a tiled layer
// whose comp holds conv + bias (Plan::tile_bias): the mean of its
// neighbours a and b (a alone at an edge: b null), plus the residual, then
// the activation, kL channels at a time. As formed_run computes it, but
// inline. (Row perforation; the tiles form skipped columns themselves,
// Plan::tile_skips.)
template <ActivationKind K>
CP_KNOB_INLINE void formed_skipped(const Plan& p, float* d, const float* a, const float* b, const float* res,
                                   int64_t n) {
  const VF half = hn::Set(DF(), 0.5f);
  for (int64_t c = 0; c < n; c += kL) {
    const MF mk = first_lanes(n - c);
    VF x = load(mk, a + c);
    if (b != nullptr) x = hn::Mul(hn::Add(x, load(mk, b + c)), half);
    if (res != nullptr) x = hn::Add(x, load(mk, res + c));
    store(activate_vector<K>(x, p.act.alpha, p.act.beta), mk, d + c);
  }
}
#endif

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // CALIPROX_KERNELS_KNOB_DIRECT_INL_H_
