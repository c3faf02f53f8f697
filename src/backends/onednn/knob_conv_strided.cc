// fp32 row (column) perforation as oneDNN convolutions (knob_conv.h). The
// computed rows of one residue class modulo the rate are every rate-th
// output row: the layer's own convolution with the row stride multiplied by
// the rate, read from the input shifted by the class's first row. So each
// computed class (rate - 1 of them) is one exact Conv kernel of conv.h --
// oneDNN's tuned kernels on every ISA it has, AVX2 and AVX-512 alike --
// writing conv + bias into a scratch tensor, and one pass then places those
// rows, forms each skipped row as the mean of its computed neighbours (an
// edge copies its one neighbour: the reference's nn_knob_conv.cc), adds the
// residual and applies the activation. oneDNN takes only dense tensors and
// non-negative padding, so a class whose first row starts past the top
// padding reads a copy of the input without its first rows.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backends/onednn/conv.h"
#include "backends/onednn/knob_conv.h"

namespace caliprox::onednn {
namespace {

// A tensor seen as [outer, extent, inner] around the perforated axis.
struct AxisView {
  int64_t outer = 1, extent = 1, inner = 1;
};

// The view of an [N, C, H, W] shape (memory order by `layout`) around H (rows) or W.
AxisView axis_view(const Shape& s, Layout layout, bool rows) {
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
  if (layout == Layout::nhwc) return rows ? AxisView{n, h, w * c} : AxisView{n * h, w, c};
  return rows ? AxisView{n * c, h, w} : AxisView{n * c * h, w, 1};
}

// One computed residue class: its strided convolution and where it reads.
struct ResidueClass {
  int64_t shift = 0;  // input rows (columns) dropped before the window
  int64_t count = 0;  // outputs the convolution writes along the axis (>= the class's rows)
  std::unique_ptr<Kernel> conv;
  Tensor staged, comp;  // the shifted input (shift > 0), conv + bias
};

class StridedPerforationKernel final : public Kernel {
 public:
  StridedPerforationKernel(const KnobConvSetup& s, int team) : s_(s), team_(team) {}

  Status build(const NodeContext& ctx, std::shared_ptr<const Runtime> rt);

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    for (ResidueClass& r : classes_) {
      const Tensor* in = &x;
      if (r.shift > 0) {
        stage(x, r);
        in = &r.staged;
      }
      const Tensor* conv_in[3] = {in, s_.weights, s_.bias};
      Tensor* conv_out[1] = {&r.comp};
      CP_TRY(r.conv->run(std::span<const Tensor* const>(conv_in, s_.has_bias ? 3 : 2), conv_out));
    }
    const float* res = s_.residual ? inputs[3]->data<float>() : nullptr;
    finish(res, outputs[0]->data<float>());
    return {};
  }

 private:
  void stage(const Tensor& x, ResidueClass& r) const;
  void finish(const float* res, float* y) const;

  KnobConvSetup s_;
  int team_;
  bool rows_ = true;
  std::vector<ResidueClass> classes_;
  std::vector<int> class_of_;      // per output position along the axis: its class, -1 skipped
  std::vector<int64_t> index_of_;  // its index within the class
};

// The input without its first `shift` rows (columns), dense.
void StridedPerforationKernel::stage(const Tensor& x, ResidueClass& r) const {
  const AxisView v = axis_view(x.shape(), s_.layout, rows_);
  const int64_t kept = v.extent - r.shift;
  const float* src = x.data<float>();
  float* dst = r.staged.data<float>();
#pragma omp parallel for num_threads(team_) schedule(static) if (team_ > 1)
  for (int64_t o = 0; o < v.outer; ++o)
    std::memcpy(dst + o * kept * v.inner, src + (o * v.extent + r.shift) * v.inner,
                static_cast<size_t>(kept * v.inner) * sizeof(float));
}

template <act::ActivationKind K>
void finish_impl(const std::vector<ResidueClass>& classes, const std::vector<int>& class_of,
                 const std::vector<int64_t>& index_of, const AxisView& v, const act::Activation& a, const float* res,
                 float* y, int team) {
  // Row p of class c's scratch at outer index o.
  const auto row = [&](int64_t o, int64_t p) {
    const ResidueClass& r = classes[static_cast<size_t>(class_of[static_cast<size_t>(p)])];
    return r.comp.data<float>() + (o * r.count + index_of[static_cast<size_t>(p)]) * v.inner;
  };
  const auto computed = [&](int64_t p) { return p >= 0 && p < v.extent && class_of[static_cast<size_t>(p)] >= 0; };
#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
  for (int64_t o = 0; o < v.outer; ++o) {
    for (int64_t p = 0; p < v.extent; ++p) {
      float* out = y + (o * v.extent + p) * v.inner;
      const float* rr = res != nullptr ? res + (o * v.extent + p) * v.inner : nullptr;
      const float* a0 = nullptr;
      const float* a1 = nullptr;
      if (computed(p)) {
        a0 = row(o, p);
      } else {
        const bool before = computed(p - 1), after = computed(p + 1);
        a0 = before ? row(o, p - 1) : row(o, p + 1);
        if (before && after) a1 = row(o, p + 1);
      }
      for (int64_t i = 0; i < v.inner; ++i) {
        float val = a1 != nullptr ? (a0[i] + a1[i]) / 2 : a0[i];
        if (rr != nullptr) val += rr[i];
        out[i] = simd::activate<K>(val, a.alpha, a.beta);
      }
    }
  }
}

void StridedPerforationKernel::finish(const float* res, float* y) const {
  const AxisView v = axis_view(s_.g.output_shape(), s_.layout, rows_);
#define CP_STRIDED_FINISH(K) finish_impl<K>(classes_, class_of_, index_of_, v, s_.act, res, y, team_)
  CP_KNOB_ACTIVATION_SWITCH(s_.act.kind, CP_STRIDED_FINISH)
#undef CP_STRIDED_FINISH
}

Status StridedPerforationKernel::build(const NodeContext& ctx, std::shared_ptr<const Runtime> rt) {
  const Knob& knob = *s_.knob;
  const ConvGeometry& g = s_.g;
  rows_ = knob.rows;
  const size_t axis = rows_ ? 0 : 1;
  const int64_t extent = g.out_spatial[axis], in_extent = g.in_spatial[axis];
  const int64_t stride = g.strides[axis], pad_begin = g.pads_begin[axis];
  const int64_t eff_kernel = (g.kernel[axis] - 1) * g.dilations[axis] + 1;
  class_of_.assign(static_cast<size_t>(extent), -1);
  index_of_.assign(static_cast<size_t>(extent), 0);
  for (int64_t p : perforation_kept(knob, extent)) class_of_[static_cast<size_t>(p)] = 0;
  for (int64_t j = 0; j < knob.rate && j < extent; ++j) {
    if (class_of_[static_cast<size_t>(j)] < 0) continue;
    // Every position j, j + rate, ... must be computed for one strided convolution to cover the class.
    int64_t rows_in_class = 0;
    for (int64_t p = j; p < extent; p += knob.rate, ++rows_in_class) {
      if (class_of_[static_cast<size_t>(p)] < 0)
        return unsupported("{}: knob '{}' skips positions that are not one residue class", ctx.node.describe(),
                           knob.name);
      class_of_[static_cast<size_t>(p)] = static_cast<int>(classes_.size());
      index_of_[static_cast<size_t>(p)] = rows_in_class;
    }
    ResidueClass r;
    const int64_t start = j * stride - pad_begin;  // input position of the class's first window
    r.shift = std::max<int64_t>(0, start);
    if (r.shift >= in_extent)
      return unsupported("{}: knob '{}': a computed class starts past the input (only padding)", ctx.node.describe(),
                         knob.name);
    const int64_t avail = in_extent - r.shift, pad_top = std::max<int64_t>(0, -start);
    const int64_t step = stride * knob.rate;
    const int64_t natural = avail + pad_top >= eff_kernel ? (avail + pad_top - eff_kernel) / step + 1 : 0;
    const int64_t pad_end = std::max<int64_t>(0, (rows_in_class - 1) * step + eff_kernel - avail - pad_top);
    r.count = std::max(natural, rows_in_class);
    // The class's convolution as a Conv node: the row (column) stride times
    // the rate, the class's padding, no fused residual or activation.
    Node conv = ctx.node;
    for (const char* a : {kAttrActivation, kAttrAlpha, kAttrBeta, kAttrResidual}) conv.attrs.erase(a);
    conv.attrs.erase("auto_pad");
    std::vector<int64_t> strides{g.strides[0], g.strides[1]};
    std::vector<int64_t> pads{g.pads_begin[0], g.pads_begin[1], g.pads_end[0], g.pads_end[1]};
    strides[axis] = step;
    pads[axis] = pad_top;
    pads[axis + 2] = pad_end;
    conv.attrs["strides"].kind = conv.attrs["pads"].kind = Attribute::Kind::ints;
    conv.attrs["strides"].ints = strides;
    conv.attrs["pads"].ints = pads;
    conv.inputs.resize(s_.has_bias ? 3 : 2);
    Shape in_shape = {g.n, g.c_in, g.in_spatial[0], g.in_spatial[1]};
    in_shape[2 + axis] = avail;
    Shape out_shape = {g.n, g.c_out, g.out_spatial[0], g.out_spatial[1]};
    out_shape[2 + axis] = r.count;
    NodeContext inner{conv, {ctx.input_types[0], ctx.input_types[1]}, {nullptr, s_.weights}, {ctx.output_types[0]}};
    inner.input_types[0].shape = in_shape;
    if (s_.has_bias) {
      inner.input_types.push_back(ctx.input_types[2]);
      inner.constants.push_back(s_.bias);
    }
    inner.output_types[0].shape = out_shape;
    inner.layout = s_.layout;
    inner.threads = team_;
    // The heuristic's variant, as an untuned session would run: timing each
    // class's convolution as well would multiply the layer's prepare time.
    const ConvGeometry cg{g.n,
                          g.c_in,
                          g.c_out,
                          g.group,
                          {in_shape[2], in_shape[3]},
                          {out_shape[2], out_shape[3]},
                          g.kernel,
                          strides,
                          g.dilations,
                          {pads[0], pads[1]},
                          {pads[2], pads[3]},
                          {0, 0}};
    const ConvVariant variant = choose_conv_variant(cg, team_, false, s_.layout);
    auto conv_kernel = make_conv_kernel(inner, rt, team_, &variant);
    if (!conv_kernel.ok()) conv_kernel = make_conv_kernel(inner, rt, team_, nullptr);
    if (!conv_kernel.ok()) return conv_kernel.status();
    r.conv = std::move(*conv_kernel);
    if (r.shift > 0) r.staged = Tensor(DType::f32, in_shape);
    r.comp = Tensor(DType::f32, out_shape);
    classes_.push_back(std::move(r));
  }
  return {};
}

}  // namespace

Status check_strided_perforation(const KnobConvSetup& s) {
  const Knob& k = *s.knob;
  if (k.kind != KnobKind::perforation || k.half)
    return unsupported("knob '{}': strided convolutions run fp32 perforation only", k.name);
  if (s.weights == nullptr || (s.has_bias && s.bias == nullptr))
    return unsupported("knob '{}': strided convolutions need constant weights and bias", k.name);
  if (s.g.out_spatial[k.rows ? 0 : 1] < 2)
    return unsupported("knob '{}': one output position along the perforated axis", k.name);
  // A kernel one tap long along the axis makes the compact kernel's gather a
  // plain strided copy: it ran the AVX2 tier's 1x1 layers faster (the
  // ResNet-style shortcuts 1.31x and 1.84x against 0.85x and 1.30x strided).
  if (s.g.kernel[k.rows ? 0 : 1] == 1)
    return unsupported("knob '{}': a 1-tap kernel along the perforated axis stays with the compact kernel", k.name);
  return {};
}

Result<std::unique_ptr<Kernel>> make_strided_perforation(const NodeContext& ctx, const KnobConvSetup& s,
                                                         std::shared_ptr<const Runtime> rt, int threads) {
  CP_TRY(check_strided_perforation(s));
  const int team = team_for_flops(threads, compact_flops(s));
  auto kernel = std::make_unique<StridedPerforationKernel>(s, team);
  try {
    CP_TRY(kernel->build(ctx, std::move(rt)));
  } catch (const dnnl::error& e) {
    // An optional path: whatever oneDNN refuses leaves the compact kernel.
    return unsupported("{}: oneDNN refused a strided convolution for perforation ({})", ctx.node.describe(), e.what());
  }
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace caliprox::onednn
