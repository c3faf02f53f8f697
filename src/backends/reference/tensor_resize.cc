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

// The input elements (and weights) one output index along an axis reads.
struct Taps {
  bool outside = false;  // tf_crop_and_resize outside the input: extrapolation_value
  int count = 0;
  std::array<int64_t, 4> index{};
  std::array<double, 4> weight{};
};

std::array<double, 4> nearest_coeffs(double ratio, bool integral, NearestMode mode) {
  if (integral) return {0, 1};
  switch (mode) {
    case NearestMode::round_prefer_floor: return {ratio <= 0.5 ? 1.0 : 0.0, ratio > 0.5 ? 1.0 : 0.0};
    case NearestMode::round_prefer_ceil: return {ratio < 0.5 ? 1.0 : 0.0, ratio >= 0.5 ? 1.0 : 0.0};
    case NearestMode::floor: return {1, 0};
    case NearestMode::ceil: return {0, 1};
  }
  return {1, 0};
}

std::array<double, 4> cubic_coeffs(double r, double a) {
  const double s = 1 - r;
  return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
          ((a + 2) * s - (a + 3)) * s * s + 1, ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
}

std::vector<Taps> axis_taps(const ResizeParams& p, size_t axis, int64_t in_len, int64_t out_len) {
  std::vector<Taps> taps(static_cast<size_t>(out_len));
  for (int64_t x = 0; x < out_len; ++x) {
    Taps& t = taps[static_cast<size_t>(x)];
    const double src = tensor_ops::resize_source_coordinate(p, axis, x, in_len);
    if (p.coordinate_mode == CoordinateMode::tf_crop_and_resize && (src < 0 || src > static_cast<double>(in_len - 1))) {
      t.outside = true;
      continue;
    }
    // The reference takes the n nearest input indices, preferring the lower
    // ones, so an integral coordinate has ratio 1 to the index below it.
    const double fl = std::floor(src);
    const bool integral = src == fl;
    const double ratio = integral ? 1.0 : src - fl;
    const int64_t left = static_cast<int64_t>(fl) - (integral ? 1 : 0);
    std::array<double, 4> coeffs{};
    int n = 2;
    switch (p.mode) {
      case ResizeMode::nearest: coeffs = nearest_coeffs(ratio, integral, p.nearest_mode); break;
      case ResizeMode::linear: coeffs = {1 - ratio, ratio}; break;
      case ResizeMode::cubic: coeffs = cubic_coeffs(ratio, p.cubic_coeff_a); n = 4; break;
    }
    const int64_t first = left - (n / 2 - 1);
    if (p.exclude_outside) {
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        if (first + k < 0 || first + k >= in_len) coeffs[static_cast<size_t>(k)] = 0;
        sum += coeffs[static_cast<size_t>(k)];
      }
      if (sum != 0)
        for (int k = 0; k < n; ++k) coeffs[static_cast<size_t>(k)] /= sum;
    }
    for (int k = 0; k < n; ++k) {
      if (coeffs[static_cast<size_t>(k)] == 0) continue;
      // Indices beyond the input read its edge (the reference pads by edge).
      t.index[static_cast<size_t>(t.count)] = std::clamp<int64_t>(first + k, 0, in_len - 1);
      t.weight[static_cast<size_t>(t.count)] = coeffs[static_cast<size_t>(k)];
      ++t.count;
    }
  }
  return taps;
}

bool is_identity(const std::vector<Taps>& taps, int64_t in_len) {
  if (static_cast<int64_t>(taps.size()) != in_len) return false;
  for (size_t x = 0; x < taps.size(); ++x) {
    const Taps& t = taps[x];
    if (t.outside || t.count != 1 || t.index[0] != static_cast<int64_t>(x) || t.weight[0] != 1.0) return false;
  }
  return true;
}

// Nearest: each output element copies one input element (any dtype).
KernelResult make_nearest(const NodeContext& ctx, const ResizeParams& p) {
  const Shape& in = ctx.input_types[0].shape;
  const auto strides = shape_strides(in);
  IndexMaps maps(in.size());
  for (size_t a = 0; a < in.size(); ++a) {
    for (const Taps& t : axis_taps(p, a, in[a], p.out_shape[a]))
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
    auto taps = axis_taps(p, a, in[a], p.out_shape[a]);
    if (is_identity(taps, in[a])) continue;
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
