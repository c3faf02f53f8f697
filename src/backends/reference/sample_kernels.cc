// Reference kernels of GridSample, MaxUnpool and RoiAlign
// (ir/ops/sample_params.h).
// GridSample follows the definition ONNX took from PyTorch's grid_sample:
// grid coordinates in [-1, 1] mapped to pixel positions (align_corners: -1
// and 1 are the corner pixels' centres, else their outer edges), padding
// applied to the position (bilinear, nearest) or to each tap (bicubic, Keys'
// kernel with a = -0.75), computed in double.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/reference/reference.h"
#include "backends/reference/tensor_util.h"
#include "ir/ops/sample_params.h"

namespace caliprox::reference {

namespace {

using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;
using sample::GridMode;
using sample::GridPadding;

double unnormalize(double c, int64_t size, bool align) {
  return align ? (c + 1) / 2 * static_cast<double>(size - 1) : ((c + 1) * static_cast<double>(size) - 1) / 2;
}

// c reflected back and forth over [twice_low / 2, twice_high / 2].
double reflect(double c, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  const double low = twice_low / 2, span = (twice_high - twice_low) / 2;
  c = std::fabs(c - low);
  const double extra = std::fmod(c, span);
  const auto flips = static_cast<int64_t>(std::floor(c / span));
  return flips % 2 == 0 ? extra + low : span - extra + low;
}

// Border and reflection padding keep a position inside [0, size - 1].
double pad_position(double c, int64_t size, const sample::Grid& g) {
  const auto last = static_cast<double>(size - 1);
  if (g.padding == GridPadding::border) return std::clamp(c, 0.0, last);
  if (g.padding == GridPadding::reflection) {
    c = g.align_corners ? reflect(c, 0, 2 * last) : reflect(c, -1, 2 * static_cast<double>(size) - 1);
    return std::clamp(c, 0.0, last);
  }
  return c;
}

// One channel plane of H x W doubles, zero outside.
struct Plane {
  const double* v;
  int64_t h, w;
  double at(int64_t y, int64_t x) const { return y >= 0 && y < h && x >= 0 && x < w ? v[y * w + x] : 0.0; }
};

std::array<double, 4> cubic_weights(double t) {
  constexpr double a = -0.75;
  auto near = [](double x) { return ((a + 2) * x - (a + 3)) * x * x + 1; };       // |x| <= 1
  auto far = [](double x) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; };  // 1 < |x| < 2
  return {far(t + 1), near(t), near(1 - t), far(2 - t)};
}

double sample_at(const Plane& p, double gx, double gy, const sample::Grid& g) {
  double x = unnormalize(gx, p.w, g.align_corners), y = unnormalize(gy, p.h, g.align_corners);
  if (g.mode == GridMode::bicubic) {
    const double x0 = std::floor(x), y0 = std::floor(y);
    const auto wx = cubic_weights(x - x0), wy = cubic_weights(y - y0);
    double sum = 0;
    for (int i = 0; i < 4; ++i) {
      const double ty = pad_position(y0 - 1 + i, p.h, g);
      double row = 0;
      for (int j = 0; j < 4; ++j)
        row += wx[j] * p.at(static_cast<int64_t>(ty), static_cast<int64_t>(pad_position(x0 - 1 + j, p.w, g)));
      sum += wy[i] * row;
    }
    return sum;
  }
  x = pad_position(x, p.w, g);
  y = pad_position(y, p.h, g);
  if (g.mode == GridMode::nearest)
    return p.at(static_cast<int64_t>(std::nearbyint(y)), static_cast<int64_t>(std::nearbyint(x)));
  const double x0 = std::floor(x), y0 = std::floor(y), fx = x - x0, fy = y - y0;
  const auto ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
  return (1 - fy) * ((1 - fx) * p.at(iy, ix) + fx * p.at(iy, ix + 1)) +
         fy * ((1 - fx) * p.at(iy + 1, ix) + fx * p.at(iy + 1, ix + 1));
}

using SampleTypes = tensor::TypeSet<float, double, tensor::Half>;

bool supports_grid_sample(const NodeContext& ctx) {
  return ctx.input_types.size() == 2 && SampleTypes::contains(tensor::in_type(ctx)) &&
         SampleTypes::contains(tensor::in_type(ctx, 1));
}

Result<std::unique_ptr<Kernel>> make_grid_sample(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(sample::Grid g, sample::grid(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape));
  const Shape x_shape = ctx.input_types[0].shape;
  return tensor::make_fn_kernel([g, x_shape](Inputs in, Outputs out) -> Status {
    const std::vector<double> x = in[0]->to_double_vector(), grid = in[1]->to_double_vector();
    const int64_t n = x_shape[0], c = x_shape[1], h = x_shape[2], w = x_shape[3];
    const int64_t ho = g.output_shape[2], wo = g.output_shape[3];
    std::vector<double> y(static_cast<size_t>(n * c * ho * wo));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch) {
        const Plane p{x.data() + (b * c + ch) * h * w, h, w};
        for (int64_t i = 0; i < ho * wo; ++i) {
          const double* xy = grid.data() + (b * ho * wo + i) * 2;
          y[static_cast<size_t>((b * c + ch) * ho * wo + i)] = sample_at(p, xy[0], xy[1], g);
        }
      }
    tensor::encode_doubles(y, *out[0]);
    return {};
  });
}

bool supports_max_unpool(const NodeContext& ctx) {
  return ctx.input_types.size() >= 2 && tensor::NumericTypes::contains(tensor::in_type(ctx)) &&
         tensor::in_type(ctx, 1) == DType::i64;
}

// y = 0, then x[i] goes to the position indices[i] names in the unpooled
// shape (MaxPool's Indices count over that whole tensor). A larger
// output_shape pads each axis at its end: positions keep their coordinates.
Result<std::unique_ptr<Kernel>> make_max_unpool(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(Shape unpooled,
                      sample::unpool_shape(ctx.node, ctx.input_types[0].shape, ctx.input_types[1].shape, {}));
  const Node node = ctx.node;
  return tensor::make_fn_kernel([node, unpooled](Inputs in, Outputs out) -> Status {
    Tensor& y = *out[0];
    const size_t esize = dtype_size(y.dtype());
    std::memset(y.raw(), 0, y.nbytes());
    const int64_t* idx = in[1]->data<int64_t>();
    const auto* x = static_cast<const std::byte*>(in[0]->raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    const int64_t positions = shape_numel(unpooled);
    for (int64_t i = 0; i < in[0]->numel(); ++i) {
      if (idx[i] < 0 || idx[i] >= positions)
        return invalid_input("{}: index {} at position {} is outside the {} positions of the unpooled shape {}",
                             node.describe(), idx[i], i, positions, shape_str(unpooled));
      int64_t rest = idx[i], offset = 0, stride = 1;
      for (size_t d = unpooled.size(); d-- > 0;) {  // unravel in `unpooled`, ravel in y
        offset += (rest % unpooled[d]) * stride;
        rest /= unpooled[d];
        stride *= y.shape()[d];
      }
      std::memcpy(dst + static_cast<size_t>(offset) * esize, x + static_cast<size_t>(i) * esize, esize);
    }
    return {};
  });
}

// RoiAlign's bilinear sample of one plane at (y, x) as its four weighted
// corners, as Detectron and ONNX Runtime define it: all zero more than one
// pixel outside, clamped at the edges.
std::array<double, 4> roi_corners(const Plane& p, double y, double x) {
  if (y < -1.0 || y > static_cast<double>(p.h) || x < -1.0 || x > static_cast<double>(p.w)) return {0, 0, 0, 0};
  y = std::max(y, 0.0);
  x = std::max(x, 0.0);
  auto low = static_cast<int64_t>(y), left = static_cast<int64_t>(x);
  if (low >= p.h - 1) y = static_cast<double>(low = p.h - 1);
  if (left >= p.w - 1) x = static_cast<double>(left = p.w - 1);
  const int64_t high = std::min(low + 1, p.h - 1), right = std::min(left + 1, p.w - 1);
  const double ly = y - static_cast<double>(low), lx = x - static_cast<double>(left);
  return {(1 - ly) * (1 - lx) * p.at(low, left), (1 - ly) * lx * p.at(low, right), ly * (1 - lx) * p.at(high, left),
          ly * lx * p.at(high, right)};
}

// One output bin: the average of a grid of samples over the bin, or in max
// mode the largest. ONNX Runtime's max mode takes the largest weighted
// corner of each sample, not the interpolated value; the reference follows
// it so that both agree.
double roi_bin(const Plane& p, const sample::Roi& r, double y0, double x0, double bin_h, double bin_w, int64_t grid_h,
               int64_t grid_w) {
  double acc = 0;
  for (int64_t iy = 0; iy < grid_h; ++iy) {
    const double y = y0 + (static_cast<double>(iy) + 0.5) * bin_h / static_cast<double>(grid_h);
    for (int64_t ix = 0; ix < grid_w; ++ix) {
      const double x = x0 + (static_cast<double>(ix) + 0.5) * bin_w / static_cast<double>(grid_w);
      const auto c = roi_corners(p, y, x);
      if (!r.max) acc += c[0] + c[1] + c[2] + c[3];
      else acc = std::max({(iy == 0 && ix == 0) ? c[0] : acc, c[0], c[1], c[2], c[3]});
    }
  }
  return r.max ? acc : acc / static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
}

bool supports_roi_align(const NodeContext& ctx) {
  return ctx.input_types.size() == 3 && SampleTypes::contains(tensor::in_type(ctx)) &&
         tensor::in_type(ctx, 1) == tensor::in_type(ctx) && tensor::in_type(ctx, 2) == DType::i64;
}

Result<std::unique_ptr<Kernel>> make_roi_align(const NodeContext& ctx) {
  const auto& t = ctx.input_types;
  CP_ASSIGN_OR_RETURN(sample::Roi r, sample::roi_align(ctx.node, t[0].shape, t[1].shape, t[2].shape));
  const Shape x_shape = t[0].shape;
  const Node node = ctx.node;
  return tensor::make_fn_kernel([r, x_shape, node](Inputs in, Outputs out) -> Status {
    const std::vector<double> x = in[0]->to_double_vector(), rois = in[1]->to_double_vector();
    const int64_t* batch = in[2]->data<int64_t>();
    const int64_t c = x_shape[1], h = x_shape[2], w = x_shape[3], n_rois = r.output_shape[0];
    const double offset = r.half_pixel ? 0.5 : 0.0;
    std::vector<double> y(static_cast<size_t>(n_rois * c * r.height * r.width));
    for (int64_t k = 0; k < n_rois; ++k) {
      if (batch[k] < 0 || batch[k] >= x_shape[0])
        return invalid_input("{}: batch index {} of roi {} is outside the batch of {}", node.describe(), batch[k], k,
                             x_shape[0]);
      const double* b = rois.data() + k * 4;
      const double x0 = b[0] * r.spatial_scale - offset, y0 = b[1] * r.spatial_scale - offset;
      double roi_w = b[2] * r.spatial_scale - offset - x0, roi_h = b[3] * r.spatial_scale - offset - y0;
      if (!r.half_pixel) {
        roi_w = std::max(roi_w, 1.0);
        roi_h = std::max(roi_h, 1.0);
      }
      const double bin_h = roi_h / static_cast<double>(r.height), bin_w = roi_w / static_cast<double>(r.width);
      const int64_t grid_h = r.sampling_ratio > 0 ? r.sampling_ratio : static_cast<int64_t>(std::ceil(bin_h));
      const int64_t grid_w = r.sampling_ratio > 0 ? r.sampling_ratio : static_cast<int64_t>(std::ceil(bin_w));
      for (int64_t ch = 0; ch < c; ++ch) {
        const Plane p{x.data() + (batch[k] * c + ch) * h * w, h, w};
        for (int64_t ph = 0; ph < r.height; ++ph)
          for (int64_t pw = 0; pw < r.width; ++pw)
            y[static_cast<size_t>(((k * c + ch) * r.height + ph) * r.width + pw)] =
                roi_bin(p, r, y0 + static_cast<double>(ph) * bin_h, x0 + static_cast<double>(pw) * bin_w, bin_h, bin_w,
                        grid_h, grid_w);
      }
    }
    tensor::encode_doubles(y, *out[0]);
    return {};
  });
}

}  // namespace

void register_sample_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"GridSample", supports_grid_sample, make_grid_sample});
  table.push_back({"MaxUnpool", supports_max_unpool, make_max_unpool});
  table.push_back({"RoiAlign", supports_roi_align, make_roi_align});
}

}  // namespace caliprox::reference
