// Reference Conv under an approximation knob (knobs/knobs.h): the readable
// definition of every knob's numbers, which the fast kernels are tested
// against. One output element is one plain dot product over the filter taps
// the knob keeps, so each step of the semantics shows up as one step here:
//
//   1. inputs: x, the effective weights and the bias, each in the knob's
//      precision (half: IEEE half values; bf16: bfloat16 x and weights;
//      int8: quantised x and weights);
//   2. conv + bias at the output positions that are computed (perforation
//      skips rows or columns; the other knobs compute them all) over the
//      kept taps (sampling drops filter elements; the others keep them all);
//   3. perforation: skipped rows/columns = mean of the computed neighbours
//      above and below (an edge copies its one neighbour);
//   4. + residual (rounded to half under a half knob), activation, and under
//      a half knob the final output rounded to half.
//
// Effective weights: sampling multiplies the kept weights by s/(s-1); a half
// knob then rounds that product to half, i.e. the weights the layer
// multiplies with are IEEE half values: half(w * s/(s-1)).
//
// Weights and bias that are constants (the normal case) are transformed once
// at prepare time; when they are graph inputs they are transformed at every
// run into buffers sized at prepare time (run() never allocates).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "ir/ops/activation.h"
#include "backends/reference/conv_util.h"
#include "ir/op_registry.h"

namespace caliprox::reference {

using act::Activation;
using act::fused_activation;
namespace {

enum class Precision { f32, half, bf16, int8 };

Precision precision_of(const Knob& knob) {
  if (knob.kind == KnobKind::int8) return Precision::int8;
  if (knob.kind == KnobKind::bf16) return Precision::bf16;
  return knob.half ? Precision::half : Precision::f32;
}

float round_half(float v) { return half_to_float(float_to_half(v)); }

// One kept filter element: its index in the flattened filter
// [C_in/group][KH][KW], and where it reads relative to its window's origin
// (in the group's first input channel): row and column offset (dilated) and
// flat offset.
struct Tap {
  int64_t index = 0;
  int64_t dh = 0, dw = 0, offset = 0;
};

std::vector<int64_t> all_positions(int64_t extent) {
  std::vector<int64_t> p(static_cast<size_t>(extent));
  for (int64_t i = 0; i < extent; ++i) p[static_cast<size_t>(i)] = i;
  return p;
}

std::vector<bool> flags_of(const std::vector<int64_t>& positions, int64_t extent) {
  std::vector<bool> f(static_cast<size_t>(extent), false);
  for (int64_t p : positions) f[static_cast<size_t>(p)] = true;
  return f;
}

class KnobConvKernel final : public Kernel {
 public:
  KnobConvKernel(const Knob& knob, const ConvGeometry& g, Activation act, bool residual, bool has_bias,
                 std::optional<ValueRange> range)
      : knob_(knob), g_(g), act_(act), residual_(residual), has_bias_(has_bias), precision_(precision_of(knob)) {
    const int64_t oh = g_.out_spatial[0], ow = g_.out_spatial[1];
    const bool perforated = knob_.kind == KnobKind::perforation;
    rows_ = perforated && knob_.rows ? perforation_kept(knob_, oh) : all_positions(oh);
    cols_ = perforated && !knob_.rows ? perforation_kept(knob_, ow) : all_positions(ow);
    row_computed_ = flags_of(rows_, oh);
    col_computed_ = flags_of(cols_, ow);

    const int64_t kh = g_.kernel[0], kw = g_.kernel[1];
    std::vector<bool> keep(static_cast<size_t>(g_.c_in_per_group() * kh * kw), true);
    if (knob_.kind == KnobKind::sampling) keep = sampling_mask(knob_, g_.c_in_per_group(), kh, kw);
    for (int64_t c = 0; c < g_.c_in_per_group(); ++c)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t index = (c * kh + i) * kw + j;
          if (!keep[static_cast<size_t>(index)]) continue;
          const int64_t dh = i * g_.dilations[0], dw = j * g_.dilations[1];
          taps_.push_back({index, dh, dw, (c * g_.in_spatial[0] + dh) * g_.in_spatial[1] + dw});
        }

    const size_t weights = static_cast<size_t>(g_.c_out) * taps_.size();
    if (precision_ == Precision::int8) {
      qw_.resize(weights);
      w_scale_.resize(static_cast<size_t>(g_.c_out));
    } else {
      w_.resize(weights);
    }
    bias_.assign(static_cast<size_t>(g_.c_out), 0.0f);
    const size_t x_size = static_cast<size_t>(g_.n * g_.c_in * g_.in_spatial[0] * g_.in_spatial[1]);
    if (precision_ == Precision::half || precision_ == Precision::bf16) x_rounded_.resize(x_size);
    if (precision_ == Precision::int8) {
      x_codes_.resize(x_size);
      set_input_quantisation(*range);
    }
    plane_.resize(static_cast<size_t>(oh * ow));
  }

  // Transforms the constant weights / bias now; the others wait for run().
  void use_constants(const Tensor* weights, const Tensor* bias) {
    if (weights != nullptr) {
      transform_weights(weights->data<float>());
      weights_ready_ = true;
    }
    if (!has_bias_ || bias != nullptr) {
      transform_bias(bias != nullptr ? bias->data<float>() : nullptr);
      bias_ready_ = true;
    }
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    if (!weights_ready_) transform_weights(inputs[1]->data<float>());
    if (!bias_ready_) transform_bias(inputs[2]->data<float>());
    const float* x = transform_input(inputs[0]->data<float>());
    const float* residual = residual_ ? inputs[3]->data<float>() : nullptr;
    float* y = outputs[0]->data<float>();

    const int64_t out_plane = g_.out_spatial[0] * g_.out_spatial[1];
    for (int64_t n = 0; n < g_.n; ++n) {
      for (int64_t oc = 0; oc < g_.c_out; ++oc) {
        convolve_plane(x, n, oc);
        interpolate_plane();
        const int64_t y_offset = (n * g_.c_out + oc) * out_plane;
        for (int64_t i = 0; i < out_plane; ++i) {
          float v = plane_[static_cast<size_t>(i)];
          if (residual != nullptr) {
            const float r = residual[y_offset + i];
            v += precision_ == Precision::half ? round_half(r) : r;
          }
          v = act_(v);
          y[y_offset + i] = precision_ == Precision::half ? round_half(v) : v;
        }
      }
    }
    return {};
  }

 private:
  // Input scale of the int8 knob from the calibrated range of input #0:
  // unsigned codes [0, 255] when the range has no negative values, signed
  // [-128, 127] otherwise; a zero range keeps scale 1.
  void set_input_quantisation(const ValueRange& range) {
    const Int8Input q = int8_input_quantisation(range);
    x_scale_ = q.scale;
    x_lo_ = q.lo;
    x_hi_ = q.hi;
  }

  // Effective weights, [C_out][taps]: sampling's scale, then the precision.
  // int8 is symmetric per output channel: scale max|W[oc]| / 127.
  void transform_weights(const float* w) {
    const int64_t filter = g_.c_in_per_group() * g_.kernel[0] * g_.kernel[1];
    const size_t ntaps = taps_.size();
    const bool sampled = knob_.kind == KnobKind::sampling;
    const float scale = sampled ? sampling_scale(knob_) : 1.0f;
    for (int64_t oc = 0; oc < g_.c_out; ++oc) {
      const float* f = w + oc * filter;
      const size_t row = static_cast<size_t>(oc) * ntaps;
      if (precision_ == Precision::int8) {
        std::vector<float> kept(ntaps);
        for (size_t t = 0; t < ntaps; ++t) kept[t] = f[taps_[t].index];
        const float sw = int8_weight_scale(kept.data(), static_cast<int64_t>(ntaps));
        w_scale_[static_cast<size_t>(oc)] = sw;
        for (size_t t = 0; t < ntaps; ++t) qw_[row + t] = int8_code(kept[t], sw, -127, 127);
        continue;
      }
      for (size_t t = 0; t < ntaps; ++t) {
        float v = f[taps_[t].index];
        if (sampled) v *= scale;
        if (precision_ == Precision::half) v = round_half(v);
        if (precision_ == Precision::bf16) v = round_to_bf16(v);
        w_[row + t] = v;
      }
    }
  }

  // bf16 and int8 keep the bias in fp32; half rounds it like every input.
  void transform_bias(const float* b) {
    for (int64_t oc = 0; oc < g_.c_out; ++oc) {
      const float v = b != nullptr ? b[oc] : 0.0f;
      bias_[static_cast<size_t>(oc)] = precision_ == Precision::half ? round_half(v) : v;
    }
  }

  // Input #0 in the knob's precision: a pointer to the values the dot
  // products read (int8 fills x_codes_ instead and returns x unchanged).
  const float* transform_input(const float* x) {
    switch (precision_) {
      case Precision::f32: return x;
      case Precision::half:
        for (size_t i = 0; i < x_rounded_.size(); ++i) x_rounded_[i] = round_half(x[i]);
        return x_rounded_.data();
      case Precision::bf16:
        for (size_t i = 0; i < x_rounded_.size(); ++i) x_rounded_[i] = round_to_bf16(x[i]);
        return x_rounded_.data();
      case Precision::int8:
        for (size_t i = 0; i < x_codes_.size(); ++i)
          x_codes_[i] = int8_code(x[i], x_scale_, x_lo_, x_hi_);
        return x;
    }
    return x;
  }

  // plane_ = conv + bias at the computed positions of output channel oc.
  void convolve_plane(const float* x, int64_t n, int64_t oc) {
    const int64_t ow_count = g_.out_spatial[1];
    // The first input element of oc's group in image n.
    const int64_t ic0 = (oc / g_.c_out_per_group()) * g_.c_in_per_group();
    const int64_t group = (n * g_.c_in + ic0) * g_.in_spatial[0] * g_.in_spatial[1];
    for (int64_t oh : rows_)
      for (int64_t ow : cols_) {
        const Window at{oh * g_.strides[0] - g_.pads_begin[0], ow * g_.strides[1] - g_.pads_begin[1], group};
        const float acc = precision_ == Precision::int8 ? dot_int8(at, oc) : dot_f32(x, at, oc);
        plane_[static_cast<size_t>(oh * ow_count + ow)] = acc + bias_[static_cast<size_t>(oc)];
      }
  }

  // One output position's window: its origin in the input (row, column; may
  // lie in the padding) and the flat index of its group's first channel.
  struct Window {
    int64_t ih = 0, iw = 0, group = 0;
  };

  // Flat index of the input element tap t reads in window `at`; -1 where
  // the tap falls in the padding.
  int64_t input_index(const Tap& t, const Window& at) const {
    const int64_t ih = at.ih + t.dh, iw = at.iw + t.dw;
    if (ih < 0 || ih >= g_.in_spatial[0] || iw < 0 || iw >= g_.in_spatial[1]) return -1;
    return at.group + (at.ih * g_.in_spatial[1] + at.iw) + t.offset;
  }

  // Summed in filter order (channel, row, column), as the exact reference
  // Conv does, so knobs that only skip outputs reproduce it bit for bit.
  float dot_f32(const float* x, const Window& at, int64_t oc) const {
    const float* w = w_.data() + static_cast<size_t>(oc) * taps_.size();
    float acc = 0;
    for (size_t t = 0; t < taps_.size(); ++t) {
      const int64_t i = input_index(taps_[t], at);
      if (i >= 0) acc += w[t] * x[i];
    }
    return acc;
  }

  // int32 accumulation of codes, dequantised with the input and channel scales.
  float dot_int8(const Window& at, int64_t oc) const {
    const int32_t* w = qw_.data() + static_cast<size_t>(oc) * taps_.size();
    int32_t acc = 0;
    for (size_t t = 0; t < taps_.size(); ++t) {
      const int64_t i = input_index(taps_[t], at);
      if (i >= 0) acc += w[t] * x_codes_[static_cast<size_t>(i)];
    }
    return static_cast<float>(acc) * x_scale_ * w_scale_[static_cast<size_t>(oc)];
  }

  // Perforation: every skipped row (column) becomes the mean of the computed
  // rows directly above and below it, or a copy of the one that exists at an
  // edge. With rate >= 2 the neighbours of a skipped position are computed.
  void interpolate_plane() {
    if (knob_.kind != KnobKind::perforation) return;
    const int64_t oh_count = g_.out_spatial[0], ow_count = g_.out_spatial[1];
    const std::vector<bool>& computed = knob_.rows ? row_computed_ : col_computed_;
    const int64_t extent = knob_.rows ? oh_count : ow_count;
    // Element at position p along the perforated axis and q along the other.
    const auto at = [&](int64_t p, int64_t q) -> float& {
      const int64_t h = knob_.rows ? p : q, w = knob_.rows ? q : p;
      return plane_[static_cast<size_t>(h * ow_count + w)];
    };
    const int64_t other = knob_.rows ? ow_count : oh_count;
    for (int64_t p = 0; p < extent; ++p) {
      if (computed[static_cast<size_t>(p)]) continue;
      const bool before = p > 0 && computed[static_cast<size_t>(p - 1)];
      const bool after = p + 1 < extent && computed[static_cast<size_t>(p + 1)];
      for (int64_t q = 0; q < other; ++q) {
        if (before && after) at(p, q) = (at(p - 1, q) + at(p + 1, q)) / 2;
        else at(p, q) = before ? at(p - 1, q) : at(p + 1, q);
      }
    }
  }

  Knob knob_;
  ConvGeometry g_;
  Activation act_;
  bool residual_;
  bool has_bias_;
  Precision precision_;
  std::vector<int64_t> rows_;  // computed output rows, increasing
  std::vector<int64_t> cols_;  // computed output columns, increasing
  std::vector<bool> row_computed_;
  std::vector<bool> col_computed_;
  std::vector<Tap> taps_;      // kept filter elements, in filter order
  std::vector<float> w_;       // effective weights [C_out][taps] (not int8)
  std::vector<int32_t> qw_;    // int8 weight codes [C_out][taps]
  std::vector<float> w_scale_; // int8 per-output-channel weight scales
  std::vector<float> bias_;    // [C_out], zeros without a bias
  bool weights_ready_ = false;
  bool bias_ready_ = false;
  std::vector<float> x_rounded_;   // half / bf16 input
  std::vector<int32_t> x_codes_;   // int8 input codes
  float x_scale_ = 1;
  int32_t x_lo_ = 0;
  int32_t x_hi_ = 0;
  std::vector<float> plane_;   // one output channel: conv + bias, then interpolated
};

bool is_f32(const TensorType& t) { return t.dtype == DType::f32; }

}  // namespace

bool supports_knob_conv(const NodeContext& ctx) {
  if (ctx.knob == nullptr || ctx.knob->kind == KnobKind::exact) return false;
  if (ctx.node.op_type != "Conv" || ctx.layout != Layout::nchw) return false;
  if (ctx.input_types.size() < 2 || ctx.output_types.empty()) return false;
  if (!is_f32(ctx.input_types[0]) || !is_f32(ctx.input_types[1]) || !is_f32(ctx.output_types[0])) return false;
  // Optional bias and fused residual: f32 when present.
  for (size_t i = 2; i < ctx.input_types.size(); ++i)
    if (ctx.input_types[i].dtype != DType::undefined && !is_f32(ctx.input_types[i])) return false;
  if (ctx.input_types[0].shape.size() != 4) return false;
  if (!knob_applies(*ctx.knob, ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape).ok()) return false;
  // A missing int8 calibration range is an input error, reported by
  // make_knob_conv (Errc::invalid_input), not a capability gap.
  return fused_activation(ctx.node).ok();
}

Result<std::unique_ptr<Kernel>> make_knob_conv(const NodeContext& ctx) {
  if (ctx.knob == nullptr || ctx.knob->kind == KnobKind::exact)
    return runtime_error("{}: the knob Conv kernel was asked for without an approximation knob", ctx.node.describe());
  const Knob& knob = *ctx.knob;
  if (ctx.input_types.size() < 2)
    return invalid_input("{}: Conv needs inputs X and W, found {} input(s)", ctx.node.describe(),
                         ctx.input_types.size());
  const Shape& x = ctx.input_types[0].shape;
  const Shape& w = ctx.input_types[1].shape;
  CP_TRY(knob_applies(knob, ctx.node, x, w));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(ctx.node, x, w));
  CP_TRY(check_output_shape(ctx, g.output_shape()));
  CP_ASSIGN_OR_RETURN(Activation act, fused_activation(ctx.node));
  CP_ASSIGN_OR_RETURN(const bool residual, fused_residual(ctx, g));
  const bool has_bias = ctx.input_types.size() > 2 && ctx.input_types[2].dtype != DType::undefined;
  if (has_bias && ctx.input_types[2].shape != Shape{g.c_out})
    return invalid_input("{}: bias B must have shape [{}], found {}", ctx.node.describe(), g.c_out,
                         shape_str(ctx.input_types[2].shape));
  if (knob.kind == KnobKind::int8) {
    if (!ctx.input_range)
      return invalid_input("{}: knob '{}' needs the calibrated range of input #0 (from the experiment's calibrate "
                           "split), and none was given",
                           ctx.node.describe(), knob.name);
    const ValueRange& r = *ctx.input_range;
    if (!std::isfinite(r.min) || !std::isfinite(r.max) || r.min > r.max)
      return invalid_input("{}: knob '{}': the calibrated range of input #0 must be finite with min <= max, found "
                           "[{}, {}]",
                           ctx.node.describe(), knob.name, r.min, r.max);
  }
  auto kernel = std::make_unique<KnobConvKernel>(knob, g, act, residual, has_bias, ctx.input_range);
  const auto constant = [&ctx](size_t i) { return i < ctx.constants.size() ? ctx.constants[i] : nullptr; };
  kernel->use_constants(constant(1), has_bias ? constant(2) : nullptr);
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace caliprox::reference
