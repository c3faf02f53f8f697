// Reference kernels of the tensor-op family, part 2: ops that move data
// without arithmetic. They work on any dtype by copying elements as unsigned
// integers of the element's size.
#include <cmath>
#include <cstring>

#include "backends/reference/tensor_util.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference::tensor {
namespace {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

bool supports_any(const NodeContext& ctx) {
  return !ctx.input_types.empty() && AllTypes::contains(ctx.input_types[0].dtype);
}

// Identity, Reshape, Flatten, Squeeze, Unsqueeze: the output holds the
// input's elements in the same order; shape inputs only mattered to
// inference.
KernelResult make_copy(const NodeContext&) {
  return make_fn_kernel([](Inputs in, Outputs out) -> Status {
    copy_bytes(*in[0], *out[0]);
    return {};
  });
}

// Dropout at inference: y = x, and the optional mask is all "kept".
KernelResult make_dropout(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(float attr_ratio, tensor_ops::attr_float(ctx.node, "ratio", 0.5f));
  const std::string where = ctx.node.describe();
  std::vector<uint8_t> one(8, 0);
  if (ctx.output_types.size() > 1 && AllTypes::contains(ctx.output_types[1].dtype))
    encode_scalar(ctx.output_types[1].dtype, 1.0, one.data());
  // Whether a training_mode input is given can only be told at run time
  // when it is not a constant.
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    if (in.size() > 2 && in[2] != nullptr && in[2]->at_double(0) != 0) {
      const double ratio = in.size() > 1 && in[1] != nullptr ? in[1]->at_double(0) : attr_ratio;
      if (ratio != 0)
        return unsupported("{}: Dropout in training mode (random masking) is not supported", where);
    }
    copy_bytes(*in[0], *out[0]);
    if (out.size() > 1 && out[1] != nullptr) {
      Tensor& mask = *out[1];
      const size_t size = dtype_size(mask.dtype());
      auto* p = static_cast<uint8_t*>(mask.raw());
      for (int64_t i = 0, n = mask.numel(); i < n; ++i) std::memcpy(p + i * static_cast<int64_t>(size), one.data(), size);
    }
    return {};
  });
}

KernelResult make_shape(const NodeContext& ctx) {
  const Shape& in = ctx.input_types[0].shape;
  const auto rank = static_cast<int64_t>(in.size());
  CP_ASSIGN_OR_RETURN(int64_t start, tensor_ops::attr_int(ctx.node, "start", 0));
  if (start < 0) start += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  const int64_t count = ctx.output_types[0].shape[0];
  Shape values(in.begin() + start, in.begin() + start + count);
  return make_fn_kernel([values](Inputs, Outputs out) -> Status {
    std::copy(values.begin(), values.end(), out_data<int64_t>(*out[0]));
    return {};
  });
}

// ConstantOfShape: every element is the 'value' attribute's one element.
KernelResult make_constant_of_shape(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(Tensor fill, tensor_ops::constant_of_shape_value(ctx.node));
  return make_fn_kernel([fill](Inputs, Outputs out) -> Status {
    const size_t esize = dtype_size(fill.dtype());
    auto* dst = static_cast<uint8_t*>(out[0]->raw());
    const auto* src = static_cast<const uint8_t*>(fill.raw());
    for (int64_t i = 0; i < out[0]->numel(); ++i) std::memcpy(dst + static_cast<size_t>(i) * esize, src, esize);
    return {};
  });
}

// Concat: for each block of the axes before `axis`, each input contributes
// one contiguous run of bytes.
KernelResult make_concat(const NodeContext& ctx) {
  const Shape& out_shape = ctx.output_types[0].shape;
  CP_ASSIGN_OR_RETURN(int64_t a, tensor_ops::axis_attr(ctx.node, 0, static_cast<int64_t>(out_shape.size())));
  const auto ua = static_cast<size_t>(a);
  const int64_t outer = tensor_ops::dims_product(out_shape, 0, ua);
  const auto esize = static_cast<int64_t>(dtype_size(ctx.output_types[0].dtype));
  std::vector<int64_t> run_bytes;  // per input
  for (const auto& t : ctx.input_types) run_bytes.push_back(tensor_ops::dims_product(t.shape, ua, t.shape.size()) * esize);
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    auto* dst = static_cast<uint8_t*>(out[0]->raw());
    for (int64_t o = 0; o < outer; ++o) {
      for (size_t k = 0; k < in.size(); ++k) {
        const auto* src = static_cast<const uint8_t*>(in[k]->raw()) + o * run_bytes[k];
        if (run_bytes[k] > 0) std::memcpy(dst, src, static_cast<size_t>(run_bytes[k]));
        dst += run_bytes[k];
      }
    }
    return {};
  });
}

// Element gather through index maps; offsets < 0 take `fill` (Pad).
KernelResult mapped_copy_kernel(DType dtype, MappedLoop<1> loop, std::vector<uint8_t> fill,
                                bool fill_from_input2 = false) {
  const size_t esize = dtype_size(dtype);
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    visit_element_size(esize, [&](auto tag) {
      using U = decltype(tag);
      const auto* x = static_cast<const U*>(in[0]->raw());
      auto* y = static_cast<U*>(out[0]->raw());
      U border{};
      const void* border_src = fill_from_input2 && in.size() > 2 && in[2] != nullptr ? in[2]->raw() : fill.data();
      std::memcpy(&border, border_src, sizeof(U));
      loop.run([&](int64_t o, const auto& off) { y[o] = off[0] >= 0 ? x[off[0]] : border; });
    });
    return {};
  });
}

KernelResult make_transpose(const NodeContext& ctx) {
  const Shape& in = ctx.input_types[0].shape;
  CP_ASSIGN_OR_RETURN(auto perm, tensor_ops::resolve_perm(ctx.node, static_cast<int64_t>(in.size())));
  const Shape& out = ctx.output_types[0].shape;
  const auto strides = shape_strides(in);
  IndexMaps maps(out.size());
  for (size_t a = 0; a < out.size(); ++a) {
    const auto src_axis = static_cast<size_t>(perm[a]);
    for (int64_t i = 0; i < out[a]; ++i) maps[a].push_back(i * strides[src_axis]);
  }
  return mapped_copy_kernel(ctx.input_types[0].dtype, MappedLoop<1>(out, {std::move(maps)}), std::vector<uint8_t>(8, 0));
}

KernelResult make_slice(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto p, tensor_ops::resolve_slice(ctx.node, infer_inputs(ctx)));
  const auto strides = shape_strides(ctx.input_types[0].shape);
  IndexMaps maps(p.out_shape.size());
  for (size_t a = 0; a < p.out_shape.size(); ++a)
    for (int64_t i = 0; i < p.out_shape[a]; ++i) maps[a].push_back((p.starts[a] + i * p.steps[a]) * strides[a]);
  return mapped_copy_kernel(ctx.input_types[0].dtype, MappedLoop<1>(p.out_shape, {std::move(maps)}),
                            std::vector<uint8_t>(8, 0));
}

// Source index along one axis for Pad (kOutside on the constant border).
int64_t pad_source(tensor_ops::PadMode mode, int64_t i, int64_t len) {
  if (i >= 0 && i < len) return i;
  switch (mode) {
    case tensor_ops::PadMode::constant: return kOutside;
    case tensor_ops::PadMode::edge: return i < 0 ? 0 : len - 1;
    case tensor_ops::PadMode::reflect: {
      if (len == 1) return 0;
      // numpy's reflect (edge not repeated) folds with period 2 * (len - 1),
      // which also covers pads longer than the axis.
      const int64_t period = 2 * (len - 1);
      int64_t r = i % period;
      if (r < 0) r += period;
      return r < len ? r : period - r;
    }
  }
  return kOutside;
}

KernelResult make_pad(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto p, tensor_ops::resolve_pad(ctx.node, infer_inputs(ctx)));
  const Shape& in = ctx.input_types[0].shape;
  const auto strides = shape_strides(in);
  IndexMaps maps(in.size());
  for (size_t a = 0; a < in.size(); ++a) {
    for (int64_t i = 0; i < p.out_shape[a]; ++i) {
      const int64_t src = pad_source(p.mode, i - p.begins[a], in[a]);
      maps[a].push_back(src == kOutside ? kOutside : src * strides[a]);
    }
  }
  std::vector<uint8_t> fill(8, 0);
  encode_scalar(ctx.input_types[0].dtype, p.attr_value, fill.data());
  return mapped_copy_kernel(ctx.input_types[0].dtype, MappedLoop<1>(p.out_shape, {std::move(maps)}), std::move(fill),
                            p.value_from_input);
}

bool supports_gather(const NodeContext& ctx) {
  return supports_any(ctx) && ctx.input_types.size() == 2 &&
         (ctx.input_types[1].dtype == DType::i64 || ctx.input_types[1].dtype == DType::i32);
}

// Gather: the output is [outer, indices..., inner]; each index selects a
// contiguous run of `inner` elements.
KernelResult make_gather(const NodeContext& ctx) {
  const Shape& data = ctx.input_types[0].shape;
  CP_ASSIGN_OR_RETURN(int64_t a, tensor_ops::axis_attr(ctx.node, 0, static_cast<int64_t>(data.size())));
  const auto ua = static_cast<size_t>(a);
  const int64_t outer = tensor_ops::dims_product(data, 0, ua);
  const int64_t dim = data[ua];
  const auto run_bytes = static_cast<size_t>(tensor_ops::dims_product(data, ua + 1, data.size())) *
                         dtype_size(ctx.input_types[0].dtype);
  const DType index_type = ctx.input_types[1].dtype;
  const std::string where = ctx.node.describe();
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    const int64_t count = in[1]->numel();
    const auto* src = static_cast<const uint8_t*>(in[0]->raw());
    auto* dst = static_cast<uint8_t*>(out[0]->raw());
    for (int64_t j = 0; j < count; ++j) {
      int64_t idx = index_type == DType::i64 ? in_data<int64_t>(*in[1])[j] : in_data<int32_t>(*in[1])[j];
      if (idx < -dim || idx >= dim)
        return invalid_input("{}: index {} is out of range for axis {} of size {}", where, idx, a, dim);
    }
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < count; ++j) {
        int64_t idx = index_type == DType::i64 ? in_data<int64_t>(*in[1])[j] : in_data<int32_t>(*in[1])[j];
        if (idx < 0) idx += dim;
        if (run_bytes > 0) std::memcpy(dst, src + static_cast<size_t>(o * dim + idx) * run_bytes, run_bytes);
        dst += run_bytes;
      }
    }
    return {};
  });
}

}  // namespace

void register_movement_kernels(std::vector<KernelEntry>& table) {
  const KernelEntry kernels[] = {
      {"Identity", supports_any, make_copy},
      {"Reshape", supports_any, make_copy},
      {"Flatten", supports_any, make_copy},
      {"Squeeze", supports_any, make_copy},
      {"Unsqueeze", supports_any, make_copy},
      {"Dropout", supports_any, make_dropout},
      {"Shape", supports_any, make_shape},
      {"Concat", supports_any, make_concat},
      {"ConstantOfShape", supports_any, make_constant_of_shape},
      {"Transpose", supports_any, make_transpose},
      {"Slice", supports_any, make_slice},
      {"Pad", supports_any, make_pad},
      {"Gather", supports_gather, make_gather},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
}

}  // namespace caliprox::reference::tensor
