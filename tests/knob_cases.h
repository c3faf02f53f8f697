#pragma once
// Shared by the knob kernels' tests (test_knob_onednn.cc, test_knob_variants.cc):
// one Conv node with knobs, its inputs, contexts for both backends, running a
// kernel in either layout, and the tolerances stated in test_knob_onednn.cc.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "knobs/knobs.h"
#include "node_harness.h"
#include "onednn_cases.h"

namespace knob_test {

using namespace caliprox;

using onednn_test::kThreads;
// The backends every oneDNN test shares (onednn_cases.h's).
using onednn_test::onednn_backend;
using onednn_test::reference_backend;

// Seeds, random values and fused attributes: onednn_cases.h's.
using onednn_test::rand_int;
using onednn_test::random_tensor;
using onednn_test::set_fused_activation;
using onednn_test::test_seed;

// Attribute builders: node_harness.h's.
using caliprox::test::int_attr;
using caliprox::test::ints;

// Same logical shape, memory channels-last (and back): a plain loop, the
// tests' own reference for the layout conversions.
inline Tensor relayout(const Tensor& t, bool to_channels_last) {
  const int64_t n = t.dim(0), c = t.dim(1), hw = t.dim(2) * t.dim(3);
  Tensor out(DType::f32, t.shape());
  const float* s = t.data<float>();
  float* d = out.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p) {
        const int64_t nchw = (i * c + ch) * hw + p, nhwc = (i * hw + p) * c + ch;
        if (to_channels_last) d[nhwc] = s[nchw];
        else d[nchw] = s[nhwc];
      }
  return out;
}
inline Tensor to_nhwc(const Tensor& t) { return relayout(t, true); }
inline Tensor to_nchw(const Tensor& t) { return relayout(t, false); }

struct ConvCase {
  Node node;
  std::vector<Tensor> inputs;  // X, W, B (may be empty), residual (optional)
  bool bias_constant = true;
};

inline ConvCase make_conv(std::vector<Tensor> inputs, std::map<std::string, Attribute> attrs) {
  ConvCase c;
  c.node.name = "knob_conv";
  c.node.op_type = "Conv";
  c.node.attrs = std::move(attrs);
  for (size_t i = 0; i < inputs.size(); ++i) c.node.inputs.push_back(inputs[i].empty() ? "" : "in" + std::to_string(i));
  c.node.outputs.push_back("out0");
  c.inputs = std::move(inputs);
  return c;
}

inline std::vector<TensorType> infer(const ConvCase& c) {
  std::vector<InferInput> in;
  for (size_t i = 0; i < c.inputs.size(); ++i)
    in.push_back(c.inputs[i].empty() ? InferInput{} : InferInput{c.inputs[i].type(), i == 1 ? &c.inputs[i] : nullptr});
  auto types = find_op("Conv")->infer(c.node, in);
  REQUIRE_MESSAGE(types.ok(), types.status().message());
  return *types;
}

inline void add_fusion(ConvCase& c, std::mt19937& rng, bool residual, const char* activation) {
  set_fused_activation(c.node, activation);
  if (residual) {
    const Shape out = infer(c)[0].shape;
    c.node.attrs[kAttrResidual] = int_attr(1);
    c.inputs.resize(4);
    c.inputs[3] = random_tensor(out, rng);
    c.node.inputs.resize(4);
    c.node.inputs[3] = "in3";
    if (c.inputs[2].empty()) c.node.inputs[2] = "";
  }
}


inline NodeContext context_for(const ConvCase& c, const Knob* knob, Layout layout, std::optional<ValueRange> range) {
  NodeContext ctx{c.node, {}, {}, infer(c), kThreads, layout, knob, range};
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& t = c.inputs[i];
    ctx.input_types.push_back(t.empty() ? TensorType{} : t.type());
    const bool constant = i == 1 || (i == 2 && c.bias_constant);
    ctx.constants.push_back(!t.empty() && constant ? &t : nullptr);
  }
  return ctx;
}

// Runs a prepared kernel on the case's inputs (or `feeds`, same shapes) in
// `layout`; the output in NCHW. With feeds it runs twice, first on the
// case's own inputs, to check that it holds no state from an earlier run.
inline Tensor run_kernel(Kernel& kernel, const ConvCase& c, const NodeContext& ctx, Layout layout,
                  const std::vector<Tensor>* feeds = nullptr) {
  Tensor out(DType::f32, ctx.output_types[0].shape);
  for (int pass = 0; pass < (feeds ? 2 : 1); ++pass) {
    const std::vector<Tensor>& src = pass == 0 ? c.inputs : *feeds;
    std::vector<Tensor> held = src;
    if (layout == Layout::nhwc) {
      held[0] = to_nhwc(src[0]);
      if (held.size() > 3 && !held[3].empty()) held[3] = to_nhwc(src[3]);
    }
    std::vector<const Tensor*> in;
    for (const Tensor& t : held) in.push_back(t.empty() ? nullptr : &t);
    Tensor* outs[1] = {&out};
    Status st = kernel.run(in, outs);
    REQUIRE_MESSAGE(st.ok(), st.message());
  }
  return layout == Layout::nhwc ? to_nchw(out) : out;
}

// Runs the node on `backend` in `layout`; the backend must claim it.
// `feeds` replaces the inputs at run time (same shapes), to check that a
// kernel holds no state from an earlier run.
inline Tensor run_on(Backend& backend, const ConvCase& c, const Knob* knob, Layout layout, std::optional<ValueRange> range,
              const std::vector<Tensor>* feeds = nullptr) {
  const NodeContext ctx = context_for(c, knob, layout, range);
  INFO("backend " << backend.name() << ", knob " << (knob ? knob->name : "fp32") << ", layout "
                  << (layout == Layout::nhwc ? "nhwc" : "nchw"));
  REQUIRE(backend.supports(ctx));
  if (layout == Layout::nhwc) REQUIRE(backend.supports_nhwc(ctx));
  auto kernel = backend.prepare(ctx);
  REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
  return run_kernel(**kernel, c, ctx, layout, feeds);
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.span<float>()) m = std::max(m, std::abs(static_cast<double>(v)));
  return m;
}

inline double max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
  return m;
}

inline double tolerance_for(const Knob& knob) {
  if (knob.half) return 2e-3;
  return 1e-4;
}

inline std::string describe(const ConvCase& c) {
  std::string s = "X " + shape_str(c.inputs[0].shape()) + " W " + shape_str(c.inputs[1].shape());
  for (const auto& [k, a] : c.node.attrs) {
    s += " " + k + "=";
    if (a.kind == Attribute::Kind::ints)
      for (int64_t v : a.ints) s += std::to_string(v) + ",";
    else if (a.kind == Attribute::Kind::i) s += std::to_string(a.i);
    else if (a.kind == Attribute::Kind::f) s += std::to_string(a.f);
    else s += a.s;
  }
  return s + (c.inputs.size() > 2 && !c.inputs[2].empty() ? (c.bias_constant ? " bias" : " bias(run time)") : "");
}

// oneDNN in both layouts against the reference (NCHW), tolerance as stated
// at the top; `extra_abs` widens the int8 bound for off-grid inputs.
inline void check_knob(const ConvCase& c, const Knob& knob, std::optional<ValueRange> range = std::nullopt,
                double extra_abs = 0) {
  INFO("case " << describe(c) << ", knob " << knob.name);
  const Tensor want = run_on(reference_backend(), c, &knob, Layout::nchw, range);
  const double bound = tolerance_for(knob) * (1 + max_abs(want)) + extra_abs;
  for (Layout layout : {Layout::nchw, Layout::nhwc}) {
    const Tensor got = run_on(onednn_backend(), c, &knob, layout, range);
    const double err = max_diff(got, want);
    CHECK_MESSAGE(err <= bound, knob.name << (layout == Layout::nhwc ? " nhwc" : " nchw") << ": max |diff| " << err
                                          << " > " << bound);
  }
}

// A random 2-D Conv for the knobs: plain, grouped, depthwise, pointwise or
// single-input-channel, with strides, asymmetric pads, dilations, optional
// bias. Output extents >= 2 so that every perforation knob leaves rows.
inline ConvCase random_conv(std::mt19937& rng, int64_t n) {
  for (;;) {
    const int64_t kind = rand_int(rng, 0, 4);  // plain, grouped, depthwise, 1x1, one input channel
    const int64_t group = kind == 1 ? rand_int(rng, 2, 3) : kind == 2 ? rand_int(rng, 2, 40) : 1;
    const int64_t cin = kind == 4 ? 1 : kind == 2 ? group : group * rand_int(rng, 1, 20);
    const int64_t cout = kind == 2 ? group : group * rand_int(rng, 1, 20);
    const int64_t kh = kind == 3 ? 1 : rand_int(rng, 1, 4), kw = kind == 3 ? 1 : rand_int(rng, 1, 4);
    const int64_t h = rand_int(rng, 2, 17), w = rand_int(rng, 2, 17);
    const int64_t sh = rand_int(rng, 1, 2), sw = rand_int(rng, 1, 2);
    const int64_t dh = kind == 3 ? 1 : rand_int(rng, 1, 2), dwl = kind == 3 ? 1 : rand_int(rng, 1, 2);
    const int64_t pt = rand_int(rng, 0, 2), pl = rand_int(rng, 0, 2), pb = rand_int(rng, 0, 2), pr = rand_int(rng, 0, 2);
    const int64_t ekh = (kh - 1) * dh + 1, ekw = (kw - 1) * dwl + 1;
    if (h + pt + pb < ekh || w + pl + pr < ekw) continue;
    if ((h + pt + pb - ekh) / sh + 1 < 2 || (w + pl + pr - ekw) / sw + 1 < 2) continue;
    const bool bias = rand_int(rng, 0, 3) != 0;
    std::vector<Tensor> in{random_tensor({n, cin, h, w}, rng), random_tensor({cout, cin / group, kh, kw}, rng),
                           bias ? random_tensor({cout}, rng) : Tensor()};
    ConvCase c = make_conv(std::move(in), {{"group", int_attr(group)},
                                           {"strides", ints({sh, sw})},
                                           {"dilations", ints({dh, dwl})},
                                           {"pads", ints({pt, pl, pb, pr})}});
    c.bias_constant = rand_int(rng, 0, 3) != 0;
    return c;
  }
}

constexpr const char* kActivations[] = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh"};

inline std::vector<const Knob*> knobs_of(KnobKind kind) {
  std::vector<const Knob*> out;
  for (const Knob& k : knob_catalogue())
    if (k.kind == kind) out.push_back(&k);
  return out;
}

// An ungrouped layer of the kind network_layer builds: input channels,
// square map side, output channels, square kernel, stride.
struct LayerGeometry {
  int64_t c, hw, oc, k, stride;
};

// A ResNet-style 3x3 layer at a size that runs the blocked paths (several
// column chunks, 16-channel mask blocks, whole-row runs).
inline ConvCase network_layer(std::mt19937& rng, int64_t n, int64_t c, int64_t hw, int64_t oc, int64_t k, int64_t stride,
                       int64_t group) {
  const int64_t pad = k / 2;
  std::vector<Tensor> in{random_tensor({n, c, hw, hw}, rng), random_tensor({oc, c / group, k, k}, rng, -0.2f, 0.2f),
                         random_tensor({oc}, rng)};
  return make_conv(std::move(in), {{"group", int_attr(group)},
                                   {"strides", ints({stride, stride})},
                                   {"pads", ints({pad, pad, pad, pad})}});
}

}  // namespace knob_test
