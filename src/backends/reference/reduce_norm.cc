// Reference kernels of the reduce/normalisation family, part 2: the
// Softmax-like ops (Softmax, LogSoftmax, Hardmax) and the normalisations
// (LayerNormalization, InstanceNormalization, LRN,
// MeanVarianceNormalization). Statistics are computed in double; mean and
// variance in two passes (no E[x^2] - E[x]^2 cancellation).
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
using tensor::FloatTypes;

// Every input is of one floating-point type (LayerNormalization's Scale and
// B, InstanceNormalization's scale and B).
bool supports_float_inputs(const NodeContext& ctx) {
  for (const auto& t : ctx.input_types)
    if (t.dtype != DType::undefined && t.dtype != in_type(ctx)) return false;
  return FloatTypes::contains(in_type(ctx));
}

template <typename T> double as_double(T v) { return static_cast<double>(load(v)); }

// ---- LogSoftmax, Hardmax -----------------------------------------------

// Softmax, exp(x - max) / sum, and LogSoftmax, x - max - log(sum), where
// sum = sum(exp(x - max)) along the axis: one loop, in double (subtracting
// the maximum keeps exp from overflowing).
template <bool kLog> KernelResult make_softmax_like(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  CP_ASSIGN_OR_RETURN(auto l, tensor_ops::resolve_softmax(ctx.node, ctx.input_types[0].shape));
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      for (int64_t o = 0; o < l.outer; ++o) {
        for (int64_t j = 0; j < l.inner; ++j) {
          const int64_t base = o * l.axis_len * l.inner + j;
          double max_v = -std::numeric_limits<double>::infinity();
          for (int64_t k = 0; k < l.axis_len; ++k) max_v = std::max(max_v, as_double(x[base + k * l.inner]));
          double sum = 0;
          for (int64_t k = 0; k < l.axis_len; ++k) sum += std::exp(as_double(x[base + k * l.inner]) - max_v);
          const double log_shift = max_v + std::log(sum);
          for (int64_t k = 0; k < l.axis_len; ++k) {
            const double v = as_double(x[base + k * l.inner]);
            y[base + k * l.inner] = convert<T>(kLog ? v - log_shift : std::exp(v - max_v) / sum);
          }
        }
      }
    });
    return {};
  });
}

// 1 at the first largest value along the axis (NaN counts as largest, as in
// NumPy's argmax), 0 elsewhere.
KernelResult make_hardmax(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  CP_ASSIGN_OR_RETURN(auto l, tensor_ops::resolve_softmax(ctx.node, ctx.input_types[0].shape));
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      for (int64_t o = 0; o < l.outer; ++o) {
        for (int64_t j = 0; j < l.inner; ++j) {
          const int64_t base = o * l.axis_len * l.inner + j;
          int64_t best = 0;
          for (int64_t k = 0; k < l.axis_len; ++k) {
            if (k > 0 && beyond(load(x[base + k * l.inner]), load(x[base + best * l.inner]), true)) best = k;
            y[base + k * l.inner] = convert<T>(0.0);
          }
          if (l.axis_len > 0) y[base + best * l.inner] = convert<T>(1.0);
        }
      }
    });
    return {};
  });
}

// ---- LayerNormalization ------------------------------------------------

// Follows the ONNX function: statistics in the stash type (float32), the
// normalised value cast back to T, then times Scale and plus B, each in T.
KernelResult make_layer_norm(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const std::vector<InferInput> inputs = infer_inputs(ctx);
  CP_ASSIGN_OR_RETURN(reduce_ops::LayerNormParams p, reduce_ops::resolve_layer_norm(ctx.node, inputs));
  const Shape& shape = ctx.input_types[0].shape;
  const bool has_b = tensor_ops::optional_input(inputs, 2) != nullptr;
  const Shape& b_shape = has_b ? ctx.input_types[2].shape : ctx.input_types[1].shape;
  tensor::MappedLoop<2> loop(shape, {tensor::broadcast_maps(ctx.input_types[1].shape, shape),
                                     tensor::broadcast_maps(b_shape, shape)});
  std::vector<float> mean(static_cast<size_t>(p.outer)), inv_std(static_cast<size_t>(p.outer));
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      using C = compute_t<T>;
      const T* x = in_data<T>(*in[0]);
      const T* scale = in_data<T>(*in[1]);
      const T* bias = has_b ? in_data<T>(*in[2]) : nullptr;
      T* y = out_data<T>(*out[0]);
      const auto n = static_cast<double>(p.size);
      for (int64_t o = 0; o < p.outer; ++o) {
        const T* row = x + o * p.size;
        double sum = 0, sq = 0;
        for (int64_t k = 0; k < p.size; ++k) sum += as_double(row[k]);
        const double m = sum / n;
        for (int64_t k = 0; k < p.size; ++k) sq += (as_double(row[k]) - m) * (as_double(row[k]) - m);
        mean[static_cast<size_t>(o)] = static_cast<float>(m);
        inv_std[static_cast<size_t>(o)] = static_cast<float>(1.0 / std::sqrt(sq / n + p.epsilon));
      }
      loop.run([&](int64_t i, const auto& off) {
        const auto o = static_cast<size_t>(i / p.size);
        const auto normalized = static_cast<float>((as_double(x[i]) - mean[o]) * inv_std[o]);
        C v = load(store<T>(static_cast<C>(normalized)));
        v = load(store<T>(v * load(scale[off[0]])));
        if (bias != nullptr) v += load(bias[off[1]]);
        y[i] = store<T>(v);
      });
      if (out.size() > 1 && out[1] != nullptr) std::copy(mean.begin(), mean.end(), out_data<float>(*out[1]));
      if (out.size() > 2 && out[2] != nullptr) std::copy(inv_std.begin(), inv_std.end(), out_data<float>(*out[2]));
    });
    return {};
  });
}

// ---- InstanceNormalization ---------------------------------------------

// Per sample and channel, over the spatial axes:
// y = scale[c] * (x - mean) / sqrt(var + epsilon) + B[c].
KernelResult make_instance_norm(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  CP_ASSIGN_OR_RETURN(float epsilon, tensor_ops::attr_float(ctx.node, "epsilon", 1e-5f));
  const Shape& shape = ctx.input_types[0].shape;
  const int64_t channels = shape[1];
  const int64_t planes = shape[0] * channels;
  const int64_t spatial = tensor_ops::dims_product(shape, 2, shape.size());
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      const T* scale = in_data<T>(*in[1]);
      const T* bias = in_data<T>(*in[2]);
      T* y = out_data<T>(*out[0]);
      const auto n = static_cast<double>(spatial);
      for (int64_t plane = 0; plane < planes; ++plane) {
        const T* px = x + plane * spatial;
        T* py = y + plane * spatial;
        double sum = 0, sq = 0;
        for (int64_t k = 0; k < spatial; ++k) sum += as_double(px[k]);
        const double m = sum / n;
        for (int64_t k = 0; k < spatial; ++k) sq += (as_double(px[k]) - m) * (as_double(px[k]) - m);
        const int64_t c = plane % channels;
        const double gain = as_double(scale[c]) / std::sqrt(sq / n + epsilon);
        for (int64_t k = 0; k < spatial; ++k) py[k] = convert<T>((as_double(px[k]) - m) * gain + as_double(bias[c]));
      }
    });
    return {};
  });
}

// ---- LRN ---------------------------------------------------------------

// y = x / (bias + alpha / size * sum of x^2 over the channel window)^beta.
KernelResult make_lrn(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const Shape& shape = ctx.input_types[0].shape;
  CP_ASSIGN_OR_RETURN(reduce_ops::LrnParams p, reduce_ops::resolve_lrn(ctx.node, shape));
  const int64_t batch = shape[0];
  const int64_t channels = shape[1];
  const int64_t spatial = tensor_ops::dims_product(shape, 2, shape.size());
  return make_fn_kernel([=](Inputs in, Outputs out) -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      const double coeff = static_cast<double>(p.alpha) / static_cast<double>(p.size);
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t lo = std::max<int64_t>(0, c - (p.size - 1) / 2);
          const int64_t hi = std::min<int64_t>(channels - 1, c + p.size / 2);
          for (int64_t s = 0; s < spatial; ++s) {
            double sq = 0;
            for (int64_t w = lo; w <= hi; ++w) {
              const double v = as_double(x[(n * channels + w) * spatial + s]);
              sq += v * v;
            }
            const int64_t i = (n * channels + c) * spatial + s;
            y[i] = convert<T>(as_double(x[i]) / std::pow(p.bias + coeff * sq, static_cast<double>(p.beta)));
          }
        }
      }
    });
    return {};
  });
}

// ---- MeanVarianceNormalization -----------------------------------------

// y = (x - mean) / (sqrt(variance) + 1e-9) over the groups the axes make.
KernelResult make_mvn(const NodeContext& ctx) {
  const DType dtype = in_type(ctx);
  const Shape& shape = ctx.input_types[0].shape;
  CP_ASSIGN_OR_RETURN(auto axes, reduce_ops::resolve_mvn_axes(ctx.node, shape));
  Shape kept = shape;
  for (int64_t a : axes) kept[static_cast<size_t>(a)] = 1;
  tensor::MappedLoop<1> loop(shape, {tensor::broadcast_maps(kept, shape)});
  const auto groups = static_cast<size_t>(shape_numel(kept));
  const double count = groups == 0 ? 0.0 : static_cast<double>(shape_numel(shape)) / static_cast<double>(groups);
  std::vector<double> mean(groups), sq(groups);
  return make_fn_kernel([=](Inputs in, Outputs out) mutable -> Status {
    FloatTypes::visit(dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = in_data<T>(*in[0]);
      T* y = out_data<T>(*out[0]);
      std::fill(mean.begin(), mean.end(), 0.0);
      std::fill(sq.begin(), sq.end(), 0.0);
      loop.run([&](int64_t i, const auto& off) { mean[static_cast<size_t>(off[0])] += as_double(x[i]); });
      for (double& m : mean) m /= count;
      loop.run([&](int64_t i, const auto& off) {
        const double d = as_double(x[i]) - mean[static_cast<size_t>(off[0])];
        sq[static_cast<size_t>(off[0])] += d * d;
      });
      loop.run([&](int64_t i, const auto& off) {
        const auto g = static_cast<size_t>(off[0]);
        y[i] = convert<T>((as_double(x[i]) - mean[g]) / (std::sqrt(sq[g] / count) + reduce_ops::kMvnEpsilon));
      });
    });
    return {};
  });
}

}  // namespace

void register_norm_kernels(std::vector<KernelEntry>& table) {
  const KernelEntry kernels[] = {
      {"Softmax", supports_unary<FloatTypes>, make_softmax_like<false>},
      {"LogSoftmax", supports_unary<FloatTypes>, make_softmax_like<true>},
      {"Hardmax", supports_unary<FloatTypes>, make_hardmax},
      {"LayerNormalization", supports_float_inputs, make_layer_norm},
      {"InstanceNormalization", supports_float_inputs, make_instance_norm},
      {"LRN", supports_unary<FloatTypes>, make_lrn},
      {"MeanVarianceNormalization", supports_unary<FloatTypes>, make_mvn},
  };
  table.insert(table.end(), std::begin(kernels), std::end(kernels));
}

}  // namespace reduce
}  // namespace caliprox::reference
