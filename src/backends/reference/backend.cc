#include <algorithm>

#include "backends/reference/reference.h"

namespace caliprox {
namespace reference {
namespace {

const std::vector<KernelEntry>& kernel_table() {
  static const std::vector<KernelEntry> t = [] {
    std::vector<KernelEntry> k;
    register_tensor_kernels(k);
    register_nn_kernels(k);
    register_elementwise_unary_kernels(k);
    register_elementwise_binary_kernels(k);
    register_index_kernels(k);
    register_quant_kernels(k);
    register_rnn_kernels(k);
    register_reduce_kernels(k);
    register_linalg_kernels(k);
    register_sample_kernels(k);
    register_tfidf_kernels(k);
    register_signal_kernels(k);
    std::sort(k.begin(), k.end(), [](const KernelEntry& a, const KernelEntry& b) { return a.op_type < b.op_type; });
    return k;
  }();
  return t;
}

const KernelEntry* find_kernel(std::string_view op_type) {
  const auto& t = kernel_table();
  auto it = std::lower_bound(t.begin(), t.end(), op_type,
                             [](const KernelEntry& e, std::string_view s) { return e.op_type < s; });
  return (it != t.end() && it->op_type == op_type) ? &*it : nullptr;
}

class ReferenceBackend final : public Backend {
 public:
  std::string_view name() const override { return "reference"; }
  // The reference kernels read and write floats only (no int8 / bf16
  // activations between layers: the oracle rounds inside each layer).
  bool supports(const NodeContext& ctx) const override {
    if (ctx.output_codes) return false;
    if (approximated(ctx)) return supports_knob_conv(ctx);
    const KernelEntry* e = find_kernel(ctx.node.op_type);
    return e != nullptr && e->supports(ctx);
  }
  Result<std::unique_ptr<Kernel>> prepare(const NodeContext& ctx) override {
    if (ctx.output_codes)
      return unsupported("{}: the reference backend writes no low-precision activations", ctx.node.describe());
    if (approximated(ctx)) {
      if (!supports_knob_conv(ctx))
        return unsupported("{}: knob '{}' does not apply to this node", ctx.node.describe(), ctx.knob->name);
      return make_knob_conv(ctx);
    }
    const KernelEntry* e = find_kernel(ctx.node.op_type);
    if (e == nullptr) return unsupported("{}: the reference backend has no kernel for {}", ctx.node.describe(), ctx.node.op_type);
    if (!e->supports(ctx)) {
      std::vector<std::string_view> types;
      for (const auto& t : ctx.input_types) types.push_back(dtype_name(t.dtype));
      return unsupported("{}: input types ({}) or attributes are not supported", ctx.node.describe(),
                         fmt::join(types, ", "));
    }
    return e->make(ctx);
  }

  // The oracle computes every knob in plain loops: perforation and sampling
  // skip their work, the precision knobs compute in fp32 on rounded or
  // quantised operands (int8 sums int32 codes).
  KnobSupport knob_support(KnobKind kind) const override {
    switch (kind) {
      case KnobKind::exact:
      case KnobKind::perforation:
      case KnobKind::sampling: return {KnobRun::native, "plain reference loops"};
      case KnobKind::int8: return {KnobRun::native, "plain reference loops on int32 sums of codes"};
      case KnobKind::prune:
      case KnobKind::lowrank: return {KnobRun::native, "graph rewrite: plain reference loops on the reshaped layers"};
      case KnobKind::fp16:
      case KnobKind::bf16: break;
    }
    return {KnobRun::emulated, "plain reference loops in fp32 on rounded operands"};
  }

 private:
  static bool approximated(const NodeContext& ctx) { return ctx.knob != nullptr && ctx.knob->kind != KnobKind::exact; }
};

}  // namespace
}  // namespace reference

std::unique_ptr<Backend> make_reference_backend(const BackendOptions&) {
  return std::make_unique<reference::ReferenceBackend>();
}

}  // namespace caliprox
