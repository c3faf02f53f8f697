// Concat, and Gemm / MatMul with constant weights through CLBlast.
#include <clblast.h>

#include <memory>
#include <vector>

#include "backends/opencl/ops.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::opencl {

namespace {

using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

// Each input copied into its slice of the output along the axis.
class ConcatKernel final : public Kernel {
 public:
  ConcatKernel(Runtime& rt, KernelHandle k) : rt_(rt), k_(std::move(k)) {}
  struct Part {
    int inner = 0, offset = 0;
    size_t count = 0;
    std::shared_ptr<void> constant;  // a constant input's upload
  };
  std::vector<Part> parts;
  int inner_dst = 0;

  Status run(Inputs in, Outputs out) override {
    for (size_t i = 0; i < parts.size(); ++i) {
      const Part& p = parts[i];
      const cl_mem src = p.constant ? static_cast<cl_mem>(p.constant.get()) : mem_of(*in[i]);
      CP_TRY(set_args(k_.k, src, mem_of(*out[0]), p.inner, inner_dst, p.offset));
      CP_TRY(launch(rt_.queue(), k_.k, p.count));
    }
    return {};
  }

 private:
  Runtime& rt_;
  KernelHandle k_;
};

class GemmKernel final : public Kernel {
 public:
  GemmKernel(Runtime& rt) : rt_(rt) {}
  size_t m = 0, n = 0, k = 0, lda = 0, ldb = 0;
  clblast::Transpose ta = clblast::Transpose::kNo, tb = clblast::Transpose::kNo;
  float alpha = 1;
  std::shared_ptr<void> b, bias;  // bias: beta * C broadcast to [m, n], or null

  Status gemm(cl_mem a, cl_mem y) {
    if (bias)
      CP_TRY(cl_check(clEnqueueCopyBuffer(rt_.queue(), static_cast<cl_mem>(bias.get()), y, 0, 0, m * n * sizeof(float),
                                          0, nullptr, nullptr),
                      "clEnqueueCopyBuffer"));
    const clblast::StatusCode code =
        clblast::Gemm(clblast::Layout::kRowMajor, ta, tb, m, n, k, alpha, a, 0, lda, static_cast<cl_mem>(b.get()), 0,
                      ldb, bias ? 1.0f : 0.0f, y, 0, n, &rt_.queue());
    if (code != clblast::StatusCode::kSuccess)
      return runtime_error("CLBlast: the GEMM failed with status {}", static_cast<int>(code));
    return {};
  }
  Status run(Inputs in, Outputs out) override { return gemm(mem_of(*in[0]), mem_of(*out[0])); }

 private:
  Runtime& rt_;
};

bool f32(const TensorType& t) { return t.dtype == DType::f32; }

}  // namespace

bool supports_concat(const NodeContext& ctx) {
  for (const auto& t : ctx.input_types)
    if (!f32(t)) return false;
  auto axis = tensor_ops::normalize_axis(ctx.node, ctx.node.attr_int("axis", 0),
                                         static_cast<int64_t>(ctx.output_types[0].shape.size()), "axis");
  return axis.ok();
}

Result<std::unique_ptr<Kernel>> make_concat(Runtime& rt, const NodeContext& ctx) {
  const Shape& out = ctx.output_types[0].shape;
  CP_ASSIGN_OR_RETURN(int64_t axis, tensor_ops::normalize_axis(ctx.node, ctx.node.attr_int("axis", 0),
                                                               static_cast<int64_t>(out.size()), "axis"));
  CP_ASSIGN_OR_RETURN(cl_kernel k, rt.kernel("concat_part"));
  auto kernel = std::make_unique<ConcatKernel>(rt, KernelHandle(k));
  const auto axis_index = static_cast<size_t>(axis);
  kernel->inner_dst = static_cast<int>(tensor_ops::dims_product(out, axis_index, out.size()));
  int offset = 0;
  for (size_t i = 0; i < ctx.input_types.size(); ++i) {
    const Shape& s = ctx.input_types[i].shape;
    ConcatKernel::Part p;
    p.inner = static_cast<int>(tensor_ops::dims_product(s, axis_index, s.size()));
    p.offset = offset;
    p.count = static_cast<size_t>(shape_numel(s));
    if (ctx.constants[i]) {
      CP_ASSIGN_OR_RETURN(p.constant, upload_constant(rt, ctx.constants[i]->raw(), ctx.constants[i]->nbytes()));
    }
    offset += p.inner;
    kernel->parts.push_back(std::move(p));
  }
  return std::unique_ptr<Kernel>(std::move(kernel));
}

bool supports_gemm(const NodeContext& ctx) {
  const bool matmul = ctx.node.op_type == "MatMul";
  if (ctx.input_types.size() < 2 || !ctx.constants[1] || ctx.constants[0] || !f32(ctx.input_types[0]) ||
      !f32(ctx.input_types[1]) || ctx.input_types[1].shape.size() != 2)
    return false;
  if (matmul) return ctx.input_types[0].shape.size() >= 2;
  if (ctx.input_types[0].shape.size() != 2) return false;
  if (ctx.input_types.size() > 2 && ctx.input_types[2].dtype != DType::undefined)
    return ctx.constants[2] && f32(ctx.input_types[2]);
  return true;
}

Result<std::unique_ptr<Kernel>> make_gemm(Runtime& rt, const NodeContext& ctx) {
  auto kernel = std::make_unique<GemmKernel>(rt);
  GemmKernel& g = *kernel;
  const Shape& a = ctx.input_types[0].shape;
  const Shape& b = ctx.input_types[1].shape;
  const Shape& y = ctx.output_types[0].shape;
  const bool matmul = ctx.node.op_type == "MatMul";
  const bool trans_a = !matmul && ctx.node.attr_int("transA", 0) != 0;
  const bool trans_b = !matmul && ctx.node.attr_int("transB", 0) != 0;
  g.m = static_cast<size_t>(shape_numel(y) / y.back());
  g.n = static_cast<size_t>(y.back());
  g.k = static_cast<size_t>(trans_a ? a[0] : a.back());
  g.lda = static_cast<size_t>(a.back());
  g.ldb = static_cast<size_t>(b[1]);
  g.ta = trans_a ? clblast::Transpose::kYes : clblast::Transpose::kNo;
  g.tb = trans_b ? clblast::Transpose::kYes : clblast::Transpose::kNo;
  g.alpha = matmul ? 1.0f : ctx.node.attr_float("alpha", 1.0f);
  CP_ASSIGN_OR_RETURN(g.b, upload_constant(rt, ctx.constants[1]->raw(), ctx.constants[1]->nbytes()));
  if (!matmul && ctx.input_types.size() > 2 && ctx.constants[2]) {
    // beta * C broadcast to the output [m, n].
    const Tensor& c = *ctx.constants[2];
    const float beta = ctx.node.attr_float("beta", 1.0f);
    const Shape& cs = c.shape();
    const int64_t rows = cs.size() == 2 ? cs[0] : 1, cols = cs.empty() ? 1 : cs.back();
    std::vector<float> full(g.m * g.n);
    for (size_t i = 0; i < g.m; ++i)
      for (size_t j = 0; j < g.n; ++j)
        full[i * g.n + j] = beta * c.data<float>()[(rows == 1 ? 0 : static_cast<int64_t>(i)) * cols +
                                                   (cols == 1 ? 0 : static_cast<int64_t>(j))];
    CP_ASSIGN_OR_RETURN(g.bias, upload_constant(rt, full.data(), full.size() * sizeof(float)));
  }
  // CLBlast compiles its kernels on first use: here, on scratch operands.
  CP_ASSIGN_OR_RETURN(auto a_tmp, rt.allocate(g.m * g.k * sizeof(float)));
  CP_ASSIGN_OR_RETURN(auto y_tmp, rt.allocate(g.m * g.n * sizeof(float)));
  auto lock = rt.run_lock();
  CP_TRY(g.gemm(static_cast<cl_mem>(a_tmp.get()), static_cast<cl_mem>(y_tmp.get())));
  CP_TRY(cl_check(clFinish(rt.queue()), "clFinish"));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace caliprox::opencl
