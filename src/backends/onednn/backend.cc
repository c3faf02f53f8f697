// The oneDNN backend: a table of op families (one file each), every entry
// deciding exactly which nodes it maps onto oneDNN; everything else falls
// back to the reference backend in the executor.
#include <algorithm>

#include "backends/onednn/common.h"
#include "backends/onednn/knob_conv.h"
#include "util/cpu.h"
#include "util/log.h"

namespace caliprox {
namespace onednn {
namespace {

const std::vector<OpEntry>& op_table() {
  static const std::vector<OpEntry> t = [] {
    std::vector<OpEntry> ops;
    register_conv_ops(ops);
    register_pool_ops(ops);
    register_matmul_ops(ops);
    register_eltwise_ops(ops);
    register_binary_ops(ops);
    register_norm_ops(ops);
    register_concat_ops(ops);
    register_resize_ops(ops);
    std::sort(ops.begin(), ops.end(), [](const OpEntry& a, const OpEntry& b) { return a.op_type < b.op_type; });
    return ops;
  }();
  return t;
}

const OpEntry* find_entry(const Node& node) {
  if (!node.domain.empty() && node.domain != "ai.onnx") return nullptr;
  const auto& t = op_table();
  auto it = std::lower_bound(t.begin(), t.end(), std::string_view(node.op_type),
                             [](const OpEntry& e, std::string_view s) { return e.op_type < s; });
  return (it != t.end() && it->op_type == node.op_type) ? &*it : nullptr;
}

dnnl::cpu_isa onednn_isa(cpu::Level level) {
  using L = cpu::Level;
  switch (level) {
    case L::baseline: return dnnl::cpu_isa::sse41;
    case L::avx2: return dnnl::cpu_isa::avx2;
    case L::avx2_vnni: return dnnl::cpu_isa::avx2_vnni;
    case L::avx512: return dnnl::cpu_isa::avx512_core;
    case L::avx512_vnni: return dnnl::cpu_isa::avx512_core_vnni;
    case L::avx512_bf16:
    case L::avx512_fp16: return dnnl::cpu_isa::avx512_core_bf16;  // oneDNN 2.6 has no fp16 level
    case L::amx: return dnnl::cpu_isa::avx512_core_amx;
    case L::all: break;
  }
  return dnnl::cpu_isa::all;
}

// The project's ISA cap (CALIPROX_MAX_ISA, util/cpu.h) handed to oneDNN
// before its first primitive, so both agree on what this CPU offers. (A cap
// set through oneDNN's own variable is read by oneDNN itself.)
void apply_isa_cap() {
  static const bool applied = [] {
    const cpu::Features& f = cpu::features();
    cpu::Level level = cpu::Level::all;
    if (f.arch != cpu::Arch::x86_64 || f.cap_source != "CALIPROX_MAX_ISA" || !cpu::parse_level(f.cap, &level))
      return false;
    try {
      dnnl::set_max_cpu_isa(onednn_isa(level));
      return true;
    } catch (const dnnl::error& e) {
      log_warn("onednn: cannot cap its ISA at {} ({}); oneDNN may use more than the probe reports", f.cap,
               e.what());
      return false;
    }
  }();
  (void)applied;
}

class OnednnBackend final : public Backend {
 public:
  explicit OnednnBackend(const BackendOptions& options) : threads_(std::max(1, options.threads)) {
    apply_isa_cap();
    use_threads(threads_);
    try {
      rt_ = std::make_shared<Runtime>();
    } catch (const dnnl::error& e) {
      // No CPU engine: every node falls back to the reference backend.
      log_warn("onednn: cannot create a CPU engine ({}); the backend claims no nodes", e.what());
    }
  }

  std::string_view name() const override { return "onednn"; }

  bool supports(const NodeContext& ctx) const override {
    const OpEntry* e = find_entry(ctx.node);
    if (e == nullptr || rt_ == nullptr) return false;
    if (ctx.output_codes && !approximated(ctx)) return false;  // only int8 / bf16 knob kernels write codes
    try {
      const ScopedThreads team(context_threads(ctx, threads_));
      if (approximated(ctx)) return check_knob_conv(ctx, *rt_).ok();
      return e->check(ctx, *rt_).ok();
    } catch (const dnnl::error&) {
      return false;
    }
  }

  Result<std::unique_ptr<Kernel>> prepare(const NodeContext& ctx) override {
    const OpEntry* e = find_entry(ctx.node);
    if (e == nullptr)
      return unsupported("{}: the oneDNN backend has no kernel for {}", ctx.node.describe(), ctx.node.op_type);
    if (rt_ == nullptr) return runtime_error("{}: the oneDNN backend has no CPU engine", ctx.node.describe());
    if (ctx.output_codes && !approximated(ctx))
      return unsupported("{}: only int8 and bf16 knob kernels write low-precision activations", ctx.node.describe());
    const int threads = context_threads(ctx, threads_);
    try {
      use_threads(threads);
      if (approximated(ctx)) return make_knob_conv(ctx, rt_, threads);
      return e->make(ctx, rt_, threads);
    } catch (const dnnl::error& err) {
      return dnnl_status(ctx.node, "prepare the kernel", err);
    }
  }

  KnobSupport knob_support(KnobKind kind) const override {
    if (rt_ == nullptr) return {KnobRun::unavailable, "oneDNN has no CPU engine here"};
    return onednn_knob_support(kind);
  }

  bool supports_nhwc(const NodeContext& ctx) const override {
    const OpEntry* e = find_entry(ctx.node);
    if (e == nullptr || rt_ == nullptr) return false;
    try {
      const ScopedThreads team(context_threads(ctx, threads_));
      if (approximated(ctx)) return knob_conv_nhwc(ctx, *rt_);
      return e->nhwc != nullptr && e->nhwc(ctx, *rt_);
    } catch (const dnnl::error&) {
      return false;
    }
  }

 private:
  static bool approximated(const NodeContext& ctx) { return ctx.knob != nullptr && ctx.knob->kind != KnobKind::exact; }

  int threads_;
  std::shared_ptr<Runtime> rt_;
};

}  // namespace
}  // namespace onednn

std::unique_ptr<Backend> make_onednn_backend(const BackendOptions& options) {
  return std::make_unique<onednn::OnednnBackend>(options);
}

}  // namespace caliprox
