#pragma once
// Semantics shared by the tensor-op family's shape inference
// (ir/ops/tensor_ops*.cc) and its reference kernels
// (backends/reference/tensor_*.cc): broadcasting, axis normalisation and the
// resolution of parameters that live in attributes in some opsets and in
// inputs in others (Slice, Pad, Resize, ReduceMean, Squeeze...). Inference and
// kernels call the same resolver, so they cannot disagree about an op.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::tensor_ops {

// The default-domain opset a node was imported under (Node::opset), or the
// newest when unknown (nodes built by hand in tests and passes).
inline constexpr int64_t kNewestOpset = 17;
int64_t node_opset(const Node& node);

// Checked attribute access: an attribute of another kind is an invalid_input
// naming the node and the key.
Result<int64_t> attr_int(const Node& node, const std::string& key, int64_t fallback);
Result<float> attr_float(const Node& node, const std::string& key, float fallback);
Result<std::string> attr_string(const Node& node, const std::string& key, const std::string& fallback);
// nullopt when the attribute is absent.
Result<std::optional<std::vector<int64_t>>> attr_ints(const Node& node, const std::string& key);

// ConstantOfShape's fill: its one-element 'value' tensor attribute, or a
// float32 zero when absent.
Result<Tensor> constant_of_shape_value(const Node& node);

// Input i when given (not omitted, not past the end), else nullptr.
const InferInput* optional_input(std::span<const InferInput> inputs, size_t i);
// Between min_count and max_count inputs, the first min_count all present.
Status check_inputs(const Node& node, std::span<const InferInput> inputs, size_t min_count, size_t max_count);
// Values of integer input i (int32/int64); `unsupported` naming the input when
// it is not a constant, because `purpose` depends on its values.
Result<std::vector<int64_t>> constant_ints(const Node& node, std::span<const InferInput> inputs, size_t i,
                                           std::string_view name, std::string_view purpose);
// Same for a floating-point input (float32/float64/float16).
Result<std::vector<double>> constant_floats(const Node& node, std::span<const InferInput> inputs, size_t i,
                                            std::string_view name, std::string_view purpose);

bool is_float_dtype(DType t);    // f32, f64, f16
bool is_integer_dtype(DType t);  // i8, u8, i16, u16, i32, u32, i64, u64
bool is_unsigned_dtype(DType t);  // u8, u16, u32, u64

// axis in [-rank, rank) -> [0, rank); `what` names the attribute or input.
Result<int64_t> normalize_axis(const Node& node, int64_t axis, int64_t rank, std::string_view what);
// The node's 'axis' attribute (fallback when absent), normalised for rank.
Result<int64_t> axis_attr(const Node& node, int64_t fallback, int64_t rank);
// Each axis normalised; duplicates rejected. Order is kept.
Result<std::vector<int64_t>> normalize_axes(const Node& node, std::span<const int64_t> axes, int64_t rank,
                                            std::string_view what);

// Multidirectional (numpy) broadcasting.
Result<Shape> broadcast_shapes(const Node& node, std::span<const Shape> shapes);

// Slice: per axis of the data, the first index, step and output length
// (axes that are not sliced get start 0, step 1, the full length).
struct SliceParams {
  std::vector<int64_t> starts;
  std::vector<int64_t> steps;
  Shape out_shape;
};
Result<SliceParams> resolve_slice(const Node& node, std::span<const InferInput> inputs);

enum class PadMode { constant, reflect, edge };
struct PadParams {
  PadMode mode = PadMode::constant;
  std::vector<int64_t> begins;  // per axis, negative = crop
  std::vector<int64_t> ends;
  // Opset < 11 "value" attribute; from opset 11 the optional input #2 (read
  // by the kernel at run time) replaces it.
  double attr_value = 0;
  bool value_from_input = false;
  Shape out_shape;
};
Result<PadParams> resolve_pad(const Node& node, std::span<const InferInput> inputs);

enum class ResizeMode { nearest, linear, cubic };
enum class CoordinateMode { half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn,
                            tf_crop_and_resize };
enum class NearestMode { round_prefer_floor, round_prefer_ceil, floor, ceil };
struct ResizeParams {
  ResizeMode mode = ResizeMode::nearest;
  CoordinateMode coordinate_mode = CoordinateMode::half_pixel;
  NearestMode nearest_mode = NearestMode::round_prefer_floor;
  double cubic_coeff_a = -0.75;
  bool exclude_outside = false;
  double extrapolation_value = 0;
  std::vector<double> scales;     // per axis; out/in when sizes were given
  std::vector<double> roi_start;  // per axis, tf_crop_and_resize only
  std::vector<double> roi_end;
  Shape out_shape;
};
Result<ResizeParams> resolve_resize(const Node& node, std::span<const InferInput> inputs);
// Position in the input (in input elements) that output index x maps to along
// `axis`, following the ONNX reference implementation (which uses
// scale * input length as the output length, even when that is fractional).
double resize_source_coordinate(const ResizeParams& p, size_t axis, int64_t x, int64_t in_len);
// The input elements (and weights) one output index along an axis reads,
// for every output index of `axis` (the ONNX reference's taps; every backend's
// Resize reads these).
struct ResizeTaps {
  bool outside = false;  // tf_crop_and_resize outside the input: extrapolation_value
  int count = 0;
  std::array<int64_t, 4> index{};
  std::array<double, 4> weight{};
};
std::vector<ResizeTaps> resize_axis_taps(const ResizeParams& p, size_t axis, int64_t in_len, int64_t out_len);
// True when the taps copy the axis unchanged.
bool resize_taps_identity(const std::vector<ResizeTaps>& taps, int64_t in_len);

// The Reduce ops (ir/ops/reduce_ops.cc, ReduceMean's batch split): sorted,
// normalised axes to reduce (every axis when none are given, unless
// noop_with_empty_axes, then none) and the output shape.
struct ReduceParams {
  std::vector<int64_t> axes;
  bool keepdims = true;
  Shape out_shape;
};
Result<ReduceParams> resolve_reduce(const Node& node, std::span<const InferInput> inputs);

// Transpose permutation (reversed axes by default), validated.
Result<std::vector<int64_t>> resolve_perm(const Node& node, int64_t rank);

// Softmax as [outer, axis_len, inner] blocks of the flattened input: from
// opset 13 along one axis; before, over everything from `axis` on (the input
// is coerced to 2-D).
struct SoftmaxLayout {
  int64_t outer = 1;
  int64_t axis_len = 1;
  int64_t inner = 1;
};
Result<SoftmaxLayout> resolve_softmax(const Node& node, const Shape& shape);

// Range's output length, max(ceil((limit - start) / delta), 0), from its
// three constant scalar inputs (elementwise_ops.cc).
Result<int64_t> range_length(const Node& node, std::span<const InferInput> inputs);

// The shape PRelu's slope broadcasts with (numpy rules) against X: the
// slope's own, except that before opset 7 a 1-D slope is per channel.
Shape prelu_slope_shape(const Node& node, const Shape& x, const Shape& slope);

// Registers the data-movement ops (tensor_ops_shape.cc); called by
// register_tensor_ops().
void register_shape_ops(std::vector<OpDef>& table);

// Product of shape[begin, end).
int64_t dims_product(const Shape& shape, size_t begin, size_t end);

}  // namespace caliprox::tensor_ops
