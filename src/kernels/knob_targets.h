#pragma once
// Which Highway targets the knob kernels are compiled for: included first
// by knob_loops.cc and knob_tiles.cc, before any Highway header.
//
// Every attainable target (HWY_COMPILE_ALL_ATTAINABLE, so that the
// scalar variant is compiled next to the vector ones and tests can run it
// on any CPU) except those no KernelIsa names: SSSE3 and SSE4 (x86 CPUs
// without AVX2 run the portable variant), AVX3_DL (the avx512 variant
// covers it), and SVE / SVE2, whose sizeless vectors cannot be held in the
// tiles' arrays of accumulators (aarch64 runs the NEON variant). AES and
// CLMUL are not used, so the x86 targets do not require them.
#define HWY_COMPILE_ALL_ATTAINABLE
#define HWY_DISABLED_TARGETS \
  (HWY_SSSE3 | HWY_SSE4 | HWY_AVX3_DL | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_EMU128)
#define HWY_DISABLE_PCLMUL_AES
