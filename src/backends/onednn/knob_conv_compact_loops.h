#pragma once
// The compact kernel's per-image loops (see knob_conv_compact.h): gather,
// direct convolution and epilogue. Written once, compiled per copy
// (simd::KernelIsa): knob_conv_compact_avx512.cc includes this under an
// AVX-512 target pragma with CP_KNOB_ISA = avx512 and CP_KNOB_ISA_AVX512 = 1,
// knob_conv_compact_avx2.cc under AVX2 / FMA / F16C (avx2, 0: the same
// loops as the portable copy, vectorised at 256 bits), and
// knob_conv_compact_portable.cc for the baseline (portable, 0). Each copy
// lives in its own namespace so they never mix at link time, and the
// includer has already included every standard header, so only these
// definitions take the pragma's target. The portable copy uses no x86
// header or type, so it also builds for other architectures (aarch64).
#include <algorithm>
#include <cstring>

#include "backends/onednn/knob_conv_compact.h"
#include "backends/onednn/knob_conv_simd.h"

#if !defined(CP_KNOB_ISA) || !defined(CP_KNOB_ISA_AVX512)
#error "define CP_KNOB_ISA (avx512 or portable) and CP_KNOB_ISA_AVX512 before including this file"
#endif
#if CP_KNOB_ISA_AVX512
#include <immintrin.h>
#endif

namespace caliprox::onednn::compact::CP_KNOB_ISA {

using simd::ActivationKind;

#if CP_KNOB_ISA_AVX512
// The mask of the first n of 16 lanes (none for n <= 0, all for n >= 16).
CP_KNOB_INLINE __mmask16 first_lanes(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xFFFFu : n <= 0 ? 0u : (1u << n) - 1u);
}
#endif

// IEEE-half rounding of n floats (in == out allowed).
CP_KNOB_INLINE void round_half(const float* in, float* out, int64_t n) {
  int64_t i = 0;
#if CP_KNOB_ISA_AVX512
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(in + i), kRne)));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, in + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(_mm512_cvtps_ph(v, kRne)));
  }
#else
  for (; i < n; ++i) out[i] = half_to_float(float_to_half(in[i]));
#endif
}

// y[i] += r[i] with r rounded to half first (a half knob's residual).
CP_KNOB_INLINE void add_half_rounded(float* y, const float* r, int64_t n) {
  int64_t i = 0;
#if CP_KNOB_ISA_AVX512
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (; i + 16 <= n; i += 16) {
    const __m512 rh = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(r + i), kRne));
    _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), rh));
  }
#endif
  for (; i < n; ++i) y[i] += half_to_float(float_to_half(r[i]));
}

CP_KNOB_INLINE void fill_zero(float* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = 0.f;
}
// Short copies (one kernel row of channels, one input row segment): inline
// vector moves; GCC would turn a plain loop into a memcpy call, whose
// overhead is comparable to copying a few hundred bytes.
CP_KNOB_INLINE void copy(float* d, const float* s, int64_t n) {
#if CP_KNOB_ISA_AVX512
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
  }
#else
  std::memcpy(d, s, static_cast<size_t>(n) * sizeof(float));
#endif
}

// ---- NCHW gather: col[tap * ld + m - m0] ----------------------------------------

// One row segment: output row index i (into rows), columns [j0, j1) (into
// cols), of tap t, written to d.
CP_KNOB_INLINE void gather_nchw_segment(const Plan& p, const float* xc, const Tap& t, int64_t i, int64_t j0,
                                        int64_t j1, float* d) {
  const int64_t ih = p.rows[static_cast<size_t>(i)] * p.sh - p.ph + t.kh * p.dh;
  const int64_t len = j1 - j0;
  if (ih < 0 || ih >= p.h) {
    fill_zero(d, len);
    return;
  }
  const float* row = xc + ih * p.w;
  if (p.contiguous_cols) {
    // Output column j reads input column j + shift.
    const int64_t shift = t.kw * p.dw - p.pw;
    const int64_t lo = std::clamp(-shift, j0, j1), hi = std::clamp(p.w - shift, lo, j1);
    fill_zero(d, lo - j0);
    copy(d + (lo - j0), row + lo + shift, hi - lo);
    fill_zero(d + (hi - j0), j1 - hi);
    return;
  }
  const int32_t* iw = p.iw_of.data() + static_cast<int64_t>(t.kw) * p.nq;
  for (int64_t j = j0; j < j1; ++j) d[j - j0] = iw[j] >= 0 ? row[iw[j]] : 0.f;
}

CP_KNOB_INLINE void gather_nchw(const Plan& p, const float* x, int64_t g, int64_t m0, int64_t m1, float* col,
                                int64_t ld) {
  for (int64_t ti = 0; ti < p.k; ++ti) {
    const Tap& t = p.taps[static_cast<size_t>(ti)];
    const float* xc = x + (g * p.cg + t.c) * p.h * p.w;
    float* d = col + ti * ld;
    for (int64_t m = m0; m < m1;) {
      const int64_t i = m / p.nq, j0 = m % p.nq, j1 = std::min(p.nq, j0 + (m1 - m));
      gather_nchw_segment(p, xc, t, i, j0, j1, d);
      d += j1 - j0;
      m += j1 - j0;
    }
  }
}

// ---- NHWC gather: col[m - m0][tap] -----------------------------------------

// The kept channels of one kernel position (permuted runs) from src to d;
// returns how many were written.
CP_KNOB_INLINE int64_t gather_kept(const Plan& p, int64_t kpos, const float* src, float* d) {
  float* start = d;
  for (int32_t r = p.run_begin[static_cast<size_t>(kpos)]; r < p.run_begin[static_cast<size_t>(kpos) + 1]; ++r) {
    const int64_t len = p.run_len[static_cast<size_t>(r)];
    copy(d, src + p.run_start[static_cast<size_t>(r)], len);
    d += len;
  }
  return d - start;
}

CP_KNOB_INLINE void gather_nhwc(const Plan& p, const float* x, int64_t g, int64_t m0, int64_t m1, float* col) {
  // Whole kernel rows are one contiguous run when every channel is kept,
  // the layer is not grouped and the kernel is not dilated.
  const bool runs = !p.sampled && p.group == 1 && p.dw == 1;
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t oh = p.rows[static_cast<size_t>(m / p.nq)], ow = p.cols[static_cast<size_t>(m % p.nq)];
    float* d = col + (m - m0) * p.k;
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
      const int64_t iw0 = ow * p.sw - p.pw;
      if (ih < 0 || ih >= p.h) {
        const int64_t n =
            p.kpos_begin[static_cast<size_t>((kh + 1) * p.kw)] - p.kpos_begin[static_cast<size_t>(kh * p.kw)];
        fill_zero(d, n);
        d += n;
        continue;
      }
      const float* row = x + ih * p.w * p.c + g * p.cg;
      if (runs) {
        // Kernel columns [lo, hi) fall inside the input row.
        const int64_t lo = std::clamp<int64_t>(-iw0, 0, p.kw), hi = std::clamp<int64_t>(p.w - iw0, lo, p.kw);
        fill_zero(d, lo * p.c);
        copy(d + lo * p.c, row + (iw0 + lo) * p.c, (hi - lo) * p.c);
        fill_zero(d + hi * p.c, (p.kw - hi) * p.c);
        d += p.kw * p.c;
        continue;
      }
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        const int64_t iw = iw0 + kw * p.dw;
        const int64_t kpos = kh * p.kw + kw;
        if (iw < 0 || iw >= p.w) {
          const int64_t n = p.kpos_begin[static_cast<size_t>(kpos) + 1] - p.kpos_begin[static_cast<size_t>(kpos)];
          fill_zero(d, n);
          d += n;
        } else if (!p.sampled) {
          copy(d, row + iw * p.c, p.cg);
          d += p.cg;
        } else {
          d += gather_kept(p, kpos, row + iw * p.c, d);
        }
      }
    }
  }
}

// ---- pointwise gather: out[m][tap] ----------------------------------------------

CP_KNOB_INLINE void gather_pixels(const Plan& p, const float* x, float* out) {
  for (int64_t r : p.rows)
    for (int64_t q : p.cols) {
      const float* s = x + (r * p.sh * p.w + q * p.sw) * p.c;
      if (!p.sampled) {
        copy(out, s, p.c);
        out += p.c;
        continue;
      }
#if CP_KNOB_ISA_AVX512
      // Each 16-channel block's kept channels, compressed in a register
      // (compress straight to memory is slow on some cores) and stored
      // masked, so nothing past this pixel's k floats is written.
      for (size_t b = 0; b < p.keep_mask.size(); ++b) {
        const int64_t c0 = static_cast<int64_t>(b) * 16;
        const __mmask16 keep = p.keep_mask[b];
        const __m512 v = _mm512_maskz_compress_ps(keep, _mm512_maskz_loadu_ps(first_lanes(p.c - c0), s + c0));
        const int count = __builtin_popcount(keep);
        _mm512_mask_storeu_ps(out, first_lanes(count), v);
        out += count;
      }
#else
      for (const Tap& t : p.taps) *out++ = s[t.c];
#endif
    }
}

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

#if CP_KNOB_ISA_AVX512
// A block of width (1..64) channels: nv vectors of 16, the last masked by
// `tail`.
struct ChannelBlock {
  int64_t width;
  int nv;
  __mmask16 tail;
};
CP_KNOB_INLINE ChannelBlock channel_block(int64_t width) {
  const int nv = static_cast<int>((width + 15) / 16);
  return {width, nv, first_lanes(width - 16 * (nv - 1))};
}

// The masks of a block's NV vectors: all lanes, the last one `tail`.
template <int NV>
CP_KNOB_INLINE void block_masks(__mmask16 tail, __mmask16 (&mask)[NV]) {
  CP_KNOB_UNROLL
  for (int v = 0; v < NV; ++v) mask[v] = v + 1 < NV ? static_cast<__mmask16>(0xFFFF) : tail;
}

// NV (1..4) vectors of 16 channels starting at channel c of one output
// position, accumulated in registers over the kept taps.
template <int NV>
CP_KNOB_INLINE void direct_nhwc_block(const Plan& p, const float* x, int64_t oh, int64_t ow, float* d, int64_t c,
                                      int64_t len) {
  __mmask16 mask[NV];
  __m512 acc[NV];
  for (int j = 0; j < NV; ++j) {
    mask[j] = first_lanes(len - 16 * j);
    acc[j] = _mm512_setzero_ps();
  }
  for (int64_t ti = 0; ti < p.k; ++ti) {
    const Tap& t = p.taps[static_cast<size_t>(ti)];
    const int64_t ih = oh * p.sh - p.ph + t.kh * p.dh, iw = ow * p.sw - p.pw + t.kw * p.dw;
    if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
    const float* px = x + (ih * p.w + iw) * p.c;
    const float* wt = p.weights.data() + ti * p.oc + c;
    if (p.depthwise) {
      for (int j = 0; j < NV; ++j)
        acc[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask[j], wt + 16 * j),
                                 _mm512_maskz_loadu_ps(mask[j], px + c + 16 * j), acc[j]);
    } else {
      const __m512 v = _mm512_set1_ps(px[t.c]);
      for (int j = 0; j < NV; ++j) acc[j] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(mask[j], wt + 16 * j), acc[j]);
    }
  }
  for (int j = 0; j < NV; ++j) _mm512_mask_storeu_ps(d + 16 * j, mask[j], acc[j]);
}
#endif

// Accumulates the kept taps of one output position into channels
// [c0, c0 + len) of d.
CP_KNOB_INLINE void direct_nhwc_position(const Plan& p, const float* x, int64_t oh, int64_t ow, float* d, int64_t c0,
                                         int64_t len) {
#if CP_KNOB_ISA_AVX512
  int64_t b = 0;
  for (; b + 64 <= len; b += 64) direct_nhwc_block<4>(p, x, oh, ow, d + b, c0 + b, 64);
  switch ((len - b + 15) / 16) {
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

#if CP_KNOB_ISA_AVX512
// Depthwise, MR positions of one computed row whose windows lie inside the
// input's columns (input columns iw0[m] + kw * dw), NV vectors of channels
// from c (the last masked by tail), accumulated in registers over the kept
// taps into d[m]. A kernel row outside the input is skipped for all of
// them at once; per tap the weights are loaded once for the MR positions.
template <int NV, int MR>
CP_KNOB_INLINE void depthwise_tile(const Plan& p, const float* x, int64_t oh, const int64_t* iw0, float* const* d,
                                   int64_t c, __mmask16 tail) {
  __m512 acc[MR][NV];
  __mmask16 mask[NV];
  block_masks(tail, mask);
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_setzero_ps();
  for (int64_t ti = 0; ti < p.k; ++ti) {
    const Tap& t = p.taps[static_cast<size_t>(ti)];
    const int64_t ih = oh * p.sh - p.ph + t.kh * p.dh;
    if (ih < 0 || ih >= p.h) continue;
    const float* xr = x + (ih * p.w + t.kw * p.dw) * p.c + c;
    const float* wt = p.weights.data() + ti * p.oc + c;
    __m512 w[NV];
    for (int v = 0; v < NV; ++v) w[v] = _mm512_maskz_loadu_ps(mask[v], wt + 16 * v);
    for (int m = 0; m < MR; ++m) {
      const float* px = xr + iw0[m] * p.c;
      for (int v = 0; v < NV; ++v)
        acc[m][v] = _mm512_fmadd_ps(w[v], _mm512_maskz_loadu_ps(mask[v], px + 16 * v), acc[m][v]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(d[m] + 16 * v, mask[v], acc[m][v]);
}

template <int MR>
CP_KNOB_INLINE void depthwise_tiles(const Plan& p, const float* x, int64_t oh, const int64_t* iw0, float* const* d,
                                    int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; c += 64) {
    const ChannelBlock cb = channel_block(std::min<int64_t>(64, c1 - c));
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
// to every output channel. (The AVX-512 copy accumulates with FMA, the
// reference without: the sums differ in rounding only.) On AVX-512,
// depthwise positions whose windows lie inside the input's columns run
// four at a time (depthwise_tile), the others one by one.
CP_KNOB_INLINE void direct_nhwc(const Plan& p, const float* x, float* comp, int64_t c0, int64_t c1) {
  for (size_t i = 0; i < p.rows.size(); ++i)
    for (size_t j = 0; j < p.cols.size();) {
      const int64_t m = static_cast<int64_t>(i) * p.nq + static_cast<int64_t>(j);
#if CP_KNOB_ISA_AVX512
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

#if CP_KNOB_ISA_AVX512
// activate<K> on 16 floats, with the same results (NaN and -0 included),
// for the kinds with a vector form (has_vector_form).
template <ActivationKind K>
inline constexpr bool kVectorActivation = has_vector_form(K);

template <ActivationKind K>
CP_KNOB_INLINE __m512 activate_vector(__m512 x, float alpha, float beta) {
  // max / min return their second operand when the first is NaN or both
  // are zeros, which is what the scalar x > 0 ? x : 0 and v < 1 ? v : 1
  // give (+0 for a NaN or a -0 x); one instruction instead of a comparison
  // and a blend.
  const __m512 zero = _mm512_setzero_ps();
  if constexpr (K == ActivationKind::relu) return _mm512_max_ps(x, zero);
  if constexpr (K == ActivationKind::leaky_relu)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero, _CMP_GE_OQ), _mm512_mul_ps(_mm512_set1_ps(alpha), x), x);
  if constexpr (K == ActivationKind::clip) {
    const __m512 lo = _mm512_set1_ps(alpha), hi = _mm512_set1_ps(beta);
    const __m512 upper = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), x, hi);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), upper, lo);
  }
  if constexpr (K == ActivationKind::hard_sigmoid || K == ActivationKind::hard_swish) {
    const float a = K == ActivationKind::hard_swish ? 1.f / 6.f : alpha;
    const float b = K == ActivationKind::hard_swish ? 0.5f : beta;
    // a * x + b rounded twice, as the scalar form (no contraction) does.
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(a), x), _mm512_set1_ps(b));
    const __m512 h = _mm512_max_ps(_mm512_min_ps(v, _mm512_set1_ps(1.f)), zero);
    return K == ActivationKind::hard_swish ? _mm512_mul_ps(x, h) : h;
  }
  return x;
}

// One skipped position's n channels (or a run of them) of a tiled layer
// whose comp holds conv + bias (Plan::tile_bias): the mean of its
// neighbours a and b (a alone at an edge: b null), plus the residual, then
// the activation, 16 channels at a time. As formed_run computes it, but
// inline. (Row perforation; the tiles form skipped columns themselves,
// Plan::tile_skips.)
template <ActivationKind K>
CP_KNOB_INLINE void formed_skipped(const Plan& p, float* d, const float* a, const float* b, const float* res,
                                   int64_t n) {
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 mk = first_lanes(n - c);
    __m512 x = _mm512_maskz_loadu_ps(mk, a + c);
    if (b != nullptr) x = _mm512_mul_ps(_mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, b + c)), half);
    if (res != nullptr) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, res + c));
    _mm512_mask_storeu_ps(d + c, mk, activate_vector<K>(x, p.act.alpha, p.act.beta));
  }
}
#endif

// ---- epilogue ------------------------------------------------------------------

// y = act(y + bias + residual), then half rounding: the last steps of every
// output value, over a run of n values of one channel (NCHW) or of the
// channels [c0, c0 + n) of one position (NHWC: bias is then a pointer).
template <ActivationKind K>
CP_KNOB_INLINE void finish_run(const Plan& p, float* y, const float* bias, bool bias_per_value, float bias_value,
                               const float* res, int64_t n) {
  if (bias_per_value) {
    for (int64_t i = 0; i < n; ++i) y[i] += bias[i];
  } else if (bias_value != 0.f) {
    for (int64_t i = 0; i < n; ++i) y[i] += bias_value;
  }
  if (res != nullptr) {
    if (p.half) {
      add_half_rounded(y, res, n);
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] += res[i];
    }
  }
  if constexpr (K != ActivationKind::none) {
    const float a = p.act.alpha, b = p.act.beta;
    for (int64_t i = 0; i < n; ++i) y[i] = simd::activate<K>(y[i], a, b);
  }
  if (p.half) round_half(y, y, n);
}

// A skipped output along the perforated axis: the mean of its computed
// neighbours (conv + bias), or a copy of the one that exists at an edge
// (rate >= 2: direct neighbours are computed). a / b: the neighbours' conv
// values (b null at an edge); bias per value (NHWC, non-null) or one value.
CP_KNOB_INLINE void interpolated(float* d, const float* a, const float* b, const float* bias, float bias_value,
                                 int64_t n) {
  if (b == nullptr) {
    if (bias != nullptr) {
      for (int64_t i = 0; i < n; ++i) d[i] = a[i] + bias[i];
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = a[i] + bias_value;
    }
  } else if (bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = ((a[i] + bias[i]) + (b[i] + bias[i])) / 2;
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = ((a[i] + bias_value) + (b[i] + bias_value)) / 2;
  }
}

// One run of n output values formed and finished: a computed one (b null:
// a's conv values plus bias) or a skipped one (the mean of its neighbours a
// and b, or a copy of a at an edge), then residual and activation, as
// interpolated + finish_run do, but in one pass over d without half
// rounding (d is written once while a, b and the residual stream through).
// Under a half knob, the two passes. Not inlined: inlined into the
// epilogue's many paths, GCC kept the loop's pointers on the stack and
// reloaded them every iteration (the pointwise path's epilogue for 8
// images of 128 channels on 7x7: 8.4 us inlined, 7.3 us out of line).
template <ActivationKind K>
[[gnu::noinline]] void formed_run(const Plan& p, float* __restrict d, const float* __restrict a,
                                  const float* __restrict b, const float* __restrict bias,
                                  const float* __restrict res, int64_t n) {
  if (p.half) {
    interpolated(d, a, b, bias, 0.f, n);
    finish_run<K>(p, d, nullptr, false, 0.f, res, n);
    return;
  }
  const float al = p.act.alpha, be = p.act.beta;
  if (b == nullptr && res == nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = simd::activate<K>(a[i] + bias[i], al, be);
  } else if (b == nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = simd::activate<K>((a[i] + bias[i]) + res[i], al, be);
  } else if (res == nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = simd::activate<K>(((a[i] + bias[i]) + (b[i] + bias[i])) / 2, al, be);
  } else {
    for (int64_t i = 0; i < n; ++i)
      d[i] = simd::activate<K>(((a[i] + bias[i]) + (b[i] + bias[i])) / 2 + res[i], al, be);
  }
}

// One pass per output channel plane: every row is formed once (computed
// rows / columns from comp plus bias, skipped ones interpolated from comp)
// and finished (residual, activation, half) while it is in L1.
template <ActivationKind K>
CP_KNOB_INLINE void epilogue_nchw(const Plan& p, const float* comp, int64_t comp_ld, const float* bias,
                                  const float* res, float* y, int64_t c0, int64_t c1) {
  const int64_t plane = p.oh * p.ow;
  for (int64_t o = c0; o < c1; ++o) {
    float* yp = y + o * plane;
    const float* rp = res != nullptr ? res + o * plane : nullptr;
    if (comp == y) {
      finish_run<K>(p, yp, nullptr, false, bias[o], rp, plane);
      continue;
    }
    const float* src = comp + o * comp_ld;
    const float b = bias[o];
    for (int64_t r = 0; r < p.oh; ++r) {
      float* d = yp + r * p.ow;
      if (!p.perforated || p.perf_rows) {
        const int64_t slot = p.row_slot[static_cast<size_t>(r)];
        if (slot >= 0) {
          const float* s = src + slot * p.ow;
          for (int64_t q = 0; q < p.ow; ++q) d[q] = s[q] + b;
        } else {
          int64_t first, second;
          neighbours(p.row_slot, r, first, second);
          interpolated(d, src + first * p.ow, second >= 0 ? src + second * p.ow : nullptr, nullptr, b, p.ow);
        }
      } else {
        const float* s = src + r * p.nq;
        for (int64_t q = 0; q < p.ow; ++q) {
          const int64_t slot = p.col_slot[static_cast<size_t>(q)];
          if (slot >= 0) {
            d[q] = s[slot] + b;
          } else {
            int64_t first, second;
            neighbours(p.col_slot, q, first, second);
            interpolated(d + q, s + first, second >= 0 ? s + second : nullptr, nullptr, b, 1);
          }
        }
      }
      finish_run<K>(p, d, nullptr, false, 0.f, rp != nullptr ? rp + r * p.ow : nullptr, p.ow);
    }
  }
}

// One pass over the image: the channels [c0, c1) of each position formed
// once and finished.
template <ActivationKind K>
CP_KNOB_INLINE void epilogue_nhwc(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                  int64_t c0, int64_t c1) {
  // Without perforation comp is y itself (the GEMM wrote the output).
  const int64_t len = c1 - c0;
  const float* bias0 = bias + c0;
  const auto at = [&p, comp, c0](int64_t rslot, int64_t qslot) { return comp + (rslot * p.nq + qslot) * p.oc + c0; };
  if (p.tiled && !p.winograd) {
    // The tiled kernel finished every computed position, and under
    // tile_skips the skipped ones too; otherwise the skipped ones remain.
    if (!p.perforated || p.tile_skips) return;
    // One skipped run: from comp's conv + bias when the tiles added the
    // bias (Plan::tile_bias), else from conv values and `bs`.
    const auto form = [&p](float* d, const float* a, const float* b, const float* bs, const float* r, int64_t n) {
#if CP_KNOB_ISA_AVX512
      if constexpr (kVectorActivation<K>) {
        if (p.tile_bias) return formed_skipped<K>(p, d, a, b, r, n);
      }
#endif
      formed_run<K>(p, d, a, b, bs, r, n);
    };
    const int64_t row = p.ow * p.oc;
    if (p.perf_rows) {
      for (const Skipped& k : p.skipped) {
        const float* a = comp + k.first * row;
        const float* b = k.second >= 0 ? comp + k.second * row : nullptr;
        float* d = y + k.at * row;
        const float* rr = res != nullptr ? res + k.at * row : nullptr;
        if (c0 == 0 && c1 == p.oc) {
          // The whole row (OW * OC floats; `bias` repeated along it).
          form(d, a, b, bias, rr, row);
          continue;
        }
        for (int64_t q = 0; q < p.ow; ++q) {
          const int64_t o = q * p.oc + c0;
          form(d + o, a + o, b != nullptr ? b + o : nullptr, bias0, rr != nullptr ? rr + o : nullptr, len);
        }
      }
      return;
    }
    for (int64_t r = 0; r < p.oh; ++r) {
      const float* cr = comp + r * p.nq * p.oc + c0;
      float* d = y + r * row + c0;
      const float* rr = res != nullptr ? res + r * row + c0 : nullptr;
      for (const Skipped& k : p.skipped) {
        const int64_t o = k.at * p.oc;
        form(d + o, cr + k.first * p.oc, k.second >= 0 ? cr + k.second * p.oc : nullptr, bias0,
             rr != nullptr ? rr + o : nullptr, len);
      }
    }
    return;
  }
  if (c0 == 0 && c1 == p.oc) {
    // Whole output rows (OW * OC contiguous floats) at a time; `bias` then
    // holds the bias repeated for every position of a row.
    const int64_t row = p.ow * p.oc;
    for (int64_t r = 0; r < p.oh; ++r) {
      float* d = y + r * row;
      const float* rr = res != nullptr ? res + r * row : nullptr;
      if (!p.perforated) {
        finish_run<K>(p, d, bias, true, 0.f, rr, row);
        continue;
      }
      if (p.perf_rows) {
        const int64_t slot = p.row_slot[static_cast<size_t>(r)];
        int64_t first = slot, second = -1;
        if (slot < 0) neighbours(p.row_slot, r, first, second);
        formed_run<K>(p, d, comp + first * row, second >= 0 ? comp + second * row : nullptr, bias, rr, row);
        continue;
      }
      for (int64_t q = 0; q < p.ow; ++q) {
        const int64_t slot = p.col_slot[static_cast<size_t>(q)];
        int64_t first = slot, second = -1;
        if (slot < 0) neighbours(p.col_slot, q, first, second);
        formed_run<K>(p, d + q * p.oc, at(r, first), second >= 0 ? at(r, second) : nullptr, bias,
                      rr != nullptr ? rr + q * p.oc : nullptr, p.oc);
      }
    }
    return;
  }
  for (int64_t r = 0; r < p.oh; ++r) {
    const int64_t rslot = p.perf_rows ? p.row_slot[static_cast<size_t>(r)] : r;
    for (int64_t q = 0; q < p.ow; ++q) {
      const int64_t m = r * p.ow + q;
      float* d = y + m * p.oc + c0;
      const float* rm = res != nullptr ? res + m * p.oc + c0 : nullptr;
      if (!p.perforated) {
        finish_run<K>(p, d, bias0, true, 0.f, rm, len);
        continue;
      }
      const int64_t qslot = p.perf_rows ? q : p.col_slot[static_cast<size_t>(q)];
      if (rslot >= 0 && qslot >= 0) {
        formed_run<K>(p, d, at(rslot, qslot), nullptr, bias0, rm, len);
      } else if (p.perf_rows) {
        int64_t first, second;
        neighbours(p.row_slot, r, first, second);
        formed_run<K>(p, d, at(first, q), second >= 0 ? at(second, q) : nullptr, bias0, rm, len);
      } else {
        int64_t first, second;
        neighbours(p.col_slot, q, first, second);
        formed_run<K>(p, d, at(r, first), second >= 0 ? at(r, second) : nullptr, bias0, rm, len);
      }
    }
  }
}

// ---- tiled kernel (AVX-512 only) ---------------------------------------------------

#if CP_KNOB_ISA_AVX512
// One tap: its weights (NV vectors at wk, the last masked by `tail`) times
// the MR positions' input at offset o, into acc. kBf16 (Plan::bf16): a tap
// is a pair of channels, each 32-bit element two bfloat16 values (input
// and weights alike), multiplied and summed into fp32 by vdpbf16ps; only
// the copy compiled for AVX512-BF16 (knob_conv_compact_bf16.cc)
// instantiates it.
template <int MR, int NV, bool kBf16 = false>
CP_KNOB_INLINE void tap_step(__m512 (&acc)[MR][NV], const float* const (&a)[MR], const float* wk, int64_t o,
                             __mmask16 tail) {
  __m512 b[NV];
  CP_KNOB_UNROLL
  for (int v = 0; v + 1 < NV; ++v) b[v] = _mm512_loadu_ps(wk + 16 * v);
  b[NV - 1] = _mm512_maskz_loadu_ps(tail, wk + 16 * (NV - 1));
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    if constexpr (kBf16) {
      // (Loaded as 32 bits of any type: the pair was written as bfloat16.)
      const __m512bh x = reinterpret_cast<__m512bh>(_mm512_broadcastd_epi32(_mm_loadu_si32(a[i] + o)));
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], x, reinterpret_cast<__m512bh>(b[v]));
    } else {
      const __m512 x = _mm512_set1_ps(a[i][o]);
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(x, b[v], acc[i][v]);
    }
  }
}

// How a tile's values start and end. Raw (bias null): the conv values
// alone, for a finishing pass. Fused (bias set; Plan::tile_bias): the first
// tap block starts from the bias, and the last ends the values itself.
// Every position computed (y null): the residual (rows oc floats apart from
// res) joins the bias at the start, the activation ends, and the tile's
// output is the finished one. Under perforation (y set): the tile's output
// (comp) keeps conv + bias, which the skipped positions are interpolated
// from, and the finished values (residual at y_res, activation) go to
// y + out_offset[i]; with `skip` (Plan::tile_skips) the tile forms the
// skipped columns itself and comp keeps only its last position, for the
// next tile's first. On 1x1 layers of 16-32 kept channels a separate
// finishing pass cost as much as a third of the multiplications.
struct TileEnds {
  const float* bias = nullptr;          // the block's first channel
  const float* res = nullptr;           // the tile's first position, the block's first channel
  float* y = nullptr;                   // the block's first channel in the item's output
  const int64_t* out_offset = nullptr;  // the tile's first position's
  const float* y_res = nullptr;         // the block's first channel in the item's residual
  const TileSkip* skip = nullptr;       // Plan::tile_skips: the tile's first position's
};

// MR computed positions (window origins image + pos[i]) by NV vectors of 16
// output channels, accumulated in registers over the kept taps of tap block
// kb (weights w[t * tile_n], the block's panel; offsets tap_offset[t], or
// the block's runs); added to what `out` holds unless `first`, which starts
// from zero or (fused) the bias and residual. The last vector is masked by
// `tail`. kPlain: the layer's one tap block, tap by tap, from the bias
// (ends.bias, the only end set) to the activation, stored where computed
// (fused, every position computed, no residual); `first` and `last` are
// then unused, and what the general tile decides at run time is known
// when compiling. kBf16: pairs of bfloat16 channels (tap_step); kCodesOut
// (plain tiles only): out holds the output as bfloat16 codes, each value
// rounded to nearest even (Plan::codes_out).
template <ActivationKind K, int MR, int NV, bool kPlain = false, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tile(const Plan& p, const float* image, const int64_t* pos, const float* w,
                         std::conditional_t<kCodesOut, uint16_t, float>* out, __mmask16 tail, size_t kb,
                         bool first_block, bool last_block, const TileEnds& ends) {
  static_assert(kPlain || !kCodesOut, "only plain tiles write bfloat16 codes");
  // Locals for what is read after a store: the store intrinsics write
  // through may_alias types, so GCC reloaded p.oc before each of them.
  const int64_t oc = p.oc, tn = p.tile_n;
  const TileEnds e = kPlain ? TileEnds{ends.bias} : ends;
  const bool first = kPlain || first_block, last = kPlain || last_block;
  __mmask16 mask[NV];
  block_masks(tail, mask);
  __m512 acc[MR][NV];
  if (!first) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_maskz_loadu_ps(mask[v], out + i * oc + 16 * v);
  } else if (!kPlain && e.bias == nullptr) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  } else {
    __m512 b[NV];
    CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_ps(mask[v], e.bias + 16 * v);
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v)
        acc[i][v] = e.res == nullptr
                        ? b[v]
                        : _mm512_add_ps(b[v], _mm512_maskz_loadu_ps(mask[v], e.res + i * oc + 16 * v));
  }
  const float* a[MR];
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) a[i] = image + pos[i];
  const float* const (&ac)[MR] = a;
  const int64_t t0 = p.tap_block_begin[kb], t1 = p.tap_block_begin[kb + 1];
  const float* wk = w + t0 * tn;
  if (!kPlain && p.by_runs) {
    for (int64_t r = p.run_block_begin[kb]; r < p.run_block_begin[kb + 1]; ++r) {
      const int64_t o = p.run_offset[static_cast<size_t>(r)], len = p.run_length[static_cast<size_t>(r)];
      for (int64_t j = 0; j < len; ++j, wk += tn) tap_step<MR, NV, kBf16>(acc, ac, wk, o + j, tail);
    }
  } else {
    const int64_t* off = p.tap_offset.data();
    for (int64_t t = t0; t < t1; ++t, wk += tn) tap_step<MR, NV, kBf16>(acc, ac, wk, off[t], tail);
  }
  const float al = p.act.alpha, be = p.act.beta;
  if (kPlain || (last && e.bias != nullptr && e.y == nullptr)) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = activate_vector<K>(acc[i][v], al, be);
  }
  // With the skipped columns formed here, comp needs only the last
  // position, which the next tile's first may pair with.
  const bool skips = !kPlain && last && e.skip != nullptr;
  if constexpr (kCodesOut) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v)
        _mm256_mask_storeu_epi16(out + i * oc + 16 * v, mask[v],
                                 reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(acc[i][v])));
    return;
  }
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    // (A constant start: the loop must unroll for acc to stay in registers.)
    if (skips && i + 1 < MR) continue;
    CP_KNOB_UNROLL
    for (int v = 0; v + 1 < NV; ++v) _mm512_storeu_ps(out + i * oc + 16 * v, acc[i][v]);
    _mm512_mask_storeu_ps(out + i * oc + 16 * (NV - 1), tail, acc[i][NV - 1]);
  }
  if (kPlain || !last || e.y == nullptr) return;
  // Vector v of one output position at offset o of the item: x + residual,
  // activated.
  const auto finish = [&](int64_t o, int v, __m512 x) {
    if (e.y_res != nullptr) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], e.y_res + o + 16 * v));
    _mm512_mask_storeu_ps(e.y + o + 16 * v, mask[v], activate_vector<K>(x, al, be));
  };
  const __m512 half = _mm512_set1_ps(0.5f);
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    const int64_t o = e.out_offset[i];
    CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) finish(o, v, acc[i][v]);
    if (!skips) continue;
    const TileSkip& k = e.skip[i];
    if (k.left >= 0 && k.pair) {
      // The mean of the previous position (the previous tile's last, from
      // comp, when this is the tile's first) and this one, as
      // formed_skipped computes it.
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) {
        const __m512 prev = i > 0 ? acc[i > 0 ? i - 1 : 0][v] : _mm512_maskz_loadu_ps(mask[v], out - oc + 16 * v);
        finish(k.left, v, _mm512_mul_ps(_mm512_add_ps(prev, acc[i][v]), half));
      }
    } else if (k.left >= 0) {
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) finish(k.left, v, acc[i][v]);
    }
    if (k.right >= 0) {
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) finish(k.right, v, acc[i][v]);
    }
  }
}

// The block of a tile's output channels [ob, ob + width).
CP_KNOB_INLINE ChannelBlock channel_block(const Plan& p, int64_t ob) {
  return channel_block(std::min<int64_t>(p.tile_n, p.oc - ob));
}

// The last steps of a finished tile's values (positions [m, m + mr), NV
// vectors of channels from ob, `tail` masking the last) while they are in
// L1, where the tile cannot take them (half rounding, sigmoid, tanh): bias,
// residual, activation and half rounding, as finish_run, into y. Under
// perforation the conv values stay in comp, where the epilogue
// interpolates the skipped positions from. The bias vectors are loaded once
// per tile and the vector loop is unrolled.
template <ActivationKind K, int NV>
CP_KNOB_INLINE void finish_tile_nv(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                   int64_t m, int64_t mr, int64_t ob, __mmask16 tail) {
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __mmask16 mask[NV];
  block_masks(tail, mask);
  __m512 b[NV];
  for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_ps(mask[v], bias + ob + 16 * v);
  for (int64_t i = m; i < m + mr; ++i) {
    const int64_t o = p.out_offset[static_cast<size_t>(i)] + ob;
    const float* s = comp + i * p.oc + ob;
    float* d = y + o;
    const float* r = res != nullptr ? res + o : nullptr;
    for (int v = 0; v < NV; ++v) {
      __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], s + 16 * v), b[v]);
      if (r != nullptr) {
        __m512 rv = _mm512_maskz_loadu_ps(mask[v], r + 16 * v);
        if (p.half) rv = _mm512_cvtph_ps(_mm512_cvtps_ph(rv, kRne));
        x = _mm512_add_ps(x, rv);
      }
      x = activate_vector<K>(x, p.act.alpha, p.act.beta);
      if (p.half) x = _mm512_cvtph_ps(_mm512_cvtps_ph(x, kRne));
      _mm512_mask_storeu_ps(d + 16 * v, mask[v], x);
    }
  }
}

// finish_tile_nv for a tile of NV vectors (the tile's own), or scalar for the
// activations without a vector form.
template <ActivationKind K, int NV>
CP_KNOB_INLINE void finish_tile(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                int64_t m, int64_t mr, int64_t ob, int64_t width, __mmask16 tail) {
  if constexpr (!kVectorActivation<K>) {
    for (int64_t i = m; i < m + mr; ++i) {
      const int64_t o = p.out_offset[static_cast<size_t>(i)] + ob;
      const float* s = comp + i * p.oc + ob;
      float* d = y + o;
      for (int64_t c = 0; c < width; ++c) d[c] = s[c] + bias[ob + c];
      finish_run<K>(p, d, nullptr, false, 0.f, res != nullptr ? res + o : nullptr, width);
    }
  } else {
    finish_tile_nv<K, NV>(p, comp, bias, res, y, m, mr, ob, tail);
  }
}

// What the tiles of one output channel block and tap block share.
struct TileBlock {
  const Plan& p;
  const float* image;
  const float* w;  // the block's [k][tile_n] weight panel
  float* comp;
  const float* bias;
  const float* res;
  float* y;         // null: raw tiles, nothing finishes them
  uint16_t* codes;  // Plan::codes_out: the item's output codes (comp and y unused)
  int64_t ob;       // the block's first output channel
  ChannelBlock cb;  // and its channels (channel_block)
  size_t kb;
  bool last;   // the last tap block
  bool fused;  // the tiles finish their values (Plan::tile_bias)
};

// tile_run's general tiles (those not plain), on block b (tile_run's
// copy).
template <ActivationKind K, int MR, int NV, bool kBf16>
CP_KNOB_INLINE void general_tiles(const TileBlock& b, int64_t m0, int64_t m1) {
  const Plan& p = b.p;
  for (int64_t m = m0; m < m1; m += MR) {
    const int64_t* pos = p.pos_offset.data() + m;
    float* out = b.comp + m * p.oc + b.ob;
    if (p.prefetch_floats > 0 && b.ob == 0 && b.kb == 0) {
      // The next tile's inputs (Plan::prefetch_floats).
      for (int64_t j = m + MR; j < std::min(m1, m + 2 * MR); ++j)
        for (int64_t f = 0; f < p.prefetch_floats; f += 16)
          _mm_prefetch(reinterpret_cast<const char*>(b.image + p.pos_offset[static_cast<size_t>(j)] + f),
                       _MM_HINT_T0);
    }
    TileEnds ends;
    if (b.fused && b.comp == b.y) {
      ends = {b.bias + b.ob, b.res != nullptr ? b.res + m * p.oc + b.ob : nullptr};
    } else if (b.fused) {
      ends = {b.bias + b.ob, nullptr, b.y + b.ob, p.out_offset.data() + m, b.res != nullptr ? b.res + b.ob : nullptr,
              p.tile_skips ? p.tile_skip.data() + m : nullptr};
    }
    // (Raw tiles for the activations without a vector form.)
    tile<kVectorActivation<K> ? K : ActivationKind::none, MR, NV, false, kBf16>(p, b.image, pos, b.w, out, b.cb.tail,
                                                                               b.kb, b.kb == 0, b.last, ends);
    if (b.last && !b.fused && b.y != nullptr)
      finish_tile<K, NV>(p, b.comp, b.bias, b.res, b.y, m, MR, b.ob, b.cb.width, b.cb.tail);
  }
}

// The tiles of MR positions by NV vectors at [m0, m1) (a multiple of MR
// positions) of one block, in order. Not inlined: one function per tile
// shape, dispatched once per block rather than per tile, keeps GCC's
// register allocation to the tile itself (inlined into one function with
// every other shape, MobileNet-style's stem and first pointwise layer ran
// 1.16x and 1.08x slower). The last whole tile of a run prefetches no
// further than the run: the short tile after it goes without. kBf16 and
// kCodesOut as for tile (kCodesOut: the plan guarantees plain tiles).
template <ActivationKind K, int MR, int NV, bool kBf16 = false, bool kCodesOut = false>
[[gnu::noinline]] void tile_run(const TileBlock& block, int64_t m0, int64_t m1) {
  const TileBlock b = block;  // (locals: the tile's stores may alias anything)
  const Plan& p = b.p;
  // Plain tiles (tile's kPlain): with every branch of the general tile
  // decided when compiling, the 1 -> 32 3x3 stem at samp-2-0 (4 taps) ran
  // 1.25x faster. Not for tiles whose accumulators, weights, input and
  // bias vectors together need more than the 32 vector registers (NV 4 by
  // MR 6): plain, the 1x1 layers on 7x7 ran 1.1-1.18x slower, as if GCC
  // kept the bias vectors in registers across the tiles. (bf16 tiles walk
  // the tap offsets even where the taps form runs. Tiles writing codes are
  // plain whatever their shape: make_lowp_conv times 64 x 6 ones against
  // 32 x 12 ones where the layer has more than 32 channels.)
  if constexpr (kCodesOut || (kVectorActivation<K> && MR * NV + 2 * NV + 1 <= 32)) {
    const bool plain = kCodesOut || (b.fused && b.comp == b.y && b.res == nullptr && b.kb == 0 && b.last &&
                                     (kBf16 || !p.by_runs) && p.prefetch_floats == 0);
    if (plain) {
      const TileEnds ends{b.bias + b.ob};
      for (int64_t m = m0; m < m1; m += MR) {
        if constexpr (kCodesOut)
          tile<K, MR, NV, true, kBf16, true>(p, b.image, p.pos_offset.data() + m, b.w, b.codes + m * p.oc + b.ob,
                                             b.cb.tail, 0, true, true, ends);
        else
          tile<K, MR, NV, true, kBf16>(p, b.image, p.pos_offset.data() + m, b.w, b.comp + m * p.oc + b.ob,
                                       b.cb.tail, 0, true, true, ends);
      }
      return;
    }
  }
  if constexpr (!kCodesOut) general_tiles<K, MR, NV, kBf16>(b, m0, m1);
}

// Dispatches the tiles of mr (<= 12 / 12 / 8 / 6 for NV = 1..4) positions.
template <ActivationKind K, int NV, bool kBf16, bool kCodesOut>
CP_KNOB_INLINE void tile_run_of(int64_t mr, const TileBlock& b, int64_t m0, int64_t m1) {
#define CP_KNOB_TILE(M) \
  case M: tile_run<K, M, NV, kBf16, kCodesOut>(b, m0, m1); return;
  switch (mr) {
    CP_KNOB_TILE(1) CP_KNOB_TILE(2) CP_KNOB_TILE(3) CP_KNOB_TILE(4) CP_KNOB_TILE(5) CP_KNOB_TILE(6)
    default: break;
  }
  if constexpr (NV <= 3) {
    switch (mr) {
      CP_KNOB_TILE(7) CP_KNOB_TILE(8)
      default: break;
    }
  }
  if constexpr (NV <= 2) {
    switch (mr) {
      CP_KNOB_TILE(9) CP_KNOB_TILE(10) CP_KNOB_TILE(11) CP_KNOB_TILE(12)
      default: break;
    }
  }
#undef CP_KNOB_TILE
}

// The block's tiles of positions [m0, m1): whole tiles of tile_m, then the
// short one at the end.
template <ActivationKind K, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tile_runs(const TileBlock& b, int64_t m0, int64_t m1) {
  const int64_t whole = m0 + (m1 - m0) / b.p.tile_m * b.p.tile_m;
  const auto run = [&](int64_t mr, int64_t from, int64_t to) {
    switch (b.cb.nv) {
      case 1: tile_run_of<K, 1, kBf16, kCodesOut>(mr, b, from, to); break;
      case 2: tile_run_of<K, 2, kBf16, kCodesOut>(mr, b, from, to); break;
      case 3: tile_run_of<K, 3, kBf16, kCodesOut>(mr, b, from, to); break;
      default: tile_run_of<K, 4, kBf16, kCodesOut>(mr, b, from, to); break;
    }
  };
  if (m0 < whole) run(b.p.tile_m, m0, whole);
  if (whole < m1) run(m1 - whole, whole, m1);
}

// Output channel blocks of tile_n outer, then blocks of taps whose weights
// fit in L1 (tap_block_begin), then the tiles of positions [m0, m1): each
// weight block is read from L1 by every tile, and each tile is finished
// after its last block. kBf16, kCodesOut (codes: the item's output codes)
// as for tile.
template <ActivationKind K, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tiled_impl(const Plan& p, const float* image, float* comp, const float* bias, const float* res,
                               float* y, uint16_t* codes, int64_t m0, int64_t m1) {
  const size_t last = p.tap_block_begin.size() - 2;
  // The tiles finish their values themselves (TileEnds, Plan::tile_bias).
  const bool fused = kVectorActivation<K> && p.tile_bias;
  for (int64_t ob = 0; ob < p.oc; ob += p.tile_n) {
    const ChannelBlock cb = channel_block(p, ob);
    for (size_t kb = 0; kb <= last; ++kb) {
      const float* w = p.weights.data() + ob * p.k;  // the block's [k][tile_n] panel
      tile_runs<K, kBf16, kCodesOut>({p, image, w, comp, bias, res, y, codes, ob, cb, kb, kb == last, fused}, m0, m1);
    }
  }
}

// The Winograd transforms, on 16 channels, with the fractions of the
// points 0, 1, -1 (, 2) and infinity moved into G:
//   F(4,3) input  B^T d (rows as in winograd_impl), output A^T m;
//   F(2,3) input  [d0 - d2, d1 + d2, d2 - d1, d3 - d1], output [m0 + m1 + m2, m1 - m2 + m3];
//   F(3,3) input  [2d0 - d1 - 2d2 + d3, 2d1 + d2 - d3, 3d2 - 2d1 - d3, d3 - d1, 2d1 - d2 - 2d3 + d4],
//          output [m0 + m1 + m2 + m3, m1 - m2 + 2m3, m1 + m2 + 4m3 + m4].
CP_KNOB_INLINE void wino_in4(const __m512 (&d)[6], __m512 (&o)[6]) {
  const __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f), two = _mm512_set1_ps(2.f);
  const __m512 d4_d2 = _mm512_sub_ps(d[4], d[2]);
  o[0] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[2], _mm512_mul_ps(four, d[0])), d[4]);
  o[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
  o[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
  o[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), d4_d2);
  o[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), d4_d2);
  o[5] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[3], _mm512_mul_ps(four, d[1])), d[5]);
}
CP_KNOB_INLINE void wino_out4(const __m512 (&m)[6], __m512 (&y)[4]) {
  const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
  y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
  y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), d34, d12);
  y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.f), s34, s12);
  y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), d34, d12), m[5]);
}
template <int WR>
CP_KNOB_INLINE void wino_in_across(const __m512 (&d)[WR + 2], __m512 (&o)[WR + 2]) {
  if constexpr (WR == 2) {
    o[0] = _mm512_sub_ps(d[0], d[2]);
    o[1] = _mm512_add_ps(d[1], d[2]);
    o[2] = _mm512_sub_ps(d[2], d[1]);
    o[3] = _mm512_sub_ps(d[3], d[1]);
  } else {
    const __m512 two = _mm512_set1_ps(2.f);
    o[0] = _mm512_add_ps(_mm512_fmsub_ps(two, _mm512_sub_ps(d[0], d[2]), d[1]), d[3]);
    o[1] = _mm512_sub_ps(_mm512_fmadd_ps(two, d[1], d[2]), d[3]);
    o[2] = _mm512_sub_ps(_mm512_fmsub_ps(_mm512_set1_ps(3.f), d[2], _mm512_mul_ps(two, d[1])), d[3]);
    o[3] = _mm512_sub_ps(d[3], d[1]);
    o[4] = _mm512_add_ps(_mm512_fmsub_ps(two, _mm512_sub_ps(d[1], d[3]), d[2]), d[4]);
  }
}
template <int WR>
CP_KNOB_INLINE void wino_out_across(const __m512 (&m)[WR + 2], __m512 (&y)[WR]) {
  if constexpr (WR == 2) {
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]);
    y[1] = _mm512_add_ps(_mm512_sub_ps(m[1], m[2]), m[3]);
  } else {
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), _mm512_add_ps(m[2], m[3]));
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), m[3], _mm512_sub_ps(m[1], m[2]));
    y[2] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(4.f), m[3], _mm512_add_ps(m[1], m[2])), m[4]);
  }
}

// The Winograd products: per map xi of `maps`, M[xi] ([wpos][OC]) = the
// "convolution" of V[xi] (plane floats apart; positions pos_offset, taps
// tap_offset) by the transformed weights U[xi] ([OC / tile_n][taps][tile_n]).
CP_KNOB_INLINE void winograd_products(const Plan& p, const float* v, int64_t plane, int64_t maps, int64_t taps,
                                      float* m) {
  const int64_t per_xi = p.panel_floats(taps);
  const size_t last = p.tap_block_begin.size() - 2;
  for (int64_t xi = 0; xi < maps; ++xi) {
    const float* vx = v + xi * plane;
    float* mx = m + xi * p.wpos * p.oc;
    const float* wx = p.wino_weights.data() + xi * per_xi;
    for (int64_t ob = 0; ob < p.oc; ob += p.tile_n) {
      const ChannelBlock cb = channel_block(p, ob);
      const float* w = wx + ob * taps;  // the block's [taps][tile_n] panel
      for (size_t kb = 0; kb <= last; ++kb)
        tile_runs<ActivationKind::none>(
            {p, vx, w, mx, nullptr, nullptr, nullptr, nullptr, ob, cb, kb, kb == last, false}, 0, p.wpos);
    }
  }
}

// Winograd rows (Plan::winograd): F(4,3) along each computed row (column),
// i.e. per tile of 4 outputs the 6 inputs d are transformed by B^T, each
// kernel row's (column's) 3 taps g by G (at prepare time), their products
// summed over kernel rows (columns) and channels per xi (the tiles below),
// and A^T forms the 4 outputs.
CP_KNOB_INLINE void winograd_impl(const Plan& p, const float* staged, float* v, float* m, float* comp) {
  // Rows: maps [hp][wt][C] from 6 consecutive pixels of a staged row;
  // columns: maps [wt][wp][C] from 6 consecutive rows of a staged column.
  const int64_t c_in = p.c, tiles = p.wt;
  const int64_t outer = p.perf_rows ? p.hp : tiles, inner = p.perf_rows ? tiles : p.wp;
  const int64_t plane = outer * inner * c_in, step = p.perf_rows ? c_in : p.wp * c_in;
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t b = 0; b < inner; ++b) {
      const float* d = staged + (p.perf_rows ? a * p.wp + 4 * b : 4 * a * p.wp + b) * c_in;
      float* out = v + (a * inner + b) * c_in;
      for (int64_t c = 0; c < c_in; c += 16) {
        const __mmask16 mk = first_lanes(c_in - c);
        __m512 x[6], o[6];
        for (int k = 0; k < 6; ++k) x[k] = _mm512_maskz_loadu_ps(mk, d + k * step + c);
        wino_in4(x, o);
        for (int k = 0; k < 6; ++k) _mm512_mask_storeu_ps(out + k * plane + c, mk, o[k]);
      }
    }
  winograd_products(p, v, plane, 6, 3 * c_in, m);
  // Outputs: rows, comp [computed row][OW][OC], position (row i, tile t);
  // columns, comp [OH][computed column][OC], position (tile t, column i).
  const int64_t lines = static_cast<int64_t>(p.perf_rows ? p.rows.size() : p.cols.size());
  const int64_t stride = p.wpos * p.oc, extent = p.perf_rows ? p.ow : p.oh;
  const int64_t next = (p.perf_rows ? 1 : p.nq) * p.oc;  // floats from one output of a tile to the next
  for (int64_t i = 0; i < lines; ++i)
    for (int64_t t = 0; t < tiles; ++t) {
      const float* mt = m + (p.perf_rows ? i * tiles + t : t * lines + i) * p.oc;
      float* d = comp + (p.perf_rows ? i * p.ow + 4 * t : 4 * t * p.nq + i) * p.oc;
      const int64_t outs = std::min<int64_t>(4, extent - 4 * t);
      for (int64_t o = 0; o < p.oc; o += 16) {
        const __mmask16 mk = first_lanes(p.oc - o);
        __m512 x[6], y[4];
        for (int k = 0; k < 6; ++k) x[k] = _mm512_maskz_loadu_ps(mk, mt + k * stride + o);
        wino_out4(x, y);
        for (int64_t j = 0; j < outs; ++j) _mm512_mask_storeu_ps(d + j * next + o, mk, y[j]);
      }
    }
}

// Winograd tiles (Plan::wr > 0), 16 channels at a time.
template <int WR>
void winograd_tiles_impl(const Plan& p, const float* staged, float* v, float* m, float* comp) {
  constexpr int kA = WR + 2;  // maps across; 6 along
  const int64_t c_in = p.c, tiles = p.wt, runs = static_cast<int64_t>(p.wino_first.size());
  const int64_t vplane = p.wpos * c_in, mplane = p.wpos * p.oc;
  // Staged element (i across, k along) of a tile: rows perforated, row i
  // and column k of the patch; columns, the transpose.
  const int64_t step_i = p.perf_rows ? p.wp * c_in : c_in, step_k = p.perf_rows ? c_in : p.wp * c_in;
  for (int64_t j = 0; j < runs; ++j)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t first = p.wino_first[static_cast<size_t>(j)];
      const float* d0 = staged + (p.perf_rows ? first * p.wp + 4 * t : 4 * t * p.wp + first) * c_in;
      float* out = v + (j * tiles + t) * c_in;
      for (int64_t c = 0; c < c_in; c += 16) {
        const __mmask16 mk = first_lanes(c_in - c);
        __m512 along[6][kA];
        for (int i = 0; i < kA; ++i) {
          __m512 d[6], o[6];
          for (int k = 0; k < 6; ++k) d[k] = _mm512_maskz_loadu_ps(mk, d0 + i * step_i + k * step_k + c);
          wino_in4(d, o);
          for (int b = 0; b < 6; ++b) along[b][i] = o[b];
        }
        for (int b = 0; b < 6; ++b) {
          __m512 o[kA];
          wino_in_across<WR>(along[b], o);
          for (int a = 0; a < kA; ++a) _mm512_mask_storeu_ps(out + (a * 6 + b) * vplane + c, mk, o[a]);
        }
      }
    }
  winograd_products(p, v, vplane, kA * 6, c_in, m);
  // Outputs: each run tile's computed rows (columns) into comp, at their
  // slots (consecutive within a run).
  const int64_t extent = p.perf_rows ? p.ow : p.oh;
  for (int64_t j = 0; j < runs; ++j) {
    const int64_t first = p.wino_first[static_cast<size_t>(j)], len = p.wino_len[static_cast<size_t>(j)];
    const int64_t slot = (p.perf_rows ? p.row_slot : p.col_slot)[static_cast<size_t>(first)];
    for (int64_t t = 0; t < tiles; ++t) {
      const float* mt = m + (j * tiles + t) * p.oc;
      const int64_t outs = std::min<int64_t>(4, extent - 4 * t);
      for (int64_t o = 0; o < p.oc; o += 16) {
        const __mmask16 mk = first_lanes(p.oc - o);
        __m512 along[4][kA];
        for (int a = 0; a < kA; ++a) {
          __m512 mm[6], y[4];
          for (int b = 0; b < 6; ++b) mm[b] = _mm512_maskz_loadu_ps(mk, mt + (a * 6 + b) * mplane + o);
          wino_out4(mm, y);
          for (int k = 0; k < 4; ++k) along[k][a] = y[k];
        }
        for (int64_t k = 0; k < outs; ++k) {
          __m512 y[WR];
          wino_out_across<WR>(along[k], y);
          const int64_t q = 4 * t + k;  // the position along
          for (int64_t i = 0; i < len; ++i) {
            const int64_t at = p.perf_rows ? (slot + i) * p.ow + q : q * p.nq + slot + i;
            _mm512_mask_storeu_ps(comp + at * p.oc + o, mk, y[i]);
          }
        }
      }
    }
  }
}
#endif

// ---- staging -------------------------------------------------------------------

// One pixel's channels (groups of cg), permuted (Plan::channel_perm) and
// half-rounded if the knob is.
CP_KNOB_INLINE void stage_pixel(const Plan& p, const float* s, float* d) {
  const int32_t* perm = p.channel_perm.data();
  for (int64_t g = 0; g < p.c; g += p.cg)
    for (int64_t j = 0; j < p.cg; ++j) d[g + j] = s[g + perm[j]];
  if (p.half) round_half(d, d, p.c);
}

CP_KNOB_INLINE void stage(const Plan& p, const float* in, float* out, int64_t begin, int64_t end) {
  if (p.tiled) {
    // Input rows [begin, end) into the zero-padded layout (the padding was
    // zeroed once and is never written). Unpermuted rows are one contiguous
    // run each (pixel by pixel, a one-channel stem's row took 28 masked moves).
    for (int64_t h = begin; h < end; ++h) {
      const float* s = in + h * p.w * p.c;
      float* d = out + ((h + p.ph) * p.wp + p.pw) * p.c;
      if (!p.channel_perm.empty()) {
        for (int64_t w = 0; w < p.w; ++w) stage_pixel(p, s + w * p.c, d + w * p.c);
      } else if (p.half) {
        round_half(s, d, p.w * p.c);
      } else {
        copy(d, s, p.w * p.c);
      }
    }
    return;
  }
  if (p.channel_perm.empty()) {
    round_half(in + begin, out + begin, end - begin);
    return;
  }
  const int32_t* perm = p.channel_perm.data();
  for (int64_t px = begin; px < end; px += p.cg) {
    const float* s = in + px;
    float* d = out + px;
    // A scalar loop: measured faster here than AVX-512 gathers or
    // in-register shuffles (the pass is bound by reading X anyway).
    for (int64_t j = 0; j < p.cg; ++j) d[j] = s[perm[j]];
    if (p.half) round_half(d, d, p.cg);
  }
}

// ---- entry points ---------------------------------------------------------------

inline void gather(const Plan& p, const float* x, int64_t g, int64_t m0, int64_t m1, float* col, int64_t ld) {
  if (p.layout == Layout::nchw) gather_nchw(p, x, g, m0, m1, col, ld);
  else gather_nhwc(p, x, g, m0, m1, col);
}

inline void gather_pixels_entry(const Plan& p, const float* x, float* out) { gather_pixels(p, x, out); }

inline void direct(const Plan& p, const float* x, float* comp, int64_t c0, int64_t c1) {
  if (p.layout == Layout::nchw) direct_nchw(p, x, comp, c0, c1);
  else direct_nhwc(p, x, comp, c0, c1);
}

inline void epilogue(const Plan& p, const float* comp, int64_t comp_ld, const float* bias, const float* res, float* y,
                     int64_t c0, int64_t c1) {
#define CP_KNOB_EPILOGUE(K)                                                       \
  if (p.layout == Layout::nchw) epilogue_nchw<K>(p, comp, comp_ld, bias, res, y, c0, c1); \
  else epilogue_nhwc<K>(p, comp, bias, res, y, c0, c1);
  CP_KNOB_ACTIVATION_SWITCH(p.act.kind, CP_KNOB_EPILOGUE)
#undef CP_KNOB_EPILOGUE
}

inline void round_half_entry(const float* in, float* out, int64_t n) { round_half(in, out, n); }
inline void stage_entry(const Plan& p, const float* in, float* out, int64_t begin, int64_t end) {
  stage(p, in, out, begin, end);
}

#if CP_KNOB_ISA_AVX512
inline void winograd(const Plan& p, const float* staged, float* v, float* m, float* comp) {
  if (p.wr == 2) winograd_tiles_impl<2>(p, staged, v, m, comp);
  else if (p.wr == 3) winograd_tiles_impl<3>(p, staged, v, m, comp);
  else winograd_impl(p, staged, v, m, comp);
}

inline void tiled(const Plan& p, const float* image, float* comp, const float* bias, const float* res, float* y,
                  int64_t m0, int64_t m1) {
#define CP_KNOB_TILED(K) tiled_impl<K>(p, image, comp, bias, res, y, nullptr, m0, m1)
  CP_KNOB_ACTIVATION_SWITCH(p.act.kind, CP_KNOB_TILED)
#undef CP_KNOB_TILED
}
#endif

inline const Ops& isa_ops() {
#if CP_KNOB_ISA_AVX512
  static const Ops table{round_half_entry, stage_entry, gather, tiled, winograd, gather_pixels_entry, direct, epilogue};
#else
  static const Ops table{round_half_entry, stage_entry, gather, nullptr, nullptr, gather_pixels_entry, direct,
                         epilogue};
#endif
  return table;
}

}  // namespace caliprox::onednn::compact::CP_KNOB_ISA
