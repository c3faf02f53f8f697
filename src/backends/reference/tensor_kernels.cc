// Reference kernels of the tensor-op family, part 1: activations, elementwise
// arithmetic (numpy broadcasting), Max/Min, Pow, Clip and Cast
// (Softmax is with LogSoftmax in reduce_norm.cc).
// Data movement is in tensor_movement.cc, Resize in tensor_resize.cc; the
// Reduce ops are the reduce family's (reduce_kernels.cc).
#include <cmath>

#include "backends/reference/tensor_util.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference {
namespace tensor {
namespace {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

// ---- unary activations -------------------------------------------------

KernelResult make_relu(const NodeContext& ctx) {
  return unary_kernel<SignedTypes>(ctx, [](auto v) { return v < decltype(v){0} ? decltype(v){0} : v; });
}

KernelResult make_leaky_relu(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float alpha, tensor_ops::attr_float(ctx.node, "alpha", 0.01f));
  return unary_kernel<FloatTypes>(ctx, [alpha](auto v) {
    using C = decltype(v);
    return v < C{0} ? static_cast<C>(alpha) * v : v;
  });
}

KernelResult make_sigmoid(const NodeContext& ctx) {
  return unary_kernel<FloatTypes>(ctx, [](auto v) {
    using C = decltype(v);
    // exp of a positive argument only, so neither branch overflows to NaN.
    if (v >= C{0}) return C{1} / (C{1} + std::exp(-v));
    C e = std::exp(v);
    return e / (C{1} + e);
  });
}

KernelResult make_hard_sigmoid(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float alpha, tensor_ops::attr_float(ctx.node, "alpha", 0.2f));
  CP_ASSIGN_OR_RETURN(float beta, tensor_ops::attr_float(ctx.node, "beta", 0.5f));
  return unary_kernel<FloatTypes>(ctx, [alpha, beta](auto v) {
    using C = decltype(v);
    return std::clamp(static_cast<C>(alpha) * v + static_cast<C>(beta), C{0}, C{1});
  });
}

KernelResult make_hard_swish(const NodeContext& ctx) {
  return unary_kernel<FloatTypes>(ctx, [](auto v) {
    using C = decltype(v);
    return v * std::clamp(v / C{6} + C{0.5}, C{0}, C{1});
  });
}

KernelResult make_tanh(const NodeContext& ctx) {
  return unary_kernel<FloatTypes>(ctx, [](auto v) { return std::tanh(v); });
}

KernelResult make_sqrt(const NodeContext& ctx) {
  return unary_kernel<FloatTypes>(ctx, [](auto v) { return std::sqrt(v); });
}

// ---- Clip --------------------------------------------------------------

bool supports_clip(const NodeContext& ctx) { return NumericTypes::contains(in_type(ctx)); }

KernelResult make_clip(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  // Before opset 11 the bounds are float attributes.
  const bool attr_min = ctx.node.has("min");
  const bool attr_max = ctx.node.has("max");
  CP_ASSIGN_OR_RETURN(float min_attr, tensor_ops::attr_float(ctx.node, "min", 0));
  CP_ASSIGN_OR_RETURN(float max_attr, tensor_ops::attr_float(ctx.node, "max", 0));
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    NumericTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      using C = compute_t<T>;
      C lo = std::numeric_limits<C>::lowest();
      C hi = std::numeric_limits<C>::max();
      if (attr_min) lo = convert<C>(min_attr);
      if (attr_max) hi = convert<C>(max_attr);
      if (in.size() > 1 && in[1] != nullptr) lo = load(in_data<T>(*in[1])[0]);
      if (in.size() > 2 && in[2] != nullptr) hi = load(in_data<T>(*in[2])[0]);
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      for (int64_t i = 0, n = in[0]->numel(); i < n; ++i) {
        C v = load(x[i]);
        // Comparisons keep NaN; lo > hi gives hi everywhere, as ONNX says.
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        y[i] = store<T>(v);
      }
    });
    return {};
  });
}

// ---- binary arithmetic and Max/Min -------------------------------------

enum class BinaryOp { add, sub, mul, div, max, min };

template <typename C> C apply_binary(BinaryOp op, C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    // Wrap around like the hardware instead of signed-overflow UB.
    using U = std::make_unsigned_t<C>;
    switch (op) {
      case BinaryOp::add: return static_cast<C>(static_cast<U>(a) + static_cast<U>(b));
      case BinaryOp::sub: return static_cast<C>(static_cast<U>(a) - static_cast<U>(b));
      case BinaryOp::mul: return static_cast<C>(static_cast<U>(a) * static_cast<U>(b));
      case BinaryOp::div:
        // Integer division by zero is undefined in ONNX; 0 keeps the oracle
        // from crashing. Division truncates toward zero.
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<C>)
          if (b == -1) return static_cast<C>(U{0} - static_cast<U>(a));
        return static_cast<C>(a / b);
      case BinaryOp::max: return a < b ? b : a;
      case BinaryOp::min: return b < a ? b : a;
    }
  } else {
    switch (op) {
      case BinaryOp::add: return a + b;
      case BinaryOp::sub: return a - b;
      case BinaryOp::mul: return a * b;
      case BinaryOp::div: return a / b;
      // NaN in either operand propagates (numpy maximum/minimum).
      case BinaryOp::max: return std::isnan(a) || std::isnan(b) ? a + b : (a < b ? b : a);
      case BinaryOp::min: return std::isnan(a) || std::isnan(b) ? a + b : (b < a ? b : a);
    }
  }
  return a;
}

bool supports_numeric(const NodeContext& ctx) {
  for (const auto& t : ctx.input_types)
    if (!NumericTypes::contains(t.dtype)) return false;
  return !ctx.input_types.empty();
}

// Add/Sub/Mul/Div, and Max/Min with any number of inputs: out = in0, then
// out = op(out, in_k) for k >= 1, each input broadcast through index maps.
template <BinaryOp kOp> KernelResult make_binary(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const Shape out_shape = ctx.output_types[0].shape;
  std::vector<MappedLoop<1>> loops;
  for (const auto& t : ctx.input_types) loops.emplace_back(out_shape, std::array{broadcast_maps(t.shape, out_shape)});
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    NumericTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      T* y = out_data<T>(*out[0]);
      const T* a = in_data<T>(*in[0]);
      loops[0].run([&](int64_t o, const auto& off) { y[o] = a[off[0]]; });
      for (size_t k = 1; k < loops.size(); ++k) {
        const T* b = in_data<T>(*in[k]);
        loops[k].run([&](int64_t o, const auto& off) { y[o] = store<T>(apply_binary(kOp, load(y[o]), load(b[off[0]]))); });
      }
    });
    return {};
  });
}

// Pow: base and exponent may have different types (opset 12+); the result
// has the base's type and is computed in double.
KernelResult make_pow(const NodeContext& ctx) {
  const DType base_type = in_type(ctx, 0);
  const DType exp_type = in_type(ctx, 1);
  const Shape out_shape = ctx.output_types[0].shape;
  MappedLoop<2> loop(out_shape,
                     {broadcast_maps(ctx.input_types[0].shape, out_shape), broadcast_maps(ctx.input_types[1].shape, out_shape)});
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    NumericTypes::visit(base_type, [&](auto base_tag) {
      using T = decltype(base_tag);
      NumericTypes::visit(exp_type, [&](auto exp_tag) {
        using E = decltype(exp_tag);
        const T* a = in_data<T>(*in[0]);
        const E* b = in_data<E>(*in[1]);
        T* y = out_data<T>(*out[0]);
        loop.run([&](int64_t o, const auto& off) {
          double r = std::pow(convert<double>(a[off[0]]), convert<double>(b[off[1]]));
          y[o] = convert<T>(r);
        });
      });
    });
    return {};
  });
}

// ---- Cast --------------------------------------------------------------

bool supports_cast(const NodeContext& ctx) {
  return AllTypes::contains(in_type(ctx)) && AllTypes::contains(ctx.output_types[0].dtype);
}

KernelResult make_cast(const NodeContext& ctx) {
  const DType from = in_type(ctx);
  const DType to = ctx.output_types[0].dtype;
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    AllTypes::visit(from, [&](auto from_tag) {
      using F = decltype(from_tag);
      AllTypes::visit(to, [&](auto to_tag) {
        using T = decltype(to_tag);
        const F* x = in_data<F>(*in[0]);
        T* y = out_data<T>(*out[0]);
        for (int64_t i = 0, n = in[0]->numel(); i < n; ++i) y[i] = convert<T>(x[i]);
      });
    });
    return {};
  });
}

}  // namespace
}  // namespace tensor

void register_tensor_kernels(std::vector<KernelEntry>& table) {
  using namespace tensor;
  const KernelEntry kernels[] = {
      {"Relu", supports_unary<SignedTypes>, make_relu},
      {"LeakyRelu", supports_unary<FloatTypes>, make_leaky_relu},
      {"Sigmoid", supports_unary<FloatTypes>, make_sigmoid},
      {"HardSigmoid", supports_unary<FloatTypes>, make_hard_sigmoid},
      {"HardSwish", supports_unary<FloatTypes>, make_hard_swish},
      {"Tanh", supports_unary<FloatTypes>, make_tanh},
      {"Sqrt", supports_unary<FloatTypes>, make_sqrt},
      {"Clip", supports_clip, make_clip},
      {"Add", supports_numeric, make_binary<BinaryOp::add>},
      {"Sub", supports_numeric, make_binary<BinaryOp::sub>},
      {"Mul", supports_numeric, make_binary<BinaryOp::mul>},
      {"Div", supports_numeric, make_binary<BinaryOp::div>},
      {"Max", supports_numeric, make_binary<BinaryOp::max>},
      {"Min", supports_numeric, make_binary<BinaryOp::min>},
      {"Pow", supports_numeric, make_pow},
      {"Cast", supports_cast, make_cast},
      {"CastLike", supports_cast, make_cast},  // the output type is input #1's
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
  register_movement_kernels(table);
  register_resize_kernels(table);
}

}  // namespace caliprox::reference
