#pragma once
// The knob kernels' variants (the project's own perforation, sampling and
// low-precision loops, src/kernels/): written once over Highway and
// compiled per target (knob_loops.cc, knob_tiles.cc), picked at run time
// from the CPU probe, and the scalar helpers every variant shares.
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ir/ops/activation.h"
#include "ir/tensor.h"

#define CP_KNOB_INLINE [[gnu::always_inline]] inline
// Full unrolling of a loop over a register tile's rows or vectors: left to
// its size limits, GCC kept a tile's accumulators on the stack once the
// tile's body grew (2x slower).
#define CP_KNOB_UNROLL _Pragma("GCC unroll 16")

namespace caliprox::kernels::simd {

// The compiled variants, narrowest first, each one Highway target:
// portable (HWY_SCALAR: scalar loops, any CPU of any architecture), avx2
// (HWY_AVX2: AVX2, FMA, F16C, BMI2), avx512 (HWY_AVX3: AVX-512 F/BW/DQ/VL,
// plus the bf16 tiles where the CPU has AVX512-BF16) and neon (HWY_NEON,
// aarch64). Which variant a kernel runs is chosen explicitly
// (KnobConvSetup::isa, by default the widest the CPU probe allows), so
// tests run every variant this CPU can execute against the reference in
// one process.
enum class KernelIsa { portable, avx2, avx512, neon };
std::string_view kernel_isa_name(KernelIsa isa);
// Copies compiled into this build for this architecture.
std::vector<KernelIsa> compiled_kernel_isas();
// Compiled, and executable on this CPU as cpu::features() reports it (cap included).
bool kernel_isa_runs(KernelIsa isa);
// The widest copy that runs here.
KernelIsa best_kernel_isa();
// What the plan sizes its register tiles by: fp32 lanes per vector and
// vector registers (1 and 0 for portable, which has no tiles).
int kernel_lanes(KernelIsa isa);
int vector_registers(KernelIsa isa);
// Whether the variant has the register-tiled kernel and the Winograd paths
// (every vector variant).
bool has_tiles(KernelIsa isa);
// The register tiles' shapes, shared by the plan and the loops that
// instantiate them: at most 4 vectors of channels (2 with 16 registers),
// and for nv vectors as many positions as leave room for the weights and
// the broadcast input (nv * rows + nv + 1 registers), at most the
// instantiated 12, 12, 8, 6 for nv 1..4.
constexpr int max_tile_vectors(int regs) { return regs >= 32 ? 4 : 2; }
constexpr int max_tile_rows(int nv, int regs) {
  const int fit = (regs - nv - 1) / nv, cap = nv <= 2 ? 12 : nv == 3 ? 8 : 6;
  return fit < cap ? fit : cap;
}
// Whether the avx512 variant's bf16 tiles run here (AVX512-BF16, as the
// probe reports it with any cap).
bool bf16_tiles_run();

using act::ActivationKind;

// One activation with its kind fixed at compile time, so the loops that
// apply it vectorise (the reference's switch per element would not, nor
// would std::min / std::max, which select by reference). Each is the
// reference's formula (ir/ops/activation.h) written with value
// comparisons: the same results, NaN handling included.
template <ActivationKind K>
CP_KNOB_INLINE float activate(float x, float alpha, float beta) {
  if constexpr (K == ActivationKind::none) return x;
  if constexpr (K == ActivationKind::relu) return x > 0.f ? x : 0.f;
  if constexpr (K == ActivationKind::leaky_relu) return x >= 0.f ? x : alpha * x;
  if constexpr (K == ActivationKind::clip) return x < alpha ? alpha : (x > beta ? beta : x);
  if constexpr (K == ActivationKind::sigmoid) return act::sigmoid(x);
  if constexpr (K == ActivationKind::hard_sigmoid || K == ActivationKind::hard_swish) {
    // max(0, min(1, a * x + b)) as std::max(0, std::min(1, v)) evaluates it.
    const float a = K == ActivationKind::hard_swish ? 1.f / 6.f : alpha;
    const float b = K == ActivationKind::hard_swish ? 0.5f : beta;
    const float v = a * x + b;
    const float lo = v < 1.f ? v : 1.f;
    const float h = 0.f < lo ? lo : 0.f;
    return K == ActivationKind::hard_swish ? x * h : h;
  }
  if constexpr (K == ActivationKind::tanh) return std::tanh(x);
  return x;
}

// Expands CALL(K) for the runtime activation kind `kind`, K a constant.
// A macro rather than a generic lambda: lambdas are separate functions that
// would not carry the AVX-512 target of the loop they sit in.
#define CP_KNOB_ACTIVATION_SWITCH(kind, CALL)                     \
  switch (kind) {                                                 \
    case ::caliprox::act::ActivationKind::none:             \
      CALL(::caliprox::act::ActivationKind::none);          \
      break;                                                      \
    case ::caliprox::act::ActivationKind::relu:             \
      CALL(::caliprox::act::ActivationKind::relu);          \
      break;                                                      \
    case ::caliprox::act::ActivationKind::leaky_relu:       \
      CALL(::caliprox::act::ActivationKind::leaky_relu);    \
      break;                                                      \
    case ::caliprox::act::ActivationKind::clip:             \
      CALL(::caliprox::act::ActivationKind::clip);          \
      break;                                                      \
    case ::caliprox::act::ActivationKind::sigmoid:          \
      CALL(::caliprox::act::ActivationKind::sigmoid);       \
      break;                                                      \
    case ::caliprox::act::ActivationKind::hard_sigmoid:     \
      CALL(::caliprox::act::ActivationKind::hard_sigmoid);  \
      break;                                                      \
    case ::caliprox::act::ActivationKind::hard_swish:       \
      CALL(::caliprox::act::ActivationKind::hard_swish);    \
      break;                                                      \
    case ::caliprox::act::ActivationKind::tanh:             \
      CALL(::caliprox::act::ActivationKind::tanh);          \
      break;                                                      \
  }

}  // namespace caliprox::kernels::simd
