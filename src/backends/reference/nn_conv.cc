// Reference Conv and ConvTranspose: direct convolution over the 3-D canonical
// form (conv_util.h), accumulating in the tensor's own type (float for f32,
// double for f64) into a per-output-plane scratch buffer. The innermost loop
// runs along the last spatial axis, contiguous in the output plane (and in
// the input too when the stride is 1), so the compiler can vectorise it.
#include <algorithm>
#include <memory>
#include <vector>

#include "ir/ops/activation.h"
#include "backends/reference/conv_util.h"
#include "ir/op_registry.h"

namespace caliprox::reference {

using act::Activation;
using act::fused_activation;
namespace {

template <typename T>
class ConvKernel final : public Kernel {
 public:
  ConvKernel(const ConvGeometry& g, Activation act, bool residual)
      : g_(g), w3_(window3d(g)), act_(act), residual_(residual), acc_(static_cast<size_t>(w3_.out_plane())) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* x = inputs[0]->data<T>();
    const T* w = inputs[1]->data<T>();
    const Tensor* b = input_or_null(inputs, 2);
    const T* bias = b != nullptr ? b->data<T>() : nullptr;
    const T* residual = residual_ ? inputs[3]->data<T>() : nullptr;
    T* y = outputs[0]->data<T>();

    const int64_t out_plane = w3_.out_plane();
    for (int64_t n = 0; n < g_.n; ++n) {
      for (int64_t oc = 0; oc < g_.c_out; ++oc) {
        conv_output_plane(g_, w3_, acc_, x, w, n, oc);
        const int64_t y_offset = (n * g_.c_out + oc) * out_plane;
        const T bias_value = bias != nullptr ? bias[oc] : T(0);
        for (int64_t i = 0; i < out_plane; ++i) {
          T v = acc_[static_cast<size_t>(i)] + bias_value;
          if (residual != nullptr) v += residual[y_offset + i];
          y[y_offset + i] = act_(v);
        }
      }
    }
    return {};
  }

 private:
  ConvGeometry g_;
  Window3d w3_;
  Activation act_;
  bool residual_;
  std::vector<T> acc_;
};

// Scatter form: every input position adds kernel * x into the output
// positions it reaches (full position i * stride + k * dilation, shifted by
// pads_begin; positions outside the output are cropped).
template <typename T>
class ConvTransposeKernel final : public Kernel {
 public:
  explicit ConvTransposeKernel(const ConvGeometry& g)
      : g_(g), w3_(window3d(g)), acc_(static_cast<size_t>(w3_.out_plane())) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* x = inputs[0]->data<T>();
    const T* w = inputs[1]->data<T>();
    const Tensor* b = input_or_null(inputs, 2);
    const T* bias = b != nullptr ? b->data<T>() : nullptr;
    T* y = outputs[0]->data<T>();

    const int64_t cin_g = g_.c_in_per_group();
    const int64_t cout_g = g_.c_out_per_group();
    const int64_t in_plane = w3_.in_plane();
    const int64_t out_plane = w3_.out_plane();
    const int64_t k_plane = w3_.kernel_plane();
    for (int64_t n = 0; n < g_.n; ++n) {
      for (int64_t oc = 0; oc < g_.c_out; ++oc) {
        const int64_t group = oc / cout_g;
        const int64_t ocg = oc % cout_g;
        std::fill(acc_.begin(), acc_.end(), T(0));
        for (int64_t icg = 0; icg < cin_g; ++icg) {
          const int64_t ic = group * cin_g + icg;
          scatter(x + (n * g_.c_in + ic) * in_plane, w + (ic * cout_g + ocg) * k_plane);
        }
        const T bias_value = bias != nullptr ? bias[oc] : T(0);
        T* yp = y + (n * g_.c_out + oc) * out_plane;
        for (int64_t i = 0; i < out_plane; ++i) yp[i] = acc_[static_cast<size_t>(i)] + bias_value;
      }
    }
    return {};
  }

 private:
  void scatter(const T* x, const T* w) {
    const Window3d& s = w3_;
    T* acc = acc_.data();
    for (int64_t kd = 0; kd < s.kernel[0]; ++kd) {
      const int64_t off_d = kd * s.dilation[0] - s.pad[0];
      const IndexRange rd = valid_range(s.in[0], s.stride[0], off_d, s.out[0]);
      for (int64_t kh = 0; kh < s.kernel[1]; ++kh) {
        const int64_t off_h = kh * s.dilation[1] - s.pad[1];
        const IndexRange rh = valid_range(s.in[1], s.stride[1], off_h, s.out[1]);
        for (int64_t kw = 0; kw < s.kernel[2]; ++kw) {
          const int64_t off_w = kw * s.dilation[2] - s.pad[2];
          const IndexRange rw = valid_range(s.in[2], s.stride[2], off_w, s.out[2]);
          const T wv = w[(kd * s.kernel[1] + kh) * s.kernel[2] + kw];
          for (int64_t id = rd.first; id < rd.last; ++id) {
            const int64_t od = id * s.stride[0] + off_d;
            for (int64_t ih = rh.first; ih < rh.last; ++ih) {
              const int64_t oh = ih * s.stride[1] + off_h;
              T* arow = acc + (od * s.out[1] + oh) * s.out[2];
              const T* xrow = x + (id * s.in[1] + ih) * s.in[2];
              for (int64_t iw = rw.first; iw < rw.last; ++iw) arow[iw * s.stride[2] + off_w] += wv * xrow[iw];
            }
          }
        }
      }
    }
  }

  ConvGeometry g_;
  Window3d w3_;
  std::vector<T> acc_;
};

bool spatial_rank_ok(const NodeContext& ctx) {
  const size_t rank = ctx.input_types[0].shape.size();
  return rank >= 3 && rank - 2 <= kMaxSpatialRank;
}

bool supports_conv(const NodeContext& ctx) {
  if (ctx.input_types.size() < 2 || !uniform_float_dtype(ctx) || !spatial_rank_ok(ctx)) return false;
  return fused_activation(ctx.node).ok();
}

Result<std::unique_ptr<Kernel>> make_conv(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape));
  CP_TRY(check_output_shape(ctx, g.output_shape()));
  CP_ASSIGN_OR_RETURN(Activation act, fused_activation(ctx.node));
  CP_ASSIGN_OR_RETURN(const bool residual, fused_residual(ctx, g));
  if (is_f64(ctx)) return std::unique_ptr<Kernel>(std::make_unique<ConvKernel<double>>(g, act, residual));
  return std::unique_ptr<Kernel>(std::make_unique<ConvKernel<float>>(g, act, residual));
}

bool supports_conv_transpose(const NodeContext& ctx) {
  return ctx.input_types.size() >= 2 && uniform_float_dtype(ctx) && spatial_rank_ok(ctx);
}

Result<std::unique_ptr<Kernel>> make_conv_transpose(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(ConvGeometry g,
                      conv_transpose_geometry(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape));
  CP_TRY(check_output_shape(ctx, g.output_shape()));
  if (is_f64(ctx)) return std::unique_ptr<Kernel>(std::make_unique<ConvTransposeKernel<double>>(g));
  return std::unique_ptr<Kernel>(std::make_unique<ConvTransposeKernel<float>>(g));
}

}  // namespace

void add_conv_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"Conv", supports_conv, make_conv});
  table.push_back({"ConvTranspose", supports_conv_transpose, make_conv_transpose});
}

}  // namespace caliprox::reference
