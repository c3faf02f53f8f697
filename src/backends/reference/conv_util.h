#pragma once
// Internals shared by the reference nn kernel files (nn_kernels.cc,
// nn_conv.cc, nn_pool.cc): the 3-D canonical window form, index ranges and
// dtype checks.
//
// Every 1-D and 2-D convolution or pooling is run as a 3-D one with leading
// spatial axes of size 1 (kernel 1, stride 1, dilation 1, no padding), so one
// readable loop nest serves all ranks and the innermost loop always walks the
// last, contiguous axis.
#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "ir/ops/conv_geometry.h"

namespace caliprox::reference {

inline constexpr size_t kMaxSpatialRank = 3;

struct Window3d {
  std::array<int64_t, 3> in{1, 1, 1};
  std::array<int64_t, 3> out{1, 1, 1};
  std::array<int64_t, 3> kernel{1, 1, 1};
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> dilation{1, 1, 1};
  std::array<int64_t, 3> pad{0, 0, 0};      // pads_begin
  std::array<int64_t, 3> pad_end{0, 0, 0};  // pads_end

  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_plane() const { return kernel[0] * kernel[1] * kernel[2]; }
};

// Right-aligns `rank` (<= 3) spatial axes into a Window3d.
inline Window3d make_window3d(const std::vector<int64_t>& in, const std::vector<int64_t>& out,
                              const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                              const std::vector<int64_t>& dilation, const std::vector<int64_t>& pad_begin,
                              const std::vector<int64_t>& pad_end) {
  Window3d w;
  const size_t shift = 3 - in.size();
  for (size_t d = 0; d < in.size(); ++d) {
    w.in[shift + d] = in[d];
    w.out[shift + d] = out[d];
    w.kernel[shift + d] = kernel[d];
    w.stride[shift + d] = stride[d];
    w.dilation[shift + d] = dilation[d];
    w.pad[shift + d] = pad_begin[d];
    w.pad_end[shift + d] = pad_end[d];
  }
  return w;
}

inline Window3d window3d(const ConvGeometry& g) {
  return make_window3d(g.in_spatial, g.out_spatial, g.kernel, g.strides, g.dilations, g.pads_begin, g.pads_end);
}
inline Window3d window3d(const PoolGeometry& g) {
  return make_window3d(g.in_spatial, g.out_spatial, g.kernel, g.strides, g.dilations, g.pads_begin, g.pads_end);
}

// Half-open range [first, last) of p in [0, count) with p * stride + offset in
// [0, bound). Empty ranges come back as first == last.
struct IndexRange {
  int64_t first = 0;
  int64_t last = 0;
};
inline IndexRange valid_range(int64_t count, int64_t stride, int64_t offset, int64_t bound) {
  // p >= ceil(-offset / stride) and p <= floor((bound - 1 - offset) / stride).
  const int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t top = bound - 1 - offset;
  const int64_t last = top < 0 ? 0 : std::min(count, top / stride + 1);
  return {first, std::max(first, last)};
}

// acc (one output plane of the window) += conv(x, one input channel's plane,
// with w, its kernel): the loop nest every reference convolution runs (float
// Conv in nn_conv.cc, ConvInteger/QLinearConv in quant_conv.cc). Products are
// formed in Acc.
template <typename Acc, typename X, typename W>
void accumulate_window(const Window3d& s, Acc* acc, const X* x, const W* w) {
  for (int64_t kd = 0; kd < s.kernel[0]; ++kd) {
    const int64_t off_d = kd * s.dilation[0] - s.pad[0];
    const IndexRange rd = valid_range(s.out[0], s.stride[0], off_d, s.in[0]);
    for (int64_t kh = 0; kh < s.kernel[1]; ++kh) {
      const int64_t off_h = kh * s.dilation[1] - s.pad[1];
      const IndexRange rh = valid_range(s.out[1], s.stride[1], off_h, s.in[1]);
      for (int64_t kw = 0; kw < s.kernel[2]; ++kw) {
        const int64_t off_w = kw * s.dilation[2] - s.pad[2];
        const IndexRange rw = valid_range(s.out[2], s.stride[2], off_w, s.in[2]);
        const Acc wv = static_cast<Acc>(w[(kd * s.kernel[1] + kh) * s.kernel[2] + kw]);
        for (int64_t od = rd.first; od < rd.last; ++od) {
          const int64_t id = od * s.stride[0] + off_d;
          for (int64_t oh = rh.first; oh < rh.last; ++oh) {
            const int64_t ih = oh * s.stride[1] + off_h;
            Acc* arow = acc + (od * s.out[1] + oh) * s.out[2];
            const X* xrow = x + (id * s.in[1] + ih) * s.in[2];
            if (s.stride[2] == 1) {
              for (int64_t ow = rw.first; ow < rw.last; ++ow) arow[ow] += wv * static_cast<Acc>(xrow[ow + off_w]);
            } else {
              for (int64_t ow = rw.first; ow < rw.last; ++ow)
                arow[ow] += wv * static_cast<Acc>(xrow[ow * s.stride[2] + off_w]);
            }
          }
        }
      }
    }
  }
}

// acc = output channel oc of sample n before bias: the window sums over the
// input channels of oc's group (x is [N, C_in, in plane], w is
// [C_out, C_in / group, kernel plane]).
template <typename Acc, typename X, typename W>
void conv_output_plane(const ConvGeometry& g, const Window3d& s, std::vector<Acc>& acc, const X* x, const W* w,
                       int64_t n, int64_t oc) {
  std::fill(acc.begin(), acc.end(), Acc(0));
  const int64_t cin_g = g.c_in_per_group();
  const int64_t group = oc / g.c_out_per_group();
  for (int64_t icg = 0; icg < cin_g; ++icg) {
    const int64_t ic = group * cin_g + icg;
    accumulate_window(s, acc.data(), x + (n * g.c_in + ic) * s.in_plane(), w + (oc * cin_g + icg) * s.kernel_plane());
  }
}

// True when every present input and output #0 are f32, or all are f64
// (further outputs, like MaxPool's int64 Indices, are checked by the caller).
inline bool uniform_float_dtype(const NodeContext& ctx) {
  DType t = DType::undefined;
  const auto same = [&t](DType d) {
    if (d == DType::undefined) return true;  // omitted optional input
    if (t == DType::undefined) t = d;
    return d == t && (d == DType::f32 || d == DType::f64);
  };
  for (const auto& in : ctx.input_types)
    if (!same(in.dtype)) return false;
  if (ctx.output_types.empty() || !same(ctx.output_types[0].dtype)) return false;
  return t != DType::undefined;
}

// Sanity check at prepare time: the executor allocates outputs with the
// inferred types, so the kernel's own geometry must agree with them.
inline Status check_output_shape(const NodeContext& ctx, const Shape& computed) {
  if (ctx.output_types.empty() || ctx.output_types[0].shape != computed)
    return runtime_error("{}: the planned output shape {} differs from the kernel's {}", ctx.node.describe(),
                         ctx.output_types.empty() ? std::string("(none)") : shape_str(ctx.output_types[0].shape),
                         shape_str(computed));
  return {};
}

// Input i, or null when it is omitted (or beyond the inputs given).
inline const Tensor* input_or_null(std::span<const Tensor* const> inputs, size_t i) {
  return i < inputs.size() ? inputs[i] : nullptr;
}

// Whether a Conv node adds a fused residual (engine/passes.cc): input #3,
// which must have the output's shape (invalid_input otherwise).
inline Result<bool> fused_residual(const NodeContext& ctx, const ConvGeometry& g) {
  const bool residual = ctx.node.attr_int(kAttrResidual, 0) == 1;
  if (residual && (ctx.input_types.size() < 4 || ctx.input_types[3].shape != g.output_shape()))
    return invalid_input("{}: {}=1 needs input #3 of the output shape {}", ctx.node.describe(), kAttrResidual,
                         shape_str(g.output_shape()));
  return residual;
}

inline bool is_f64(const NodeContext& ctx) { return ctx.input_types[0].dtype == DType::f64; }

// Registration of the kernels in nn_conv.cc and nn_pool.cc; register_nn_kernels
// (nn_kernels.cc) calls them.
void add_conv_kernels(std::vector<KernelEntry>& table);
void add_pool_kernels(std::vector<KernelEntry>& table);

}  // namespace caliprox::reference
