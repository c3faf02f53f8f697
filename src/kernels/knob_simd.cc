// Which knob kernel variants this build has and this CPU runs (the CPU
// probe decides, cap included), and what their plans size tiles by.
#include "kernels/knob_simd.h"

#include "util/cpu.h"

namespace caliprox::kernels::simd {

std::string_view kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::portable: return "portable";
    case KernelIsa::avx2: return "avx2";
    case KernelIsa::avx512: return "avx512";
    case KernelIsa::neon: break;
  }
  return "neon";
}

std::vector<KernelIsa> compiled_kernel_isas() {
#if defined(__x86_64__)
  return {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512};
#elif defined(__aarch64__)
  return {KernelIsa::portable, KernelIsa::neon};
#else
  return {KernelIsa::portable};
#endif
}

bool kernel_isa_runs(KernelIsa isa) {
  const cpu::Features& f = cpu::features();
  bool compiled = false;
  for (KernelIsa c : compiled_kernel_isas()) compiled = compiled || c == isa;
  if (!compiled) return false;
  switch (isa) {
    case KernelIsa::portable: return true;
    case KernelIsa::avx2: return f.arch == cpu::Arch::x86_64 && f.avx2_tier();
    case KernelIsa::avx512: return f.arch == cpu::Arch::x86_64 && f.avx512_tier();
    case KernelIsa::neon: return f.arch == cpu::Arch::aarch64 && f.neon;
  }
  return false;
}

KernelIsa best_kernel_isa() {
  static const KernelIsa best = [] {
    KernelIsa b = KernelIsa::portable;
    for (KernelIsa isa : compiled_kernel_isas())
      if (kernel_isa_runs(isa)) b = isa;
    return b;
  }();
  return best;
}

int kernel_lanes(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::portable: return 1;
    case KernelIsa::avx2: return 8;
    case KernelIsa::avx512: return 16;
    case KernelIsa::neon: break;
  }
  return 4;
}

int vector_registers(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::portable: return 0;
    case KernelIsa::avx2: return 16;
    case KernelIsa::avx512:
    case KernelIsa::neon: break;
  }
  return 32;
}

bool has_tiles(KernelIsa isa) { return isa != KernelIsa::portable; }

bool bf16_tiles_run() { return kernel_isa_runs(KernelIsa::avx512) && cpu::features().avx512_bf16; }

}  // namespace caliprox::kernels::simd
