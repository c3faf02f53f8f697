// Reference kernels of the reduce/normalisation family, part 1: the Reduce
// ops (ReduceSum ... ReduceSumSquare, ReduceMean) and ArgMax/ArgMin. The
// Softmax-like ops and the normalisations are in reduce_norm.cc, CumSum and
// TopK in reduce_order.cc.
#include <cmath>
#include <limits>

#include "backends/reference/reduce_util.h"
#include "ir/ops/reduce_ops_util.h"

namespace caliprox::reference {
namespace reduce {
namespace {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;
using reduce_ops::ReduceKind;
using tensor::NumericTypes;

// ---- the Reduce ops ----------------------------------------------------

// An accumulator's start, which is also what an empty group reduces to
// (through finish()).
template <typename T> acc_t<T> initial(ReduceKind kind) {
  using A = acc_t<T>;
  using C = compute_t<T>;
  switch (kind) {
    case ReduceKind::max:
    case ReduceKind::log_sum_exp:  // its first pass is the maximum
      if constexpr (std::is_integral_v<A>) return std::numeric_limits<C>::lowest();
      else return -std::numeric_limits<A>::infinity();
    case ReduceKind::min:
      if constexpr (std::is_integral_v<A>) return std::numeric_limits<C>::max();
      else return std::numeric_limits<A>::infinity();
    case ReduceKind::prod: return A{1};
    default: return A{0};
  }
}

// Adds one element to an accumulator. Max and Min propagate NaN (NumPy's
// maximum.reduce, which the ONNX reference uses).
template <typename A> A step(ReduceKind kind, A acc, A v) {
  switch (kind) {
    case ReduceKind::sum:
    case ReduceKind::mean:
    case ReduceKind::log_sum: return wrap_add(acc, v);
    case ReduceKind::max:
    case ReduceKind::log_sum_exp: return is_nan(v) || acc < v ? v : acc;
    case ReduceKind::min: return is_nan(v) || v < acc ? v : acc;
    case ReduceKind::prod: return wrap_mul(acc, v);
    case ReduceKind::l1: return wrap_add(acc, magnitude(v));
    case ReduceKind::l2:
    case ReduceKind::sum_square: return wrap_add(acc, wrap_mul(v, v));
  }
  return acc;
}

// One output element from its accumulator; `exp_sum` is log_sum_exp's sum
// of exp(x - max), `count` the group's size.
template <typename T> T finish(ReduceKind kind, acc_t<T> acc, double exp_sum, int64_t count) {
  const auto a = static_cast<double>(acc);
  switch (kind) {
    case ReduceKind::mean:
      return convert<T>(count == 0 ? std::numeric_limits<double>::quiet_NaN() : a / static_cast<double>(count));
    case ReduceKind::l2: return convert<T>(std::sqrt(a));
    case ReduceKind::log_sum: return convert<T>(std::log(a));
    case ReduceKind::log_sum_exp:
      if (count == 0) return convert<T>(-std::numeric_limits<double>::infinity());
      // An infinite or NaN maximum is the result (exp(inf - inf) would be NaN).
      return convert<T>(std::isfinite(a) ? a + std::log(exp_sum) : a);
    default: return convert<T>(acc);
  }
}

KernelResult make_reduce(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const ReduceKind kind = reduce_ops::reduce_kind(ctx.node.op_type).value();
  CP_ASSIGN_OR_RETURN(auto params, tensor_ops::resolve_reduce(ctx.node, infer_inputs(ctx)));
  const Shape& in_shape = ctx.input_types[0].shape;
  // Each input element goes into the group of the output element it reduces
  // to: the output offset map is 0 along reduced axes.
  Shape kept = in_shape;
  for (int64_t a : params.axes) kept[static_cast<size_t>(a)] = 1;
  tensor::MappedLoop<1> loop(in_shape, {tensor::broadcast_maps(kept, in_shape)});
  const auto groups = static_cast<size_t>(shape_numel(kept));
  const int64_t count = groups == 0 ? 0 : shape_numel(in_shape) / static_cast<int64_t>(groups);
  const bool floating = tensor::FloatTypes::contains(dtype);
  const bool is_signed = tensor::SignedTypes::contains(dtype);
  std::vector<double> acc_d(floating ? groups : 0);
  std::vector<int64_t> acc_i(!floating && is_signed ? groups : 0);
  std::vector<uint64_t> acc_u(!floating && !is_signed ? groups : 0);
  std::vector<double> exp_sums(kind == ReduceKind::log_sum_exp ? groups : 0);
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    NumericTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      std::vector<A>& acc = [&]() -> std::vector<A>& {
        if constexpr (std::is_same_v<A, double>) return acc_d;
        else if constexpr (std::is_same_v<A, int64_t>) return acc_i;
        else return acc_u;
      }();
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      std::fill(acc.begin(), acc.end(), initial<T>(kind));
      loop.run([&](int64_t i, const auto& off) {
        A& a = acc[static_cast<size_t>(off[0])];
        a = step(kind, a, static_cast<A>(load(x[i])));
      });
      if (kind == ReduceKind::log_sum_exp) {
        // Second pass: exp relative to the group's maximum cannot overflow.
        std::fill(exp_sums.begin(), exp_sums.end(), 0.0);
        loop.run([&](int64_t i, const auto& off) {
          const auto o = static_cast<size_t>(off[0]);
          const auto m = static_cast<double>(acc[o]);
          if (std::isfinite(m)) exp_sums[o] += std::exp(static_cast<double>(load(x[i])) - m);
        });
      }
      for (size_t o = 0; o < groups; ++o) y[o] = finish<T>(kind, acc[o], exp_sums.empty() ? 0.0 : exp_sums[o], count);
    });
    return {};
  });
}

// ---- ArgMax / ArgMin ---------------------------------------------------

// The index of the first (select_last_index: last) largest or smallest
// value along the axis; NaN counts as both (NumPy's argmax / argmin).
template <bool kLargest> KernelResult make_arg(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  CP_ASSIGN_OR_RETURN(reduce_ops::ArgParams p, reduce_ops::resolve_arg(ctx.node, ctx.input_types[0].shape));
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    NumericTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      int64_t* y = out_data<int64_t>(*out[0]);
      const reduce_ops::AxisBlocks& b = p.blocks;
      for (int64_t o = 0; o < b.outer; ++o) {
        for (int64_t j = 0; j < b.inner; ++j) {
          const T* row = x + o * b.axis_len * b.inner + j;
          int64_t best = 0;
          auto best_v = load(row[0]);
          for (int64_t k = 1; k < b.axis_len; ++k) {
            const auto v = load(row[k * b.inner]);
            if (beyond(v, best_v, kLargest) || (p.select_last && level(v, best_v))) {
              best = k;
              best_v = v;
            }
          }
          y[o * b.inner + j] = best;
        }
      }
    });
    return {};
  });
}

}  // namespace
}  // namespace reduce

void register_reduce_kernels(std::vector<KernelEntry>& table) {
  using namespace reduce;
  const KernelEntry kernels[] = {
      {"ReduceSum", supports_unary<NumericTypes>, make_reduce},
      {"ReduceMean", supports_unary<NumericTypes>, make_reduce},
      {"ReduceMax", supports_unary<NumericTypes>, make_reduce},
      {"ReduceMin", supports_unary<NumericTypes>, make_reduce},
      {"ReduceProd", supports_unary<NumericTypes>, make_reduce},
      {"ReduceL1", supports_unary<NumericTypes>, make_reduce},
      {"ReduceL2", supports_unary<NumericTypes>, make_reduce},
      {"ReduceLogSum", supports_unary<NumericTypes>, make_reduce},
      {"ReduceLogSumExp", supports_unary<NumericTypes>, make_reduce},
      {"ReduceSumSquare", supports_unary<NumericTypes>, make_reduce},
      {"ArgMax", supports_unary<NumericTypes>, make_arg<true>},
      {"ArgMin", supports_unary<NumericTypes>, make_arg<false>},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
  register_norm_kernels(table);
  register_order_kernels(table);
}

}  // namespace caliprox::reference
