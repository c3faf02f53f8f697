#pragma once
// GridSample, MaxUnpool and RoiAlign: attributes resolved once for shape inference
// (ir/ops/sample_ops.cc) and the reference kernels
// (backends/reference/sample_kernels.cc).
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::sample {

enum class GridMode { bilinear, nearest, bicubic };
enum class GridPadding { zeros, border, reflection };

// GridSample of opset 16: X [N, C, H, W] sampled at grid [N, H_out, W_out,
// 2] ((x, y) in [-1, 1]) into [N, C, H_out, W_out].
struct Grid {
  GridMode mode = GridMode::bilinear;
  GridPadding padding = GridPadding::zeros;
  bool align_corners = false;
  Shape output_shape;
};
Result<Grid> grid(const Node& node, const Shape& x, const Shape& grid);

// MaxUnpool: the output shape from `output_shape` (the optional input's
// values, empty when omitted) or from kernel_shape, strides and pads.
Result<Shape> unpool_shape(const Node& node, const Shape& x, const Shape& indices,
                           const std::vector<int64_t>& output_shape);

// RoiAlign (opsets 10 and 16): X [N, C, H, W], rois [R, 4] (x1, y1, x2,
// y2), batch_indices [R] into [R, C, output_height, output_width].
struct Roi {
  bool half_pixel = true;  // opset 16's default; output_half_pixel is opset 10's behaviour
  bool max = false;        // mode max, else avg
  int64_t height = 1, width = 1, sampling_ratio = 0;
  float spatial_scale = 1;
  Shape output_shape;
};
Result<Roi> roi_align(const Node& node, const Shape& x, const Shape& rois, const Shape& batch_indices);

}  // namespace caliprox::sample
