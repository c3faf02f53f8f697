#pragma once
// The compact kernel's plan builder (knob_conv_compact_plan.cc), shared by
// the kernel and its selection (knob_conv_compact.cc).
#include <cstdint>

#include "backends/onednn/knob_conv.h"
#include "kernels/knob_plan.h"

namespace caliprox::onednn {

// A float rounded to IEEE half and back (the half knobs' weights and bias).
inline float round_half_value(float v) { return half_to_float(float_to_half(v)); }

// Whether the knob can run as the pointwise path: a 1x1 layer without
// padding, one group, NHWC, fp32, whose fused activation oneDNN can express
// when the output is written by the convolution (no perforation).
bool pointwise_applies(const KnobConvSetup& s);
// Whether perforation of this layer can run as Winograd rows (columns).
bool winograd_applies(const KnobConvSetup& s, int team);
// The plan for one kernel candidate: tile shape (tile_n channels by tile_m
// positions, 0: as many as the registers hold), path, and for bf16 whether
// the kernel writes codes.
compact::Plan build_plan(const KnobConvSetup& s, int team, int64_t tile_n, int64_t tile_m, CompactPath path,
                         bool codes_out = false);

}  // namespace caliprox::onednn
