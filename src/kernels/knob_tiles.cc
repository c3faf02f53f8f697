// The knob kernels' register tiles and Winograd paths, compiled once per
// vector target (knob_targets.h; the portable variant has none), and the
// avx512 variant's bf16 tiles (vdpbf16ps, for CPUs with AVX512-BF16).
// knob_loops.cc puts them into each variant's Ops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/knob_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/knob_tiles.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/knob_loops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

#if CP_KNOB_VECTOR
void tiled_entry(const Plan& p, const float* image, float* comp, const float* bias, const float* res, float* y,
                 int64_t m0, int64_t m1) {
#define CP_KNOB_TILED(K) tiled_impl<K>(p, image, comp, bias, res, y, nullptr, m0, m1)
  CP_KNOB_ACTIVATION_SWITCH(p.act.kind, CP_KNOB_TILED)
#undef CP_KNOB_TILED
}

void winograd_entry(const Plan& p, const float* staged, float* v, float* m, float* comp) {
  if (p.wr == 2) winograd_tiles_impl<2>(p, staged, v, m, comp);
  else if (p.wr == 3) winograd_tiles_impl<3>(p, staged, v, m, comp);
  else winograd_impl(p, staged, v, m, comp);
}
#endif

#if HWY_TARGET == HWY_AVX3
namespace {

void to_bf16(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + kL <= n; i += kL)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), to_bf16_codes(hn::LoadU(DF(), in + i)));
  if (i < n) {
    const MF m = first_lanes(n - i);
    _mm256_mask_storeu_epi16(out + i, m.raw, to_bf16_codes(load(m, in + i)));
  }
}

void tiled_bf16(const Plan& p, const float* image, float* comp, const float* bias, const float* res, float* y,
                uint16_t* codes, int64_t m0, int64_t m1) {
  // Codes are written by plain tiles, which finish their values in
  // registers: only the activations with a vector form (check_compact_bf16
  // refuses codes_out for the others, whose plans never get here).
#define CP_KNOB_TILED(K)                                                      \
  if constexpr (kVectorActivation<K>) {                                       \
    if (p.codes_out) {                                                        \
      tiled_impl<K, true, true>(p, image, comp, bias, res, y, codes, m0, m1); \
      break;                                                                  \
    }                                                                         \
  }                                                                           \
  tiled_impl<K, true, false>(p, image, comp, bias, res, y, nullptr, m0, m1)
  CP_KNOB_ACTIVATION_SWITCH(p.act.kind, CP_KNOB_TILED)
#undef CP_KNOB_TILED
}

}  // namespace

const Bf16Ops& bf16_table() {
  static const Bf16Ops table{to_bf16, tiled_bf16};
  return table;
}
#endif

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
