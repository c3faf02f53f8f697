// Reference Resize (opsets 10-17): nearest for any dtype, linear and cubic
// for floating-point data, any rank. Interpolation is separable, so the
// kernel resamples one axis at a time; the taps of each output index follow
// the ONNX reference implementation (onnx/backend/test/case/node/resize.py),
// which produced the conformance data.
#include <cmath>

#include "backends/reference/tensor_util.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::reference::tensor {
namespace {

using tensor_ops::CoordinateMode;
using tensor_ops::NearestMode;
using tensor_ops::ResizeMode;
using tensor_ops::ResizeParams;
using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

using Taps = tensor_ops::ResizeTaps;

// Nearest: each output element copies one input element (any dtype).
KernelResult make_nearest(const NodeContext& ctx, const ResizeParams& p) {
  const Shape& in = ctx.input_types[0].shape;
  const auto strides = shape_strides(in);
  IndexMaps maps(in.size());
  for (size_t a = 0; a < in.size(); ++a) {
    for (const Taps& t : tensor_ops::resize_axis_taps(p, a, in[a], p.out_shape[a]))
      maps[a].push_back(t.outside ? kOutside : t.index[0] * strides[a]);
  }
  const DType dtype = ctx.input_types[0].dtype;
  std::vector<uint8_t> fill(8, 0);
  encode_scalar(dtype, p.extrapolation_value, fill.data());
  MappedLoop<1> loop(p.out_shape, {std::move(maps)});
  return make_fn_kernel([=](Inputs inputs, Outputs outputs) mutable -> Status {
    visit_element_size(dtype_size(dtype), [&](auto tag) {
      using U = decltype(tag);
      const auto* x = static_cast<const U*>(inputs[0]->raw());
      auto* y = static_cast<U*>(outputs[0]->raw());
      U border;
      std::memcpy(&border, fill.data(), sizeof(U));
      loop.run([&](int64_t o, const auto& off) { y[o] = off[0] >= 0 ? x[off[0]] : border; });
    });
    return {};
  });
}

// One separable pass: resample axis `axis` of a [outer, len, inner] buffer.
struct Pass {
  int64_t outer = 1;
  int64_t in_len = 1;
  int64_t inner = 1;
  std::vector<Taps> taps;
};

// Linear and cubic: the data is converted to double, resampled one axis at
// a time between two scratch buffers, and converted back.
KernelResult make_interpolating(const NodeContext& ctx, const ResizeParams& p) {
  const Shape& in = ctx.input_types[0].shape;
  Shape cur = in;
  std::vector<Pass> passes;
  int64_t max_numel = shape_numel(in);
  for (size_t a = 0; a < in.size(); ++a) {
    auto taps = tensor_ops::resize_axis_taps(p, a, in[a], p.out_shape[a]);
    if (tensor_ops::resize_taps_identity(taps, in[a])) continue;
    passes.push_back({tensor_ops::dims_product(cur, 0, a), in[a], tensor_ops::dims_product(cur, a + 1, cur.size()),
                      std::move(taps)});
    cur[a] = p.out_shape[a];
    max_numel = std::max(max_numel, shape_numel(cur));
  }
  std::vector<double> buf_a(static_cast<size_t>(max_numel));
  std::vector<double> buf_b(static_cast<size_t>(max_numel));
  const double extrapolation = p.extrapolation_value;
  const DType dtype = ctx.input_types[0].dtype;
  return make_fn_kernel([=](Inputs inputs, Outputs outputs) mutable -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*inputs[0]);
      for (int64_t i = 0, n = inputs[0]->numel(); i < n; ++i) buf_a[static_cast<size_t>(i)] = convert<double>(x[i]);
      double* src = buf_a.data();
      double* dst = buf_b.data();
      for (const Pass& pass : passes) {
        const auto out_len = static_cast<int64_t>(pass.taps.size());
        for (int64_t o = 0; o < pass.outer; ++o) {
          const double* s = src + o * pass.in_len * pass.inner;
          double* d = dst + o * out_len * pass.inner;
          for (int64_t xo = 0; xo < out_len; ++xo) {
            const Taps& t = pass.taps[static_cast<size_t>(xo)];
            for (int64_t i = 0; i < pass.inner; ++i) {
              double v = t.outside ? extrapolation : 0.0;
              for (int k = 0; k < t.count; ++k) v += t.weight[static_cast<size_t>(k)] * s[t.index[static_cast<size_t>(k)] * pass.inner + i];
              d[xo * pass.inner + i] = v;
            }
          }
        }
        std::swap(src, dst);
      }
      T* y = out_data<T>(*outputs[0]);
      for (int64_t i = 0, n = outputs[0]->numel(); i < n; ++i) y[i] = convert<T>(src[i]);
    });
    return {};
  });
}

bool supports_resize(const NodeContext& ctx) {
  if (ctx.input_types.empty() || !AllTypes::contains(ctx.input_types[0].dtype)) return false;
  auto p = tensor_ops::resolve_resize(ctx.node, infer_inputs(ctx));
  if (!p.ok()) return true;  // make() reports the error
  return p->mode == ResizeMode::nearest || FloatTypes::contains(ctx.input_types[0].dtype);
}

KernelResult make_resize(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(auto p, tensor_ops::resolve_resize(ctx.node, infer_inputs(ctx)));
  if (p.mode == ResizeMode::nearest) return make_nearest(ctx, p);
  return make_interpolating(ctx, p);
}

}  // namespace

void register_resize_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"Resize", supports_resize, make_resize});
}

}  // namespace caliprox::reference::tensor
