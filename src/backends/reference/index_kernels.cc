// Reference kernels of the index / data-movement family, part 1: Split,
// Tile, Expand, DepthToSpace, SpaceToDepth, Trilu, EyeLike, NonZero, OneHot,
// ReverseSequence and Compress (whose constant condition was resolved at
// inference, see ir/ops/index_ops.h). They copy elements of any dtype as
// unsigned integers of the element's size. Gathers and scatters are in
// index_gather.cc.
#include "backends/reference/index_kernels.h"
#include "ir/ops/index_ops.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference {
namespace index {

using tensor::IndexMaps;

KernelResult mapped_copy(DType dtype, Shape view_shape, IndexMaps maps) {
  const size_t esize = dtype_size(dtype);
  tensor::MappedLoop<1> loop(std::move(view_shape), {std::move(maps)});
  return tensor::make_fn_kernel([esize, loop](Inputs in, Outputs out) mutable -> Status {
    tensor::visit_element_size(esize, [&](auto tag) {
      using U = decltype(tag);
      const auto* x = static_cast<const U*>(in[0]->raw());
      auto* y = static_cast<U*>(out[0]->raw());
      loop.run([&](int64_t o, const auto& off) { y[o] = x[off[0]]; });
    });
    return {};
  });
}

bool index_input(const NodeContext& ctx, size_t i) {
  return i < ctx.input_types.size() &&
         (ctx.input_types[i].dtype == DType::i64 || ctx.input_types[i].dtype == DType::i32);
}

namespace {

bool supports_any(const NodeContext& ctx) {
  return !ctx.input_types.empty() && tensor::AllTypes::contains(ctx.input_types[0].dtype);
}

// Split: for each block of the axes before `axis`, each output takes one
// contiguous run of the input; omitted outputs skip theirs.
KernelResult make_split(const NodeContext& ctx) {
  const Shape& in = ctx.input_types[0].shape;
  CP_ASSIGN_OR_RETURN(int64_t a, tensor_ops::axis_attr(ctx.node, 0, static_cast<int64_t>(in.size())));
  const auto ua = static_cast<size_t>(a);
  const int64_t outer = tensor_ops::dims_product(in, 0, ua);
  const auto esize = static_cast<int64_t>(dtype_size(ctx.input_types[0].dtype));
  std::vector<int64_t> run_bytes;  // per output
  for (const auto& t : ctx.output_types)
    run_bytes.push_back(tensor_ops::dims_product(t.shape, ua, t.shape.size()) * esize);
  return tensor::make_fn_kernel([=](Inputs inputs, Outputs out) -> Status {
    const auto* src = static_cast<const uint8_t*>(inputs[0]->raw());
    for (int64_t o = 0; o < outer; ++o) {
      for (size_t k = 0; k < out.size(); ++k) {
        if (out[k] != nullptr && run_bytes[k] > 0)
          std::memcpy(static_cast<uint8_t*>(out[k]->raw()) + o * run_bytes[k], src, static_cast<size_t>(run_bytes[k]));
        src += run_bytes[k];
      }
    }
    return {};
  });
}

// Tile: output index i along an axis reads input index i mod the input's
// length there.
KernelResult make_tile(const NodeContext& ctx) {
  const Shape& in = ctx.input_types[0].shape;
  const Shape& out = ctx.output_types[0].shape;
  const auto strides = shape_strides(in);
  IndexMaps maps(out.size());
  for (size_t a = 0; a < out.size(); ++a)
    for (int64_t i = 0; i < out[a]; ++i) maps[a].push_back((i % in[a]) * strides[a]);
  return mapped_copy(ctx.input_types[0].dtype, out, std::move(maps));
}

KernelResult make_expand(const NodeContext& ctx) {
  const Shape& out = ctx.output_types[0].shape;
  return mapped_copy(ctx.input_types[0].dtype, out, tensor::broadcast_maps(ctx.input_types[0].shape, out));
}

// DepthToSpace: the output [N, C', H*b, W*b] walked as [N, C', H, b, W, b]
// (same row-major order); output (n, c, h, i, w, j) reads input channel
// (i*b + j)*C' + c (DCR) or c*b*b + i*b + j (CRD) at (h, w).
KernelResult make_depth_to_space(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto p, index_ops::resolve_depth_to_space(ctx.node));
  const Shape& in = ctx.input_types[0].shape;
  const int64_t b = p.blocksize, c_out = in[1] / (b * b), h = in[2], w = in[3];
  const int64_t plane = h * w;
  const bool dcr = p.mode == index_ops::DepthMode::dcr;
  const Shape view = {in[0], c_out, h, b, w, b};
  const int64_t strides[] = {in[1] * plane,
                             dcr ? plane : b * b * plane,
                             w,
                             dcr ? b * c_out * plane : b * plane,
                             1,
                             dcr ? c_out * plane : plane};
  IndexMaps maps(view.size());
  for (size_t a = 0; a < view.size(); ++a)
    for (int64_t i = 0; i < view[a]; ++i) maps[a].push_back(i * strides[a]);
  return mapped_copy(ctx.input_types[0].dtype, view, std::move(maps));
}

// SpaceToDepth: the output [N, C*b*b, H', W'] walked as [N, b, b, C, H', W'];
// output (n, i, j, c, h, w) reads input (n, c, h*b + i, w*b + j).
KernelResult make_space_to_depth(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto p, index_ops::resolve_depth_to_space(ctx.node));
  const Shape& in = ctx.input_types[0].shape;
  const int64_t b = p.blocksize, c = in[1], h = in[2], w = in[3];
  const Shape view = {in[0], b, b, c, h / b, w / b};
  const int64_t strides[] = {c * h * w, w, 1, h * w, b * w, b};
  IndexMaps maps(view.size());
  for (size_t a = 0; a < view.size(); ++a)
    for (int64_t i = 0; i < view[a]; ++i) maps[a].push_back(i * strides[a]);
  return mapped_copy(ctx.input_types[0].dtype, view, std::move(maps));
}

// Trilu: per matrix of the last two axes, element (i, j) is kept when
// j - i >= k (upper) or j - i <= k (lower), else zero. k (input #1) is read
// at run time: it does not change the shape.
KernelResult make_trilu(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(int64_t upper, tensor_ops::attr_int(ctx.node, "upper", 1));
  const Shape& shape = ctx.input_types[0].shape;
  const int64_t rows = shape[shape.size() - 2], cols = shape.back();
  const int64_t matrices = tensor_ops::dims_product(shape, 0, shape.size() - 2);
  const size_t esize = dtype_size(ctx.input_types[0].dtype);
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    const int64_t k = in.size() > 1 && in[1] != nullptr ? index_at(*in[1], 0) : 0;
    tensor::visit_element_size(esize, [&](auto tag) {
      using U = decltype(tag);
      const auto* x = static_cast<const U*>(in[0]->raw());
      auto* y = static_cast<U*>(out[0]->raw());
      for (int64_t m = 0, o = 0; m < matrices; ++m)
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j, ++o) {
            const bool keep = upper != 0 ? j - i >= k : j - i <= k;
            y[o] = keep ? x[o] : U{0};
          }
    });
    return {};
  });
}

// EyeLike: ones on the k-th diagonal (y[i][i + k]), zeros elsewhere.
KernelResult make_eye_like(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(int64_t k, tensor_ops::attr_int(ctx.node, "k", 0));
  const DType dtype = ctx.output_types[0].dtype;
  const int64_t rows = ctx.output_types[0].shape[0], cols = ctx.output_types[0].shape[1];
  const size_t esize = dtype_size(dtype);
  std::vector<uint8_t> one(8, 0);
  tensor::encode_scalar(dtype, 1.0, one.data());
  return tensor::make_fn_kernel([=](Inputs, Outputs out) -> Status {
    auto* y = static_cast<uint8_t*>(out[0]->raw());
    if (out[0]->nbytes() > 0) std::memset(y, 0, out[0]->nbytes());
    for (int64_t i = 0; i < rows; ++i)
      if (i + k >= 0 && i + k < cols) std::memcpy(y + static_cast<size_t>(i * cols + i + k) * esize, one.data(), esize);
    return {};
  });
}

// NonZero: the coordinates of each non-zero element, in row-major order,
// one row per axis (the count was fixed at inference from the constant).
KernelResult make_non_zero(const NodeContext& ctx) {
  const Shape shape = ctx.input_types[0].shape;
  return tensor::make_fn_kernel([shape](Inputs in, Outputs out) -> Status {
    const int64_t count = out[0]->shape()[1];
    int64_t* y = out[0]->data<int64_t>();
    const std::vector<int64_t> strides = shape_strides(shape);
    int64_t k = 0;
    for (int64_t i = 0; i < in[0]->numel() && k < count; ++i) {
      if (in[0]->at_double(i) == 0) continue;
      for (size_t d = 0; d < shape.size(); ++d) y[static_cast<int64_t>(d) * count + k] = (i / strides[d]) % shape[d];
      ++k;
    }
    return {};
  });
}

bool supports_eye_like(const NodeContext& ctx) {
  return supports_any(ctx) && !ctx.output_types.empty() && tensor::AllTypes::contains(ctx.output_types[0].dtype);
}

bool supports_one_hot(const NodeContext& ctx) {
  return ctx.input_types.size() == 3 && tensor::NumericTypes::contains(ctx.input_types[0].dtype) &&
         tensor::AllTypes::contains(ctx.input_types[2].dtype);
}

// OneHot: the output is [outer, depth, inner] around the indices' [outer,
// inner]; element (o, d, i) is on_value when index (o, i) is d. Negative
// indices count from the end from opset 11; indices out of range give a
// row of off_value.
KernelResult make_one_hot(const NodeContext& ctx) {
  const Shape& out_shape = ctx.output_types[0].shape;
  CP_ASSIGN_OR_RETURN(int64_t axis, index_ops::resolve_one_hot_axis(ctx.node, static_cast<int64_t>(out_shape.size())));
  const auto ua = static_cast<size_t>(axis);
  const int64_t outer = tensor_ops::dims_product(out_shape, 0, ua);
  const int64_t depth = out_shape[ua];
  const int64_t inner = tensor_ops::dims_product(out_shape, ua + 1, out_shape.size());
  const bool wrap_negative = tensor_ops::node_opset(ctx.node) >= 11;
  const DType index_type = ctx.input_types[0].dtype;
  const size_t esize = dtype_size(ctx.output_types[0].dtype);
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    tensor::NumericTypes::visit(index_type, [&](auto index_tag) {
      using I = decltype(index_tag);
      const I* indices = tensor::in_data<I>(*in[0]);
      tensor::visit_element_size(esize, [&](auto tag) {
        using U = decltype(tag);
        const auto* values = static_cast<const U*>(in[2]->raw());
        auto* y = static_cast<U*>(out[0]->raw());
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            auto index = tensor::convert<int64_t>(indices[o * inner + i]);
            if (index < 0 && wrap_negative) index += depth;
            for (int64_t d = 0; d < depth; ++d) y[(o * depth + d) * inner + i] = values[d == index ? 1 : 0];
          }
      });
    });
    return {};
  });
}

bool supports_reverse_sequence(const NodeContext& ctx) {
  return ctx.input_types.size() == 2 && tensor::AllTypes::contains(ctx.input_types[0].dtype) &&
         ctx.input_types[1].dtype == DType::i64;
}

// ReverseSequence: along the time axis, the first sequence_lens[b] elements
// of batch b are reversed; the rest are copied.
KernelResult make_reverse_sequence(const NodeContext& ctx) {
  const Shape& shape = ctx.input_types[0].shape;
  CP_ASSIGN_OR_RETURN(int64_t batch_axis, tensor_ops::attr_int(ctx.node, "batch_axis", 1));
  CP_ASSIGN_OR_RETURN(int64_t time_axis, tensor_ops::attr_int(ctx.node, "time_axis", 0));
  const auto strides = shape_strides(shape);
  const int64_t batch_stride = strides[static_cast<size_t>(batch_axis)];
  const int64_t batch_len = shape[static_cast<size_t>(batch_axis)];
  const int64_t time_stride = strides[static_cast<size_t>(time_axis)];
  const int64_t time_len = shape[static_cast<size_t>(time_axis)];
  const size_t esize = dtype_size(ctx.input_types[0].dtype);
  const std::string where = ctx.node.describe();
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    const auto* lens = tensor::in_data<int64_t>(*in[1]);
    for (int64_t b = 0; b < batch_len; ++b)
      if (lens[b] < 0 || lens[b] > time_len)
        return invalid_input("{}: sequence length {} is outside [0, {}]", where, lens[b], time_len);
    tensor::visit_element_size(esize, [&](auto tag) {
      using U = decltype(tag);
      const auto* x = static_cast<const U*>(in[0]->raw());
      auto* y = static_cast<U*>(out[0]->raw());
      for (int64_t o = 0, n = in[0]->numel(); o < n; ++o) {
        const int64_t t = (o / time_stride) % time_len;
        const int64_t len = lens[(o / batch_stride) % batch_len];
        y[o] = t < len ? x[o + (len - 1 - 2 * t) * time_stride] : x[o];
      }
    });
    return {};
  });
}

bool supports_compress(const NodeContext& ctx) {
  return ctx.input_types.size() == 2 && tensor::AllTypes::contains(ctx.input_types[0].dtype);
}

// Compress: for each block of the axes before `axis` (one block when the
// input is flattened), the kept indices' runs of the axes after it.
KernelResult make_compress(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto p, index_ops::resolve_compress(ctx.node, infer_inputs(ctx)));
  const Shape& shape = ctx.input_types[0].shape;
  const auto ua = static_cast<size_t>(p.axis);
  const int64_t outer = p.axis < 0 ? 1 : tensor_ops::dims_product(shape, 0, ua);
  const int64_t inner = p.axis < 0 ? 1 : tensor_ops::dims_product(shape, ua + 1, shape.size());
  const auto len = static_cast<int64_t>(p.keep.size());
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < len; ++i)
    if (p.keep[static_cast<size_t>(i)]) kept.push_back(i);
  const size_t run_bytes = static_cast<size_t>(inner) * dtype_size(ctx.input_types[0].dtype);
  return tensor::make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    const auto* x = static_cast<const uint8_t*>(in[0]->raw());
    auto* y = static_cast<uint8_t*>(out[0]->raw());
    if (run_bytes == 0) return {};
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i : kept) {
        std::memcpy(y, x + static_cast<size_t>(o * len + i) * run_bytes, run_bytes);
        y += run_bytes;
      }
    return {};
  });
}

}  // namespace
}  // namespace index

void register_index_kernels(std::vector<KernelEntry>& table) {
  const KernelEntry kernels[] = {
      {"Split", index::supports_any, index::make_split},
      {"Tile", index::supports_any, index::make_tile},
      {"Expand", index::supports_any, index::make_expand},
      {"DepthToSpace", index::supports_any, index::make_depth_to_space},
      {"SpaceToDepth", index::supports_any, index::make_space_to_depth},
      {"Trilu", index::supports_any, index::make_trilu},
      {"EyeLike", index::supports_eye_like, index::make_eye_like},
      {"NonZero", index::supports_any, index::make_non_zero},
      {"OneHot", index::supports_one_hot, index::make_one_hot},
      {"ReverseSequence", index::supports_reverse_sequence, index::make_reverse_sequence},
      {"Compress", index::supports_compress, index::make_compress},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
  index::register_gather_kernels(table);
}

}  // namespace caliprox::reference
