// Resolvers for the tensor ops whose parameters moved from attributes to
// inputs across opsets 1-17 (Slice 10, Pad 11, Resize 11/13, the Reduce ops'
// axes 13/18)
// or that need validation shared with the reference kernels.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ir/ops/tensor_ops_util.h"

namespace caliprox::tensor_ops {

Result<SliceParams> resolve_slice(const Node& node, std::span<const InferInput> inputs) {
  const Shape& in = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(in.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (inputs.size() == 1) {  // opset < 10: attributes
    CP_ASSIGN_OR_RETURN(auto a_starts, attr_ints(node, "starts"));
    CP_ASSIGN_OR_RETURN(auto a_ends, attr_ints(node, "ends"));
    CP_ASSIGN_OR_RETURN(auto a_axes, attr_ints(node, "axes"));
    if (!a_starts || !a_ends)
      return invalid_input("{}: needs the attributes 'starts' and 'ends' (or, from opset 10, inputs)",
                           node.describe());
    starts = *a_starts;
    ends = *a_ends;
    if (a_axes) axes = *a_axes;
  } else {
    CP_ASSIGN_OR_RETURN(starts, constant_ints(node, inputs, 1, "starts", "the output shape"));
    CP_ASSIGN_OR_RETURN(ends, constant_ints(node, inputs, 2, "ends", "the output shape"));
    if (optional_input(inputs, 3)) {
      CP_ASSIGN_OR_RETURN(axes, constant_ints(node, inputs, 3, "axes", "the output shape"));
    }
    if (optional_input(inputs, 4)) {
      CP_ASSIGN_OR_RETURN(steps, constant_ints(node, inputs, 4, "steps", "the output shape"));
    }
  }
  if (ends.size() != starts.size())
    return invalid_input("{}: 'starts' has {} values but 'ends' has {}", node.describe(), starts.size(), ends.size());
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size())
    return invalid_input("{}: 'starts', 'ends', 'axes' and 'steps' must have the same length, found {}, {}, {}, {}",
                         node.describe(), starts.size(), ends.size(), axes.size(), steps.size());
  CP_ASSIGN_OR_RETURN(auto norm_axes, normalize_axes(node, axes, rank, "'axes'"));

  SliceParams p;
  p.starts.assign(in.size(), 0);
  p.steps.assign(in.size(), 1);
  p.out_shape = in;
  for (size_t k = 0; k < norm_axes.size(); ++k) {
    const auto a = static_cast<size_t>(norm_axes[k]);
    const int64_t dim = in[a];
    int64_t step = steps[k];
    if (step == 0) return invalid_input("{}: 'steps' value for axis {} is 0", node.describe(), a);
    // Any |step| beyond the dimension selects at most one element; clamping
    // it keeps start + i * step free of overflow (INT64_MIN steps).
    step = std::clamp(step, -(dim + 1), dim + 1);
    int64_t start = starts[k];
    int64_t end = ends[k];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    int64_t count = 0;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? 1 + (end - start - 1) / step : 0;
    } else if (dim > 0) {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? 1 + (start - end - 1) / -step : 0;
    }
    p.starts[a] = count > 0 ? start : 0;
    p.steps[a] = step;
    p.out_shape[a] = count;
  }
  return p;
}

Result<PadParams> resolve_pad(const Node& node, std::span<const InferInput> inputs) {
  const Shape& in = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(in.size());
  PadParams p;
  CP_ASSIGN_OR_RETURN(std::string mode, attr_string(node, "mode", "constant"));
  if (mode == "constant") p.mode = PadMode::constant;
  else if (mode == "reflect") p.mode = PadMode::reflect;
  else if (mode == "edge") p.mode = PadMode::edge;
  else if (mode == "wrap") return unsupported("{}: Pad mode 'wrap' is not supported", node.describe());
  else return invalid_input("{}: Pad mode '{}' is unknown (expected constant, reflect or edge)", node.describe(), mode);

  std::vector<int64_t> pads;
  std::vector<int64_t> axes;
  if (optional_input(inputs, 1)) {  // opset >= 11
    CP_ASSIGN_OR_RETURN(pads, constant_ints(node, inputs, 1, "pads", "the output shape"));
    if (const InferInput* v = optional_input(inputs, 2)) {
      if (v->type.dtype != inputs[0].type.dtype)
        return invalid_input("{}: 'constant_value' is {} but the data is {}", node.describe(),
                             dtype_name(v->type.dtype), dtype_name(inputs[0].type.dtype));
      if (shape_numel(v->type.shape) != 1)
        return invalid_input("{}: 'constant_value' must be a scalar, found shape {}", node.describe(),
                             shape_str(v->type.shape));
      p.value_from_input = true;
    }
    if (optional_input(inputs, 3)) {
      CP_ASSIGN_OR_RETURN(axes, constant_ints(node, inputs, 3, "axes", "the output shape"));
    }
  } else {
    CP_ASSIGN_OR_RETURN(auto a_pads, attr_ints(node, "pads"));
    if (!a_pads)
      return invalid_input("{}: needs the 'pads' attribute (or, from opset 11, input #1)", node.describe());
    pads = *a_pads;
    CP_ASSIGN_OR_RETURN(float value, attr_float(node, "value", 0.0f));
    p.attr_value = value;
  }
  if (axes.empty()) {
    axes.resize(in.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  CP_ASSIGN_OR_RETURN(auto norm_axes, normalize_axes(node, axes, rank, "'axes'"));
  if (pads.size() != 2 * norm_axes.size())
    return invalid_input("{}: 'pads' must hold {} values (begin and end per axis), found {}", node.describe(),
                         2 * norm_axes.size(), pads.size());
  p.begins.assign(in.size(), 0);
  p.ends.assign(in.size(), 0);
  for (size_t k = 0; k < norm_axes.size(); ++k) {
    p.begins[static_cast<size_t>(norm_axes[k])] = pads[k];
    p.ends[static_cast<size_t>(norm_axes[k])] = pads[k + norm_axes.size()];
  }
  p.out_shape = in;
  for (size_t a = 0; a < in.size(); ++a) {
    p.out_shape[a] = in[a] + p.begins[a] + p.ends[a];
    if (p.out_shape[a] < 0)
      return invalid_input("{}: pads {} and {} on axis {} leave a negative size for a dimension of {}",
                           node.describe(), p.begins[a], p.ends[a], a, in[a]);
    if (p.mode != PadMode::constant && in[a] == 0 && p.out_shape[a] > 0)
      return invalid_input("{}: {} padding of axis {} needs a non-empty input dimension", node.describe(), mode, a);
  }
  CP_TRY(check_shape(p.out_shape, node.describe()));
  return p;
}

namespace {
Result<CoordinateMode> parse_coordinate_mode(const Node& node, const std::string& s) {
  if (s == "half_pixel") return CoordinateMode::half_pixel;
  if (s == "pytorch_half_pixel") return CoordinateMode::pytorch_half_pixel;
  if (s == "align_corners") return CoordinateMode::align_corners;
  if (s == "asymmetric") return CoordinateMode::asymmetric;
  if (s == "tf_half_pixel_for_nn") return CoordinateMode::tf_half_pixel_for_nn;
  if (s == "tf_crop_and_resize") return CoordinateMode::tf_crop_and_resize;
  return invalid_input("{}: coordinate_transformation_mode '{}' is unknown", node.describe(), s);
}

Result<NearestMode> parse_nearest_mode(const Node& node, const std::string& s) {
  if (s == "round_prefer_floor") return NearestMode::round_prefer_floor;
  if (s == "round_prefer_ceil") return NearestMode::round_prefer_ceil;
  if (s == "floor") return NearestMode::floor;
  if (s == "ceil") return NearestMode::ceil;
  return invalid_input("{}: nearest_mode '{}' is unknown", node.describe(), s);
}

bool given(const InferInput* in) { return in != nullptr && shape_numel(in->type.shape) > 0; }
}  // namespace

Result<ResizeParams> resolve_resize(const Node& node, std::span<const InferInput> inputs) {
  const Shape& in = inputs[0].type.shape;
  const size_t rank = in.size();
  // Opset 10 had (X, scales) and no transformation attributes; its
  // behaviour is the asymmetric mapping with floor rounding (like Upsample).
  const bool opset10_form = inputs.size() == 2;
  ResizeParams p;

  CP_ASSIGN_OR_RETURN(std::string mode, attr_string(node, "mode", "nearest"));
  if (mode == "nearest") p.mode = ResizeMode::nearest;
  else if (mode == "linear" || mode == "bilinear") p.mode = ResizeMode::linear;
  else if (mode == "cubic") p.mode = ResizeMode::cubic;
  else return invalid_input("{}: Resize mode '{}' is unknown (expected nearest, linear or cubic)", node.describe(), mode);
  CP_ASSIGN_OR_RETURN(std::string coord,
                      attr_string(node, "coordinate_transformation_mode", opset10_form ? "asymmetric" : "half_pixel"));
  CP_ASSIGN_OR_RETURN(p.coordinate_mode, parse_coordinate_mode(node, coord));
  CP_ASSIGN_OR_RETURN(std::string nearest, attr_string(node, "nearest_mode", opset10_form ? "floor" : "round_prefer_floor"));
  CP_ASSIGN_OR_RETURN(p.nearest_mode, parse_nearest_mode(node, nearest));
  CP_ASSIGN_OR_RETURN(float a, attr_float(node, "cubic_coeff_a", -0.75f));
  CP_ASSIGN_OR_RETURN(int64_t exclude, attr_int(node, "exclude_outside", 0));
  CP_ASSIGN_OR_RETURN(float extrapolation, attr_float(node, "extrapolation_value", 0.0f));
  p.cubic_coeff_a = a;
  p.exclude_outside = exclude != 0;
  p.extrapolation_value = extrapolation;
  CP_ASSIGN_OR_RETURN(int64_t antialias, attr_int(node, "antialias", 0));
  if (antialias != 0 || node.has("axes") || node.has("keep_aspect_ratio_policy"))
    return unsupported("{}: the opset 18 Resize attributes (antialias, axes, keep_aspect_ratio_policy) are not supported",
                       node.describe());

  const size_t scales_index = opset10_form ? 1 : 2;
  const InferInput* scales_in = optional_input(inputs, scales_index);
  const InferInput* sizes_in = opset10_form ? nullptr : optional_input(inputs, 3);
  if (given(scales_in) == given(sizes_in))
    return invalid_input("{}: exactly one of 'scales' and 'sizes' must be given (non-empty)", node.describe());
  p.out_shape.resize(rank);
  p.scales.resize(rank);
  if (given(sizes_in)) {
    CP_ASSIGN_OR_RETURN(auto sizes, constant_ints(node, inputs, 3, "sizes", "the output shape"));
    if (sizes.size() != rank)
      return invalid_input("{}: 'sizes' has {} values for an input of rank {}", node.describe(), sizes.size(), rank);
    for (size_t i = 0; i < rank; ++i) {
      if (sizes[i] < 0) return invalid_input("{}: 'sizes'[{}] is negative ({})", node.describe(), i, sizes[i]);
      if (in[i] == 0 && sizes[i] != 0)
        return invalid_input("{}: cannot resize an empty axis {} to {}", node.describe(), i, sizes[i]);
      p.out_shape[i] = sizes[i];
      p.scales[i] = in[i] == 0 ? 1.0 : static_cast<double>(sizes[i]) / static_cast<double>(in[i]);
    }
  } else {
    CP_ASSIGN_OR_RETURN(auto scales, constant_floats(node, inputs, scales_index, "scales", "the output shape"));
    if (scales.size() != rank)
      return invalid_input("{}: 'scales' has {} values for an input of rank {}", node.describe(), scales.size(), rank);
    for (size_t i = 0; i < rank; ++i) {
      if (!(scales[i] > 0))
        return invalid_input("{}: 'scales'[{}] is {} (expected a positive value)", node.describe(), i, scales[i]);
      p.scales[i] = scales[i];
      p.out_shape[i] = static_cast<int64_t>(std::floor(scales[i] * static_cast<double>(in[i])));
    }
  }
  CP_TRY(check_shape(p.out_shape, node.describe()));

  p.roi_start.assign(rank, 0.0);
  p.roi_end.assign(rank, 1.0);
  if (p.coordinate_mode == CoordinateMode::tf_crop_and_resize) {
    if (!given(optional_input(inputs, 1)))
      return invalid_input("{}: tf_crop_and_resize needs the 'roi' input", node.describe());
    CP_ASSIGN_OR_RETURN(auto roi, constant_floats(node, inputs, 1, "roi", "the crop region"));
    if (roi.size() != 2 * rank)
      return invalid_input("{}: 'roi' has {} values, expected {} (starts then ends)", node.describe(), roi.size(),
                           2 * rank);
    for (size_t i = 0; i < rank; ++i) {
      p.roi_start[i] = roi[i];
      p.roi_end[i] = roi[rank + i];
    }
  }
  return p;
}

double resize_source_coordinate(const ResizeParams& p, size_t axis, int64_t x, int64_t in_len) {
  const double scale = p.scales[axis];
  const double xd = static_cast<double>(x);
  const double in = static_cast<double>(in_len);
  const double out_len = scale * in;
  switch (p.coordinate_mode) {
    case CoordinateMode::half_pixel: return (xd + 0.5) / scale - 0.5;
    case CoordinateMode::pytorch_half_pixel: return out_len == 1 ? -0.5 : (xd + 0.5) / scale - 0.5;
    case CoordinateMode::align_corners: return out_len == 1 ? 0.0 : xd * (in - 1) / (out_len - 1);
    case CoordinateMode::asymmetric: return xd / scale;
    case CoordinateMode::tf_half_pixel_for_nn: return (xd + 0.5) / scale;
    case CoordinateMode::tf_crop_and_resize: {
      const double start = p.roi_start[axis];
      const double end = p.roi_end[axis];
      const double offset = out_len == 1 ? (end - start) * (in - 1) / 2 : xd * (end - start) * (in - 1) / (out_len - 1);
      return offset + start * (in - 1);
    }
  }
  return xd;
}

Result<ReduceParams> resolve_reduce(const Node& node, std::span<const InferInput> inputs) {
  const Shape& in = inputs[0].type.shape;
  const auto rank = static_cast<int64_t>(in.size());
  ReduceParams p;
  CP_ASSIGN_OR_RETURN(int64_t keepdims, attr_int(node, "keepdims", 1));
  CP_ASSIGN_OR_RETURN(int64_t noop, attr_int(node, "noop_with_empty_axes", 0));
  p.keepdims = keepdims != 0;
  std::vector<int64_t> axes;
  if (optional_input(inputs, 1)) {  // opset 18
    CP_ASSIGN_OR_RETURN(axes, constant_ints(node, inputs, 1, "axes", "the output shape"));
  } else {
    CP_ASSIGN_OR_RETURN(auto a_axes, attr_ints(node, "axes"));
    if (a_axes) axes = *a_axes;
  }
  CP_ASSIGN_OR_RETURN(p.axes, normalize_axes(node, axes, rank, "'axes'"));
  if (p.axes.empty() && noop == 0) {
    p.axes.resize(in.size());
    std::iota(p.axes.begin(), p.axes.end(), 0);
  }
  std::sort(p.axes.begin(), p.axes.end());
  for (size_t a = 0; a < in.size(); ++a) {
    bool reduced = std::binary_search(p.axes.begin(), p.axes.end(), static_cast<int64_t>(a));
    if (!reduced) p.out_shape.push_back(in[a]);
    else if (p.keepdims) p.out_shape.push_back(1);
  }
  return p;
}

Result<std::vector<int64_t>> resolve_perm(const Node& node, int64_t rank) {
  CP_ASSIGN_OR_RETURN(auto perm, attr_ints(node, "perm"));
  std::vector<int64_t> p;
  if (!perm) {
    for (int64_t i = rank - 1; i >= 0; --i) p.push_back(i);
    return p;
  }
  if (static_cast<int64_t>(perm->size()) != rank)
    return invalid_input("{}: 'perm' has {} values for an input of rank {}", node.describe(), perm->size(), rank);
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : *perm) {
    if (a < 0 || a >= rank || seen[static_cast<size_t>(a)])
      return invalid_input("{}: 'perm' [{}] is not a permutation of 0..{}", node.describe(), fmt::join(*perm, ", "),
                           rank - 1);
    seen[static_cast<size_t>(a)] = true;
  }
  return *perm;
}

Result<SoftmaxLayout> resolve_softmax(const Node& node, const Shape& shape) {
  const auto rank = static_cast<int64_t>(shape.size());
  const bool legacy = node_opset(node) < 13;
  if (rank == 0) return invalid_input("{}: Softmax needs an input of rank 1 or more", node.describe());
  CP_ASSIGN_OR_RETURN(int64_t a, axis_attr(node, legacy ? 1 : -1, rank));
  const auto ua = static_cast<size_t>(a);
  SoftmaxLayout l;
  l.outer = dims_product(shape, 0, ua);
  if (legacy) {
    l.axis_len = dims_product(shape, ua, shape.size());
    l.inner = 1;
  } else {
    l.axis_len = shape[ua];
    l.inner = dims_product(shape, ua + 1, shape.size());
  }
  return l;
}

}  // namespace caliprox::tensor_ops
