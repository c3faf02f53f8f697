// Reference kernels of the elementwise family, part 2: comparisons and logic
// (bool outputs), Mod, BitShift, PRelu, Where, Sum/Mean and Range. Inputs
// broadcast through index maps (tensor_util.h). Inference is in
// ir/ops/elementwise_ops.cc.
#include <cmath>
#include <optional>

#include "backends/reference/tensor_util.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference {
namespace tensor {
namespace {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

// out[o] = op(a[..], b[..]) with a and b of element type Set, broadcast to
// the output shape; the output's element type is Out (or the inputs' type
// when Out is void). `op` is a generic lambda over the compute type. b is
// read as of shape `b_shape` (same element count) when one is given.
template <typename Set, typename Out, typename Op>
KernelResult binary_kernel(const NodeContext& ctx, Op op, std::optional<Shape> b_shape = std::nullopt) {
  const DType dtype = in_type(ctx);
  const Shape out_shape = ctx.output_types[0].shape;
  MappedLoop<2> loop(out_shape, {broadcast_maps(ctx.input_types[0].shape, out_shape),
                                 broadcast_maps(b_shape.value_or(ctx.input_types[1].shape), out_shape)});
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    Set::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      using O = std::conditional_t<std::is_void_v<Out>, T, Out>;
      const T* a = in_data<T>(*in[0]);
      const T* b = in_data<T>(*in[1]);
      O* y = out_data<O>(*out[0]);
      loop.run([&](int64_t o, const auto& off) {
        if constexpr (std::is_void_v<Out>) y[o] = store<T>(op(load(a[off[0]]), load(b[off[1]])));
        else y[o] = op(load(a[off[0]]), load(b[off[1]]));
      });
    });
    return {};
  });
}

template <typename Set> bool supports_binary(const NodeContext& ctx) {
  return ctx.input_types.size() == 2 && Set::contains(in_type(ctx, 0)) && in_type(ctx, 1) == in_type(ctx, 0);
}

using BoolTypes = TypeSet<bool>;
using EqualTypes = AllTypes;

KernelResult make_equal(const NodeContext& ctx) {
  return binary_kernel<EqualTypes, bool>(ctx, [](auto a, auto b) { return a == b; });
}
KernelResult make_less(const NodeContext& ctx) {
  return binary_kernel<NumericTypes, bool>(ctx, [](auto a, auto b) { return a < b; });
}
KernelResult make_greater(const NodeContext& ctx) {
  return binary_kernel<NumericTypes, bool>(ctx, [](auto a, auto b) { return a > b; });
}
KernelResult make_less_or_equal(const NodeContext& ctx) {
  return binary_kernel<NumericTypes, bool>(ctx, [](auto a, auto b) { return a <= b; });
}
KernelResult make_greater_or_equal(const NodeContext& ctx) {
  return binary_kernel<NumericTypes, bool>(ctx, [](auto a, auto b) { return a >= b; });
}
KernelResult make_and(const NodeContext& ctx) {
  return binary_kernel<BoolTypes, bool>(ctx, [](bool a, bool b) { return a && b; });
}
KernelResult make_or(const NodeContext& ctx) {
  return binary_kernel<BoolTypes, bool>(ctx, [](bool a, bool b) { return a || b; });
}
KernelResult make_xor(const NodeContext& ctx) {
  return binary_kernel<BoolTypes, bool>(ctx, [](bool a, bool b) { return a != b; });
}

// Mod. Integers: fmod=0 takes the divisor's sign (Python's %), fmod=1 the
// dividend's (C's %); a zero divisor is undefined in ONNX and gives 0 here
// rather than a crash. Floats (fmod=1 only): C's fmod.
KernelResult make_mod(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(int64_t fmod, tensor_ops::attr_int(ctx.node, "fmod", 0));
  return binary_kernel<NumericTypes, void>(ctx, [fmod](auto a, auto b) -> decltype(a) {
    using C = decltype(a);
    if constexpr (std::is_floating_point_v<C>) {
      return std::fmod(a, b);
    } else {
      if (b == 0) return 0;
      if constexpr (std::is_signed_v<C>)
        if (b == -1) return 0;  // a % -1 overflows for the most negative a
      C r = static_cast<C>(a % b);
      if (fmod == 0 && r != 0 && ((r < 0) != (b < 0))) r = static_cast<C>(r + b);
      return r;
    }
  });
}

// BitShift on unsigned integers: shifts by the width or more give 0.
KernelResult make_bit_shift(const NodeContext& ctx) {
  // Inference checked the attribute: LEFT or RIGHT.
  const bool left = ctx.node.attr_string("direction", "") == "LEFT";
  return binary_kernel<UnsignedTypes, void>(ctx, [left](auto a, auto b) -> decltype(a) {
    using C = decltype(a);
    if (b >= sizeof(C) * 8) return 0;
    return static_cast<C>(left ? a << b : a >> b);
  });
}

KernelResult make_prelu(const NodeContext& ctx) {
  return binary_kernel<SignedTypes, void>(
      ctx, [](auto x, auto slope) -> decltype(x) { return x < decltype(x){0} ? slope * x : x; },
      tensor_ops::prelu_slope_shape(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape));
}

// ---- Where --------------------------------------------------------------

bool supports_where(const NodeContext& ctx) {
  return in_type(ctx, 0) == DType::boolean && AllTypes::contains(in_type(ctx, 1));
}

KernelResult make_where(const NodeContext& ctx) {
  const DType dtype = in_type(ctx, 1);
  const Shape out_shape = ctx.output_types[0].shape;
  MappedLoop<3> loop(out_shape, {broadcast_maps(ctx.input_types[0].shape, out_shape),
                                 broadcast_maps(ctx.input_types[1].shape, out_shape),
                                 broadcast_maps(ctx.input_types[2].shape, out_shape)});
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    visit_element_size(dtype_size(dtype), [&](auto tag) {
      using U = decltype(tag);
      const bool* c = in_data<bool>(*in[0]);
      const U* x = in_data<U>(*in[1]);
      const U* y = in_data<U>(*in[2]);
      U* z = out_data<U>(*out[0]);
      loop.run([&](int64_t o, const auto& off) { z[o] = c[off[0]] ? x[off[1]] : y[off[2]]; });
    });
    return {};
  });
}

// ---- Sum, Mean ----------------------------------------------------------

bool supports_float_inputs(const NodeContext& ctx) {
  for (const auto& t : ctx.input_types)
    if (!FloatTypes::contains(t.dtype)) return false;
  return !ctx.input_types.empty();
}

// The inputs summed in double, then divided by their count for Mean.
template <bool kMean> KernelResult make_sum(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const Shape out_shape = ctx.output_types[0].shape;
  std::vector<MappedLoop<1>> loops;
  for (const auto& t : ctx.input_types) loops.emplace_back(out_shape, std::array{broadcast_maps(t.shape, out_shape)});
  std::vector<double> acc(static_cast<size_t>(shape_numel(out_shape)));
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t k = 0; k < loops.size(); ++k) {
        const T* x = in_data<T>(*in[k]);
        loops[k].run([&](int64_t o, const auto& off) { acc[static_cast<size_t>(o)] += convert<double>(x[off[0]]); });
      }
      T* y = out_data<T>(*out[0]);
      const double scale = kMean ? 1.0 / static_cast<double>(loops.size()) : 1.0;
      for (size_t o = 0; o < acc.size(); ++o) y[o] = convert<T>(acc[o] * scale);
    });
    return {};
  });
}

// ---- Range --------------------------------------------------------------

// The length was fixed by inference from constant inputs; run() reads the
// values again (they are the same constants) and fills start + i * delta.
KernelResult make_range(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  return make_fn_kernel([dtype](Inputs in, Outputs out) -> Status {
    SignedTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const auto start = load(in_data<T>(*in[0])[0]);
      const auto delta = load(in_data<T>(*in[2])[0]);
      T* y = out_data<T>(*out[0]);
      // Accumulating like the ONNX reference (start, start + delta, ...).
      auto v = start;
      for (int64_t i = 0, n = out[0]->numel(); i < n; ++i, v += delta) y[i] = store<T>(v);
    });
    return {};
  });
}

}  // namespace
}  // namespace tensor

void register_elementwise_binary_kernels(std::vector<KernelEntry>& table) {
  using namespace tensor;
  const KernelEntry kernels[] = {
      {"Equal", supports_binary<EqualTypes>, make_equal},
      {"Less", supports_binary<NumericTypes>, make_less},
      {"Greater", supports_binary<NumericTypes>, make_greater},
      {"LessOrEqual", supports_binary<NumericTypes>, make_less_or_equal},
      {"GreaterOrEqual", supports_binary<NumericTypes>, make_greater_or_equal},
      {"And", supports_binary<BoolTypes>, make_and},
      {"Or", supports_binary<BoolTypes>, make_or},
      {"Xor", supports_binary<BoolTypes>, make_xor},
      {"Mod", supports_binary<NumericTypes>, make_mod},
      {"BitShift", supports_binary<UnsignedTypes>, make_bit_shift},
      {"PRelu", supports_binary<SignedTypes>, make_prelu},
      {"Where", supports_where, make_where},
      {"Sum", supports_float_inputs, make_sum<false>},
      {"Mean", supports_float_inputs, make_sum<true>},
      {"Range", supports_unary<SignedTypes>, make_range},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
}

}  // namespace caliprox::reference
