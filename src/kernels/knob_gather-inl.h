#pragma once
// The compact kernel's per-image loops, part 1 of 4 (knob_conv_compact_loops.h
// says how the copies are compiled): small vector helpers and the gathers
// (NCHW and NHWC im2col, pointwise pixels).
#include <algorithm>
#include <cstring>

#include "backends/onednn/knob_conv_compact.h"
#include "backends/onednn/knob_conv_simd.h"

#if !defined(CP_KNOB_ISA) || !defined(CP_KNOB_ISA_AVX512)
#error "define CP_KNOB_ISA (avx512 or portable) and CP_KNOB_ISA_AVX512 before including this file"
#endif
// The copies compiled with F16C (avx2, avx512) convert halves in vectors.
#ifndef CP_KNOB_ISA_F16C
#define CP_KNOB_ISA_F16C CP_KNOB_ISA_AVX512
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
#elif CP_KNOB_ISA_F16C
  // F16C's conversions, 8 at a time: the software conversion below costs
  // ~20x more (fp16 emulation at the AVX2 tier was 0.09x of exact).
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(in + i), kRne)));
#endif
  for (; i < n; ++i) out[i] = half_to_float(float_to_half(in[i]));
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
#elif CP_KNOB_ISA_F16C
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (; i + 8 <= n; i += 8) {
    const __m256 rh = _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(r + i), kRne));
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), rh));
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

}  // namespace caliprox::onednn::compact::CP_KNOB_ISA
