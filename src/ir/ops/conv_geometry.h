#pragma once
// Convolution and pooling geometry, resolved once from a node's attributes and
// its input shapes: shape inference, the reference kernels and every other
// backend read the same numbers, so auto_pad / ceil_mode / output_shape rules
// live in exactly one place (src/ir/ops/conv_geometry.cc).
//
// Spatial vectors hold one entry per spatial axis (D1..Dk, k = rank()).
// Errors are Errc::invalid_input and name the node (node.describe()).
#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

// Conv (X [N, C_in, D...], W [C_out, C_in/group, K...]) and
// ConvTranspose (X [N, C_in, D...], W [C_in, C_out/group, K...]).
struct ConvGeometry {
  int64_t n = 0;      // batch
  int64_t c_in = 0;   // channels of X (all groups)
  int64_t c_out = 0;  // channels of Y (all groups)
  int64_t group = 1;
  std::vector<int64_t> in_spatial;   // spatial dims of X
  std::vector<int64_t> out_spatial;  // spatial dims of Y
  std::vector<int64_t> kernel;       // spatial dims of W
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  // Resolved pads (auto_pad / output_shape applied).
  // Conv: zeros added before/after X along each axis.
  // ConvTranspose: positions cropped from the start/end of the full
  //   transposed-convolution result, i.e. output position o along an axis is
  //   full position o + pads_begin, where input i and kernel tap k reach full
  //   position i * stride + k * dilation. pads_end may be negative when
  //   output_shape asks for more than the full result: the extra positions
  //   at the end receive only the bias.
  std::vector<int64_t> pads_begin;
  std::vector<int64_t> pads_end;
  // ConvTranspose only (zeros for Conv): extra positions added at the end of
  // the full result (already included in out_spatial and pads).
  std::vector<int64_t> output_padding;

  size_t rank() const { return in_spatial.size(); }
  int64_t c_in_per_group() const { return c_in / group; }
  int64_t c_out_per_group() const { return c_out / group; }
  // (kernel - 1) * dilation + 1 along axis d.
  int64_t effective_kernel(size_t d) const { return (kernel[d] - 1) * dilations[d] + 1; }
  Shape output_shape() const;  // {n, c_out, out_spatial...}
};

// Conv node: validates group divisibility, W rank and channels, kernel_shape
// (when given) against W, strides/dilations/pads lengths and signs, auto_pad,
// and that the (dilated) kernel fits the padded input.
Result<ConvGeometry> conv_geometry(const Node& node, const Shape& x, const Shape& w);

// ConvTranspose node: output_shape (spatial dims, or full rank with N and C
// leading), output_padding (each < stride or < dilation), auto_pad, pads.
Result<ConvGeometry> conv_transpose_geometry(const Node& node, const Shape& x, const Shape& w);

// MaxPool and AveragePool (X [N, C, D...]).
struct PoolGeometry {
  int64_t n = 0;
  int64_t c = 0;
  std::vector<int64_t> in_spatial;
  std::vector<int64_t> out_spatial;
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;   // ones unless the node sets dilations
  std::vector<int64_t> pads_begin;  // resolved (auto_pad applied)
  std::vector<int64_t> pads_end;
  bool ceil_mode = false;
  bool count_include_pad = false;   // AveragePool: divisor counts pads too
  int64_t storage_order = 0;        // MaxPool Indices: 0 row-major, 1 column-major

  size_t rank() const { return in_spatial.size(); }
  int64_t effective_kernel(size_t d) const { return (kernel[d] - 1) * dilations[d] + 1; }
  // End padding the last window actually reaches:
  // (out - 1) * stride + effective_kernel - in - pads_begin. With ceil_mode it
  // can exceed pads_end (the last window hangs over the padded input); those
  // extra positions are never counted, not even with count_include_pad, which
  // only counts positions inside [-pads_begin, in + pads_end).
  // Backends that need exactly consistent sizes (oneDNN) use this as the right
  // padding.
  int64_t pads_end_reached(size_t d) const {
    return (out_spatial[d] - 1) * strides[d] + effective_kernel(d) - in_spatial[d] - pads_begin[d];
  }
  Shape output_shape() const;  // {n, c, out_spatial...}
};

// MaxPool / AveragePool node: kernel_shape required; strides, pads, auto_pad,
// dilations, ceil_mode, count_include_pad, storage_order validated. With
// ceil_mode a last window that would start inside the end padding only is
// dropped (as PyTorch and ONNX Runtime do).
Result<PoolGeometry> pool_geometry(const Node& node, const Shape& x);

}  // namespace caliprox
