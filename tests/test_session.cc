// Executor tests on hand-built graphs: symbolic dims, constant folding of
// shape subgraphs, Conv chain fusion (same results as unfused), memory reuse,
// fallback, and input errors.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "engine/session.h"

using namespace caliprox;

namespace {

Attribute ints_attr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::ints;
  a.ints = std::move(v);
  return a;
}

Node make_node(std::string op, std::vector<std::string> in, std::vector<std::string> out, std::string name = "") {
  static int counter = 0;
  Node n;
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.name = name.empty() ? n.op_type + "_" + std::to_string(counter++) : std::move(name);
  return n;
}

Tensor random_tensor(Shape shape, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(DType::f32, std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (float& v : t.span<float>()) v = d(rng);
  return t;
}

ValueInfo input_info(const std::string& name, std::vector<Dim> dims) {
  ValueInfo v;
  v.name = name;
  v.dtype = DType::f32;
  v.dims = std::move(dims);
  return v;
}

// x[N,4,6,6] -> Conv(8,3x3,pad1) -> BN -> Add(shortcut) -> Relu -> GlobalAveragePool
//   -> Reshape(shape from Shape/Gather/Concat) -> out
Graph residual_graph(std::mt19937& rng) {
  Graph g;
  g.name = "residual";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{4, ""}, Dim{6, ""}, Dim{6, ""}}));
  g.initializers["w1"] = random_tensor({8, 4, 3, 3}, rng);
  g.initializers["b1"] = random_tensor({8}, rng);
  g.initializers["w_sc"] = random_tensor({8, 4, 1, 1}, rng);
  g.initializers["gamma"] = random_tensor({8}, rng, 0.5f, 1.5f);
  g.initializers["beta"] = random_tensor({8}, rng);
  g.initializers["mean"] = random_tensor({8}, rng);
  g.initializers["var"] = random_tensor({8}, rng, 0.5f, 2.f);
  Tensor idx(DType::i64, {1});
  idx.data<int64_t>()[0] = 0;
  g.initializers["zero"] = idx;
  Tensor minus_one(DType::i64, {1});
  minus_one.data<int64_t>()[0] = -1;
  g.initializers["minus_one"] = minus_one;

  Node conv = make_node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  conv.attrs["pads"] = ints_attr({1, 1, 1, 1});
  conv.attrs["kernel_shape"] = ints_attr({3, 3});
  g.nodes.push_back(conv);
  g.nodes.push_back(make_node("BatchNormalization", {"c1", "gamma", "beta", "mean", "var"}, {"bn1"}, "bn1"));
  g.nodes.push_back(make_node("Conv", {"x", "w_sc"}, {"sc"}, "shortcut"));
  g.nodes.push_back(make_node("Add", {"bn1", "sc"}, {"sum"}, "add"));
  g.nodes.push_back(make_node("Relu", {"sum"}, {"act"}, "relu"));
  g.nodes.push_back(make_node("GlobalAveragePool", {"act"}, {"pooled"}, "gap"));
  g.nodes.push_back(make_node("Shape", {"pooled"}, {"shape"}, "shape"));
  Node gather = make_node("Gather", {"shape", "zero"}, {"batch"}, "gather");
  gather.attrs["axis"].kind = Attribute::Kind::i;
  gather.attrs["axis"].i = 0;
  g.nodes.push_back(gather);
  Node concat = make_node("Concat", {"batch", "minus_one"}, {"new_shape"}, "concat");
  concat.attrs["axis"].kind = Attribute::Kind::i;
  concat.attrs["axis"].i = 0;
  g.nodes.push_back(concat);
  g.nodes.push_back(make_node("Reshape", {"pooled", "new_shape"}, {"out"}, "reshape"));
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

}  // namespace

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
    std::string out = i == 4 ? "out" : "v" + std::to_string(i);
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
  g.nodes.push_back(make_node("Einsum", {"x"}, {"y"}, "mystery"));
  g.outputs.push_back({"y", DType::f32, std::nullopt});
  auto backend = make_reference_backend({});
  auto s = Session::create(g, *backend, {{"x", {2}}});
  REQUIRE(!s.ok());
  CHECK(s.status().code() == Errc::unsupported);
  CHECK(s.status().message().find("Einsum") != std::string::npos);
  CHECK(s.status().message().find("mystery") != std::string::npos);

  g.nodes[0] = make_node("Relu", {"nowhere"}, {"y"}, "lost");
  auto d = Session::create(g, *backend, {{"x", {2}}});
  REQUIRE(!d.ok());
  CHECK(d.status().message().find("'nowhere'") != std::string::npos);
}
