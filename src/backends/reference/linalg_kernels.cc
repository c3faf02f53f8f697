// Linear-algebra reference kernels. Einsum: one loop over every combination
// of the equation's indices (ir/ops/einsum_params.h), multiplying the
// operands' elements and summing into the output element the output indices
// select; floating types accumulate in double, integers in their own type.
// Det: LU decomposition with partial pivoting, in double.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backends/reference/reference.h"
#include "backends/reference/tensor_util.h"
#include "ir/ops/einsum_params.h"

namespace caliprox::reference {

namespace {

using EinsumTypes = tensor::TypeSet<float, double, tensor::Half, int32_t, int64_t, uint32_t, uint64_t>;

// Per operand (and the output, last): the element stride of each label;
// repeated labels (diagonals) add their axes' strides, broadcast axes none.
std::vector<std::vector<int64_t>> label_strides(const einsum::Plan& plan, const std::vector<Shape>& shapes,
                                                const Shape& out_shape) {
  std::vector<std::vector<int64_t>> strides;
  auto add = [&](const std::vector<int>& labels, const Shape& shape) {
    std::vector<int64_t> s(plan.label_size.size(), 0);
    const std::vector<int64_t> axis_stride = shape_strides(shape);
    for (size_t a = 0; a < labels.size(); ++a)
      if (shape[a] != 1 || plan.label_size[static_cast<size_t>(labels[a])] == 1)
        s[static_cast<size_t>(labels[a])] += axis_stride[a];
    strides.push_back(std::move(s));
  };
  for (size_t i = 0; i < shapes.size(); ++i) add(plan.operands[i], shapes[i]);
  add(plan.output, out_shape);
  return strides;
}

bool supports_einsum(const NodeContext& ctx) { return EinsumTypes::contains(tensor::in_type(ctx)); }

Result<std::unique_ptr<Kernel>> make_einsum(const NodeContext& ctx) {
  std::vector<Shape> shapes;
  for (const auto& t : ctx.input_types) shapes.push_back(t.shape);
  CP_ASSIGN_OR_RETURN(einsum::Plan plan, einsum::make_plan(ctx.node, shapes));
  std::vector<int64_t> sizes;  // of the labels the equation uses
  std::vector<size_t> used;
  for (size_t l = 0; l < plan.label_size.size(); ++l)
    if (plan.label_size[l] >= 0) {
      used.push_back(l);
      sizes.push_back(plan.label_size[l]);
    }
  const auto all = label_strides(plan, shapes, plan.output_shape);
  std::vector<std::vector<int64_t>> strides;  // [operand or output][used label]
  for (const auto& s : all) {
    std::vector<int64_t> compact;
    for (size_t l : used) compact.push_back(s[l]);
    strides.push_back(std::move(compact));
  }
  const DType dtype = ctx.input_types[0].dtype;
  const int64_t out_numel = shape_numel(plan.output_shape);
  return tensor::make_fn_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) -> Status {
    EinsumTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      using C = tensor::compute_t<T>;
      using Acc = std::conditional_t<std::is_floating_point_v<C>, double, C>;
      std::vector<Acc> acc(static_cast<size_t>(out_numel), Acc{0});
      const size_t n_in = in.size();
      std::vector<int64_t> index(sizes.size(), 0), offset(n_in + 1, 0);
      const bool empty = std::any_of(sizes.begin(), sizes.end(), [](int64_t s) { return s == 0; });
      for (bool more = !empty; more;) {
        Acc product{1};
        for (size_t i = 0; i < n_in; ++i)
          product *= static_cast<Acc>(tensor::load(tensor::in_data<T>(*in[i])[offset[i]]));
        acc[static_cast<size_t>(offset[n_in])] += product;
        more = false;  // odometer over the labels, the last fastest
        for (size_t d = sizes.size(); d-- > 0;) {
          for (size_t i = 0; i <= n_in; ++i) offset[i] += strides[i][d];
          if (++index[d] < sizes[d]) {
            more = true;
            break;
          }
          for (size_t i = 0; i <= n_in; ++i) offset[i] -= strides[i][d] * sizes[d];
          index[d] = 0;
        }
      }
      T* y = tensor::out_data<T>(*out[0]);
      for (int64_t o = 0; o < out_numel; ++o) y[o] = tensor::store<T>(static_cast<C>(acc[static_cast<size_t>(o)]));
    });
    return {};
  });
}

bool supports_det(const NodeContext& ctx) {
  return tensor::TypeSet<float, double, tensor::Half>::contains(tensor::in_type(ctx));
}

// The determinant of the n x n row-major matrix a (overwritten).
double determinant(double* a, int64_t n) {
  double det = 1;
  for (int64_t k = 0; k < n; ++k) {
    int64_t pivot = k;
    for (int64_t r = k + 1; r < n; ++r)
      if (std::fabs(a[r * n + k]) > std::fabs(a[pivot * n + k])) pivot = r;
    if (a[pivot * n + k] == 0) return 0;
    if (pivot != k) {
      for (int64_t c = 0; c < n; ++c) std::swap(a[k * n + c], a[pivot * n + c]);
      det = -det;
    }
    det *= a[k * n + k];
    for (int64_t r = k + 1; r < n; ++r) {
      const double f = a[r * n + k] / a[k * n + k];
      for (int64_t c = k; c < n; ++c) a[r * n + c] -= f * a[k * n + c];
    }
  }
  return det;
}

Result<std::unique_ptr<Kernel>> make_det(const NodeContext& ctx) {
  const int64_t n = ctx.input_types[0].shape.back();
  return tensor::make_fn_kernel([n](std::span<const Tensor* const> in, std::span<Tensor* const> out) -> Status {
    std::vector<double> a = in[0]->to_double_vector();
    Tensor& y = *out[0];
    const size_t esize = dtype_size(y.dtype());
    for (int64_t m = 0; m < y.numel(); ++m)
      tensor::encode_scalar(y.dtype(), determinant(a.data() + m * n * n, n),
                            static_cast<std::byte*>(y.raw()) + static_cast<size_t>(m) * esize);
    return {};
  });
}

}  // namespace

void register_linalg_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"Einsum", supports_einsum, make_einsum});
  table.push_back({"Det", supports_det, make_det});
}

}  // namespace caliprox::reference
