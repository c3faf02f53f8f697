// GridSample, MaxUnpool and RoiAlign: parameters (ir/ops/sample_params.h) and shape
// inference.
#include <fmt/format.h>

#include "ir/ops/infer_checks.h"
#include "ir/ops/sample_params.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::sample {

Result<Grid> grid(const Node& node, const Shape& x, const Shape& g) {
  if (x.size() != 4 || g.size() != 4 || g[0] != x[0] || g[3] != 2)
    return unsupported("{}: needs X [N, C, H, W] and a grid [N, H_out, W_out, 2], found {} and {} (the volumetric "
                       "form of opset 20 is not supported)",
                       node.describe(), shape_str(x), shape_str(g));
  Grid p;
  CP_ASSIGN_OR_RETURN(std::string mode, tensor_ops::attr_string(node, "mode", "bilinear"));
  // Opset 20 renamed the modes linear and cubic; both spellings are read.
  if (mode == "bilinear" || mode == "linear") p.mode = GridMode::bilinear;
  else if (mode == "nearest") p.mode = GridMode::nearest;
  else if (mode == "bicubic" || mode == "cubic") p.mode = GridMode::bicubic;
  else return invalid_input("{}: mode '{}' (expected bilinear, nearest or bicubic)", node.describe(), mode);
  CP_ASSIGN_OR_RETURN(std::string padding, tensor_ops::attr_string(node, "padding_mode", "zeros"));
  if (padding == "zeros") p.padding = GridPadding::zeros;
  else if (padding == "border") p.padding = GridPadding::border;
  else if (padding == "reflection") p.padding = GridPadding::reflection;
  else return invalid_input("{}: padding_mode '{}' (expected zeros, border or reflection)", node.describe(), padding);
  CP_ASSIGN_OR_RETURN(int64_t align, tensor_ops::attr_int(node, "align_corners", 0));
  p.align_corners = align != 0;
  p.output_shape = {x[0], x[1], g[1], g[2]};
  return p;
}

Result<Shape> unpool_shape(const Node& node, const Shape& x, const Shape& indices,
                           const std::vector<int64_t>& output_shape) {
  if (x.size() < 3)
    return invalid_input("{}: X has shape {}, expected [N, C, spatial...]", node.describe(), shape_str(x));
  if (indices != x)
    return invalid_input("{}: the indices have shape {}, X {}; they must agree", node.describe(), shape_str(indices),
                         shape_str(x));
  const size_t spatial = x.size() - 2;
  const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  const std::vector<int64_t> strides = node.attr_ints("strides", std::vector<int64_t>(spatial, 1));
  const std::vector<int64_t> pads = node.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  if (kernel.size() != spatial || strides.size() != spatial || pads.size() != 2 * spatial)
    return invalid_input("{}: kernel_shape, strides and pads need {}, {} and {} values", node.describe(), spatial,
                         spatial, 2 * spatial);
  Shape out = {x[0], x[1]};
  for (size_t d = 0; d < spatial; ++d)
    out.push_back((x[d + 2] - 1) * strides[d] - (pads[d] + pads[d + spatial]) + kernel[d]);
  if (output_shape.empty()) return out;
  if (output_shape.size() != x.size())
    return invalid_input("{}: output_shape has {} values for an input of rank {}", node.describe(), output_shape.size(),
                         x.size());
  for (size_t d = 0; d < x.size(); ++d)
    if (output_shape[d] < (d < 2 ? x[d] : out[d]))
      return invalid_input("{}: output_shape {} is smaller than the unpooled shape {}", node.describe(),
                           fmt::join(output_shape, "x"), shape_str(out));
  return Shape(output_shape.begin(), output_shape.end());
}

Result<Roi> roi_align(const Node& node, const Shape& x, const Shape& rois, const Shape& batch_indices) {
  if (x.size() != 4 || rois.size() != 2 || rois[1] != 4 || batch_indices.size() != 1 || batch_indices[0] != rois[0])
    return invalid_input("{}: needs X [N, C, H, W], rois [R, 4] and batch_indices [R], found {}, {} and {}",
                         node.describe(), shape_str(x), shape_str(rois), shape_str(batch_indices));
  Roi r;
  // Opset 10 had no attribute and behaved as output_half_pixel.
  const std::string fallback = tensor_ops::node_opset(node) < 16 ? "output_half_pixel" : "half_pixel";
  CP_ASSIGN_OR_RETURN(std::string transform, tensor_ops::attr_string(node, "coordinate_transformation_mode", fallback));
  if (transform != "half_pixel" && transform != "output_half_pixel")
    return invalid_input("{}: coordinate_transformation_mode '{}' (expected half_pixel or output_half_pixel)",
                         node.describe(), transform);
  r.half_pixel = transform == "half_pixel";
  CP_ASSIGN_OR_RETURN(std::string mode, tensor_ops::attr_string(node, "mode", "avg"));
  if (mode != "avg" && mode != "max")
    return invalid_input("{}: mode '{}' (expected avg or max)", node.describe(), mode);
  r.max = mode == "max";
  CP_ASSIGN_OR_RETURN(r.height, tensor_ops::attr_int(node, "output_height", 1));
  CP_ASSIGN_OR_RETURN(r.width, tensor_ops::attr_int(node, "output_width", 1));
  CP_ASSIGN_OR_RETURN(r.sampling_ratio, tensor_ops::attr_int(node, "sampling_ratio", 0));
  CP_ASSIGN_OR_RETURN(r.spatial_scale, tensor_ops::attr_float(node, "spatial_scale", 1.0f));
  if (r.height < 1 || r.width < 1 || r.sampling_ratio < 0)
    return invalid_input("{}: output_height {} and output_width {} must be positive, sampling_ratio {} at least 0",
                         node.describe(), r.height, r.width, r.sampling_ratio);
  r.output_shape = {rois[0], x[1], r.height, r.width};
  return r;
}

namespace {

using Types = Result<std::vector<TensorType>>;

Types infer_grid_sample(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(tensor_ops::check_inputs(node, inputs, 2, 2));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_TRY(tensor_ops::check_dtype(node, inputs[0], 0, tensor_ops::Accepts::floating));
  CP_TRY(tensor_ops::check_dtype(node, inputs[1], 1, tensor_ops::Accepts::floating));
  CP_ASSIGN_OR_RETURN(Grid g, grid(node, inputs[0].type.shape, inputs[1].type.shape));
  return std::vector<TensorType>{{inputs[0].type.dtype, g.output_shape}};
}

Types infer_max_unpool(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(tensor_ops::check_inputs(node, inputs, 2, 3));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  if (inputs[1].type.dtype != DType::i64)
    return invalid_input("{}: the indices are {}, expected int64", node.describe(), dtype_name(inputs[1].type.dtype));
  std::vector<int64_t> output_shape;
  if (tensor_ops::optional_input(inputs, 2)) {
    CP_ASSIGN_OR_RETURN(output_shape, tensor_ops::constant_ints(node, inputs, 2, "output_shape", "the output shape"));
  }
  CP_ASSIGN_OR_RETURN(Shape out, unpool_shape(node, inputs[0].type.shape, inputs[1].type.shape, output_shape));
  return std::vector<TensorType>{{inputs[0].type.dtype, out}};
}

Types infer_roi_align(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(tensor_ops::check_inputs(node, inputs, 3, 3));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_TRY(tensor_ops::check_dtype(node, inputs[0], 0, tensor_ops::Accepts::floating));
  CP_TRY(tensor_ops::check_same_dtype(node, inputs, 0, 2));
  if (inputs[2].type.dtype != DType::i64)
    return invalid_input("{}: batch_indices are {}, expected int64", node.describe(), dtype_name(inputs[2].type.dtype));
  CP_ASSIGN_OR_RETURN(Roi r, roi_align(node, inputs[0].type.shape, inputs[1].type.shape, inputs[2].type.shape));
  return std::vector<TensorType>{{inputs[0].type.dtype, r.output_shape}};
}

}  // namespace

}  // namespace caliprox::sample

namespace caliprox {

void register_sample_ops(std::vector<OpDef>& table) {
  table.push_back({"GridSample", sample::infer_grid_sample});
  table.push_back({"MaxUnpool", sample::infer_max_unpool});
  table.push_back({"RoiAlign", sample::infer_roi_align});
}

}  // namespace caliprox
