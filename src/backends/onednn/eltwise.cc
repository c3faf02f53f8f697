// Standalone activations on oneDNN's eltwise_forward, over the tensor viewed
// as one flat vector (the op is elementwise, so any shape runs as 1-D and
// oneDNN's fastest plain kernel applies). HardSigmoid has no 2.6 algorithm:
// it runs as linear then an in-place clip to [0, 1].
// Being flat, the kernel is the same for channels-last tensors; there is no
// NHWC claim (OpEntry::nhwc) because the executor already runs these ops in
// their input's layout (backends/layout.h, layout_transparent), while a claim
// would force NHWC, and a conversion, onto NCHW inputs.
#include <cmath>
#include <string>

#include "backends/onednn/common.h"

namespace caliprox::onednn {
namespace {

using dnnl::algorithm;

// The eltwise primitives (in order) that compute the node exactly.
Result<std::vector<EltwiseOp>> eltwise_steps(const NodeContext& ctx) {
  const Node& node = ctx.node;
  const std::string& op = node.op_type;
  if (op == "Sqrt") return std::vector<EltwiseOp>{{algorithm::eltwise_sqrt}};
  if (op == "LeakyRelu") return activation_ops(op, node.attr_float("alpha", 0.01f), 0.f);
  if (op == "HardSigmoid") return activation_ops(op, node.attr_float("alpha", 0.2f), node.attr_float("beta", 0.5f));
  if (op == "Clip") {
    float lo = -INFINITY, hi = INFINITY;
    if (node.has("min") || node.has("max")) {  // opset < 11: attributes
      lo = node.attr_float("min", lo);
      hi = node.attr_float("max", hi);
    }
    // From opset 11 the bounds are inputs; the primitive bakes them in, so
    // they must be constants.
    for (size_t i = 1; i < 3; ++i) {
      if (!has_input(ctx, i)) continue;
      const Tensor* c = i < ctx.constants.size() ? ctx.constants[i] : nullptr;
      if (c == nullptr || c->numel() != 1 || c->dtype() != DType::f32)
        return unsupported("{}: Clip bounds must be constant float32 scalars", node.describe());
      (i == 1 ? lo : hi) = c->data<float>()[0];
    }
    return activation_ops(op, lo, hi);
  }
  return activation_ops(op, 0.f, 0.f);
}

struct EltwiseSetup {
  std::vector<EltwiseOp> steps;
  memory::desc md;
};

Result<EltwiseSetup> eltwise_setup(const NodeContext& ctx) {
  if (!all_f32(ctx) || !has_input(ctx, 0) || ctx.output_types.empty())
    return unsupported("{}: the oneDNN backend runs float32 activations only", ctx.node.describe());
  EltwiseSetup s;
  CP_ASSIGN_OR_RETURN(s.steps, eltwise_steps(ctx));
  const int64_t n = shape_numel(ctx.input_types[0].shape);
  if (n < kMinElementwiseElements)
    return unsupported("{}: {} elements are faster on the reference backend", ctx.node.describe(), n);
  s.md = plain_desc(memory::dims{n});
  return s;
}

std::vector<dnnl::eltwise_forward::primitive_desc> eltwise_pds(const EltwiseSetup& s, const Runtime& rt) {
  std::vector<dnnl::eltwise_forward::primitive_desc> pds;
  for (const EltwiseOp& step : s.steps) {
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, step.alg, s.md, step.alpha, step.beta);
    pds.emplace_back(d, base_attr(), rt.engine);
  }
  return pds;
}

class EltwiseKernel final : public OnednnKernel {
 public:
  EltwiseKernel(std::shared_ptr<const Runtime> rt, int threads, const EltwiseSetup& s,
                const std::vector<dnnl::eltwise_forward::primitive_desc>& pds)
      : OnednnKernel(std::move(rt), threads) {
    src_ = user_memory(s.md, this->rt());
    dst_ = user_memory(s.md, this->rt());
    for (size_t i = 0; i < pds.size(); ++i) {
      // The first step reads the input; later ones work in place on dst.
      steps_.emplace_back(dnnl::eltwise_forward(pds[i]), std::vector<std::pair<int, memory>>{
                                                             {DNNL_ARG_SRC, i == 0 ? src_ : dst_},
                                                             {DNNL_ARG_DST, dst_},
                                                             {DNNL_ARG_SCRATCHPAD, scratchpad_for(pds[i], this->rt())}});
    }
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    bind(src_, inputs[0]);
    bind(dst_, outputs[0]);
    for (const BoundPrimitive& step : steps_) CP_TRY(step.execute(stream()));
    return {};
  }

 private:
  memory src_, dst_;
  std::vector<BoundPrimitive> steps_;
};

Status check_eltwise(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(EltwiseSetup s, eltwise_setup(ctx));
  try {
    for (const auto& pd : eltwise_pds(s, rt)) CP_TRY(require_optimized(ctx.node, pd, "eltwise"));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create an eltwise", e);
  }
  return {};
}

Result<std::unique_ptr<Kernel>> make_eltwise(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  CP_ASSIGN_OR_RETURN(EltwiseSetup s, eltwise_setup(ctx));
  const int team = team_for_elements(threads, shape_numel(ctx.input_types[0].shape));
  use_threads(team);
  try {
    auto pds = eltwise_pds(s, *rt);
    for (const auto& pd : pds) CP_TRY(require_optimized(ctx.node, pd, "eltwise"));
    return std::unique_ptr<Kernel>(std::make_unique<EltwiseKernel>(std::move(rt), team, s, pds));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create an eltwise", e);
  }
}

}  // namespace

void register_eltwise_ops(std::vector<OpEntry>& table) {
  for (const char* op : {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Sqrt"})
    table.push_back({op, check_eltwise, make_eltwise});
}

}  // namespace caliprox::onednn
