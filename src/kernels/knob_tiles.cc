// The bf16 knob's tiles (compact::Plan::bf16): the compact kernel's loops
// compiled once more, for AVX-512 with AVX512-BF16, where only the bf16
// instantiations of the tiles and the conversion to bfloat16 are used.
// compact::bf16_ops() hands them out where the CPU probe reports the extension. As in
// knob_conv_compact_avx512.cc, every header is included before the target
// pragma.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "backends/onednn/knob_conv_compact.h"
#include "backends/onednn/knob_conv_simd.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c,avx512bf16")
#define CP_KNOB_ISA avx512bf16
#define CP_KNOB_ISA_AVX512 1
#include "backends/onednn/knob_conv_compact_loops.h"

namespace caliprox::onednn::compact::avx512bf16 {
namespace {

void to_bf16(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(in + i))));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    const __m256bh codes = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, in + i));
    _mm256_mask_storeu_epi16(out + i, m, reinterpret_cast<__m256i>(codes));
  }
}

void tiled_bf16(const Plan& p, const float* image, float* comp, const float* bias, const float* res, float* y,
                uint16_t* codes, int64_t m0, int64_t m1) {
  // Codes are written by plain tiles, which finish their values in
  // registers: only the activations with a vector form (check_compact_bf16
  // refuses codes_out for the others, whose plans never get here).
#define CP_KNOB_TILED(K)                                                                   \
  if constexpr (kVectorActivation<K>) {                                                    \
    if (p.codes_out) {                                                                     \
      tiled_impl<K, true, true>(p, image, comp, bias, res, y, codes, m0, m1);              \
      break;                                                                               \
    }                                                                                      \
  }                                                                                        \
  tiled_impl<K, true, false>(p, image, comp, bias, res, y, nullptr, m0, m1)
  CP_KNOB_ACTIVATION_SWITCH(p.act.kind, CP_KNOB_TILED)
#undef CP_KNOB_TILED
}

}  // namespace
}  // namespace caliprox::onednn::compact::avx512bf16
#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace caliprox::onednn::compact {

const Bf16Ops& avx512_bf16_ops() {
  static const Bf16Ops table{avx512bf16::to_bf16, avx512bf16::tiled_bf16};
  return table;
}

}  // namespace caliprox::onednn::compact
