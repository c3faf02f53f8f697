// Reference ConvInteger and QLinearConv: direct convolution of the input and
// the weights minus their zero points, summed exactly in integers over the
// 3-D canonical form of conv_util.h. Padding contributes nothing, as if the
// input were padded with its zero point. QLinearConv adds the int32 bias and
// requantizes each sum with x_scale * w_scale[oc] / y_scale.
#include <algorithm>
#include <memory>
#include <vector>

#include "backends/reference/conv_util.h"
#include "backends/reference/quant_util.h"

namespace caliprox::reference::quant_kernels {
namespace {

using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

const Tensor* optional(Inputs in, size_t i) { return i < in.size() ? in[i] : nullptr; }

// Where the operands and their parameters sit among the inputs.
struct ConvSlots {
  size_t x = 0, x_scale = 0, x_zp = 2, w = 1, w_scale = 0, w_zp = 3, y_scale = 0, y_zp = 0, bias = 0;
  bool qlinear = false;
};
constexpr ConvSlots kConvInteger{};
constexpr ConvSlots kQLinearConv{0, 1, 2, 3, 4, 5, 6, 7, 8, true};

class IntegerConvKernel final : public Kernel {
 public:
  IntegerConvKernel(const ConvGeometry& g, ConvSlots slots, int64_t x_count, int64_t w_count)
      : g_(g),
        w3_(window3d(g)),
        slots_(slots),
        x_(static_cast<size_t>(x_count)),
        w_(static_cast<size_t>(w_count)),
        acc_(static_cast<size_t>(w3_.out_plane())) {}

  Status run(Inputs in, Outputs out) override {
    // Per-output-channel weight zero points step every C_in/group * kernel
    // elements.
    widen_minus_zero_point(*in[slots_.x], optional(in, slots_.x_zp), 1, x_);
    widen_minus_zero_point(*in[slots_.w], optional(in, slots_.w_zp), g_.c_in_per_group() * w3_.kernel_plane(), w_);
    Tensor& y = *out[0];
    const int64_t out_plane = w3_.out_plane();
    for (int64_t n = 0; n < g_.n; ++n) {
      for (int64_t oc = 0; oc < g_.c_out; ++oc) {
        // Summed exactly in int64 (conv_util.h).
        conv_output_plane(g_, w3_, acc_, x_.data(), w_.data(), n, oc);
        const int64_t y_offset = (n * g_.c_out + oc) * out_plane;
        if (slots_.qlinear) {
          requantize(in, y, y_offset, oc);
        } else {
          int32_t* yp = y.data<int32_t>() + y_offset;
          for (int64_t i = 0; i < out_plane; ++i) yp[i] = static_cast<int32_t>(acc_[static_cast<size_t>(i)]);
        }
      }
    }
    return {};
  }

 private:
  // y = saturate(round((acc + B[oc]) * x_scale * w_scale[oc] / y_scale) + y_zp),
  // the sum kept to 32 bits.
  void requantize(Inputs in, Tensor& y, int64_t y_offset, int64_t oc) const {
    const Tensor& w_scale = *in[slots_.w_scale];
    const float multiplier =
        requant_multiplier(in[slots_.x_scale]->data<float>()[0], w_scale.data<float>()[w_scale.numel() == 1 ? 0 : oc],
                           in[slots_.y_scale]->data<float>()[0]);
    const Tensor* bias = optional(in, slots_.bias);
    const int64_t b = bias != nullptr ? bias->data<int32_t>()[oc] : 0;
    const int32_t zp = int_at(*in[slots_.y_zp], 0);
    for (int64_t i = 0; i < w3_.out_plane(); ++i) {
      const auto sum = static_cast<int32_t>(acc_[static_cast<size_t>(i)] + b);
      store_requantized(y, y_offset + i, static_cast<double>(sum) * multiplier, zp);
    }
  }

  ConvGeometry g_;
  Window3d w3_;
  ConvSlots slots_;
  std::vector<int32_t> x_, w_;  // operands minus zero points
  std::vector<int64_t> acc_;    // one output plane
};

bool spatial_rank_ok(const Shape& x) { return x.size() >= 3 && x.size() - 2 <= kMaxSpatialRank; }

bool supports_conv_integer(const NodeContext& ctx) {
  const auto& t = ctx.input_types;
  return t.size() >= 2 && is_8bit(t[0].dtype) && is_8bit(t[1].dtype) && spatial_rank_ok(t[0].shape) &&
         ctx.output_types[0].dtype == DType::i32;
}

bool supports_qlinear_conv(const NodeContext& ctx) {
  const auto& t = ctx.input_types;
  return t.size() >= 8 && is_8bit(t[0].dtype) && is_8bit(t[3].dtype) && is_8bit(t[7].dtype) &&
         t[1].dtype == DType::f32 && t[4].dtype == DType::f32 && t[6].dtype == DType::f32 &&
         spatial_rank_ok(t[0].shape);
}

Result<std::unique_ptr<Kernel>> make_conv(const NodeContext& ctx, ConvSlots slots) {
  const Shape& x = ctx.input_types[slots.x].shape;
  const Shape& w = ctx.input_types[slots.w].shape;
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(ctx.node, x, w));
  CP_TRY(check_output_shape(ctx, g.output_shape()));
  return std::unique_ptr<Kernel>(std::make_unique<IntegerConvKernel>(g, slots, shape_numel(x), shape_numel(w)));
}

Result<std::unique_ptr<Kernel>> make_conv_integer(const NodeContext& ctx) { return make_conv(ctx, kConvInteger); }
Result<std::unique_ptr<Kernel>> make_qlinear_conv(const NodeContext& ctx) { return make_conv(ctx, kQLinearConv); }

}  // namespace

void add_quant_conv_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"ConvInteger", supports_conv_integer, make_conv_integer});
  table.push_back({"QLinearConv", supports_qlinear_conv, make_qlinear_conv});
}

}  // namespace caliprox::reference::quant_kernels
