// The compact kernel's per-image loops, part 1 of 5 (knob_loops-inl.h says
// how the variants are compiled): small vector helpers and the gathers
// (NCHW and NHWC im2col, pointwise pixels). A Highway per-target header:
// included once per target (HWY_TARGET) under that target's attributes,
// with the toggle guard instead of #pragma once; the including .cc has
// included every standard header first.
#if defined(CALIPROX_KERNELS_KNOB_GATHER_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CALIPROX_KERNELS_KNOB_GATHER_INL_H_
#undef CALIPROX_KERNELS_KNOB_GATHER_INL_H_
#else
#define CALIPROX_KERNELS_KNOB_GATHER_INL_H_
#endif

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include "ir/tensor.h"
#include "kernels/knob_plan.h"
#include "kernels/knob_simd.h"

// The vector paths: every target but HWY_SCALAR (the portable variant,
// whose loops stay scalar for the compiler to vectorise as it can).
#undef CP_KNOB_VECTOR
#define CP_KNOB_VECTOR (HWY_TARGET != HWY_SCALAR)

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

namespace hn = ::hwy::HWY_NAMESPACE;
using simd::ActivationKind;

#if CP_KNOB_VECTOR
// One vector of fp32 lanes: 16 (AVX-512), 8 (AVX2), 4 (NEON).
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using MF = hn::Mask<DF>;
inline constexpr int64_t kL = static_cast<int64_t>(hn::MaxLanes(DF()));
// The vector registers the tiles may fill (x86: 32 with AVX-512, 16 with
// AVX2; aarch64: 32).
inline constexpr int kRegs = HWY_TARGET == HWY_AVX2 ? 16 : 32;

// The mask of the first n lanes (none for n <= 0, all for n >= kL). Every
// mask of these loops is such a prefix.
CP_KNOB_INLINE MF first_lanes(int64_t n) {
  return hn::FirstN(DF(), static_cast<size_t>(n <= 0 ? 0 : n >= kL ? kL : n));
}

// Loads and stores of the lanes of a prefix mask that touch no memory past
// them: x86's masked moves (AVX2's vmaskmovps, AVX-512's masked moves:
// masked-off lanes never fault), else (NEON's masked ops load and store
// whole vectors) a whole vector when the mask is full and a copy through
// the stack when it is not (only a block's last vector may be partial).
CP_KNOB_INLINE VF load(MF m, const float* p) {
#if !HWY_ARCH_X86
  const DF d;
  const size_t n = hn::CountTrue(d, m);
  if (n == static_cast<size_t>(kL)) return hn::LoadU(d, p);
  HWY_ALIGN float buf[kL] = {};
  for (size_t i = 0; i < n; ++i) buf[i] = p[i];
  return hn::Load(d, buf);
#else
  return hn::MaskedLoad(m, DF(), p);
#endif
}
CP_KNOB_INLINE void store(VF v, MF m, float* p) {
#if !HWY_ARCH_X86
  const DF d;
  const size_t n = hn::CountTrue(d, m);
  if (n == static_cast<size_t>(kL)) return hn::StoreU(v, d, p);
  HWY_ALIGN float buf[kL];
  hn::Store(v, d, buf);
  for (size_t i = 0; i < n; ++i) p[i] = buf[i];
#else
  hn::BlendedStore(v, m, DF(), p);
#endif
}

// IEEE-half rounding of a vector (round to nearest even, as F16C's and
// NEON's conversions do).
CP_KNOB_INLINE VF round_half_vector(VF v) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(d, hn::DemoteTo(dh, v));
}
#endif

// IEEE-half rounding of n floats (in == out allowed).
CP_KNOB_INLINE void round_half(const float* in, float* out, int64_t n) {
  int64_t i = 0;
#if CP_KNOB_VECTOR
  // Vector conversions: the software conversion below costs ~20x more
  // (fp16 emulation at the AVX2 tier was 0.09x of exact with it).
  const DF d;
  for (; i + kL <= n; i += kL) hn::StoreU(round_half_vector(hn::LoadU(d, in + i)), d, out + i);
  if (i < n) {
    const MF m = first_lanes(n - i);
    store(round_half_vector(load(m, in + i)), m, out + i);
    return;
  }
#endif
  for (; i < n; ++i) out[i] = half_to_float(float_to_half(in[i]));
}

// y[i] += r[i] with r rounded to half first (a half knob's residual).
CP_KNOB_INLINE void add_half_rounded(float* y, const float* r, int64_t n) {
  int64_t i = 0;
#if CP_KNOB_VECTOR
  const DF d;
  for (; i + kL <= n; i += kL)
    hn::StoreU(hn::Add(hn::LoadU(d, y + i), round_half_vector(hn::LoadU(d, r + i))), d, y + i);
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
#if CP_KNOB_VECTOR
  const DF df;
  int64_t i = 0;
  for (; i + kL <= n; i += kL) hn::StoreU(hn::LoadU(df, s + i), df, d + i);
  if (i < n) {
    const MF m = first_lanes(n - i);
    store(load(m, s + i), m, d + i);
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
#if CP_KNOB_VECTOR && HWY_TARGET == HWY_AVX3
      // Each 16-channel block's kept channels, compressed in a register
      // (compress straight to memory is slow on some cores) and stored
      // masked, so nothing past this pixel's k floats is written.
      // (Without AVX-512's compress instruction, the scalar copy.)
      for (size_t b = 0; b < p.keep_mask.size(); ++b) {
        const int64_t c0 = static_cast<int64_t>(b) * 16;
        const MF keep{static_cast<__mmask16>(p.keep_mask[b])};
        const VF v = hn::Compress(load(first_lanes(p.c - c0), s + c0), keep);
        const int count = __builtin_popcount(p.keep_mask[b]);
        store(v, first_lanes(count), out);
        out += count;
      }
#else
      for (const Tap& t : p.taps) *out++ = s[t.c];
#endif
    }
}

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // CALIPROX_KERNELS_KNOB_GATHER_INL_H_
