// The compact kernel's per-image loops (see knob_plan.h): gather, direct
// convolution, epilogue, tiles and Winograd. Written once over Highway and
// compiled per target by foreach_target (simd::KernelIsa): knob_loops.cc
// compiles the staging, gather, direct and epilogue entry points below and
// assembles each variant's Ops, knob_tiles.cc the tiles and Winograd (the
// tiles' many instantiations, in a second translation unit that builds in
// parallel). Each variant lives in its target's namespace (N_SCALAR,
// N_AVX2, N_AVX3, N_NEON) under that target's attributes, so they never
// mix at link time. The stages are split by file: knob_gather-inl.h,
// _direct, _epilogue, _tiled and _winograd (each includes the one before).
#if defined(CALIPROX_KERNELS_KNOB_LOOPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CALIPROX_KERNELS_KNOB_LOOPS_INL_H_
#undef CALIPROX_KERNELS_KNOB_LOOPS_INL_H_
#else
#define CALIPROX_KERNELS_KNOB_LOOPS_INL_H_
#endif

#include "kernels/knob_winograd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

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
  if (!p.nhwc) gather_nchw(p, x, g, m0, m1, col, ld);
  else gather_nhwc(p, x, g, m0, m1, col);
}

inline void gather_pixels_entry(const Plan& p, const float* x, float* out) { gather_pixels(p, x, out); }

inline void direct(const Plan& p, const float* x, float* comp, int64_t c0, int64_t c1) {
  if (!p.nhwc) direct_nchw(p, x, comp, c0, c1);
  else direct_nhwc(p, x, comp, c0, c1);
}

inline void epilogue(const Plan& p, const float* comp, int64_t comp_ld, const float* bias, const float* res, float* y,
                     int64_t c0, int64_t c1) {
#define CP_KNOB_EPILOGUE(K)                                              \
  if (!p.nhwc) epilogue_nchw<K>(p, comp, comp_ld, bias, res, y, c0, c1); \
  else epilogue_nhwc<K>(p, comp, bias, res, y, c0, c1);
  CP_KNOB_ACTIVATION_SWITCH(p.act.kind, CP_KNOB_EPILOGUE)
#undef CP_KNOB_EPILOGUE
}

inline void round_half_entry(const float* in, float* out, int64_t n) { round_half(in, out, n); }
inline void stage_entry(const Plan& p, const float* in, float* out, int64_t begin, int64_t end) {
  stage(p, in, out, begin, end);
}

// Defined in knob_tiles.cc (Ops::tiled, Ops::winograd, the bf16 tiles).
#if CP_KNOB_VECTOR
void tiled_entry(const Plan& p, const float* image, float* comp, const float* bias, const float* res, float* y,
                 int64_t m0, int64_t m1);
void winograd_entry(const Plan& p, const float* staged, float* v, float* m, float* comp);
#endif
#if HWY_TARGET == HWY_AVX3
const Bf16Ops& bf16_table();
#endif

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // CALIPROX_KERNELS_KNOB_LOOPS_INL_H_
