// Generic helpers of the tensor-op family: attributes, inputs, axes,
// broadcasting. The op-specific resolvers are in tensor_ops_params.cc.
#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "ir/ops/tensor_ops_util.h"

namespace caliprox::tensor_ops {

namespace {
std::string_view kind_name(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::f: return "float";
    case Attribute::Kind::i: return "int";
    case Attribute::Kind::s: return "string";
    case Attribute::Kind::t: return "tensor";
    case Attribute::Kind::floats: return "floats";
    case Attribute::Kind::ints: return "ints";
    case Attribute::Kind::strings: return "strings";
    case Attribute::Kind::graph: return "graph";
  }
  return "unknown";
}

Status wrong_kind(const Node& node, const std::string& key, std::string_view expected, const Attribute& a) {
  return invalid_input("{}: attribute '{}' must be of kind {}, found {}", node.describe(), key, expected,
                       kind_name(a.kind));
}
}  // namespace

int64_t node_opset(const Node& node) {
  return node.opset > 0 ? node.opset : kNewestOpset;
}

Result<int64_t> attr_int(const Node& node, const std::string& key, int64_t fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return fallback;
  if (it->second.kind != Attribute::Kind::i) return wrong_kind(node, key, "int", it->second);
  return it->second.i;
}

Result<float> attr_float(const Node& node, const std::string& key, float fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return fallback;
  // Exporters sometimes write integral values (Clip min=0) as ints.
  if (it->second.kind == Attribute::Kind::i) return static_cast<float>(it->second.i);
  if (it->second.kind != Attribute::Kind::f) return wrong_kind(node, key, "float", it->second);
  return it->second.f;
}

Result<std::string> attr_string(const Node& node, const std::string& key, const std::string& fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return fallback;
  if (it->second.kind != Attribute::Kind::s) return wrong_kind(node, key, "string", it->second);
  return it->second.s;
}

Result<std::optional<std::vector<int64_t>>> attr_ints(const Node& node, const std::string& key) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return std::optional<std::vector<int64_t>>();
  if (it->second.kind == Attribute::Kind::i) return std::optional(std::vector<int64_t>{it->second.i});
  if (it->second.kind != Attribute::Kind::ints) return wrong_kind(node, key, "ints", it->second);
  return std::optional(it->second.ints);
}

Result<Tensor> constant_of_shape_value(const Node& node) {
  auto it = node.attrs.find("value");
  if (it == node.attrs.end()) {
    const float zero = 0.f;
    return Tensor::copy_of(DType::f32, {}, &zero);
  }
  if (it->second.kind != Attribute::Kind::t) return wrong_kind(node, "value", "tensor", it->second);
  const Tensor& t = it->second.t;
  if (t.numel() != 1)
    return invalid_input("{}: attribute 'value' must hold one element, found shape {}", node.describe(),
                         shape_str(t.shape()));
  return Tensor::copy_of(t.dtype(), {}, t.raw());
}

const InferInput* optional_input(std::span<const InferInput> inputs, size_t i) {
  if (i >= inputs.size() || !inputs[i].present()) return nullptr;
  return &inputs[i];
}

Status check_inputs(const Node& node, std::span<const InferInput> inputs, size_t min_count, size_t max_count) {
  if (inputs.size() < min_count || inputs.size() > max_count) {
    if (min_count == max_count)
      return invalid_input("{}: expects {} input(s), found {}", node.describe(), min_count, inputs.size());
    return invalid_input("{}: expects {} to {} inputs, found {}", node.describe(), min_count, max_count,
                         inputs.size());
  }
  for (size_t i = 0; i < min_count; ++i)
    if (!inputs[i].present())
      return invalid_input("{}: input #{} is required but was omitted", node.describe(), i);
  return {};
}

Result<std::vector<int64_t>> constant_ints(const Node& node, std::span<const InferInput> inputs, size_t i,
                                           std::string_view name, std::string_view purpose) {
  const InferInput* in = optional_input(inputs, i);
  if (in == nullptr) return invalid_input("{}: input #{} '{}' is missing", node.describe(), i, name);
  if (in->type.dtype != DType::i64 && in->type.dtype != DType::i32)
    return invalid_input("{}: input #{} '{}' must be int64 (or int32), found {}", node.describe(), i, name,
                         dtype_name(in->type.dtype));
  if (in->value == nullptr)
    return unsupported("{}: input #{} '{}' must be a constant (initializer or computable from constants) "
                       "because {} depends on its values",
                       node.describe(), i, name, purpose);
  if (in->type.shape.size() > 1)
    return invalid_input("{}: input #{} '{}' must be a 1-D tensor, found shape {}", node.describe(), i, name,
                         shape_str(in->type.shape));
  return in->value->to_int64_vector();
}

Result<std::vector<double>> constant_floats(const Node& node, std::span<const InferInput> inputs, size_t i,
                                            std::string_view name, std::string_view purpose) {
  const InferInput* in = optional_input(inputs, i);
  if (in == nullptr) return invalid_input("{}: input #{} '{}' is missing", node.describe(), i, name);
  if (!is_float_dtype(in->type.dtype))
    return invalid_input("{}: input #{} '{}' must be a floating-point tensor, found {}", node.describe(), i, name,
                         dtype_name(in->type.dtype));
  if (in->value == nullptr)
    return unsupported("{}: input #{} '{}' must be a constant (initializer or computable from constants) "
                       "because {} depends on its values",
                       node.describe(), i, name, purpose);
  return in->value->to_double_vector();
}

bool is_float_dtype(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::f16; }

bool is_integer_dtype(DType t) {
  switch (t) {
    case DType::i8:
    case DType::u8:
    case DType::i16:
    case DType::u16:
    case DType::i32:
    case DType::u32:
    case DType::i64:
    case DType::u64: return true;
    default: return false;
  }
}

bool is_unsigned_dtype(DType t) { return t == DType::u8 || t == DType::u16 || t == DType::u32 || t == DType::u64; }

Result<int64_t> normalize_axis(const Node& node, int64_t axis, int64_t rank, std::string_view what) {
  if (axis < -rank || axis >= rank)
    return invalid_input("{}: {} {} is out of range for an input of rank {} (expected {} to {})", node.describe(),
                         what, axis, rank, -rank, rank - 1);
  return axis < 0 ? axis + rank : axis;
}

Result<int64_t> axis_attr(const Node& node, int64_t fallback, int64_t rank) {
  CP_ASSIGN_OR_RETURN(int64_t axis, attr_int(node, "axis", fallback));
  return normalize_axis(node, axis, rank, "'axis'");
}

Result<std::vector<int64_t>> normalize_axes(const Node& node, std::span<const int64_t> axes, int64_t rank,
                                            std::string_view what) {
  std::vector<int64_t> out;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    CP_ASSIGN_OR_RETURN(int64_t n, normalize_axis(node, a, rank, what));
    if (seen[static_cast<size_t>(n)])
      return invalid_input("{}: {} names axis {} more than once", node.describe(), what, n);
    seen[static_cast<size_t>(n)] = true;
    out.push_back(n);
  }
  return out;
}

Result<Shape> broadcast_shapes(const Node& node, std::span<const Shape> shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const auto& s : shapes) {
    size_t offset = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[offset + i];
      int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::vector<std::string> all;
      for (const auto& t : shapes) all.push_back(shape_str(t));
      return invalid_input("{}: input shapes {} cannot be broadcast together (dimension {} from the right: {} vs {})",
                           node.describe(), fmt::join(all, ", "), rank - offset - i, o, d);
    }
  }
  return out;
}

int64_t dims_product(const Shape& shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end && i < shape.size(); ++i) n *= shape[i];
  return n;
}

namespace {

std::array<double, 4> nearest_coeffs(double ratio, bool integral, NearestMode mode) {
  if (integral) return {0, 1};
  switch (mode) {
    case NearestMode::round_prefer_floor: return {ratio <= 0.5 ? 1.0 : 0.0, ratio > 0.5 ? 1.0 : 0.0};
    case NearestMode::round_prefer_ceil: return {ratio < 0.5 ? 1.0 : 0.0, ratio >= 0.5 ? 1.0 : 0.0};
    case NearestMode::floor: return {1, 0};
    case NearestMode::ceil: return {0, 1};
  }
  return {1, 0};
}

std::array<double, 4> cubic_coeffs(double r, double a) {
  const double s = 1 - r;
  return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
          ((a + 2) * s - (a + 3)) * s * s + 1, ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
}

}  // namespace

std::vector<ResizeTaps> resize_axis_taps(const ResizeParams& p, size_t axis, int64_t in_len, int64_t out_len) {
  std::vector<ResizeTaps> taps(static_cast<size_t>(out_len));
  for (int64_t x = 0; x < out_len; ++x) {
    ResizeTaps& t = taps[static_cast<size_t>(x)];
    const double src = resize_source_coordinate(p, axis, x, in_len);
    if (p.coordinate_mode == CoordinateMode::tf_crop_and_resize && (src < 0 || src > static_cast<double>(in_len - 1))) {
      t.outside = true;
      continue;
    }
    // The reference takes the n nearest input indices, preferring the lower
    // ones, so an integral coordinate has ratio 1 to the index below it.
    const double fl = std::floor(src);
    const bool integral = src == fl;
    const double ratio = integral ? 1.0 : src - fl;
    const int64_t left = static_cast<int64_t>(fl) - (integral ? 1 : 0);
    std::array<double, 4> coeffs{};
    int n = 2;
    switch (p.mode) {
      case ResizeMode::nearest: coeffs = nearest_coeffs(ratio, integral, p.nearest_mode); break;
      case ResizeMode::linear: coeffs = {1 - ratio, ratio}; break;
      case ResizeMode::cubic:
        coeffs = cubic_coeffs(ratio, p.cubic_coeff_a);
        n = 4;
        break;
    }
    const int64_t first = left - (n / 2 - 1);
    if (p.exclude_outside) {
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        if (first + k < 0 || first + k >= in_len) coeffs[static_cast<size_t>(k)] = 0;
        sum += coeffs[static_cast<size_t>(k)];
      }
      if (sum != 0)
        for (int k = 0; k < n; ++k) coeffs[static_cast<size_t>(k)] /= sum;
    }
    for (int k = 0; k < n; ++k) {
      if (coeffs[static_cast<size_t>(k)] == 0) continue;
      // Indices beyond the input read its edge (the reference pads by edge).
      t.index[static_cast<size_t>(t.count)] = std::clamp<int64_t>(first + k, 0, in_len - 1);
      t.weight[static_cast<size_t>(t.count)] = coeffs[static_cast<size_t>(k)];
      ++t.count;
    }
  }
  return taps;
}

bool resize_taps_identity(const std::vector<ResizeTaps>& taps, int64_t in_len) {
  if (static_cast<int64_t>(taps.size()) != in_len) return false;
  for (size_t x = 0; x < taps.size(); ++x) {
    const ResizeTaps& t = taps[x];
    if (t.outside || t.count != 1 || t.index[0] != static_cast<int64_t>(x) || t.weight[0] != 1.0) return false;
  }
  return true;
}

}  // namespace caliprox::tensor_ops
