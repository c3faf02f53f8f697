#include "ir/ops/conv_geometry.h"

#include <algorithm>
#include <string>

#include <fmt/format.h>

namespace caliprox {

namespace {

enum class AutoPad { notset, same_upper, same_lower, valid };

Result<AutoPad> parse_auto_pad(const Node& node) {
  const std::string s = node.attr_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::notset;
  if (s == "SAME_UPPER") return AutoPad::same_upper;
  if (s == "SAME_LOWER") return AutoPad::same_lower;
  if (s == "VALID") return AutoPad::valid;
  return invalid_input("{}: auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, found '{}'", node.describe(), s);
}

// Reads a per-axis attribute (strides, dilations, output_padding, kernel_shape):
// `fill` for every axis when absent, otherwise exactly `rank` values >= `min`.
Result<std::vector<int64_t>> axis_attr(const Node& node, const char* key, size_t rank, int64_t fill, int64_t min) {
  if (!node.has(key)) return std::vector<int64_t>(rank, fill);
  std::vector<int64_t> v = node.attr_ints(key);
  if (v.size() != rank)
    return invalid_input("{}: {} must have {} values (one per spatial axis), found {}", node.describe(), key, rank,
                         v.size());
  for (int64_t e : v)
    if (e < min)
      return invalid_input("{}: {} values must be >= {}, found [{}]", node.describe(), key, min, fmt::join(v, ", "));
  return v;
}

// Explicit pads [b1..bk, e1..ek]; zeros when absent.
Status read_pads(const Node& node, size_t rank, AutoPad auto_pad, std::vector<int64_t>& begin,
                 std::vector<int64_t>& end) {
  begin.assign(rank, 0);
  end.assign(rank, 0);
  if (!node.has("pads")) return {};
  std::vector<int64_t> p = node.attr_ints("pads");
  if (p.size() != 2 * rank)
    return invalid_input("{}: pads must have {} values (begin and end per spatial axis), found {}", node.describe(),
                         2 * rank, p.size());
  bool any = false;
  for (int64_t e : p) {
    if (e < 0) return invalid_input("{}: pads must be >= 0, found [{}]", node.describe(), fmt::join(p, ", "));
    any = any || e != 0;
  }
  // Some exporters write pads = 0 next to auto_pad; only real padding conflicts.
  if (any && auto_pad != AutoPad::notset)
    return invalid_input("{}: pads [{}] cannot be combined with auto_pad={}", node.describe(), fmt::join(p, ", "),
                         node.attr_string("auto_pad", ""));
  for (size_t d = 0; d < rank; ++d) {
    begin[d] = p[d];
    end[d] = p[rank + d];
  }
  return {};
}

// Output size of a sliding window along one axis (Conv and pooling).
// SAME_*: out = ceil(in / stride), total padding split with the odd element
// at the end (UPPER) or at the beginning (LOWER); ceil_mode has no effect.
Status window_axis(const Node& node, size_t d, AutoPad auto_pad, bool ceil_mode, int64_t in, int64_t ek,
                   int64_t stride, int64_t& pad_begin, int64_t& pad_end, int64_t& out) {
  if (auto_pad == AutoPad::same_upper || auto_pad == AutoPad::same_lower) {
    out = (in + stride - 1) / stride;
    int64_t total = std::max<int64_t>(0, (out - 1) * stride + ek - in);
    pad_begin = auto_pad == AutoPad::same_upper ? total / 2 : total - total / 2;
    pad_end = total - pad_begin;
    return {};
  }
  if (auto_pad == AutoPad::valid) pad_begin = pad_end = 0;
  int64_t padded = in + pad_begin + pad_end;
  if (padded < ek)
    return invalid_input("{}: spatial axis {}: the kernel (dilated extent {}) is larger than the padded input ({} + {} + {})",
                         node.describe(), d, ek, in, pad_begin, pad_end);
  if (ceil_mode) {
    out = (padded - ek + stride - 1) / stride + 1;
    // A last window starting in the end padding only would see no input.
    if ((out - 1) * stride >= in + pad_begin) --out;
  } else {
    out = (padded - ek) / stride + 1;
  }
  return {};
}

Status check_spatial_input(const Node& node, const Shape& x, const char* what) {
  if (x.size() < 3)
    return invalid_input("{}: {} must have rank >= 3 ([N, C, spatial...]), found {}", node.describe(), what,
                         shape_str(x));
  return {};
}

// Shared by Conv and ConvTranspose: everything but the output size.
Result<ConvGeometry> conv_common(const Node& node, const Shape& x, const Shape& w, AutoPad auto_pad) {
  CP_TRY(check_spatial_input(node, x, "input X"));
  if (w.size() != x.size())
    return invalid_input("{}: weight W must have the rank of X ({}), found {}", node.describe(), shape_str(x),
                         shape_str(w));
  ConvGeometry g;
  const size_t rank = x.size() - 2;
  g.n = x[0];
  g.c_in = x[1];
  g.group = node.attr_int("group", 1);
  if (g.group < 1) return invalid_input("{}: group must be >= 1, found {}", node.describe(), g.group);
  g.in_spatial.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  for (size_t d = 0; d < rank; ++d)
    if (g.kernel[d] < 1)
      return invalid_input("{}: weight W has an empty kernel axis: {}", node.describe(), shape_str(w));
  if (node.has("kernel_shape") && node.attr_ints("kernel_shape") != g.kernel)
    return invalid_input("{}: kernel_shape [{}] does not match the weight W {}", node.describe(),
                         fmt::join(node.attr_ints("kernel_shape"), ", "), shape_str(w));
  CP_ASSIGN_OR_RETURN(g.strides, axis_attr(node, "strides", rank, 1, 1));
  CP_ASSIGN_OR_RETURN(g.dilations, axis_attr(node, "dilations", rank, 1, 1));
  CP_TRY(read_pads(node, rank, auto_pad, g.pads_begin, g.pads_end));
  g.output_padding.assign(rank, 0);
  return g;
}

}  // namespace

Shape ConvGeometry::output_shape() const {
  Shape s{n, c_out};
  s.insert(s.end(), out_spatial.begin(), out_spatial.end());
  return s;
}

Shape PoolGeometry::output_shape() const {
  Shape s{n, c};
  s.insert(s.end(), out_spatial.begin(), out_spatial.end());
  return s;
}

Result<ConvGeometry> conv_geometry(const Node& node, const Shape& x, const Shape& w) {
  CP_ASSIGN_OR_RETURN(AutoPad auto_pad, parse_auto_pad(node));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_common(node, x, w, auto_pad));
  g.c_out = w[0];
  if (g.c_in % g.group != 0 || g.c_out % g.group != 0)
    return invalid_input("{}: input channels ({}) and output channels ({}) must be divisible by group ({})",
                         node.describe(), g.c_in, g.c_out, g.group);
  if (w[1] != g.c_in / g.group)
    return invalid_input("{}: weight W {} must have C_in/group = {}/{} = {} at axis 1, found {}", node.describe(),
                         shape_str(w), g.c_in, g.group, g.c_in / g.group, w[1]);
  g.out_spatial.resize(g.rank());
  for (size_t d = 0; d < g.rank(); ++d)
    CP_TRY(window_axis(node, d, auto_pad, false, g.in_spatial[d], g.effective_kernel(d), g.strides[d], g.pads_begin[d],
                       g.pads_end[d], g.out_spatial[d]));
  return g;
}

Result<ConvGeometry> conv_transpose_geometry(const Node& node, const Shape& x, const Shape& w) {
  CP_ASSIGN_OR_RETURN(AutoPad auto_pad, parse_auto_pad(node));
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_common(node, x, w, auto_pad));
  const size_t rank = g.rank();
  if (w[0] != g.c_in)
    return invalid_input("{}: weight W {} must have C_in = {} at axis 0 (ConvTranspose weights are [C_in, C_out/group, ...])",
                         node.describe(), shape_str(w), g.c_in);
  if (g.c_in % g.group != 0)
    return invalid_input("{}: input channels ({}) must be divisible by group ({})", node.describe(), g.c_in, g.group);
  g.c_out = w[1] * g.group;
  CP_ASSIGN_OR_RETURN(g.output_padding, axis_attr(node, "output_padding", rank, 0, 0));
  for (size_t d = 0; d < rank; ++d)
    if (g.output_padding[d] >= std::max(g.strides[d], g.dilations[d]))
      return invalid_input("{}: output_padding [{}] must be smaller than the stride or the dilation on each axis",
                           node.describe(), fmt::join(g.output_padding, ", "));

  std::vector<int64_t> requested;  // output_shape, spatial part
  if (node.has("output_shape")) {
    requested = node.attr_ints("output_shape");
    if (requested.size() == rank + 2) requested.erase(requested.begin(), requested.begin() + 2);
    if (requested.size() != rank)
      return invalid_input("{}: output_shape must have {} (spatial) or {} values, found [{}]", node.describe(), rank,
                           rank + 2, fmt::join(node.attr_ints("output_shape"), ", "));
  } else if (auto_pad == AutoPad::same_upper || auto_pad == AutoPad::same_lower) {
    for (size_t d = 0; d < rank; ++d) requested.push_back(g.in_spatial[d] * g.strides[d]);
  }

  g.out_spatial.resize(rank);
  for (size_t d = 0; d < rank; ++d) {
    const int64_t full = g.strides[d] * (g.in_spatial[d] - 1) + g.output_padding[d] + g.effective_kernel(d);
    if (requested.empty()) {
      if (auto_pad == AutoPad::valid) g.pads_begin[d] = g.pads_end[d] = 0;
      g.out_spatial[d] = full - g.pads_begin[d] - g.pads_end[d];
      if (g.out_spatial[d] < 1)
        return invalid_input("{}: spatial axis {}: pads ({} + {}) remove the whole output ({} positions)",
                             node.describe(), d, g.pads_begin[d], g.pads_end[d], full);
      continue;
    }
    if (requested[d] < 1)
      return invalid_input("{}: output_shape values must be >= 1, found {}", node.describe(), requested[d]);
    g.out_spatial[d] = requested[d];
    const int64_t total = full - requested[d];
    if (total < 0) {
      // More output than the full result: the extra positions come at the end.
      g.pads_begin[d] = 0;
      g.pads_end[d] = total;
    } else if (auto_pad == AutoPad::same_upper) {
      g.pads_begin[d] = total / 2;
      g.pads_end[d] = total - total / 2;
    } else {
      g.pads_begin[d] = total - total / 2;
      g.pads_end[d] = total / 2;
    }
  }
  return g;
}

Result<PoolGeometry> pool_geometry(const Node& node, const Shape& x) {
  CP_TRY(check_spatial_input(node, x, "input X"));
  CP_ASSIGN_OR_RETURN(AutoPad auto_pad, parse_auto_pad(node));
  const size_t rank = x.size() - 2;
  PoolGeometry g;
  g.n = x[0];
  g.c = x[1];
  g.in_spatial.assign(x.begin() + 2, x.end());
  if (!node.has("kernel_shape"))
    return invalid_input("{}: the kernel_shape attribute is required", node.describe());
  CP_ASSIGN_OR_RETURN(g.kernel, axis_attr(node, "kernel_shape", rank, 1, 1));
  CP_ASSIGN_OR_RETURN(g.strides, axis_attr(node, "strides", rank, 1, 1));
  CP_ASSIGN_OR_RETURN(g.dilations, axis_attr(node, "dilations", rank, 1, 1));
  CP_TRY(read_pads(node, rank, auto_pad, g.pads_begin, g.pads_end));
  const int64_t ceil_mode = node.attr_int("ceil_mode", 0);
  const int64_t include_pad = node.attr_int("count_include_pad", 0);
  g.storage_order = node.attr_int("storage_order", 0);
  if (ceil_mode != 0 && ceil_mode != 1)
    return invalid_input("{}: ceil_mode must be 0 or 1, found {}", node.describe(), ceil_mode);
  if (include_pad != 0 && include_pad != 1)
    return invalid_input("{}: count_include_pad must be 0 or 1, found {}", node.describe(), include_pad);
  if (g.storage_order != 0 && g.storage_order != 1)
    return invalid_input("{}: storage_order must be 0 or 1, found {}", node.describe(), g.storage_order);
  g.ceil_mode = ceil_mode == 1;
  g.count_include_pad = include_pad == 1;
  for (size_t d = 0; d < rank; ++d)
    if (g.pads_begin[d] >= g.effective_kernel(d) || g.pads_end[d] >= g.effective_kernel(d))
      return invalid_input("{}: pads [{}] must be smaller than the (dilated) kernel on each axis", node.describe(),
                           fmt::join(node.attr_ints("pads"), ", "));
  g.out_spatial.resize(rank);
  for (size_t d = 0; d < rank; ++d)
    CP_TRY(window_axis(node, d, auto_pad, g.ceil_mode, g.in_spatial[d], g.effective_kernel(d), g.strides[d],
                       g.pads_begin[d], g.pads_end[d], g.out_spatial[d]));
  return g;
}

}  // namespace caliprox
