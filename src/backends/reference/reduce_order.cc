// Reference kernels of the reduce/normalisation family, part 3: the ops that
// walk an axis in order, CumSum and TopK.
#include <algorithm>
#include <numeric>
#include <string>

#include "backends/reference/reduce_util.h"
#include "ir/ops/reduce_ops_util.h"

namespace caliprox::reference {
namespace reduce {
namespace {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;
using tensor::NumericTypes;

// ---- CumSum ------------------------------------------------------------

// CumSum's axis may be a run-time value: it is read (without allocating)
// and checked on every run unless it was a constant at prepare time.
Result<int64_t> run_time_axis(const Tensor& axis, int64_t rank, const std::string& node_name) {
  if (axis.numel() != 1) return invalid_input("{}: input #1 'axis' must hold one value", node_name);
  const int64_t a = axis.dtype() == DType::i64 ? in_data<int64_t>(axis)[0] : in_data<int32_t>(axis)[0];
  if (a < -rank || a >= rank)
    return invalid_input("{}: input #1 'axis' {} is out of range for an input of rank {}", node_name, a, rank);
  return a < 0 ? a + rank : a;
}

// y[k] = x[0] + ... + x[k] along the axis (exclusive: up to x[k - 1];
// reverse: from the end), accumulated in double or wrapping int64.
KernelResult make_cumsum(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const Shape shape = ctx.input_types[0].shape;
  const auto rank = static_cast<int64_t>(shape.size());
  CP_ASSIGN_OR_RETURN(int64_t exclusive, tensor_ops::attr_int(ctx.node, "exclusive", 0));
  CP_ASSIGN_OR_RETURN(int64_t reverse, tensor_ops::attr_int(ctx.node, "reverse", 0));
  int64_t fixed_axis = -1;
  if (ctx.constants.size() > 1 && ctx.constants[1] != nullptr) {
    CP_ASSIGN_OR_RETURN(fixed_axis, reduce_ops::cumsum_axis(ctx.node, *ctx.constants[1], rank));
  }
  const std::string node_name = ctx.node.describe();
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    int64_t axis = fixed_axis;
    if (axis < 0) {
      CP_ASSIGN_OR_RETURN(axis, run_time_axis(*in[1], rank, node_name));
    }
    const reduce_ops::AxisBlocks b = reduce_ops::axis_blocks(shape, static_cast<size_t>(axis));
    NumericTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      for (int64_t o = 0; o < b.outer; ++o) {
        for (int64_t j = 0; j < b.inner; ++j) {
          const int64_t base = o * b.axis_len * b.inner + j;
          A acc{0};
          for (int64_t t = 0; t < b.axis_len; ++t) {
            const int64_t i = base + (reverse != 0 ? b.axis_len - 1 - t : t) * b.inner;
            const auto v = static_cast<A>(load(x[i]));
            if (exclusive != 0) y[i] = convert<T>(acc);
            acc = wrap_add(acc, v);
            if (exclusive == 0) y[i] = convert<T>(acc);
          }
        }
      }
    });
    return {};
  });
}

// ---- TopK --------------------------------------------------------------

// TopK ranks NaN above every number, in both directions: the ONNX reference
// sorts with NumPy (NaN last) and takes the largest from the end.
template <typename C> bool above(C a, C b) {
  if (is_nan(a)) return !is_nan(b);
  return !is_nan(b) && b < a;
}

// The k largest (smallest) values along the axis and their indices, in
// order; equal values keep the lower index first. With sorted = 0 the order
// is unspecified, and this kernel keeps it sorted.
KernelResult make_topk(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  CP_ASSIGN_OR_RETURN(reduce_ops::TopKParams p, reduce_ops::resolve_topk(ctx.node, infer_inputs(ctx)));
  std::vector<int64_t> order(static_cast<size_t>(p.blocks.axis_len));
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    NumericTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      T* values = out[0] != nullptr ? out_data<T>(*out[0]) : nullptr;
      int64_t* indices = out.size() > 1 && out[1] != nullptr ? out_data<int64_t>(*out[1]) : nullptr;
      const reduce_ops::AxisBlocks& b = p.blocks;
      for (int64_t o = 0; o < b.outer; ++o) {
        for (int64_t j = 0; j < b.inner; ++j) {
          const T* row = x + o * b.axis_len * b.inner + j;
          auto first = [&](int64_t l, int64_t r) {
            const auto vl = load(row[l * b.inner]);
            const auto vr = load(row[r * b.inner]);
            if (p.largest ? above(vl, vr) : above(vr, vl)) return true;
            if (p.largest ? above(vr, vl) : above(vl, vr)) return false;
            return l < r;
          };
          std::iota(order.begin(), order.end(), int64_t{0});
          std::partial_sort(order.begin(), order.begin() + p.k, order.end(), first);
          for (int64_t t = 0; t < p.k; ++t) {
            const int64_t at = (o * p.k + t) * b.inner + j;
            const int64_t k = order[static_cast<size_t>(t)];
            if (values != nullptr) values[at] = row[k * b.inner];
            if (indices != nullptr) indices[at] = k;
          }
        }
      }
    });
    return {};
  });
}

}  // namespace

void register_order_kernels(std::vector<KernelEntry>& table) {
  const KernelEntry kernels[] = {
      {"CumSum", supports_unary<NumericTypes>, make_cumsum},
      {"TopK", supports_unary<NumericTypes>, make_topk},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
}

}  // namespace reduce
}  // namespace caliprox::reference
