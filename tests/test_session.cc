// Executor tests on hand-built graphs: symbolic dims, constant folding of
// shape subgraphs, Conv chain fusion (same results as unfused), memory reuse,
// fallback, and input errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include <fmt/format.h>

#include "backends/layout.h"
#include "engine/session.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;


TEST_CASE("session: fused and unfused execution agree, shape subgraph folds away") {
  const unsigned seed = 20261122;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  Graph g = residual_graph(rng);
  auto backend = make_reference_backend({});
  Tensor x = random_tensor({3, 4, 6, 6}, rng);

  SessionOptions plain;
  plain.optimize = false;
  auto unfused = Session::create(g, *backend, {{"x", x.shape()}}, plain);
  REQUIRE(unfused.ok());
  auto fused = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE_MESSAGE(fused.ok(), fused.status().message());
  REQUIRE((*unfused)->run(std::span<const Tensor>(&x, 1)).ok());
  REQUIRE((*fused)->run(std::span<const Tensor>(&x, 1)).ok());

  const Tensor& a = (*unfused)->output(0);
  const Tensor& b = (*fused)->output(0);
  REQUIRE(a.shape() == Shape{3, 8});
  REQUIRE(b.shape() == Shape{3, 8});
  // BN folding changes the rounding order only: relative 1e-5 is ample for K = 36.
  for (int64_t i = 0; i < a.numel(); ++i)
    CHECK(std::fabs(a.data<float>()[i] - b.data<float>()[i]) <= 1e-5f * (1.f + std::fabs(a.data<float>()[i])));

  // Shape -> Gather -> Concat was folded: only compute nodes remain, and the
  // conv chain became one node (conv1 + BN + Add + Relu).
  auto nodes = (*fused)->node_backends();
  std::vector<std::string> names;
  for (const auto& [n, be] : nodes) names.push_back(n);
  CHECK(names == std::vector<std::string>{"shortcut", "conv1", "gap", "reshape"});
  CHECK((*unfused)->node_backends().size() == 7);
}

TEST_CASE("session: symbolic batch dimension resolves per session and checks inputs") {
  std::mt19937 rng(7);
  Graph g = residual_graph(rng);
  auto backend = make_reference_backend({});
  for (int64_t n : {1, 5}) {
    auto s = Session::create(g, *backend, {{"x", {n, 4, 6, 6}}});
    REQUIRE(s.ok());
    CHECK((*s)->output_types()[0].shape == Shape{n, 8});
  }
  auto wrong_dim = Session::create(g, *backend, {{"x", {1, 3, 6, 6}}});
  REQUIRE(!wrong_dim.ok());
  CHECK(wrong_dim.status().code() == Errc::invalid_input);
  CHECK(wrong_dim.status().message().find("dimension 1 is 4 in the model") != std::string::npos);
  auto wrong_rank = Session::create(g, *backend, {{"x", {4, 6, 6}}});
  CHECK(wrong_rank.status().message().find("rank 4") != std::string::npos);
  auto unknown = Session::create(g, *backend, {{"x", {1, 4, 6, 6}}, {"y", {1}}});
  CHECK(unknown.status().message().find("no input named 'y'") != std::string::npos);
  auto missing = Session::create(g, *backend, {});
  CHECK(missing.status().message().find("no tensor given for model input 'x'") != std::string::npos);

  auto s = Session::create(g, *backend, {{"x", {2, 4, 6, 6}}});
  REQUIRE(s.ok());
  Tensor other(DType::f32, {3, 4, 6, 6});
  Status st = (*s)->run(std::span<const Tensor>(&other, 1));
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message().find("session was created for") != std::string::npos);
}

TEST_CASE("session: a chain of elementwise ops reuses arena buffers") {
  // x -> Relu -> Sigmoid -> Tanh -> Relu -> Sigmoid -> out: each intermediate
  // dies after its reader, so results are right even though slots are reused.
  Graph g;
  g.inputs.push_back(input_info("x", {Dim{2, ""}, Dim{3, ""}}));
  const char* ops[] = {"Relu", "Sigmoid", "Tanh", "Relu", "Sigmoid"};
  std::string prev = "x";
  for (int i = 0; i < 5; ++i) {
    std::string out = i == 4 ? std::string("out") : fmt::format("v{}", i);
    g.nodes.push_back(make_node(ops[i], {prev}, {out}));
    prev = out;
  }
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", {2, 3}}});
  REQUIRE(s.ok());
  Tensor x(DType::f32, {2, 3});
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = static_cast<float>(i) - 2.5f;
  REQUIRE((*s)->run(std::span<const Tensor>(&x, 1)).ok());
  auto sig = [](float v) { return 1.f / (1.f + std::exp(-v)); };
  for (int i = 0; i < 6; ++i) {
    float v = sig(std::max(0.f, std::tanh(sig(std::max(0.f, x.data<float>()[i])))));
    CHECK(std::fabs((*s)->output(0).data<float>()[i] - v) < 1e-6f);
  }
}

TEST_CASE("session: unsupported op and dangling input are named") {
  Graph g;
  g.source_path = "model.onnx";
  g.inputs.push_back(input_info("x", {Dim{2, ""}}));
  g.nodes.push_back(make_node("Frobnicate", {"x"}, {"y"}, "mystery"));
  g.outputs.push_back({"y", DType::f32, std::nullopt});
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", {2}}});
  REQUIRE(!s.ok());
  CHECK(s.status().code() == Errc::unsupported);
  CHECK(s.status().message().find("Frobnicate") != std::string::npos);
  CHECK(s.status().message().find("mystery") != std::string::npos);

  g.nodes[0] = make_node("Relu", {"nowhere"}, {"y"}, "lost");
  auto d = Session::create(g, *backend, {{"x", {2}}});
  REQUIRE(!d.ok());
  CHECK(d.status().message().find("'nowhere'") != std::string::npos);
}


TEST_CASE("session: channels-last nodes get conversions only at layout boundaries") {
  const unsigned seed = 4242;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  Graph g = residual_graph(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  auto reference = make_reference_backend({});
  NhwcConvBackend nhwc;
  for (bool optimize : {true, false}) {
    CAPTURE(optimize);
    SessionOptions opt;
    opt.optimize = optimize;
    auto plain = Session::create(g, *reference, {{"x", x.shape()}}, opt);
    auto cl = Session::create(g, nhwc, {{"x", x.shape()}}, opt);
    REQUIRE(plain.ok());
    REQUIRE_MESSAGE(cl.ok(), cl.status().message());
    REQUIRE((*plain)->run(std::span<const Tensor>(&x, 1)).ok());
    REQUIRE((*cl)->run(std::span<const Tensor>(&x, 1)).ok());
    const Tensor& a = (*plain)->output(0);
    const Tensor& b = (*cl)->output(0);
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) CHECK(a.data<float>()[i] == doctest::Approx(b.data<float>()[i]).epsilon(1e-6));

    std::vector<std::string> conversions;
    for (const auto& [node, be] : (*cl)->node_backends())
      if (be == kEngineBackend) conversions.push_back(node);
    if (optimize) {
      // x is converted once for both convolutions; conv1 (with the shortcut
      // fused in as its residual) feeds GlobalAveragePool on the reference
      // backend, so it comes back to NCHW once.
      CHECK(conversions == std::vector<std::string>{"x#nhwc", "act#nchw"});
    } else {
      // Unfused: BatchNorm runs on the reference backend (NCHW); Add then
      // follows its first input (NCHW) and converts the shortcut's output.
      CHECK(conversions == std::vector<std::string>{"x#nhwc", "c1#nchw", "sc#nchw"});
    }
  }
}

TEST_CASE("layout: neutral shapes and transparent ops") {
  CHECK(layout_neutral({8, 1, 28, 28}));
  CHECK(layout_neutral({8, 64, 1, 1}));
  CHECK(!layout_neutral({8, 2, 2, 1}));
  CHECK(!layout_neutral({8, 64}));
  Tensor scalar(DType::f32, {});
  Tensor per_channel(DType::f32, {1, 3, 1, 1});
  Node mul = make_node("Mul", {"a", "b"}, {"c"});
  NodeContext ctx{mul, {{DType::f32, {2, 3, 4, 4}}, {DType::f32, {}}}, {nullptr, &scalar}, {{DType::f32, {2, 3, 4, 4}}}};
  CHECK(layout_transparent(ctx));
  ctx.input_types[1] = {DType::f32, {1, 3, 1, 1}};
  ctx.constants[1] = &per_channel;
  CHECK(!layout_transparent(ctx));  // a per-channel constant pairs elements by NCHW position
  Node conv = make_node("Conv", {"a", "b"}, {"c"});
  NodeContext conv_ctx{conv, ctx.input_types, ctx.constants, ctx.output_types};
  CHECK(!layout_transparent(conv_ctx));

  // The conversion kernel round-trips.
  std::mt19937 rng(1);
  Tensor t = random_tensor({2, 3, 4, 5}, rng), u(DType::f32, {2, 3, 4, 5}), v(DType::f32, {2, 3, 4, 5});
  const Tensor* pt = &t;
  Tensor* pu = &u;
  Tensor* pv = &v;
  REQUIRE(make_layout_kernel(Layout::nchw, Layout::nhwc)->run({&pt, 1}, {&pu, 1}).ok());
  // NHWC element (n=1, h=2, w=3, c=1) sits at ((1*4+2)*5+3)*3+1.
  CHECK(u.data<float>()[((1 * 4 + 2) * 5 + 3) * 3 + 1] == t.data<float>()[((1 * 3 + 1) * 4 + 2) * 5 + 3]);
  const Tensor* cu = &u;
  REQUIRE(make_layout_kernel(Layout::nhwc, Layout::nchw)->run({&cu, 1}, {&pv, 1}).ok());
  CHECK(std::memcmp(v.raw(), t.raw(), t.nbytes()) == 0);

  // Every element, on shapes that cross the kernel's tiles and a power-of-two plane.
  for (const Shape& shape : {Shape{1, 37, 19, 21}, Shape{2, 24, 64, 64}, Shape{1, 3, 1, 40}}) {
    CAPTURE(shape_str(shape));
    Tensor x = random_tensor(shape, rng), y(DType::f32, shape), z(DType::f32, shape);
    const Tensor* px = &x;
    Tensor* py = &y;
    Tensor* pz = &z;
    REQUIRE(make_layout_kernel(Layout::nchw, Layout::nhwc)->run({&px, 1}, {&py, 1}).ok());
    const int64_t c = shape[1], h = shape[2], w = shape[3];
    int64_t wrong = 0;
    for (int64_t n = 0; n < shape[0]; ++n)
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t hi = 0; hi < h; ++hi)
          for (int64_t wi = 0; wi < w; ++wi)
            wrong +=
                y.data<float>()[((n * h + hi) * w + wi) * c + ci] != x.data<float>()[((n * c + ci) * h + hi) * w + wi];
    CHECK(wrong == 0);
    const Tensor* cy = &y;
    REQUIRE(make_layout_kernel(Layout::nhwc, Layout::nchw)->run({&cy, 1}, {&pz, 1}).ok());
    CHECK(std::memcmp(z.raw(), x.raw(), x.nbytes()) == 0);
  }
}

namespace {

Tensor scalar_tensor(float v) { return Tensor::copy_of(DType::f32, {1}, &v); }

// Runs g unoptimized and optimized on x; returns the optimized session's node count.
size_t check_passes_keep_results(const Graph& g, const Tensor& x) {
  auto backend = make_reference_backend({});
  SessionOptions plain;
  plain.optimize = false;
  auto a = Session::create(g, *backend, {{"x", x.shape()}}, plain);
  auto b = Session::create(g, *backend, {{"x", x.shape()}});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->run(std::span<const Tensor>(&x, 1)).ok());
  REQUIRE((*b)->run(std::span<const Tensor>(&x, 1)).ok());
  const Tensor& want = (*a)->output(0);
  const Tensor& got = (*b)->output(0);
  REQUIRE(want.numel() == got.numel());
  for (int64_t i = 0; i < want.numel(); ++i)
    CHECK(got.data<float>()[i] == doctest::Approx(want.data<float>()[i]).epsilon(1e-5).scale(1.0));
  return (*b)->node_backends().size();
}

// x -> Conv (3 channels, padded) -> the nodes `tail` adds, reading "c".
Graph conv_then(std::mt19937& rng, const std::function<void(Graph&)>& tail) {
  Graph g;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{2, ""}, Dim{5, ""}, Dim{5, ""}}));
  g.initializers["w"] = random_tensor({3, 2, 3, 3}, rng);
  g.initializers["b"] = random_tensor({3}, rng);
  Node conv = make_node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  conv.attrs["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(conv);
  tail(g);
  g.outputs.push_back({"y", DType::f32, std::nullopt});
  return g;
}

}  // namespace

TEST_CASE("passes: Mul(x, HardSigmoid(x)) becomes HardSwish and fuses into the Conv") {
  const unsigned seed = 99;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  Graph g;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{2, ""}, Dim{5, ""}, Dim{5, ""}}));
  g.initializers["w"] = random_tensor({3, 2, 3, 3}, rng);
  Node conv = make_node("Conv", {"x", "w"}, {"c"}, "conv");
  conv.attrs["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(conv);
  Node hs = make_node("HardSigmoid", {"c"}, {"h"}, "hsig");
  hs.attrs["alpha"].kind = Attribute::Kind::f;
  hs.attrs["alpha"].f = 1.f / 6.f;  // PyTorch's export writes alpha only: beta defaults to 0.5
  g.nodes.push_back(hs);
  g.nodes.push_back(make_node("Mul", {"c", "h"}, {"y"}, "mul"));
  g.outputs.push_back({"y", DType::f32, std::nullopt});
  // Inputs around the HardSwish knees (-3, 3) so both linear pieces count.
  Tensor x = random_tensor({2, 2, 5, 5}, rng, -3.f, 3.f);
  CHECK(check_passes_keep_results(g, x) == 1);  // conv + HardSwish in one node

  // With other HardSigmoid parameters it is not HardSwish: nothing changes.
  g.nodes[1].attrs["beta"].kind = Attribute::Kind::f;
  g.nodes[1].attrs["beta"].f = 0.4f;
  CHECK(check_passes_keep_results(g, x) == 3);  // the conv output has two readers: no fusion either
}

TEST_CASE("passes: per-channel and scalar Mul / Add after a Conv fold into its weights and bias") {
  const unsigned seed = 7;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  const Tensor x = random_tensor({2, 2, 5, 5}, rng, -3.f, 3.f);
  // PP-LCNetV3's learnable affine block (scalar constant first), then a
  // per-channel scale [1, C, 1, 1], a per-channel shift [C, 1, 1], and Relu.
  const Graph g = conv_then(rng, [&](Graph& g) {
    g.initializers["s"] = scalar_tensor(1.7f);
    g.initializers["t"] = scalar_tensor(-0.3f);
    g.initializers["sc"] = random_tensor({1, 3, 1, 1}, rng, 0.5f, 2.f);
    g.initializers["sh"] = random_tensor({3, 1, 1}, rng);
    g.nodes.push_back(make_node("Mul", {"s", "c"}, {"m1"}));
    g.nodes.push_back(make_node("Add", {"m1", "t"}, {"a1"}));
    g.nodes.push_back(make_node("Mul", {"a1", "sc"}, {"m2"}));
    g.nodes.push_back(make_node("Add", {"sh", "m2"}, {"a2"}));
    g.nodes.push_back(make_node("Relu", {"a2"}, {"y"}));
  });
  CHECK(check_passes_keep_results(g, x) == 1);  // one fused Conv

  // A [C] constant broadcasts over W, not over channels: not folded.
  const Graph w_axis = conv_then(rng, [&](Graph& g) {
    g.initializers["k"] = random_tensor({5}, rng);
    g.nodes.push_back(make_node("Mul", {"c", "k"}, {"y"}));
  });
  CHECK(check_passes_keep_results(w_axis, x) == 2);
  // Another reader of the conv output keeps it: not folded.
  const Graph shared = conv_then(rng, [&](Graph& g) {
    g.initializers["k"] = scalar_tensor(2.f);
    g.nodes.push_back(make_node("Mul", {"c", "k"}, {"m"}));
    g.nodes.push_back(make_node("Add", {"c", "m"}, {"y"}));
  });
  CHECK(check_passes_keep_results(shared, x) == 3);  // nothing folds or fuses
}

TEST_CASE("passes: x * Clip(x + 3, 0, 6) / 6 becomes HardSwish and fuses into the Conv") {
  const unsigned seed = 8;
  MESSAGE("seed " << seed);
  std::mt19937 rng(seed);
  const Tensor x = random_tensor({2, 2, 5, 5}, rng, -3.f, 3.f);
  auto swish = [&](float add, float hi, bool divide) {
    return conv_then(rng, [&, add, hi, divide](Graph& g) {
      g.initializers["three"] = scalar_tensor(add);
      g.initializers["zero"] = scalar_tensor(0.f);
      g.initializers["six"] = scalar_tensor(hi);
      g.initializers["sixth"] = scalar_tensor(1.f / 6.f);
      g.nodes.push_back(make_node("Add", {"c", "three"}, {"p"}));
      g.nodes.push_back(make_node("Clip", {"p", "zero", "six"}, {"q"}));
      g.nodes.push_back(make_node("Mul", {"q", "c"}, {"r"}));
      if (divide) g.nodes.push_back(make_node("Div", {"r", "six"}, {"y"}));
      else g.nodes.push_back(make_node("Mul", {"sixth", "r"}, {"y"}));
    });
  };
  CHECK(check_passes_keep_results(swish(3.f, 6.f, true), x) == 1);
  CHECK(check_passes_keep_results(swish(3.f, 6.f, false), x) == 1);
  // Other constants: not HardSwish, nothing formed (the conv output has two readers).
  CHECK(check_passes_keep_results(swish(2.f, 6.f, true), x) == 5);
  CHECK(check_passes_keep_results(swish(3.f, 5.f, true), x) == 5);
}
