// The CPU probe (util/cpu.h) against an independent oracle (the compiler's
// own cpuid reading), its caps, and what each backend claims about the
// knobs against what the probe says it should claim.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "backends/backend.h"
#include "cpu_needs.h"
#include "util/cpu.h"

#ifdef CALIPROX_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include "backends/onednn/knob_conv.h"
#endif

using namespace caliprox;

TEST_CASE("cpu: the probe agrees with the compiler's cpuid reading" *
          CP_NEEDS(cpu::probe_hardware().arch == cpu::Arch::x86_64, "the oracle reads x86 cpuid; this is not x86-64")) {
#if defined(__x86_64__)
  const cpu::Features hw = cpu::probe_hardware();
  __builtin_cpu_init();
  CHECK(hw.avx2 == static_cast<bool>(__builtin_cpu_supports("avx2")));
  CHECK(hw.fma == static_cast<bool>(__builtin_cpu_supports("fma")));
  CHECK(hw.bmi2 == (__builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")));
  CHECK(hw.avx512f == static_cast<bool>(__builtin_cpu_supports("avx512f")));
  CHECK(hw.avx512bw == static_cast<bool>(__builtin_cpu_supports("avx512bw")));
  CHECK(hw.avx512vl == static_cast<bool>(__builtin_cpu_supports("avx512vl")));
  CHECK(hw.avx512_vnni == static_cast<bool>(__builtin_cpu_supports("avx512vnni")));
  CHECK(hw.avx512_bf16 == static_cast<bool>(__builtin_cpu_supports("avx512bf16")));
  CHECK(hw.sse41 == static_cast<bool>(__builtin_cpu_supports("sse4.1")));
  MESSAGE("hardware: " << cpu::describe(hw));
#endif
}

TEST_CASE("cpu: caps lower what the probe reports, by our names and oneDNN's") {
  cpu::Level level = cpu::Level::all;
  CHECK(cpu::parse_level("avx2", &level));
  CHECK(level == cpu::Level::avx2);
  CHECK(cpu::parse_level("AVX512_CORE_VNNI", &level));
  CHECK(level == cpu::Level::avx512_vnni);
  CHECK(cpu::parse_level("sse41", &level));
  CHECK(level == cpu::Level::baseline);
  CHECK_FALSE(cpu::parse_level("AVX2 ", &level));
  CHECK_FALSE(cpu::parse_level("avx1024", &level));
  CHECK(cpu::onednn_isa_name(cpu::Level::avx512) == "AVX512_CORE");

  cpu::Features all;
  all.arch = cpu::Arch::x86_64;
  all.sse41 = all.avx2 = all.fma = all.f16c = all.bmi2 = all.avx_vnni = true;
  all.avx512f = all.avx512bw = all.avx512dq = all.avx512vl = all.avx512_vnni = all.avx512_bf16 = true;
  const cpu::Features avx2 = cpu::capped(all, cpu::Level::avx2);
  CHECK(avx2.avx2_tier());
  CHECK_FALSE(avx2.avx512_tier());
  CHECK_FALSE(avx2.avx512_vnni);
  CHECK_FALSE(avx2.avx_vnni);
  const cpu::Features vnni = cpu::capped(all, cpu::Level::avx512_vnni);
  CHECK(vnni.avx512_tier());
  CHECK(vnni.avx512_vnni);
  CHECK_FALSE(vnni.avx512_bf16);
  CHECK_FALSE(cpu::capped(all, cpu::Level::baseline).avx2);
  const std::string d = cpu::describe(avx2);
  CHECK(d.find("x86-64 avx2 fma f16c") == 0);
  CHECK(d.find("no avx_vnni, avx512f/bw/dq/vl, avx512_vnni, avx512_bf16") != std::string::npos);
  // A cap never adds what the hardware lacks.
  cpu::Features none;
  none.arch = cpu::Arch::x86_64;
  CHECK_FALSE(cpu::capped(none, cpu::Level::all).avx2);
}

TEST_CASE("cpu: the process-wide features are the hardware's under the environment's cap") {
  const cpu::Features& f = cpu::features();
  CHECK(f.cap_error.empty());
  const cpu::Features hw = cpu::probe_hardware();
  cpu::Level level = cpu::Level::all;
  if (!f.cap.empty()) REQUIRE(cpu::parse_level(f.cap, &level));
  const cpu::Features want = cpu::capped(hw, level);
  CHECK(f.avx2 == want.avx2);
  CHECK(f.avx512f == want.avx512f);
  CHECK(f.avx512_vnni == want.avx512_vnni);
  CHECK(f.avx512_bf16 == want.avx512_bf16);
  CHECK(f.neon == want.neon);
  MESSAGE("in force: " << cpu::describe(f));
}

#ifdef CALIPROX_HAVE_ONEDNN
TEST_CASE("cpu: oneDNN runs under the same cap as the project's kernels" *
          CP_NEEDS(cpu::features().arch == cpu::Arch::x86_64, "oneDNN's ISA levels are x86 ones")) {
  // Creating a backend hands the cap to oneDNN before its first primitive.
  auto backend = create_backend("onednn", {});
  REQUIRE(backend.ok());
  const cpu::Features& f = cpu::features();
  const auto effective = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  MESSAGE("oneDNN's effective ISA: 0x" << std::hex << effective);
  // oneDNN's ISA values are bit sets, each level a superset of the ones below.
  const auto has = [&](dnnl::cpu_isa isa) {
    const auto bits = static_cast<unsigned>(isa);
    return (effective & bits) == bits;
  };
  CHECK(has(dnnl::cpu_isa::avx2) == f.avx2_tier());
  CHECK(has(dnnl::cpu_isa::avx512_core) == f.avx512_tier());
  CHECK(has(dnnl::cpu_isa::avx512_core_vnni) == (f.avx512_tier() && f.avx512_vnni));
  CHECK(has(dnnl::cpu_isa::avx512_core_bf16) == (f.avx512_tier() && f.avx512_vnni && f.avx512_bf16));
}
#endif

TEST_CASE("cpu: every backend's knob claims follow from the probe") {
  const cpu::Features& f = cpu::features();
  auto ref = create_backend("reference", {});
  REQUIRE(ref.ok());
  for (KnobKind kind : {KnobKind::perforation, KnobKind::sampling, KnobKind::int8})
    CHECK((*ref)->knob_support(kind).run == KnobRun::native);
  CHECK((*ref)->knob_support(KnobKind::bf16).run == KnobRun::emulated);
#ifdef CALIPROX_HAVE_ONEDNN
  auto dnn = create_backend("onednn", {});
  REQUIRE(dnn.ok());
  const Backend& b = **dnn;
  CHECK(b.knob_support(KnobKind::perforation).run == KnobRun::native);
  CHECK(b.knob_support(KnobKind::sampling).run == KnobRun::native);
  CHECK(b.knob_support(KnobKind::fp16).run == KnobRun::emulated);
  CHECK(b.knob_support(KnobKind::bf16).run == (f.avx512_bf16 ? KnobRun::native : KnobRun::emulated));
  CHECK(b.knob_support(KnobKind::int8).run == (f.avx512_vnni ? KnobRun::native : KnobRun::emulated));
  // The compact loops' widest variant follows the probe too.
  const onednn::simd::KernelIsa best = onednn::simd::best_kernel_isa();
  if (f.arch == cpu::Arch::x86_64 && f.avx512_tier()) CHECK(best == onednn::simd::KernelIsa::avx512);
  else if (f.arch == cpu::Arch::x86_64 && f.avx2_tier()) CHECK(best == onednn::simd::KernelIsa::avx2);
  else if (f.arch == cpu::Arch::aarch64) CHECK(best == onednn::simd::KernelIsa::neon);
  else CHECK(best == onednn::simd::KernelIsa::portable);
#endif
}

namespace {
bool sysfs_caches() { return std::ifstream("/sys/devices/system/cpu/cpu0/cache/index2/level").good(); }
}  // namespace

TEST_CASE("cpu: one core's L2 cache size, as sysfs says" *
          CP_NEEDS(sysfs_caches(), "/sys/devices/system/cpu/cpu0/cache/index2 is not readable here")) {
  const int64_t l2 = cpu::probe_hardware().l2_bytes;
  // Every L2 of the last twenty years lies between 64 KiB and 64 MiB.
  CHECK(l2 >= 64 * 1024);
  CHECK(l2 <= 64 * 1024 * 1024);
  CHECK(cpu::features().l2_bytes == l2);  // a cap lowers the ISA, not the caches
}
