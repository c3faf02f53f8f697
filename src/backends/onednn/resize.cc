// Resize of float32 [N, C, H, W] activations that resamples H and W only, in
// either layout: the project's own loop (oneDNN's resampling primitive has
// none of ONNX's coordinate transformations), over the taps the reference
// reads (tensor_ops::resize_axis_taps), so every mode, coordinate
// transformation and rounding rule is the reference's. Under NHWC a pixel's
// channels are contiguous, so an upsampling between channels-last
// convolutions (PP-OCR's detection head, U-Nets, FPNs) needs no conversion.
// Arithmetic is float32 (the reference sums in double): nearest copies
// exactly; linear and cubic differ by float rounding only.
#include <omp.h>

#include <array>
#include <vector>

#include "backends/layout.h"
#include "backends/onednn/common.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::onednn {
namespace {

using Taps = tensor_ops::ResizeTaps;

// One output index's taps along an axis, as float weights and element offsets.
struct AxisTaps {
  int count = 0;
  std::array<int64_t, 4> offset{};
  std::array<float, 4> weight{};
};

struct ResizeSetup {
  int64_t n = 0, c = 0, oh = 0, ow = 0;
  int64_t stride_n = 0, stride_c = 0;  // input element strides (H and W are folded into the taps)
  std::vector<AxisTaps> h, w;
  bool nhwc = false;
};

std::vector<AxisTaps> axis_taps(const std::vector<Taps>& taps, int64_t stride) {
  std::vector<AxisTaps> out;
  for (const Taps& t : taps) {
    AxisTaps a;
    a.count = t.count;
    for (int k = 0; k < t.count; ++k) {
      a.offset[static_cast<size_t>(k)] = t.index[static_cast<size_t>(k)] * stride;
      a.weight[static_cast<size_t>(k)] = static_cast<float>(t.weight[static_cast<size_t>(k)]);
    }
    out.push_back(a);
  }
  return out;
}

Result<ResizeSetup> resize_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  if (ctx.input_types.empty() || ctx.output_types.empty() || ctx.input_types[0].dtype != DType::f32 ||
      ctx.output_types[0].dtype != DType::f32 || ctx.input_types[0].shape.size() != 4)
    return unsupported("{}: the oneDNN backend resizes float32 rank-4 activations only", node.describe());
  CP_ASSIGN_OR_RETURN(tensor_ops::ResizeParams p, tensor_ops::resolve_resize(node, infer_inputs(ctx)));
  if (p.coordinate_mode == tensor_ops::CoordinateMode::tf_crop_and_resize)
    return unsupported("{}: tf_crop_and_resize stays with the reference backend", node.describe());
  const Shape& in = ctx.input_types[0].shape;
  if (shape_numel(p.out_shape) < kMinElementwiseElements)
    return unsupported("{}: {} elements are faster on the reference backend", node.describe(),
                       shape_numel(p.out_shape));
  for (size_t a = 0; a < 2; ++a)
    if (!tensor_ops::resize_taps_identity(tensor_ops::resize_axis_taps(p, a, in[a], p.out_shape[a]), in[a]))
      return unsupported("{}: resizes axis {} (only H and W are resized here)", node.describe(), a);
  ResizeSetup s;
  s.nhwc = input_is_nhwc(ctx, 0);
  s.n = in[0], s.c = in[1], s.oh = p.out_shape[2], s.ow = p.out_shape[3];
  const int64_t h = in[2], w = in[3];
  s.stride_n = s.c * h * w;
  s.stride_c = s.nhwc ? 1 : h * w;
  s.h = axis_taps(tensor_ops::resize_axis_taps(p, 2, h, s.oh), s.nhwc ? w * s.c : w);
  s.w = axis_taps(tensor_ops::resize_axis_taps(p, 3, w, s.ow), s.nhwc ? s.c : 1);
  return s;
}

// One output pixel from its taps: `count` contiguous channels (NHWC) or one
// value (NCHW, count 1).
inline void resize_pixel(const float* src, float* dst, const AxisTaps& th, const AxisTaps& tw, int64_t count) {
  for (int64_t c = 0; c < count; ++c) dst[c] = 0.f;
  for (int i = 0; i < th.count; ++i)
    for (int j = 0; j < tw.count; ++j) {
      const float wgt = th.weight[static_cast<size_t>(i)] * tw.weight[static_cast<size_t>(j)];
      const float* p = src + th.offset[static_cast<size_t>(i)] + tw.offset[static_cast<size_t>(j)];
      for (int64_t c = 0; c < count; ++c) dst[c] += wgt * p[c];
    }
}

class ResizeKernel final : public Kernel {
 public:
  ResizeKernel(ResizeSetup s, int team) : s_(std::move(s)), team_(team) {}

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const float* x = inputs[0]->data<float>();
    float* y = outputs[0]->data<float>();
    const ResizeSetup& s = s_;
    // NHWC: one (image, output row) per iteration, each pixel's channels
    // contiguous. NCHW: one (image, channel, output row), pixel by pixel.
    const int64_t rows = s.nhwc ? s.n * s.oh : s.n * s.c * s.oh;
#pragma omp parallel for num_threads(team_) schedule(static) if (team_ > 1)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t oy = r % s.oh;
      if (s.nhwc) {
        const int64_t n = r / s.oh;
        const float* src = x + n * s.stride_n;
        float* dst = y + (n * s.oh + oy) * s.ow * s.c;
        for (int64_t ox = 0; ox < s.ow; ++ox)
          resize_pixel(src, dst + ox * s.c, s.h[static_cast<size_t>(oy)], s.w[static_cast<size_t>(ox)], s.c);
      } else {
        const int64_t nc = r / s.oh;
        const float* src = x + (nc / s.c) * s.stride_n + (nc % s.c) * s.stride_c;
        float* dst = y + (nc * s.oh + oy) * s.ow;
        for (int64_t ox = 0; ox < s.ow; ++ox)
          resize_pixel(src, dst + ox, s.h[static_cast<size_t>(oy)], s.w[static_cast<size_t>(ox)], 1);
      }
    }
    return {};
  }

 private:
  ResizeSetup s_;
  int team_;
};

Status check_resize(const NodeContext& ctx, const Runtime&) { return resize_setup(ctx).status(); }

Result<std::unique_ptr<Kernel>> make_resize(const NodeContext& ctx, std::shared_ptr<const Runtime>, int threads) {
  CP_ASSIGN_OR_RETURN(ResizeSetup s, resize_setup(ctx));
  const int team = team_for_elements(threads, s.n * s.c * s.oh * s.ow);
  return std::unique_ptr<Kernel>(std::make_unique<ResizeKernel>(std::move(s), team));
}

// Either layout computes the same; the executor keeps the one the input
// arrives in (backends/layout.h, layout_following).
bool resize_nhwc(const NodeContext& ctx, const Runtime& rt) { return check_resize(nhwc_context(ctx), rt).ok(); }

}  // namespace

void register_resize_ops(std::vector<OpEntry>& table) {
  table.push_back({"Resize", check_resize, make_resize, resize_nhwc});
}

}  // namespace caliprox::onednn
