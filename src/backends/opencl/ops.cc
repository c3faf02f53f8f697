// The OpenCL backend's kernels other than Conv: activations, broadcasting
// arithmetic, pooling, inference BatchNormalization, Softmax, Concat, Gemm /
// MatMul (CLBlast) and the ops that only reshape (a device copy). Constant
// inputs are uploaded once at prepare; everything else is a device tensor.
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/opencl/ops.h"
#include "ir/ops/activation.h"
#include "ir/ops/conv_geometry.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::opencl {

namespace {

using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

bool is_copy(const std::string& op) {
  return op == "Identity" || op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
         op == "Dropout";
}
const std::map<std::string, int>& binary_ops() {
  static const std::map<std::string, int> ops{{"Add", 0}, {"Sub", 1}, {"Mul", 2}, {"Div", 3}, {"Max", 4}, {"Min", 5}};
  return ops;
}
int as_int(int64_t v) { return static_cast<int>(v); }

// A device buffer for input i: the constant's upload, or the run's tensor.
class Operand {
 public:
  Status prepare(Runtime& rt, const Tensor* constant) {
    if (constant) {
      CP_ASSIGN_OR_RETURN(constant_, upload_constant(rt, constant->raw(), constant->nbytes()));
    }
    return {};
  }
  cl_mem get(const Tensor* t) const { return constant_ ? static_cast<cl_mem>(constant_.get()) : mem_of(*t); }

 private:
  std::shared_ptr<void> constant_;
};

class CopyKernel final : public Kernel {
 public:
  explicit CopyKernel(Runtime& rt) : rt_(rt) {}
  Status run(Inputs in, Outputs out) override {
    if (mem_of(*in[0]) == mem_of(*out[0]) || out[0]->nbytes() == 0) return {};
    return cl_check(clEnqueueCopyBuffer(rt_.queue(), mem_of(*in[0]), mem_of(*out[0]), 0, 0, out[0]->nbytes(), 0,
                                        nullptr, nullptr),
                    "clEnqueueCopyBuffer");
  }

 private:
  Runtime& rt_;
};

// A kernel object with the arguments fixed at prepare; run() binds the
// buffers (inputs, then outputs) and launches over `global` work items.
class LaunchKernel final : public Kernel {
 public:
  LaunchKernel(Runtime& rt, KernelHandle k, size_t inputs, size_t global) : rt_(rt), k_(std::move(k)), global_(global) {
    operands_.resize(inputs);
  }
  Status constant(Runtime& rt, size_t i, const Tensor* t) { return operands_[i].prepare(rt, t); }
  cl_kernel handle() const { return k_.k; }
  Status run(Inputs in, Outputs out) override {
    cl_uint a = 0;
    for (size_t i = 0; i < operands_.size(); ++i) CP_TRY(set_args_from(k_.k, a++, operands_[i].get(in[i])));
    CP_TRY(set_args_from(k_.k, a, mem_of(*out[0])));
    return launch(rt_.queue(), k_.k, global_);
  }

 private:
  Runtime& rt_;
  KernelHandle k_;
  size_t global_;
  std::vector<Operand> operands_;
};

// A launch with device tables of its own (per-channel constants, broadcast
// strides) that its arguments point to.
class TableKernel final : public Kernel {
 public:
  TableKernel(std::unique_ptr<LaunchKernel> k, std::vector<std::shared_ptr<void>> tables)
      : k_(std::move(k)), tables_(std::move(tables)) {}
  Status run(Inputs in, Outputs out) override { return k_->run(in, out); }

 private:
  std::unique_ptr<LaunchKernel> k_;
  std::vector<std::shared_ptr<void>> tables_;
};

Result<std::unique_ptr<LaunchKernel>> launcher(Runtime& rt, const NodeContext& ctx, const char* name, size_t inputs,
                                               size_t global) {
  CP_ASSIGN_OR_RETURN(cl_kernel k, rt.kernel(name));
  auto kernel = std::make_unique<LaunchKernel>(rt, KernelHandle(k), inputs, global);
  for (size_t i = 0; i < inputs; ++i) CP_TRY(kernel->constant(rt, i, ctx.constants[i]));
  return kernel;
}

Result<act::Activation> activation_of(const NodeContext& ctx) {
  const Node& n = ctx.node;
  float alpha = n.attr_float("alpha", 0), beta = n.attr_float("beta", 0);
  const float* a = n.has("alpha") ? &alpha : nullptr;
  const float* b = n.has("beta") ? &beta : nullptr;
  if (n.op_type == "Clip") {
    alpha = n.attr_float("min", 0);
    beta = n.attr_float("max", 0);
    a = n.has("min") ? &alpha : nullptr;
    b = n.has("max") ? &beta : nullptr;
    for (size_t i = 1; i < 3 && i < ctx.input_types.size(); ++i) {
      if (ctx.input_types[i].dtype == DType::undefined) continue;
      if (!ctx.constants[i] || ctx.constants[i]->numel() != 1) return unsupported("Clip bounds that are not constants");
      (i == 1 ? alpha : beta) = ctx.constants[i]->data<float>()[0];
      (i == 1 ? a : b) = i == 1 ? &alpha : &beta;
    }
  }
  return act::make_activation(n.op_type, a, b);
}

Result<std::unique_ptr<Kernel>> make_unary(Runtime& rt, const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(act::Activation act, activation_of(ctx));
  CP_ASSIGN_OR_RETURN(auto k,
                      launcher(rt, ctx, "unary", 1, static_cast<size_t>(shape_numel(ctx.output_types[0].shape))));
  CP_TRY(set_args_from(k->handle(), 2, static_cast<int>(act.kind), act.alpha, act.beta));
  return std::unique_ptr<Kernel>(std::move(k));
}

// Broadcast strides of `in` against `out` (0 where a dim is broadcast).
std::vector<int> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int> s(out.size(), 0);
  const size_t shift = out.size() - in.size();
  int64_t stride = 1;
  for (size_t d = in.size(); d-- > 0;) {
    s[shift + d] = in[d] == 1 ? 0 : as_int(stride);
    stride *= in[d];
  }
  return s;
}

Result<std::unique_ptr<Kernel>> make_binary(Runtime& rt, const NodeContext& ctx) {
  const Shape& out = ctx.output_types[0].shape;
  std::vector<int> meta;
  for (int64_t d : out) meta.push_back(as_int(d));
  for (size_t i = 0; i < 2; ++i)
    for (int s : broadcast_strides(ctx.input_types[i].shape, out)) meta.push_back(s);
  CP_ASSIGN_OR_RETURN(auto buf, upload_constant(rt, meta.data(), meta.size() * sizeof(int)));
  CP_ASSIGN_OR_RETURN(auto k, launcher(rt, ctx, "binary", 2, static_cast<size_t>(shape_numel(out))));
  CP_TRY(set_args_from(k->handle(), 3, static_cast<cl_mem>(buf.get()), as_int(static_cast<int64_t>(out.size())),
                       binary_ops().at(ctx.node.op_type)));
  std::vector<std::shared_ptr<void>> tables{std::move(buf)};
  return std::unique_ptr<Kernel>(std::make_unique<TableKernel>(std::move(k), std::move(tables)));
}

Result<std::unique_ptr<Kernel>> make_pool(Runtime& rt, const NodeContext& ctx) {
  const std::string& op = ctx.node.op_type;
  const Shape& x = ctx.input_types[0].shape;
  const size_t total = static_cast<size_t>(shape_numel(ctx.output_types[0].shape));
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
    CP_ASSIGN_OR_RETURN(auto k, launcher(rt, ctx, "global_pool", 1, total));
    CP_TRY(set_args_from(k->handle(), 2, as_int(x[2] * x[3]), op == "GlobalMaxPool" ? 1 : 0));
    return std::unique_ptr<Kernel>(std::move(k));
  }
  CP_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(ctx.node, x));
  CP_ASSIGN_OR_RETURN(auto k, launcher(rt, ctx, "pool2d", 1, total));
  CP_TRY(set_args_from(k->handle(), 2, as_int(g.in_spatial[0]), as_int(g.in_spatial[1]), as_int(g.out_spatial[0]),
                       as_int(g.out_spatial[1]), as_int(g.kernel[0]), as_int(g.kernel[1]), as_int(g.strides[0]),
                       as_int(g.strides[1]), as_int(g.pads_begin[0]), as_int(g.pads_begin[1]), as_int(g.dilations[0]),
                       as_int(g.dilations[1]), as_int(g.pads_end[0]), as_int(g.pads_end[1]), op == "MaxPool" ? 1 : 0,
                       g.count_include_pad ? 1 : 0));
  return std::unique_ptr<Kernel>(std::move(k));
}

Result<std::unique_ptr<Kernel>> make_batchnorm(Runtime& rt, const NodeContext& ctx) {
  const Shape& x = ctx.input_types[0].shape;
  const int64_t c = x[1], plane = shape_numel(x) / (x[0] * c);
  const double eps = ctx.node.attr_float("epsilon", 1e-5f);
  std::vector<float> mean(static_cast<size_t>(c)), factor(mean.size()), shift(mean.size());
  for (size_t i = 0; i < mean.size(); ++i) {
    mean[i] = ctx.constants[3]->data<float>()[i];
    factor[i] = static_cast<float>(ctx.constants[1]->data<float>()[i] /
                                   std::sqrt(static_cast<double>(ctx.constants[4]->data<float>()[i]) + eps));
    shift[i] = ctx.constants[2]->data<float>()[i];
  }
  std::vector<std::shared_ptr<void>> tables;
  for (const auto* t : {&mean, &factor, &shift}) {
    CP_ASSIGN_OR_RETURN(auto buf, upload_constant(rt, t->data(), t->size() * sizeof(float)));
    tables.push_back(std::move(buf));
  }
  CP_ASSIGN_OR_RETURN(auto k, launcher(rt, ctx, "batchnorm", 1, static_cast<size_t>(shape_numel(x))));
  CP_TRY(set_args_from(k->handle(), 2, static_cast<cl_mem>(tables[0].get()), static_cast<cl_mem>(tables[1].get()),
                       static_cast<cl_mem>(tables[2].get()), as_int(c), as_int(plane)));
  return std::unique_ptr<Kernel>(std::make_unique<TableKernel>(std::move(k), std::move(tables)));
}

Result<std::unique_ptr<Kernel>> make_softmax(Runtime& rt, const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto layout, tensor_ops::resolve_softmax(ctx.node, ctx.input_types[0].shape));
  CP_ASSIGN_OR_RETURN(auto k, launcher(rt, ctx, "softmax", 1, static_cast<size_t>(layout.outer * layout.inner)));
  CP_TRY(set_args_from(k->handle(), 2, as_int(layout.axis_len), as_int(layout.inner)));
  return std::unique_ptr<Kernel>(std::move(k));
}

}  // namespace

// Concat and Gemm / MatMul live in ops_gemm.cc.
bool supports_concat(const NodeContext& ctx);
Result<std::unique_ptr<Kernel>> make_concat(Runtime& rt, const NodeContext& ctx);
bool supports_gemm(const NodeContext& ctx);
Result<std::unique_ptr<Kernel>> make_gemm(Runtime& rt, const NodeContext& ctx);

bool supports_op(const NodeContext& ctx) {
  const std::string& op = ctx.node.op_type;
  const Shape& x = ctx.input_types[0].shape;
  if (is_copy(op)) return ctx.node.outputs.size() == 1 && ctx.output_types[0].dtype == ctx.input_types[0].dtype;
  if (binary_ops().count(op)) return ctx.input_types.size() == 2 && ctx.output_types[0].shape.size() <= 8;
  if (op == "MaxPool") return x.size() == 4 && ctx.node.outputs.size() == 1 && pool_geometry(ctx.node, x).ok();
  if (op == "AveragePool") return x.size() == 4 && pool_geometry(ctx.node, x).ok();
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool") return x.size() == 4;
  if (op == "BatchNormalization")
    return x.size() >= 2 && ctx.node.outputs.size() == 1 && ctx.input_types.size() == 5 && ctx.constants[1] &&
           ctx.constants[2] && ctx.constants[3] && ctx.constants[4] && ctx.node.attr_int("training_mode", 0) == 0;
  if (op == "Softmax") return tensor_ops::resolve_softmax(ctx.node, x).ok();
  if (op == "Concat") return supports_concat(ctx);
  if (op == "Gemm" || op == "MatMul") return supports_gemm(ctx);
  if (op == "Resize") return supports_resize(ctx);
  return activation_of(ctx).ok();  // an activation (Clip: with constant bounds)
}

Result<std::unique_ptr<Kernel>> make_op(Runtime& rt, const NodeContext& ctx) {
  const std::string& op = ctx.node.op_type;
  if (is_copy(op)) return std::unique_ptr<Kernel>(std::make_unique<CopyKernel>(rt));
  if (binary_ops().count(op)) return make_binary(rt, ctx);
  if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "GlobalMaxPool")
    return make_pool(rt, ctx);
  if (op == "BatchNormalization") return make_batchnorm(rt, ctx);
  if (op == "Softmax") return make_softmax(rt, ctx);
  if (op == "Concat") return make_concat(rt, ctx);
  if (op == "Gemm" || op == "MatMul") return make_gemm(rt, ctx);
  if (op == "Resize") return make_resize(rt, ctx);
  return make_unary(rt, ctx);
}

}  // namespace caliprox::opencl
