// Reference pooling over the 3-D canonical form: MaxPool (with the optional
// Indices output; also 8-bit integers), AveragePool, GlobalAveragePool and
// GlobalMaxPool.
#include <limits>
#include <memory>
#include <vector>

#include "backends/reference/conv_util.h"

namespace caliprox::reference {
namespace {

// Window taps k in [0, kernel) whose position start + k * dilation lies in
// [0, bound).
IndexRange taps(const Window3d& w, size_t axis, int64_t start, int64_t bound) {
  return valid_range(w.kernel[axis], w.dilation[axis], start, bound);
}

template <typename T>
class MaxPoolKernel final : public Kernel {
 public:
  explicit MaxPoolKernel(const PoolGeometry& g) : g_(g), w3_(window3d(g)) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* x = inputs[0]->data<T>();
    T* y = outputs[0]->data<T>();
    int64_t* indices = outputs.size() > 1 && outputs[1] != nullptr ? outputs[1]->data<int64_t>() : nullptr;
    const Window3d& s = w3_;
    const int64_t in_plane = s.in_plane();
    const int64_t out_plane = s.out_plane();
    for (int64_t p = 0; p < g_.n * g_.c; ++p) {
      const T* xp = x + p * in_plane;
      int64_t o = p * out_plane;
      for (int64_t od = 0; od < s.out[0]; ++od) {
        const int64_t start_d = od * s.stride[0] - s.pad[0];
        const IndexRange rd = taps(s, 0, start_d, s.in[0]);
        for (int64_t oh = 0; oh < s.out[1]; ++oh) {
          const int64_t start_h = oh * s.stride[1] - s.pad[1];
          const IndexRange rh = taps(s, 1, start_h, s.in[1]);
          for (int64_t ow = 0; ow < s.out[2]; ++ow, ++o) {
            const int64_t start_w = ow * s.stride[2] - s.pad[2];
            const IndexRange rw = taps(s, 2, start_w, s.in[2]);
            T best = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                          : std::numeric_limits<T>::lowest();
            int64_t bd = 0, bh = 0, bw = 0;
            bool found = false;
            for (int64_t kd = rd.first; kd < rd.last; ++kd) {
              const int64_t id = start_d + kd * s.dilation[0];
              for (int64_t kh = rh.first; kh < rh.last; ++kh) {
                const int64_t ih = start_h + kh * s.dilation[1];
                for (int64_t kw = rw.first; kw < rw.last; ++kw) {
                  const int64_t iw = start_w + kw * s.dilation[2];
                  const T v = xp[(id * s.in[1] + ih) * s.in[2] + iw];
                  if (!found || v > best) {
                    best = v;
                    bd = id, bh = ih, bw = iw;
                    found = true;
                  }
                }
              }
            }
            y[o] = best;
            if (indices != nullptr) indices[o] = p * in_plane + flat_index(bd, bh, bw);
          }
        }
      }
    }
    return {};
  }

 private:
  // Position inside one plane, in the storage order ONNX asks for
  // (1 = column-major: the first spatial axis varies fastest).
  int64_t flat_index(int64_t d, int64_t h, int64_t w) const {
    const Window3d& s = w3_;
    if (g_.storage_order == 1) return (w * s.in[1] + h) * s.in[0] + d;
    return (d * s.in[1] + h) * s.in[2] + w;
  }

  PoolGeometry g_;
  Window3d w3_;
};

template <typename T>
class AveragePoolKernel final : public Kernel {
 public:
  explicit AveragePoolKernel(const PoolGeometry& g) : g_(g), w3_(window3d(g)) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* x = inputs[0]->data<T>();
    T* y = outputs[0]->data<T>();
    const Window3d& s = w3_;
    const int64_t in_plane = s.in_plane();
    const int64_t out_plane = s.out_plane();
    for (int64_t p = 0; p < g_.n * g_.c; ++p) {
      const T* xp = x + p * in_plane;
      int64_t o = p * out_plane;
      for (int64_t od = 0; od < s.out[0]; ++od) {
        const int64_t start_d = od * s.stride[0] - s.pad[0];
        const IndexRange rd = taps(s, 0, start_d, s.in[0]);
        for (int64_t oh = 0; oh < s.out[1]; ++oh) {
          const int64_t start_h = oh * s.stride[1] - s.pad[1];
          const IndexRange rh = taps(s, 1, start_h, s.in[1]);
          for (int64_t ow = 0; ow < s.out[2]; ++ow, ++o) {
            const int64_t start_w = ow * s.stride[2] - s.pad[2];
            const IndexRange rw = taps(s, 2, start_w, s.in[2]);
            T sum = 0;
            for (int64_t kd = rd.first; kd < rd.last; ++kd) {
              const int64_t id = start_d + kd * s.dilation[0];
              for (int64_t kh = rh.first; kh < rh.last; ++kh) {
                const int64_t ih = start_h + kh * s.dilation[1];
                const T* xrow = xp + (id * s.in[1] + ih) * s.in[2];
                for (int64_t kw = rw.first; kw < rw.last; ++kw) sum += xrow[start_w + kw * s.dilation[2]];
              }
            }
            int64_t count = (rd.last - rd.first) * (rh.last - rh.first) * (rw.last - rw.first);
            if (g_.count_include_pad) {
              // Taps inside the padded input [-pad, in + pad_end); taps that
              // only ceil_mode's overhanging last window reaches do not count.
              count = 1;
              const int64_t start[3] = {start_d, start_h, start_w};
              for (size_t a = 0; a < 3; ++a) {
                const IndexRange r = taps(s, a, start[a] + s.pad[a], s.in[a] + s.pad[a] + s.pad_end[a]);
                count *= r.last - r.first;
              }
            }
            y[o] = count > 0 ? sum / static_cast<T>(count) : T(0);
          }
        }
      }
    }
    return {};
  }

 private:
  PoolGeometry g_;
  Window3d w3_;
};

// Global pooling reduces each [N, C] plane to one value.
template <typename T, bool kMax>
class GlobalPoolKernel final : public Kernel {
 public:
  // Spatial axes are >= 1 (checked by shape inference), so planes are non-empty.
  explicit GlobalPoolKernel(const Shape& x) : planes_(x[0] * x[1]), plane_(1) {
    for (size_t d = 2; d < x.size(); ++d) plane_ *= x[d];
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* x = inputs[0]->data<T>();
    T* y = outputs[0]->data<T>();
    for (int64_t p = 0; p < planes_; ++p) {
      const T* xp = x + p * plane_;
      if constexpr (kMax) {
        T best = xp[0];
        for (int64_t i = 1; i < plane_; ++i) best = xp[i] > best ? xp[i] : best;
        y[p] = best;
      } else {
        // Double accumulator: large planes of float would otherwise lose digits.
        double sum = 0;
        for (int64_t i = 0; i < plane_; ++i) sum += static_cast<double>(xp[i]);
        y[p] = static_cast<T>(sum / static_cast<double>(plane_));
      }
    }
    return {};
  }

 private:
  int64_t planes_;
  int64_t plane_;
};

bool supports_pool(const NodeContext& ctx) {
  if (ctx.input_types.size() != 1 || !uniform_float_dtype(ctx)) return false;
  const size_t rank = ctx.input_types[0].shape.size();
  if (rank < 3 || rank - 2 > kMaxSpatialRank) return false;
  return ctx.output_types.size() < 2 || ctx.output_types[1].dtype == DType::i64;
}

// MaxPool also takes 8-bit integers (opset 12); comparisons are exact in any type.
bool supports_max_pool(const NodeContext& ctx) {
  if (ctx.input_types.size() == 1 && !ctx.output_types.empty()) {
    const DType t = ctx.input_types[0].dtype;
    if ((t == DType::u8 || t == DType::i8) && ctx.output_types[0].dtype == t) {
      const size_t rank = ctx.input_types[0].shape.size();
      return rank >= 3 && rank - 2 <= kMaxSpatialRank &&
             (ctx.output_types.size() < 2 || ctx.output_types[1].dtype == DType::i64);
    }
  }
  return supports_pool(ctx);
}

Result<std::unique_ptr<Kernel>> make_max_pool(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(ctx.node, ctx.input_types[0].shape));
  CP_TRY(check_output_shape(ctx, g.output_shape()));
  switch (ctx.input_types[0].dtype) {
    case DType::f64: return std::unique_ptr<Kernel>(std::make_unique<MaxPoolKernel<double>>(g));
    case DType::u8: return std::unique_ptr<Kernel>(std::make_unique<MaxPoolKernel<uint8_t>>(g));
    case DType::i8: return std::unique_ptr<Kernel>(std::make_unique<MaxPoolKernel<int8_t>>(g));
    default: return std::unique_ptr<Kernel>(std::make_unique<MaxPoolKernel<float>>(g));
  }
}

Result<std::unique_ptr<Kernel>> make_average_pool(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(ctx.node, ctx.input_types[0].shape));
  CP_TRY(check_output_shape(ctx, g.output_shape()));
  if (is_f64(ctx)) return std::unique_ptr<Kernel>(std::make_unique<AveragePoolKernel<double>>(g));
  return std::unique_ptr<Kernel>(std::make_unique<AveragePoolKernel<float>>(g));
}

bool supports_global_pool(const NodeContext& ctx) {
  return ctx.input_types.size() == 1 && uniform_float_dtype(ctx) && ctx.input_types[0].shape.size() >= 3;
}

template <bool kMax>
Result<std::unique_ptr<Kernel>> make_global_pool(const NodeContext& ctx) {
  const Shape& x = ctx.input_types[0].shape;
  if (is_f64(ctx)) return std::unique_ptr<Kernel>(std::make_unique<GlobalPoolKernel<double, kMax>>(x));
  return std::unique_ptr<Kernel>(std::make_unique<GlobalPoolKernel<float, kMax>>(x));
}

}  // namespace

void add_pool_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"MaxPool", supports_max_pool, make_max_pool});
  table.push_back({"AveragePool", supports_pool, make_average_pool});
  table.push_back({"GlobalAveragePool", supports_global_pool, make_global_pool<false>});
  table.push_back({"GlobalMaxPool", supports_global_pool, make_global_pool<true>});
}

}  // namespace caliprox::reference
