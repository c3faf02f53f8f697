// Gemm and MatMul on oneDNN's matmul primitive. Transposed operands are
// strided views of the host buffers (no copy). A constant B is reordered once
// into the layout the primitive prefers. Gemm's C becomes the matmul bias when
// oneDNN accepts it there (alpha = 1), otherwise a binary-add post-op that
// runs after the alpha output scale; beta is folded into a constant C at
// prepare time.
#include <algorithm>

#include "backends/onednn/common.h"

namespace caliprox::onednn {
namespace {

using dnnl::algorithm;

// Strided 2-D (or batched) descriptor: `dims` logical, the last two axes
// possibly swapped in memory.
memory::desc strided_desc(const memory::dims& dims, bool transposed) {
  memory::desc plain = plain_desc(dims);
  if (!transposed) return plain;
  const size_t r = dims.size();
  memory::dims stored = dims;
  std::swap(stored[r - 1], stored[r - 2]);
  memory::dims strides(r, 1);
  for (size_t i = r - 1; i > 0; --i) strides[i - 1] = strides[i] * stored[i];
  std::swap(strides[r - 1], strides[r - 2]);
  return memory::desc(dims, memory::data_type::f32, strides);
}

struct MatmulSetup {
  memory::desc src, wei, dst;
  const Tensor* constant_b = nullptr;
  // Gemm C: as bias or as a binary post-op source; scaled constant copy when
  // beta != 1.
  bool has_c = false;
  memory::desc c_desc;
  const Tensor* constant_c = nullptr;
  float alpha = 1.f, beta = 1.f;
};

Result<MatmulSetup> gemm_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  MatmulSetup s;
  const Shape& a = ctx.input_types[0].shape;
  const Shape& b = ctx.input_types[1].shape;
  if (a.size() != 2 || b.size() != 2) return invalid_input("{}: A and B must be matrices", node.describe());
  const bool ta = node.attr_int("transA", 0) != 0, tb = node.attr_int("transB", 0) != 0;
  const int64_t m = ta ? a[1] : a[0], k = ta ? a[0] : a[1], n = tb ? b[0] : b[1];
  s.alpha = node.attr_float("alpha", 1.f);
  s.beta = node.attr_float("beta", 1.f);
  s.src = strided_desc({m, k}, ta);
  s.wei = strided_desc({k, n}, tb);
  s.dst = plain_desc(memory::dims{m, n});
  s.constant_b = ctx.constants.size() > 1 ? ctx.constants[1] : nullptr;
  s.has_c = has_input(ctx, 2);
  if (s.has_c) {
    const Shape& c = ctx.input_types[2].shape;
    if (c.size() > 2) return invalid_input("{}: C must have rank <= 2", node.describe());
    memory::dims cd{1, 1};
    for (size_t i = 0; i < c.size(); ++i) cd[2 - c.size() + i] = c[i];
    s.c_desc = plain_desc(cd);
    s.constant_c = ctx.constants.size() > 2 ? ctx.constants[2] : nullptr;
    if (s.beta != 1.f && s.constant_c == nullptr)
      return unsupported("{}: beta != 1 with a non-constant C", node.describe());
  }
  return s;
}

Result<MatmulSetup> matmul_setup(const NodeContext& ctx) {
  MatmulSetup s;
  Shape a = ctx.input_types[0].shape, b = ctx.input_types[1].shape;
  if (a.empty() || b.empty()) return invalid_input("{}: MatMul operands must have rank >= 1", ctx.node.describe());
  // numpy promotion of vectors, then leading 1s to equal ranks: the output
  // keeps the same elements in the same order.
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  const size_t rank = std::max(a.size(), b.size());
  a.insert(a.begin(), rank - a.size(), 1);
  b.insert(b.begin(), rank - b.size(), 1);
  Shape out(rank);
  for (size_t i = 0; i + 2 < rank; ++i) out[i] = std::max(a[i], b[i]);
  out[rank - 2] = a[rank - 2];
  out[rank - 1] = b[rank - 1];
  if (shape_numel(out) != shape_numel(ctx.output_types[0].shape))
    return invalid_input("{}: output shape {} does not hold the product", ctx.node.describe(),
                         shape_str(ctx.output_types[0].shape));
  if (rank > 12) return unsupported("{}: oneDNN matmul has at most 12 dimensions", ctx.node.describe());
  s.src = plain_desc(a);
  s.wei = plain_desc(b);
  s.dst = plain_desc(out);
  s.constant_b = ctx.constants.size() > 1 ? ctx.constants[1] : nullptr;
  return s;
}

Result<MatmulSetup> setup(const NodeContext& ctx) {
  if (!all_f32(ctx) || !has_input(ctx, 0) || !has_input(ctx, 1) || ctx.output_types.empty())
    return unsupported("{}: the oneDNN backend multiplies float32 matrices only", ctx.node.describe());
  for (const auto& t : ctx.input_types)
    for (int64_t v : t.shape)
      if (v < 1) return unsupported("{}: empty tensors are not run on oneDNN", ctx.node.describe());
  return ctx.node.op_type == "Gemm" ? gemm_setup(ctx) : matmul_setup(ctx);
}

struct MatmulPlan {
  dnnl::matmul::primitive_desc pd;
  bool c_as_bias = false;
};

// Weights keep their host layout when they change per run; a constant B may
// take whatever layout the primitive prefers. C goes in as the bias when
// oneDNN has an optimized kernel for that (alpha = 1, mostly a [N] / [1, N]
// C), else as a binary-add post-op; with neither, the node is refused.
Result<MatmulPlan> matmul_pd(const Node& node, const MatmulSetup& s, const Runtime& rt) {
  const memory::desc wei = s.constant_b != nullptr
                               ? memory::desc(s.wei.dims(), memory::data_type::f32, memory::format_tag::any)
                               : s.wei;
  if (s.has_c && s.alpha == 1.f) {
    try {
      dnnl::matmul::desc d(s.src, wei, s.c_desc, s.dst);
      dnnl::matmul::primitive_desc pd(d, base_attr(), rt.engine);
      if (require_optimized(node, pd, "matmul").ok()) return MatmulPlan{pd, true};
    } catch (const dnnl::error&) {
      // No implementation for this bias broadcast: try the post-op.
    }
  }
  dnnl::primitive_attr attr = base_attr();
  if (s.alpha != 1.f) attr.set_output_scales(0, {s.alpha});
  if (s.has_c) {
    dnnl::post_ops ops;
    ops.append_binary(algorithm::binary_add, s.c_desc);
    attr.set_post_ops(ops);
  }
  try {
    dnnl::matmul::desc d(s.src, wei, s.dst);
    dnnl::matmul::primitive_desc pd(d, attr, rt.engine);
    CP_TRY(require_optimized(node, pd, "matmul"));
    return MatmulPlan{pd, false};
  } catch (const dnnl::error& e) {
    return dnnl_status(node, "create a matmul", e);
  }
}

class MatmulKernel final : public OnednnKernel {
 public:
  MatmulKernel(std::shared_ptr<const Runtime> rt, int threads, const MatmulSetup& s, const MatmulPlan& plan)
      : OnednnKernel(std::move(rt), threads) {
    const Runtime& r = this->rt();
    src_ = user_memory(s.src, r);
    dst_ = user_memory(s.dst, r);
    wei_user_ = user_memory(s.wei, r);
    memory wei = plan.pd.weights_desc() == s.wei ? wei_user_ : memory(plan.pd.weights_desc(), r.engine);
    if (s.constant_b != nullptr) {
      if (wei.get() == wei_user_.get()) {
        b_copy_ = s.constant_b->clone();
        bind(wei_user_, &b_copy_);
      } else {
        bind(wei_user_, s.constant_b);
        if (!execute_once(bound_reorder(wei_user_, wei, r), r).ok())
          throw dnnl::error(dnnl_runtime_error, "weight reorder failed");
      }
    }
    b_runtime_ = s.constant_b == nullptr;
    c_runtime_ = s.has_c && s.constant_c == nullptr;
    if (s.has_c) {
      c_ = user_memory(s.c_desc, r);
      if (s.constant_c != nullptr) {
        // beta folded in once: the post-op / bias then adds beta * C.
        c_copy_ = s.constant_c->clone();
        for (float& v : c_copy_.span<float>()) v *= s.beta;
        bind(c_, &c_copy_);
      }
    }
    std::vector<std::pair<int, memory>> args{{DNNL_ARG_SRC, src_},
                                             {DNNL_ARG_WEIGHTS, wei},
                                             {DNNL_ARG_DST, dst_},
                                             {DNNL_ARG_SCRATCHPAD, scratchpad_for(plan.pd, r)}};
    if (s.has_c) args.emplace_back(plan.c_as_bias ? DNNL_ARG_BIAS : (DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1), c_);
    matmul_ = BoundPrimitive(dnnl::matmul(plan.pd), std::move(args));
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    bind(src_, inputs[0]);
    if (b_runtime_) bind(wei_user_, inputs[1]);
    if (c_runtime_) bind(c_, inputs[2]);
    bind(dst_, outputs[0]);
    return matmul_.execute(stream());
  }

 private:
  bool b_runtime_ = false, c_runtime_ = false;
  Tensor b_copy_, c_copy_;
  memory src_, wei_user_, dst_, c_;
  BoundPrimitive matmul_;
};

Status check_matmul(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(MatmulSetup s, setup(ctx));
  return matmul_pd(ctx.node, s, rt).status();
}

Result<std::unique_ptr<Kernel>> make_matmul(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  CP_ASSIGN_OR_RETURN(MatmulSetup s, setup(ctx));
  const double flops = 2.0 * static_cast<double>(s.src.dims().back()) * static_cast<double>(shape_numel(s.dst.dims()));
  const int team = team_for_flops(threads, flops);
  use_threads(team);
  CP_ASSIGN_OR_RETURN(MatmulPlan plan, matmul_pd(ctx.node, s, *rt));
  try {
    return std::unique_ptr<Kernel>(std::make_unique<MatmulKernel>(std::move(rt), team, s, plan));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a matmul", e);
  }
}

}  // namespace

void register_matmul_ops(std::vector<OpEntry>& table) {
  table.push_back({"Gemm", check_matmul, make_matmul});
  table.push_back({"MatMul", check_matmul, make_matmul});
}

}  // namespace caliprox::onednn
