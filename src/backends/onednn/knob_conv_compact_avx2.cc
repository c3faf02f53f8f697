// The compact kernel's loops compiled for AVX2 with FMA and F16C
// (KernelIsa::avx2): the portable loops (gather, direct convolution,
// epilogue), vectorised by the compiler at 256 bits; there is no tiled
// kernel in this copy. As in knob_conv_compact_avx512.cc, every header is
// included before the target pragma, so only the loops take the wider ISA.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/onednn/knob_conv_compact.h"
#include "backends/onednn/knob_conv_simd.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define CP_KNOB_ISA avx2
#define CP_KNOB_ISA_AVX512 0
#define CP_KNOB_ISA_F16C 1
#include "backends/onednn/knob_conv_compact_loops.h"
#pragma GCC pop_options

namespace caliprox::onednn::compact {

const Ops& avx2_ops() { return avx2::isa_ops(); }

}  // namespace caliprox::onednn::compact
