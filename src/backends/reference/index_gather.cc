// Reference kernels of the index / data-movement family, part 2: gathers
// and scatters driven by index tensors (GatherElements, ScatterElements,
// Scatter, GatherND, ScatterND). Indices are checked against their axis
// before anything is read or written; negative ones count from the end.
#include "backends/reference/index_kernels.h"
#include "ir/ops/index_ops.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference::index {
namespace {

using index_ops::ScatterReduction;
using tensor::IndexMaps;

bool supports_gather(const NodeContext& ctx) {
  return !ctx.input_types.empty() && tensor::AllTypes::contains(ctx.input_types[0].dtype) && index_input(ctx, 1);
}

// Add and mul need arithmetic: numeric types only; none copies any type.
bool supports_scatter(const NodeContext& ctx) {
  if (!supports_gather(ctx)) return false;
  auto r = index_ops::resolve_scatter_reduction(ctx.node);
  return !r.ok() || r.value() == ScatterReduction::none || tensor::NumericTypes::contains(ctx.input_types[0].dtype);
}

// dst = src, dst + src or dst * src (in the compute type of T).
template <typename T> void combine(ScatterReduction r, T& dst, T src) {
  using tensor::load;
  using tensor::store;
  switch (r) {
    case ScatterReduction::none: dst = src; break;
    case ScatterReduction::add: dst = store<T>(load(dst) + load(src)); break;
    case ScatterReduction::mul: dst = store<T>(load(dst) * load(src)); break;
  }
}

// Calls fn(T{}) with the element type to scatter as: the unsigned integer of
// the element's size when only copying, the real type when reducing.
template <typename F> void visit_scatter_type(DType dtype, ScatterReduction r, F&& fn) {
  if (r == ScatterReduction::none) tensor::visit_element_size(dtype_size(dtype), fn);
  else tensor::NumericTypes::visit(dtype, fn);
}

// Every index in [-dim, dim); `where` names the node.
Status check_indices(const Tensor& indices, int64_t dim, int64_t axis, const std::string& where) {
  for (int64_t j = 0, n = indices.numel(); j < n; ++j) {
    const int64_t i = index_at(indices, j);
    if (i < -dim || i >= dim)
      return invalid_input("{}: index {} is out of range for axis {} of size {}", where, i, axis, dim);
  }
  return {};
}

// GatherElements / ScatterElements: walking the indices' shape, the data
// offset of every axis but `axis`; the index adds index * stride(axis).
struct ElementsPlan {
  int64_t axis = 0;
  int64_t dim = 0;
  int64_t stride = 0;
  tensor::MappedLoop<1> loop;
};

Result<ElementsPlan> plan_elements(const NodeContext& ctx) {
  const Shape& data = ctx.input_types[0].shape;
  const Shape& indices = ctx.input_types[1].shape;
  ElementsPlan p;
  CP_ASSIGN_OR_RETURN(p.axis, tensor_ops::axis_attr(ctx.node, 0, static_cast<int64_t>(data.size())));
  const auto strides = shape_strides(data);
  IndexMaps maps(indices.size());
  for (size_t a = 0; a < indices.size(); ++a)
    for (int64_t i = 0; i < indices[a]; ++i) maps[a].push_back(a == static_cast<size_t>(p.axis) ? 0 : i * strides[a]);
  p.dim = data[static_cast<size_t>(p.axis)];
  p.stride = strides[static_cast<size_t>(p.axis)];
  p.loop = tensor::MappedLoop<1>(indices, {std::move(maps)});
  return p;
}

KernelResult make_gather_elements(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(ElementsPlan p, plan_elements(ctx));
  const size_t esize = dtype_size(ctx.input_types[0].dtype);
  const std::string where = ctx.node.describe();
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    CP_TRY(check_indices(*in[1], p.dim, p.axis, where));
    tensor::visit_element_size(esize, [&](auto tag) {
      using U = decltype(tag);
      const auto* x = static_cast<const U*>(in[0]->raw());
      auto* y = static_cast<U*>(out[0]->raw());
      p.loop.run([&](int64_t o, const auto& off) {
        int64_t i = index_at(*in[1], o);
        if (i < 0) i += p.dim;
        y[o] = x[off[0] + i * p.stride];
      });
    });
    return {};
  });
}

KernelResult make_scatter_elements(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(ElementsPlan p, plan_elements(ctx));
  CP_ASSIGN_OR_RETURN(ScatterReduction r, index_ops::resolve_scatter_reduction(ctx.node));
  const DType dtype = ctx.input_types[0].dtype;
  const std::string where = ctx.node.describe();
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    CP_TRY(check_indices(*in[1], p.dim, p.axis, where));
    tensor::copy_bytes(*in[0], *out[0]);
    visit_scatter_type(dtype, r, [&](auto tag) {
      using T = decltype(tag);
      const auto* updates = static_cast<const T*>(in[2]->raw());
      auto* y = static_cast<T*>(out[0]->raw());
      // In index order, so with 'none' the last of duplicate indices wins.
      p.loop.run([&](int64_t o, const auto& off) {
        int64_t i = index_at(*in[1], o);
        if (i < 0) i += p.dim;
        combine(r, y[off[0] + i * p.stride], updates[o]);
      });
    });
    return {};
  });
}

// GatherND / ScatterND: `tuples` index tuples of `depth` indices per batch,
// each selecting a slice of `slice` contiguous elements of the data.
struct NdPlan {
  int64_t batches = 1;
  int64_t batch_stride = 0;  // elements of the data per batch
  int64_t tuples = 1;
  int64_t depth = 1;
  int64_t slice = 1;
  std::vector<int64_t> dims;     // data axes the tuple indexes
  std::vector<int64_t> strides;  // their strides in elements
};

NdPlan plan_nd(const Shape& data, const Shape& indices, int64_t batch_dims) {
  NdPlan p;
  const auto b = static_cast<size_t>(batch_dims);
  p.depth = indices.back();
  const auto m = static_cast<size_t>(p.depth);
  p.batches = tensor_ops::dims_product(data, 0, b);
  p.batch_stride = tensor_ops::dims_product(data, b, data.size());
  p.tuples = tensor_ops::dims_product(indices, b, indices.size() - 1);
  p.slice = tensor_ops::dims_product(data, b + m, data.size());
  const auto strides = shape_strides(data);
  p.dims.assign(data.begin() + static_cast<std::ptrdiff_t>(b), data.begin() + static_cast<std::ptrdiff_t>(b + m));
  p.strides.assign(strides.begin() + static_cast<std::ptrdiff_t>(b),
                   strides.begin() + static_cast<std::ptrdiff_t>(b + m));
  return p;
}

// Element offset (within its batch) of index tuple `t` (counted over all
// batches), or an error naming the index out of range.
Result<int64_t> tuple_offset(const NdPlan& p, const Tensor& indices, int64_t t, const std::string& where) {
  int64_t offset = 0;
  for (size_t k = 0; k < p.dims.size(); ++k) {
    int64_t i = index_at(indices, t * p.depth + static_cast<int64_t>(k));
    if (i < -p.dims[k] || i >= p.dims[k])
      return invalid_input("{}: index {} is out of range for a dimension of size {}", where, i, p.dims[k]);
    if (i < 0) i += p.dims[k];
    offset += i * p.strides[k];
  }
  return offset;
}

KernelResult make_gather_nd(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(int64_t batch_dims, tensor_ops::attr_int(ctx.node, "batch_dims", 0));
  const NdPlan p = plan_nd(ctx.input_types[0].shape, ctx.input_types[1].shape, batch_dims);
  const size_t esize = dtype_size(ctx.input_types[0].dtype);
  const std::string where = ctx.node.describe();
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    const auto* x = static_cast<const uint8_t*>(in[0]->raw());
    auto* y = static_cast<uint8_t*>(out[0]->raw());
    const auto run_bytes = static_cast<size_t>(p.slice) * esize;
    for (int64_t batch = 0; batch < p.batches; ++batch) {
      for (int64_t t = 0; t < p.tuples; ++t) {
        CP_ASSIGN_OR_RETURN(int64_t offset, tuple_offset(p, *in[1], batch * p.tuples + t, where));
        if (run_bytes > 0) std::memcpy(y, x + static_cast<size_t>(batch * p.batch_stride + offset) * esize, run_bytes);
        y += run_bytes;
      }
    }
    return {};
  });
}

KernelResult make_scatter_nd(const NodeContext& ctx) {
  const NdPlan p = plan_nd(ctx.input_types[0].shape, ctx.input_types[1].shape, 0);
  CP_ASSIGN_OR_RETURN(ScatterReduction r, index_ops::resolve_scatter_reduction(ctx.node));
  const DType dtype = ctx.input_types[0].dtype;
  const std::string where = ctx.node.describe();
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    for (int64_t t = 0; t < p.tuples; ++t) CP_TRY(tuple_offset(p, *in[1], t, where).status());
    tensor::copy_bytes(*in[0], *out[0]);
    visit_scatter_type(dtype, r, [&](auto tag) {
      using T = decltype(tag);
      const auto* updates = static_cast<const T*>(in[2]->raw());
      auto* y = static_cast<T*>(out[0]->raw());
      for (int64_t t = 0; t < p.tuples; ++t) {
        const int64_t offset = tuple_offset(p, *in[1], t, where).value();
        for (int64_t s = 0; s < p.slice; ++s) combine(r, y[offset + s], updates[t * p.slice + s]);
      }
    });
    return {};
  });
}

}  // namespace

void register_gather_kernels(std::vector<KernelEntry>& table) {
  const KernelEntry kernels[] = {
      {"GatherElements", supports_gather, make_gather_elements},
      {"ScatterElements", supports_scatter, make_scatter_elements},
      {"Scatter", supports_scatter, make_scatter_elements},
      {"GatherND", supports_gather, make_gather_nd},
      {"ScatterND", supports_scatter, make_scatter_nd},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
}

}  // namespace caliprox::reference::index
