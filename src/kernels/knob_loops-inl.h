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
// The loops are split by stage into knob_conv_compact_gather.h, _direct.h,
// _epilogue.h and _tiled.h (each includes the one before); this file adds
// the staging pass and the entry points the copies export.
#include "backends/onednn/knob_conv_compact_tiled.h"

#if !defined(CP_KNOB_ISA) || !defined(CP_KNOB_ISA_AVX512)
#error "define CP_KNOB_ISA (avx512 or portable) and CP_KNOB_ISA_AVX512 before including this file"
#endif

namespace caliprox::onednn::compact::CP_KNOB_ISA {

using simd::ActivationKind;

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
