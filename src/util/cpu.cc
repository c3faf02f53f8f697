#include "util/cpu.h"

#include <strings.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace caliprox::cpu {

namespace {

struct LevelName {
  Level level;
  std::string_view ours, onednn;
};
constexpr std::array<LevelName, 9> kLevels{{
    {Level::baseline, "baseline", "SSE41"},
    {Level::avx2, "avx2", "AVX2"},
    {Level::avx2_vnni, "avx2_vnni", "AVX2_VNNI"},
    {Level::avx512, "avx512", "AVX512_CORE"},
    {Level::avx512_vnni, "avx512_vnni", "AVX512_CORE_VNNI"},
    {Level::avx512_bf16, "avx512_bf16", "AVX512_CORE_BF16"},
    {Level::avx512_fp16, "avx512_fp16", "AVX512_CORE_FP16"},
    {Level::amx, "amx", "AVX512_CORE_AMX"},
    {Level::all, "all", "ALL"},
}};

#if defined(__x86_64__)
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};
Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return {};
  return r;
}
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}
bool bit(unsigned v, int i) { return ((v >> i) & 1u) != 0; }

void probe_x86(Features& f) {
  f.arch = Arch::x86_64;
  const Regs l1 = cpuid(1, 0);
  f.sse41 = bit(l1.c, 19);
  const bool osxsave = bit(l1.c, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // XMM and YMM state
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;     // XTILECFG, XTILEDATA
  const unsigned max_leaf = cpuid(0, 0).a;
  const Regs l7 = max_leaf >= 7 ? cpuid(7, 0) : Regs{};
  const Regs l71 = max_leaf >= 7 && l7.a >= 1 ? cpuid(7, 1) : Regs{};
  const bool avx = os_avx && bit(l1.c, 28);
  f.fma = avx && bit(l1.c, 12);
  f.f16c = avx && bit(l1.c, 29);
  f.avx2 = avx && bit(l7.b, 5);
  f.bmi2 = bit(l7.b, 3) && bit(l7.b, 8);  // BMI1 and BMI2
  f.avx_vnni = f.avx2 && bit(l71.a, 4);
  f.avx512f = os_avx512 && bit(l7.b, 16);
  f.avx512dq = f.avx512f && bit(l7.b, 17);
  f.avx512bw = f.avx512f && bit(l7.b, 30);
  f.avx512vl = f.avx512f && bit(l7.b, 31);
  f.avx512_vnni = f.avx512f && bit(l7.c, 11);
  f.avx512_bf16 = f.avx512f && bit(l71.a, 5);
  f.avx512_fp16 = f.avx512f && bit(l7.d, 23);
  f.amx = os_amx && bit(l7.d, 24) && bit(l7.d, 25) && bit(l7.d, 22);
  // The brand string (leaves 0x80000002-4).
  if (cpuid(0x80000000u, 0).a >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    std::string s(brand);
    s.erase(s.find_last_not_of(' ') + 1);
    s.erase(0, s.find_first_not_of(' '));
    f.model = s;
  }
}
#endif

#if defined(__aarch64__)
void probe_aarch64(Features& f) {
  f.arch = Arch::aarch64;
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  // Bit positions of the Linux arm64 ABI (asm/hwcap.h).
  f.neon = (hw & (1ul << 1)) != 0;                                      // ASIMD
  f.fp16 = (hw & (1ul << 9)) != 0 && (hw & (1ul << 10)) != 0;           // FPHP, ASIMDHP
  f.dotprod = (hw & (1ul << 20)) != 0;                                  // ASIMDDP
  f.sve = (hw & (1ul << 22)) != 0;                                      // SVE
  f.i8mm = (hw2 & (1ul << 13)) != 0;                                    // I8MM
  f.bf16 = (hw2 & (1ul << 14)) != 0;                                    // BF16
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      f.model = line.substr(line.find(':') + 2);
      break;
    }
}
#endif

// The size of cpu0's level-2 data or unified cache, as Linux describes it
// in sysfs ("1024K"); 0 when there is none or it cannot be read.
int64_t probe_l2_bytes() {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = fmt::format("/sys/devices/system/cpu/cpu0/cache/index{}/", index);
    std::ifstream level(dir + "level"), type(dir + "type"), size(dir + "size");
    int lv = 0;
    std::string ty, sz;
    if (!(level >> lv) || !(type >> ty) || !(size >> sz)) continue;
    if (lv != 2 || (ty != "Unified" && ty != "Data")) continue;
    char* end = nullptr;
    const long long v = std::strtoll(sz.c_str(), &end, 10);
    if (end == sz.c_str() || v <= 0) return 0;
    const char unit = *end;
    return v * (unit == 'K' ? 1024LL : unit == 'M' ? 1024LL * 1024 : 1LL);
  }
  return 0;
}

}  // namespace

Features probe_hardware() {
  Features f;
#if defined(__x86_64__)
  probe_x86(f);
#elif defined(__aarch64__)
  probe_aarch64(f);
#endif
  f.l2_bytes = probe_l2_bytes();
  return f;
}

Features capped(Features f, Level level) {
  if (f.arch != Arch::x86_64) return f;
  if (level < Level::amx) f.amx = false;
  if (level < Level::avx512_fp16) f.avx512_fp16 = false;
  if (level < Level::avx512_bf16) f.avx512_bf16 = false;
  if (level < Level::avx512_vnni) f.avx512_vnni = false;
  if (level < Level::avx512) f.avx512f = f.avx512bw = f.avx512dq = f.avx512vl = false;
  // oneDNN's AVX2_VNNI sits between AVX2 and AVX512_CORE: a cap at AVX512_CORE
  // keeps it, one at AVX2 does not.
  if (level < Level::avx2_vnni) f.avx_vnni = false;
  if (level < Level::avx2) f.avx2 = f.fma = f.f16c = f.bmi2 = false;
  return f;
}

bool parse_level(std::string_view name, Level* level) {
  const std::string n(name);
  for (const auto& l : kLevels)
    if (strcasecmp(n.c_str(), std::string(l.ours).c_str()) == 0 ||
        strcasecmp(n.c_str(), std::string(l.onednn).c_str()) == 0) {
      *level = l.level;
      return true;
    }
  // oneDNN's names below AVX2 (SSE41, AVX) are all our baseline.
  if (strcasecmp(n.c_str(), "AVX") == 0 || strcasecmp(n.c_str(), "portable") == 0) {
    *level = Level::baseline;
    return true;
  }
  return false;
}

std::string_view level_name(Level level) {
  for (const auto& l : kLevels)
    if (l.level == level) return l.ours;
  return "?";
}

std::string_view onednn_isa_name(Level level) {
  for (const auto& l : kLevels)
    if (l.level == level) return l.onednn;
  return "ALL";
}

const Features& features() {
  static const Features f = [] {
    Features hw = probe_hardware();
    for (const char* var : {"CALIPROX_MAX_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
      const char* v = std::getenv(var);
      if (v == nullptr || *v == '\0') continue;
      Level level = Level::all;
      if (!parse_level(v, &level)) {
        std::vector<std::string_view> names;
        for (const auto& l : kLevels) names.push_back(l.ours);
        hw.cap_error = fmt::format("{}={} is not an ISA level (expected one of: {}, or oneDNN's names such as "
                                   "AVX2 or AVX512_CORE)",
                                   var, v, fmt::join(names, ", "));
        hw.cap_source = var;
        return hw;
      }
      Features c = capped(hw, level);
      c.cap = std::string(level_name(level));
      c.cap_source = var;
      return c;
    }
    return hw;
  }();
  return f;
}

std::string describe(const Features& f) {
  std::vector<std::string_view> has, lacks;
  auto add = [&](bool v, std::string_view name) { (v ? has : lacks).push_back(name); };
  std::string arch = "unknown architecture";
  if (f.arch == Arch::x86_64) {
    arch = "x86-64";
    add(f.avx2, "avx2");
    add(f.fma, "fma");
    add(f.f16c, "f16c");
    add(f.bmi2, "bmi2");
    add(f.avx_vnni, "avx_vnni");
    add(f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl, "avx512f/bw/dq/vl");
    add(f.avx512_vnni, "avx512_vnni");
    add(f.avx512_bf16, "avx512_bf16");
    add(f.avx512_fp16, "avx512_fp16");
    add(f.amx, "amx");
  } else if (f.arch == Arch::aarch64) {
    arch = "aarch64";
    add(f.neon, "neon");
    add(f.dotprod, "dotprod");
    add(f.fp16, "fp16");
    add(f.bf16, "bf16");
    add(f.i8mm, "i8mm");
    add(f.sve, "sve");
  }
  std::string s = arch;
  if (!has.empty()) s += fmt::format(" {}", fmt::join(has, " "));
  if (!lacks.empty()) s += fmt::format("; no {}", fmt::join(lacks, ", "));
  if (!f.cap.empty()) s += fmt::format(" (capped at {} by {})", f.cap, f.cap_source);
  if (!f.model.empty()) s += fmt::format(" [{}]", f.model);
  return s;
}

}  // namespace caliprox::cpu
