// The knob kernels' per-image loops, compiled once per Highway target
// (knob_targets.h): staging, gathers, direct loops and epilogue; the tiles
// and Winograd are in knob_tiles.cc. ops_for() hands out each variant's
// table.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/knob_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/knob_loops.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/knob_loops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

const Ops& isa_ops() {
#if CP_KNOB_VECTOR
  static const Ops table{round_half_entry, stage_entry,         gather, tiled_entry,
                         winograd_entry,   gather_pixels_entry, direct, epilogue};
#else
  static const Ops table{round_half_entry, stage_entry,         gather, nullptr,
                         nullptr,          gather_pixels_entry, direct, epilogue};
#endif
  return table;
}

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace caliprox::kernels::compact {

const Ops* ops_for(simd::KernelIsa isa) {
  switch (isa) {
    case simd::KernelIsa::portable: return &N_SCALAR::isa_ops();
#if HWY_TARGETS & HWY_AVX2
    case simd::KernelIsa::avx2: return &N_AVX2::isa_ops();
#endif
#if HWY_TARGETS & HWY_AVX3
    case simd::KernelIsa::avx512: return &N_AVX3::isa_ops();
#endif
#if HWY_TARGETS & HWY_NEON
    case simd::KernelIsa::neon: return &N_NEON::isa_ops();
#endif
    default: break;
  }
  return nullptr;
}

const Bf16Ops* bf16_ops(simd::KernelIsa isa) {
#if HWY_TARGETS & HWY_AVX3
  if (isa == simd::KernelIsa::avx512 && simd::kernel_isa_runs(isa) && simd::bf16_tiles_run())
    return &N_AVX3::bf16_table();
#endif
  (void)isa;
  return nullptr;
}

}  // namespace caliprox::kernels::compact
#endif  // HWY_ONCE
