#pragma once
// The one CPU-feature probe (DESIGN "CPUs and devices"): what this CPU can
// execute, read once from cpuid / xgetbv on x86-64 (the OS must save the
// vector registers: XCR0, as ONNX Runtime's MLAS checks) and from the
// kernel's hwcaps on aarch64. Everything that decides what may run -- the
// knob kernels' variants, oneDNN's ISA cap, knob availability, which test
// cases can run -- asks this, never the code under test.
//
// A cap lowers what the probe reports, to run a wider machine as a
// narrower one (tests of the AVX2 tier on an AVX-512 machine):
// CALIPROX_MAX_ISA, or else oneDNN's own ONEDNN_MAX_CPU_ISA /
// DNNL_MAX_CPU_ISA, so that the project's kernels and oneDNN's agree.
// The oneDNN backend hands the same cap to oneDNN.
#include <string>
#include <string_view>

namespace caliprox::cpu {

enum class Arch { x86_64, aarch64, other };

// x86 levels a cap may name, in increasing order; each includes the ones
// below it. (oneDNN's names: SSE41, AVX2, AVX2_VNNI, AVX512_CORE,
// AVX512_CORE_VNNI, AVX512_CORE_BF16, AVX512_CORE_FP16, AVX512_CORE_AMX.)
enum class Level { baseline, avx2, avx2_vnni, avx512, avx512_vnni, avx512_bf16, avx512_fp16, amx, all };

struct Features {
  Arch arch = Arch::other;
  std::string model;  // the model name /proc/cpuinfo gives ("" when unreadable)

  // x86-64: each true only when the OS also saves the registers it uses.
  bool sse41 = false, avx2 = false, fma = false, f16c = false;
  bool bmi2 = false;  // BMI1 and BMI2 (Highway's AVX2 target assumes both)
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx_vnni = false, avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false;
  bool amx = false;  // AMX tile, int8 and bf16, with the OS's permission for tile data

  // aarch64 (hwcaps): Advanced SIMD, its dot product, half-precision
  // arithmetic, bfloat16 and int8 matrix multiply, SVE.
  bool neon = false, dotprod = false, fp16 = false, bf16 = false, i8mm = false, sve = false;

  // The level-2 cache one core has (bytes; sysfs, cpu0), 0 when unreadable.
  int64_t l2_bytes = 0;

  // The cap in force ("" none), the variable it came from, and a
  // description of an unusable value (the tools refuse to run then).
  std::string cap, cap_source, cap_error;

  // The project's x86 vector tiers.
  bool avx2_tier() const { return avx2 && fma && f16c && bmi2; }
  bool avx512_tier() const { return avx2_tier() && avx512f && avx512bw && avx512dq && avx512vl; }
};

// What the hardware offers, without any cap.
Features probe_hardware();
// `f` lowered to `level` (x86 only; other architectures are unchanged).
Features capped(Features f, Level level);
// A cap's level from its name: ours (baseline, avx2, avx2_vnni, avx512,
// avx512_vnni, avx512_bf16, avx512_fp16, amx, all) or oneDNN's (SSE41, AVX,
// AVX2, AVX2_VNNI, AVX512_CORE, ...), case-insensitive. False when unknown.
bool parse_level(std::string_view name, Level* level);
std::string_view level_name(Level level);
// oneDNN's name of a level, for its max-ISA setting.
std::string_view onednn_isa_name(Level level);

// The probe with the environment's cap applied, computed once per process.
const Features& features();

// One line for people: "x86-64 avx2 fma f16c avx512f ...; no avx512_fp16,
// amx" (plus the cap when one is in force).
std::string describe(const Features& f);

}  // namespace caliprox::cpu
