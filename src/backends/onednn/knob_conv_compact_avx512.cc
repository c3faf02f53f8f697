// The compact kernel's loops compiled for AVX-512 (F, VL, BW, DQ) with F16C
// conversions; compact::ops_for() hands them out for KernelIsa::avx512.
// Every header is included before the target pragma, so only the loops in
// knob_conv_compact_loops.h are compiled for the wider ISA.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/onednn/knob_conv_compact.h"
#include "backends/onednn/knob_conv_simd.h"

#pragma GCC push_options
// GCC 12 flags the undefined-value operand inside its own _mm512_cvtps_ph /
// _mm512_cvtph_ps wrappers as maybe-uninitialized (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")
#define CP_KNOB_ISA avx512
#define CP_KNOB_ISA_AVX512 1
#include "backends/onednn/knob_conv_compact_loops.h"
#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace caliprox::onednn::compact {

const Ops& avx512_ops() { return avx512::isa_ops(); }

}  // namespace caliprox::onednn::compact
