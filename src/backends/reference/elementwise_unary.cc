// Reference kernels of the elementwise family, part 1: unary math, the
// parametric activations, IsNaN/IsInf, Not and Size. Inference is
// in ir/ops/elementwise_ops.cc.
#include <cmath>

#include "backends/reference/tensor_util.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference {
namespace tensor {
namespace {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

// A float op as a kernel entry: f is a generic lambda over the compute type.
#define CP_FLOAT_UNARY(name, expr)                                                    \
  KernelResult make_##name(const NodeContext& ctx) {                                  \
    return unary_kernel<FloatTypes>(ctx, [](auto v) -> decltype(v) { return expr; }); \
  }

CP_FLOAT_UNARY(exp, std::exp(v))
CP_FLOAT_UNARY(log, std::log(v))
CP_FLOAT_UNARY(sin, std::sin(v))
CP_FLOAT_UNARY(cos, std::cos(v))
CP_FLOAT_UNARY(tan, std::tan(v))
CP_FLOAT_UNARY(asin, std::asin(v))
CP_FLOAT_UNARY(acos, std::acos(v))
CP_FLOAT_UNARY(atan, std::atan(v))
CP_FLOAT_UNARY(sinh, std::sinh(v))
CP_FLOAT_UNARY(cosh, std::cosh(v))
CP_FLOAT_UNARY(asinh, std::asinh(v))
CP_FLOAT_UNARY(acosh, std::acosh(v))
CP_FLOAT_UNARY(atanh, std::atanh(v))
CP_FLOAT_UNARY(reciprocal, decltype(v){1} / v)
CP_FLOAT_UNARY(floor, std::floor(v))
CP_FLOAT_UNARY(ceil, std::ceil(v))
// Halves round to even (the default rounding mode), as ONNX Round says.
CP_FLOAT_UNARY(round, std::nearbyint(v))
// log(1 + exp(v)) without overflow for large v.
CP_FLOAT_UNARY(softplus, v > decltype(v){0} ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)))
CP_FLOAT_UNARY(softsign, v / (decltype(v){1} + std::abs(v)))
#undef CP_FLOAT_UNARY

// Erf is defined for every numeric type; integers go through double.
KernelResult make_erf(const NodeContext& ctx) {
  return unary_kernel<NumericTypes>(ctx, [](auto v) -> decltype(v) {
    using C = decltype(v);
    return convert<C>(std::erf(static_cast<double>(v)));
  });
}

KernelResult make_neg(const NodeContext& ctx) {
  return unary_kernel<SignedTypes>(ctx, [](auto v) -> decltype(v) {
    using C = decltype(v);
    // Integer negation wraps (INT_MIN stays INT_MIN) instead of overflowing.
    if constexpr (std::is_integral_v<C>)
      return static_cast<C>(std::make_unsigned_t<C>{0} - static_cast<std::make_unsigned_t<C>>(v));
    else return -v;
  });
}

KernelResult make_abs(const NodeContext& ctx) {
  return unary_kernel<NumericTypes>(ctx, [](auto v) -> decltype(v) {
    using C = decltype(v);
    if constexpr (std::is_unsigned_v<C>) return v;
    else if constexpr (std::is_integral_v<C>)
      return v < 0 ? static_cast<C>(std::make_unsigned_t<C>{0} - static_cast<std::make_unsigned_t<C>>(v)) : v;
    else return std::abs(v);
  });
}

KernelResult make_sign(const NodeContext& ctx) {
  return unary_kernel<NumericTypes>(ctx, [](auto v) -> decltype(v) {
    using C = decltype(v);
    if constexpr (std::is_floating_point_v<C>)
      if (std::isnan(v)) return v;
    return v > C{0} ? C{1} : (v < C{0} ? static_cast<C>(-1) : C{0});
  });
}

// ---- parametric activations ---------------------------------------------

KernelResult make_elu(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float alpha, tensor_ops::attr_float(ctx.node, "alpha", 1.0f));
  return unary_kernel<FloatTypes>(ctx, [alpha](auto v) -> decltype(v) {
    using C = decltype(v);
    return v < C{0} ? static_cast<C>(alpha) * (std::exp(v) - C{1}) : v;
  });
}

KernelResult make_selu(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float alpha, tensor_ops::attr_float(ctx.node, "alpha", 1.67326319217681884765625f));
  CP_ASSIGN_OR_RETURN(float gamma, tensor_ops::attr_float(ctx.node, "gamma", 1.05070102214813232421875f));
  return unary_kernel<FloatTypes>(ctx, [alpha, gamma](auto v) -> decltype(v) {
    using C = decltype(v);
    return static_cast<C>(gamma) * (v > C{0} ? v : static_cast<C>(alpha) * (std::exp(v) - C{1}));
  });
}

KernelResult make_celu(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float alpha, tensor_ops::attr_float(ctx.node, "alpha", 1.0f));
  if (alpha == 0) return invalid_input("{}: 'alpha' must not be 0", ctx.node.describe());
  return unary_kernel<FloatTypes>(ctx, [alpha](auto v) -> decltype(v) {
    using C = decltype(v);
    const C a = static_cast<C>(alpha);
    return std::max(C{0}, v) + std::min(C{0}, a * (std::exp(v / a) - C{1}));
  });
}

KernelResult make_thresholded_relu(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float alpha, tensor_ops::attr_float(ctx.node, "alpha", 1.0f));
  return unary_kernel<FloatTypes>(ctx, [alpha](auto v) -> decltype(v) {
    using C = decltype(v);
    return v > static_cast<C>(alpha) ? v : C{0};
  });
}

// Shrink: x + bias below -lambd, x - bias above lambd, 0 between; computed in
// double so integer inputs round the way the ONNX reference's float math does.
KernelResult make_shrink(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float bias, tensor_ops::attr_float(ctx.node, "bias", 0.0f));
  CP_ASSIGN_OR_RETURN(float lambd, tensor_ops::attr_float(ctx.node, "lambd", 0.5f));
  return unary_kernel<NumericTypes>(ctx, [bias, lambd](auto v) -> decltype(v) {
    using C = decltype(v);
    const double x = static_cast<double>(v);
    if (x < -static_cast<double>(lambd)) return convert<C>(x + bias);
    if (x > static_cast<double>(lambd)) return convert<C>(x - bias);
    return C{0};
  });
}

// ---- float tests, Not ---------------------------------------------------

// y = test(x) as bool for a float input.
template <typename Test> KernelResult float_test_kernel(const NodeContext& ctx, Test test) {
  const DType dtype = in_type(ctx);
  return make_fn_kernel([dtype, test](Inputs in, Outputs out) -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      bool* y = out_data<bool>(*out[0]);
      for (int64_t i = 0, n = in[0]->numel(); i < n; ++i) y[i] = test(static_cast<double>(load(x[i])));
    });
    return {};
  });
}

KernelResult make_is_nan(const NodeContext& ctx) {
  return float_test_kernel(ctx, [](double v) { return std::isnan(v); });
}

KernelResult make_is_inf(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(int64_t negative, tensor_ops::attr_int(ctx.node, "detect_negative", 1));
  CP_ASSIGN_OR_RETURN(int64_t positive, tensor_ops::attr_int(ctx.node, "detect_positive", 1));
  return float_test_kernel(ctx, [negative, positive](double v) {
    return std::isinf(v) && ((v > 0 && positive != 0) || (v < 0 && negative != 0));
  });
}

KernelResult make_not(const NodeContext&) {
  return make_fn_kernel([](Inputs in, Outputs out) -> Status {
    const bool* x = in_data<bool>(*in[0]);
    bool* y = out_data<bool>(*out[0]);
    for (int64_t i = 0, n = in[0]->numel(); i < n; ++i) y[i] = !x[i];
    return {};
  });
}

// ---- Size ---------------------------------------------------------------

bool supports_any(const NodeContext&) { return true; }

KernelResult make_size(const NodeContext&) {
  return make_fn_kernel([](Inputs in, Outputs out) -> Status {
    out_data<int64_t>(*out[0])[0] = in[0]->numel();
    return {};
  });
}

}  // namespace
}  // namespace tensor

void register_elementwise_unary_kernels(std::vector<KernelEntry>& table) {
  using namespace tensor;
  const KernelEntry kernels[] = {
      {"Exp", supports_unary<FloatTypes>, make_exp},
      {"Log", supports_unary<FloatTypes>, make_log},
      {"Sin", supports_unary<FloatTypes>, make_sin},
      {"Cos", supports_unary<FloatTypes>, make_cos},
      {"Tan", supports_unary<FloatTypes>, make_tan},
      {"Asin", supports_unary<FloatTypes>, make_asin},
      {"Acos", supports_unary<FloatTypes>, make_acos},
      {"Atan", supports_unary<FloatTypes>, make_atan},
      {"Sinh", supports_unary<FloatTypes>, make_sinh},
      {"Cosh", supports_unary<FloatTypes>, make_cosh},
      {"Asinh", supports_unary<FloatTypes>, make_asinh},
      {"Acosh", supports_unary<FloatTypes>, make_acosh},
      {"Atanh", supports_unary<FloatTypes>, make_atanh},
      {"Reciprocal", supports_unary<FloatTypes>, make_reciprocal},
      {"Floor", supports_unary<FloatTypes>, make_floor},
      {"Ceil", supports_unary<FloatTypes>, make_ceil},
      {"Round", supports_unary<FloatTypes>, make_round},
      {"Softplus", supports_unary<FloatTypes>, make_softplus},
      {"Softsign", supports_unary<FloatTypes>, make_softsign},
      {"Erf", supports_unary<NumericTypes>, make_erf},
      {"Neg", supports_unary<SignedTypes>, make_neg},
      {"Abs", supports_unary<NumericTypes>, make_abs},
      {"Sign", supports_unary<NumericTypes>, make_sign},
      {"Elu", supports_unary<FloatTypes>, make_elu},
      {"Selu", supports_unary<FloatTypes>, make_selu},
      {"Celu", supports_unary<FloatTypes>, make_celu},
      {"ThresholdedRelu", supports_unary<FloatTypes>, make_thresholded_relu},
      {"Shrink", supports_unary<NumericTypes>, make_shrink},
      {"IsNaN", supports_unary<FloatTypes>, make_is_nan},
      {"IsInf", supports_unary<FloatTypes>, make_is_inf},
      {"Not", supports_unary<TypeSet<bool>>, make_not},
      {"Size", supports_any, make_size},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
}

}  // namespace caliprox::reference
