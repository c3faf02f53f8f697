// Concat on oneDNN's concat primitive: float32 operands of one rank, in
// either layout. Channels-last operands (rank-4 activations between NHWC
// convolutions) only change the memory descriptors, so a Concat inside an
// NHWC chain needs no conversions. Constant inputs (BlazeFace's zero channel
// padding, a ConstantOfShape folded at planning) are copied into the kernel
// once, in the layout of the activations, so every source has one format
// and oneDNN takes its plain copy loop instead of reordering.
#include <cstring>

#include "backends/layout.h"
#include "backends/onednn/common.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::onednn {
namespace {

struct ConcatSetup {
  int axis = 0;
  std::vector<memory::desc> srcs;
  memory::desc dst;
  bool nhwc = false;
};

Result<ConcatSetup> concat_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  if (!all_f32(ctx) || ctx.input_types.empty() || ctx.output_types.empty())
    return unsupported("{}: the oneDNN backend concatenates float32 tensors only", node.describe());
  const Shape& out = ctx.output_types[0].shape;
  if (shape_numel(out) < kMinElementwiseElements)
    return unsupported("{}: {} elements are faster on the reference backend", node.describe(), shape_numel(out));
  if (out.empty() || out.size() > 12)
    return unsupported("{}: oneDNN concatenates tensors of rank 1 to 12, found {}", node.describe(), out.size());
  CP_ASSIGN_OR_RETURN(int64_t axis, tensor_ops::axis_attr(node, 0, static_cast<int64_t>(out.size())));
  ConcatSetup s;
  s.axis = static_cast<int>(axis);
  s.nhwc = output_is_nhwc(ctx, 0);
  for (size_t i = 0; i < ctx.input_types.size(); ++i) {
    const TensorType& t = ctx.input_types[i];
    if (t.dtype == DType::undefined) return unsupported("{}: input #{} is omitted", node.describe(), i);
    // An empty input adds nothing; oneDNN rejects zero-sized sources.
    if (shape_numel(t.shape) == 0) return unsupported("{}: input #{} is empty", node.describe(), i);
    // Constants are copied in the output's layout (ConcatKernel).
    s.srcs.push_back(host_desc(t.shape, s.nhwc));
  }
  s.dst = host_desc(out, s.nhwc);
  return s;
}

dnnl::concat::primitive_desc concat_pd(const ConcatSetup& s, const Runtime& rt) {
  return dnnl::concat::primitive_desc(s.dst, s.axis, s.srcs, rt.engine, base_attr());
}

// A constant input in the layout the kernel reads it in.
Tensor constant_in_layout(const Tensor& c, bool nhwc) {
  Tensor copy(DType::f32, c.shape());
  if (!nhwc || c.rank() != 4) {
    std::memcpy(copy.raw(), c.raw(), c.nbytes());
    return copy;
  }
  const Tensor* in = &c;
  Tensor* out = &copy;
  // Cannot fail: one float32 rank-4 tensor into another of its shape.
  (void)make_layout_kernel(Layout::nchw, Layout::nhwc)->run({&in, 1}, {&out, 1});
  return copy;
}

class ConcatKernel final : public OnednnKernel {
 public:
  ConcatKernel(std::shared_ptr<const Runtime> rt, int threads, const NodeContext& ctx, const ConcatSetup& s,
               const dnnl::concat::primitive_desc& pd)
      : OnednnKernel(std::move(rt), threads), constants_(s.srcs.size()) {
    const Runtime& r = this->rt();
    std::vector<std::pair<int, memory>> args;
    for (size_t i = 0; i < s.srcs.size(); ++i) {
      srcs_.push_back(user_memory(s.srcs[i], r));
      if (i < ctx.constants.size() && ctx.constants[i] != nullptr) {
        constants_[i] = constant_in_layout(*ctx.constants[i], s.nhwc);
        bind(srcs_[i], &constants_[i]);
      }
      args.emplace_back(DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), srcs_[i]);
    }
    dst_ = user_memory(s.dst, r);
    args.emplace_back(DNNL_ARG_DST, dst_);
    args.emplace_back(DNNL_ARG_SCRATCHPAD, scratchpad_for(pd, r));
    concat_ = BoundPrimitive(dnnl::concat(pd), std::move(args));
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    for (size_t i = 0; i < srcs_.size(); ++i)
      if (constants_[i].dtype() == DType::undefined) bind(srcs_[i], inputs[i]);
    bind(dst_, outputs[0]);
    return concat_.execute(stream());
  }

 private:
  std::vector<Tensor> constants_;  // undefined where the input is fed at run time
  std::vector<memory> srcs_;
  memory dst_;
  BoundPrimitive concat_;
};

Status check_concat(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(ConcatSetup s, concat_setup(ctx));
  try {
    CP_TRY(require_optimized(ctx.node, concat_pd(s, rt), "concat"));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a concat", e);
  }
  return {};
}

Result<std::unique_ptr<Kernel>> make_concat(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  CP_ASSIGN_OR_RETURN(ConcatSetup s, concat_setup(ctx));
  const int team = team_for_elements(threads, shape_numel(ctx.output_types[0].shape));
  use_threads(team);
  try {
    auto pd = concat_pd(s, *rt);
    CP_TRY(require_optimized(ctx.node, pd, "concat"));
    return std::unique_ptr<Kernel>(std::make_unique<ConcatKernel>(std::move(rt), team, ctx, s, pd));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a concat", e);
  }
}

// Either layout computes the same; the executor keeps the one its
// activation inputs arrive in (backends/layout.h, layout_following).
bool concat_nhwc(const NodeContext& ctx, const Runtime& rt) {
  if (ctx.output_types.empty() || ctx.output_types[0].shape.size() != 4) return false;
  return check_concat(nhwc_context(ctx), rt).ok();
}

}  // namespace

void register_concat_ops(std::vector<OpEntry>& table) {
  table.push_back({"Concat", check_concat, make_concat, concat_nhwc});
}

}  // namespace caliprox::onednn
