#pragma once
// Node-level helpers shared by the oneDNN backend tests (test_onednn.cc,
// test_onednn_nhwc.cc): random cases, running one node on a backend, and the
// comparison against the reference backend.
//
// Tolerance: max |onednn - reference| <= tol * (1 + max |reference|).
// Both backends accumulate in float32 but in different orders (oneDNN blocks
// over channels and uses FMA), so each output of a K-term dot product may
// differ by a few K * 2^-24 relative to the sum of |terms|; with inputs in
// [-1, 1] and K <= ~600 that stays below 1e-4 * (1 + max|y|) with a wide
// margin (observed differences are ~1e-6). Elementwise ops and pooling do
// the same float operations up to FMA contraction and libm vs oneDNN's
// polynomial exp/tanh, a few ulp: 1e-5.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "node_harness.h"

namespace caliprox::onednn_test {
inline constexpr int kThreads = 2;

// Attribute builders: node_harness.h's.
using test::float_attr;
using test::int_attr;
using test::ints;
using test::str;

inline unsigned test_seed(const char* what) {
  unsigned seed = std::random_device{}();
  if (const char* env = std::getenv("CALIPROX_TEST_SEED")) seed = static_cast<unsigned>(std::strtoul(env, nullptr, 10));
  std::printf("test_onednn %s: random seed %u\n", what, seed);
  return seed;
}

inline int64_t rand_int(std::mt19937& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
inline bool coin(std::mt19937& rng) { return rand_int(rng, 0, 1) == 1; }

inline Tensor random_tensor(Shape shape, std::mt19937& rng, float lo = -1, float hi = 1) {
  Tensor t(DType::f32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

// One node with its inputs; `constant[i]` says whether prepare() may see
// input i as a constant (ONNX conformance cases feed weights as graph inputs).
struct NodeCase {
  Node node;
  std::vector<Tensor> inputs;  // an empty Tensor is an omitted optional input
  std::vector<bool> constant;
};

inline NodeCase make_case(std::string op, std::vector<Tensor> inputs, std::map<std::string, Attribute> attrs = {},
                   std::vector<bool> constant = {}, size_t outputs = 1) {
  NodeCase c;
  c.node.name = "t_" + op;
  c.node.op_type = std::move(op);
  c.node.attrs = std::move(attrs);
  for (size_t i = 0; i < inputs.size(); ++i) c.node.inputs.push_back(inputs[i].empty() ? "" : "in" + std::to_string(i));
  for (size_t i = 0; i < outputs; ++i) c.node.outputs.push_back("out" + std::to_string(i));
  c.inputs = std::move(inputs);
  c.constant = std::move(constant);
  c.constant.resize(c.inputs.size(), false);
  return c;
}

inline NodeContext context_for(const NodeCase& c) {
  NodeContext ctx{c.node, {}, {}, {}, kThreads};
  std::vector<InferInput> infer_in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& t = c.inputs[i];
    const Tensor* value = (!t.empty() && c.constant[i]) ? &t : nullptr;
    ctx.input_types.push_back(t.empty() ? TensorType{} : t.type());
    ctx.constants.push_back(value);
    infer_in.push_back(t.empty() ? InferInput{} : InferInput{t.type(), value});
  }
  const OpDef* def = find_op(c.node.op_type);
  REQUIRE(def != nullptr);
  auto types = def->infer(c.node, infer_in);
  REQUIRE_MESSAGE(types.ok(), types.status().message());
  ctx.output_types = *types;
  return ctx;
}

inline std::vector<Tensor> run_kernel(Kernel& kernel, const NodeCase& c, const NodeContext& ctx) {
  std::vector<Tensor> outs;
  for (const auto& t : ctx.output_types) outs.emplace_back(t.dtype, t.shape);
  std::vector<const Tensor*> in;
  for (const auto& t : c.inputs) in.push_back(t.empty() ? nullptr : &t);
  std::vector<Tensor*> out;
  for (auto& t : outs) out.push_back(&t);
  Status st = kernel.run(in, out);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return outs;
}

inline Backend& onednn_backend() {
  static std::unique_ptr<Backend> b = make_onednn_backend(BackendOptions{kThreads});
  return *b;
}
inline Backend& reference_backend() {
  static std::unique_ptr<Backend> b = make_reference_backend(BackendOptions{1});
  return *b;
}

inline std::vector<Tensor> run_on(Backend& backend, const NodeCase& c) {
  const NodeContext ctx = context_for(c);
  REQUIRE(backend.supports(ctx));
  auto kernel = backend.prepare(ctx);
  REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
  // Twice: a kernel must not depend on state left by an earlier run.
  run_kernel(**kernel, c, ctx);
  return run_kernel(**kernel, c, ctx);
}

inline bool onednn_claims(const NodeCase& c) { return onednn_backend().supports(context_for(c)); }

// max |a - b| / (1 + max |b|) over the first output.
inline double relative_error(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  double max_diff = 0, max_ref = 0;
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (std::isnan(w[i]) || std::isnan(g[i])) {
      if (std::isnan(w[i]) != std::isnan(g[i])) return INFINITY;
      continue;
    }
    max_diff = std::max(max_diff, std::abs(double(g[i]) - w[i]));
    max_ref = std::max(max_ref, std::abs(double(w[i])));
  }
  return max_diff / (1 + max_ref);
}

inline std::string describe_attrs(const Node& n) {
  std::string s;
  for (const auto& [k, a] : n.attrs) {
    s += k + "=";
    if (a.kind == Attribute::Kind::ints)
      for (int64_t v : a.ints) s += std::to_string(v) + ",";
    else if (a.kind == Attribute::Kind::i) s += std::to_string(a.i);
    else if (a.kind == Attribute::Kind::f) s += std::to_string(a.f);
    else s += a.s;
    s += " ";
  }
  return s;
}

inline std::string describe(const NodeCase& c) {
  std::string s = c.node.op_type + " inputs";
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) about
  // `" " + std::string&&` once this is inlined.
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    s += ' ';
    s += c.inputs[i].empty() ? std::string("-") : shape_str(c.inputs[i].shape());
    if (c.constant[i]) s += 'c';
  }
  return s + " " + describe_attrs(c.node);
}

// The node runs on oneDNN (it must claim it) and agrees with the reference.
inline void check_against_reference(const NodeCase& c, double tol) {
  if (std::getenv("CALIPROX_TEST_VERBOSE")) std::fprintf(stderr, "case: %s\n", describe(c).c_str());
  const std::vector<Tensor> got = run_on(onednn_backend(), c);
  const std::vector<Tensor> want = run_on(reference_backend(), c);
  const double err = relative_error(got[0], want[0]);
  CHECK_MESSAGE(err <= tol, c.node.op_type << " relative error " << err << " > " << tol);
}

// For geometries where oneDNN 2.6 has only its unoptimized reference
// implementation the backend declines the node; when it claims it, it must
// agree with the reference. Returns whether it claimed it.
inline bool check_if_claimed(const NodeCase& c, double tol) {
  if (!onednn_claims(c)) return false;
  check_against_reference(c, tol);
  return true;
}

inline constexpr const char* kActivations[] = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh"};

// A random 2-D Conv: groups (incl. depthwise), strides, asymmetric pads,
// dilations, optional bias, constant or run-time weights.
inline NodeCase random_conv(std::mt19937& rng, int64_t n) {
  for (;;) {
    const int64_t kind = rand_int(rng, 0, 3);  // 0 plain, 1 grouped, 2 depthwise, 3 1x1
    const int64_t group = kind == 1 ? rand_int(rng, 2, 4) : 1;
    const int64_t cin_g = kind == 2 ? 1 : rand_int(rng, 1, 24);
    int64_t cout_g = rand_int(rng, 1, 24);
    int64_t cin = group * cin_g;
    int64_t dw_group = group;
    if (kind == 2) {
      cin = rand_int(rng, 2, 40);
      dw_group = cin;
      cout_g = rand_int(rng, 1, 2);  // depthwise with channel multiplier 1 or 2
    }
    const int64_t cout = dw_group * cout_g;
    const int64_t kh = kind == 3 ? 1 : rand_int(rng, 1, 5), kw = kind == 3 ? 1 : rand_int(rng, 1, 5);
    const int64_t h = rand_int(rng, 3, 20), w = rand_int(rng, 3, 20);
    const int64_t sh = rand_int(rng, 1, 3), sw = rand_int(rng, 1, 3);
    const int64_t dh = kind == 3 ? 1 : rand_int(rng, 1, 2), dwl = kind == 3 ? 1 : rand_int(rng, 1, 2);
    const int64_t pt = rand_int(rng, 0, 2), pl = rand_int(rng, 0, 2), pb = rand_int(rng, 0, 2), pr = rand_int(rng, 0, 2);
    if (h + pt + pb < (kh - 1) * dh + 1 || w + pl + pr < (kw - 1) * dwl + 1) continue;
    const bool bias = coin(rng);
    std::vector<Tensor> in{random_tensor({n, cin, h, w}, rng), random_tensor({cout, cin / dw_group, kh, kw}, rng),
                           bias ? random_tensor({cout}, rng) : Tensor()};
    std::map<std::string, Attribute> attrs{{"group", int_attr(dw_group)},
                                           {"strides", ints({sh, sw})},
                                           {"dilations", ints({dh, dwl})},
                                           {"pads", ints({pt, pl, pb, pr})}};
    const bool constant_w = rand_int(rng, 0, 3) != 0;
    return make_case("Conv", std::move(in), std::move(attrs), {false, constant_w, constant_w});
  }
}

// Adds the fused attributes of engine/passes.cc to a Conv case.
// The fused activation attributes (with test values of alpha / beta).
inline void set_fused_activation(Node& node, const char* activation) {
  if (activation == nullptr) return;
  node.attrs[kAttrActivation] = str(activation);
  const std::string a = activation;
  if (a == "LeakyRelu") node.attrs[kAttrAlpha] = float_attr(0.1f);
  if (a == "Clip") {
    node.attrs[kAttrAlpha] = float_attr(-0.5f);
    node.attrs[kAttrBeta] = float_attr(0.75f);
  }
  if (a == "HardSigmoid") {
    node.attrs[kAttrAlpha] = float_attr(0.3f);
    node.attrs[kAttrBeta] = float_attr(0.4f);
  }
}

inline void add_fusion(NodeCase& c, std::mt19937& rng, bool residual, const char* activation) {
  set_fused_activation(c.node, activation);
  if (residual) {
    const NodeContext ctx = context_for(c);
    c.node.attrs[kAttrResidual] = int_attr(1);
    c.inputs.resize(4);
    c.constant.resize(4, false);
    c.inputs[3] = random_tensor(ctx.output_types[0].shape, rng);
    c.node.inputs.resize(4);
    c.node.inputs[3] = "in3";
    if (c.inputs[2].empty()) c.node.inputs[2] = "";
  }
}

}  // namespace caliprox::onednn_test
