// Structured channel pruning (knobs/prune.h) against its reference: the
// pruned network computes what the original computes when the removed
// channels are zero where their consumers read them (an observer zeroes
// them in the original network, run unoptimised so every node is seen).
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <tuple>
#include <set>

#include "engine/observer.h"
#include "ir/onnx_import.h"
#include "eval/prune_repair.h"
#include "knobs/prune.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

// Zeroes channels of one node's output (the reference for pruning).
class ZeroChannels final : public NodeObserver {
 public:
  ZeroChannels(std::string node, std::set<int64_t> zero) : node_(std::move(node)), zero_(std::move(zero)) {}
  ObserveWhat wants(const std::string& node, const std::string&) const override { return {false, node == node_}; }
  Status after(const NodeEvent&, std::span<Tensor* const> outputs) override {
    Tensor& t = *outputs[0];
    const int64_t n = t.dim(0), c = t.dim(1), inner = t.numel() / (n * c);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k : zero_) std::fill_n(t.data<float>() + (i * c + k) * inner, inner, 0.f);
    return {};
  }

 private:
  std::string node_;
  std::set<int64_t> zero_;
};

Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = v;
  return a;
}

// x[N,3,8,8] -> conv1(6, 3x3) -> BN -> Relu -> MaxPool 2 -> conv2(4, 3x3) -> Relu -> Flatten -> Gemm(5) -> out
Graph chain_graph(std::mt19937& rng) {
  Graph g;
  g.name = "chain";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{3, ""}, Dim{8, ""}, Dim{8, ""}}));
  g.initializers["w1"] = random_tensor({6, 3, 3, 3}, rng);
  g.initializers["b1"] = random_tensor({6}, rng);
  for (const char* v : {"gamma", "beta", "mean"}) g.initializers[v] = random_tensor({6}, rng);
  g.initializers["var"] = random_tensor({6}, rng, 0.5f, 2.f);
  g.initializers["w2"] = random_tensor({4, 6, 3, 3}, rng);
  g.initializers["w3"] = random_tensor({5, 4 * 2 * 2}, rng);  // Gemm transB: [out, in]
  g.initializers["b3"] = random_tensor({5}, rng);
  Node conv1 = make_node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  conv1.attrs["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(conv1);
  g.nodes.push_back(make_node("BatchNormalization", {"c1", "gamma", "beta", "mean", "var"}, {"bn"}, "bn"));
  g.nodes.push_back(make_node("Relu", {"bn"}, {"r1"}, "relu1"));
  Node pool = make_node("MaxPool", {"r1"}, {"p1"}, "pool");
  pool.attrs["kernel_shape"] = ints_attr({2, 2});
  pool.attrs["strides"] = ints_attr({2, 2});
  g.nodes.push_back(pool);
  Node conv2 = make_node("Conv", {"p1", "w2"}, {"c2"}, "conv2");
  conv2.attrs["strides"] = ints_attr({2, 2});
  conv2.attrs["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(conv2);
  g.nodes.push_back(make_node("Relu", {"c2"}, {"r2"}, "relu2"));
  Node flat = make_node("Flatten", {"r2"}, {"f"}, "flatten");
  flat.attrs["axis"] = int_attr(1);
  g.nodes.push_back(flat);
  Node gemm = make_node("Gemm", {"f", "w3", "b3"}, {"out"}, "fc");
  gemm.attrs["transB"] = int_attr(1);
  g.nodes.push_back(gemm);
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

std::vector<float> run(const Graph& g, const Tensor& x, NodeObserver* observer = nullptr) {
  auto backend = make_reference_backend({});
  SessionOptions opt;
  opt.optimize = false;
  auto s = make_session(g, *backend, x.shape(), opt);
  if (observer) s->add_observer(*observer);
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  auto v = s->output(0).span<float>();
  return {v.begin(), v.end()};
}

void check_close(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-5).scale(1.0));
}

std::set<int64_t> dropped(const std::vector<int64_t>& keep, int64_t channels) {
  std::set<int64_t> out;
  for (int64_t c = 0; c < channels; ++c)
    if (std::find(keep.begin(), keep.end(), c) == keep.end()) out.insert(c);
  return out;
}

}  // namespace

TEST_CASE("prune: the smallest filters go, ties keep the lower channel, fractions are checked") {
  Tensor w(DType::f32, {4, 1, 1, 2});
  const float v[] = {1, 1, -3, 0, 0.5f, 0.5f, 2, 0};  // L1 norms 2, 3, 1, 2
  std::copy(v, v + 8, w.data<float>());
  CHECK(*channels_to_keep(w, 0.25, "c") == std::vector<int64_t>{0, 1, 3});
  CHECK(*channels_to_keep(w, 0.5, "c") == std::vector<int64_t>{0, 1});  // 0 and 3 tie: the lower stays
  CHECK(*channels_to_keep(w, 0.2, "c") == std::vector<int64_t>{0, 1, 2, 3});  // floor(0.8) = 0 removed
  CHECK(channels_to_keep(w, 0, "c").status().message().find("outside (0, 1)") != std::string::npos);
  CHECK(channels_to_keep(w, 1, "c").status().message().find("outside (0, 1)") != std::string::npos);
  Tensor one(DType::f32, {1, 1, 1, 1});
  CHECK(channels_to_keep(one, 0.99, "c").ok());  // floor(0.99) = 0: nothing removed
}

TEST_CASE("prune: through BatchNorm, activations and pooling to a Conv, and through Flatten to a Gemm") {
  std::mt19937 rng(5);
  const Graph g = chain_graph(rng);
  const Tensor x = random_tensor({2, 3, 8, 8}, rng);
  for (double f : {0.34, 0.5}) {
    CAPTURE(f);
    // conv1's channels end at conv2: zero them where conv2 reads them.
    auto p1 = ChannelPrune("conv1", f).apply(g);
    REQUIRE_MESSAGE(p1.ok(), p1.status().message());
    CHECK(p1->initializers.at("w1").dim(0) == 6 - static_cast<int64_t>(f * 6));
    CHECK(p1->initializers.at("gamma").dim(0) == p1->initializers.at("w1").dim(0));
    CHECK(p1->initializers.at("w2").dim(1) == p1->initializers.at("w1").dim(0));
    ZeroChannels z1("pool", dropped(*channels_to_keep(g.initializers.at("w1"), f, "conv1"), 6));
    check_close(run(*p1, x), run(g, x, &z1));
  }
  // conv2's channels end at the Gemm: 4 blocks of 2x2 features each.
  auto p2 = ChannelPrune("conv2", 0.5).apply(g);
  REQUIRE_MESSAGE(p2.ok(), p2.status().message());
  CHECK(p2->initializers.at("w3").shape() == Shape{5, 8});
  ZeroChannels z2("relu2", dropped(*channels_to_keep(g.initializers.at("w2"), 0.5, "conv2"), 4));
  check_close(run(*p2, x), run(g, x, &z2));
  // Pruned networks keep their node names (knob configurations still apply).
  for (const Node& n : g.nodes) CHECK(p2->find_node(n.name) != nullptr);
}

// x[N,3,6,6] -> conv_a(5) -> relu_a -> conv_b(6) -> bn_b --+--> add -> relu -> conv_out(4) -> out
//                      \--------------> conv_sc(6, 1x1) -----/
Graph residual_block(std::mt19937& rng, bool identity_shortcut = false) {
  Graph g;
  g.name = "block";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{identity_shortcut ? 6 : 3, ""}, Dim{6, ""}, Dim{6, ""}}));
  const int64_t in = identity_shortcut ? 6 : 3;
  g.initializers["wa"] = random_tensor({5, in, 3, 3}, rng);
  g.initializers["wb"] = random_tensor({6, 5, 3, 3}, rng);
  g.initializers["bb"] = random_tensor({6}, rng);
  for (const char* v : {"gamma", "beta", "mean"}) g.initializers[v] = random_tensor({6}, rng);
  g.initializers["var"] = random_tensor({6}, rng, 0.5f, 2.f);
  g.initializers["wsc"] = random_tensor({6, in, 1, 1}, rng);
  g.initializers["wo"] = random_tensor({4, 6, 3, 3}, rng);
  for (auto [name, node, w] : {std::tuple{"conv_a", "a", "wa"}, std::tuple{"conv_b", "b", "wb"}}) {
    Node c = make_node("Conv", {name == std::string("conv_a") ? "x" : "ra", w}, {node}, name);
    if (name == std::string("conv_b")) c.inputs.push_back("bb");
    c.attrs["pads"] = ints_attr({1, 1, 1, 1});
    g.nodes.push_back(c);
    if (name == std::string("conv_a")) g.nodes.push_back(make_node("Relu", {"a"}, {"ra"}, "relu_a"));
  }
  g.nodes.push_back(make_node("BatchNormalization", {"b", "gamma", "beta", "mean", "var"}, {"bn"}, "bn_b"));
  if (!identity_shortcut) g.nodes.push_back(make_node("Conv", {"x", "wsc"}, {"sc"}, "conv_sc"));
  g.nodes.push_back(make_node("Add", {"bn", identity_shortcut ? "x" : "sc"}, {"sum"}, "add"));
  g.nodes.push_back(make_node("Relu", {"sum"}, {"r"}, "relu"));
  Node out = make_node("Conv", {"r", "wo"}, {"out"}, "conv_out");
  out.attrs["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(out);
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

TEST_CASE("prune: a residual group is pruned together, ranked by its members' summed filter norms") {
  std::mt19937 rng(11);
  const Graph g = residual_block(rng);
  const Tensor x = random_tensor({2, 3, 6, 6}, rng);
  auto p = ChannelPrune("conv_b", 0.5).apply(g);
  REQUIRE_MESSAGE(p.ok(), p.status().message());
  CHECK(p->initializers.at("wb").dim(0) == 3);
  CHECK(p->initializers.at("wsc").dim(0) == 3);  // the shortcut: the same channels
  CHECK(p->initializers.at("wo").dim(1) == 3);
  CHECK(p->initializers.at("wa").dim(0) == 5);   // another channel space: untouched
  // The channels kept: largest |wb| + |wsc| row sums.
  std::vector<double> sum(6, 0.0);
  for (const char* w : {"wb", "wsc"}) {
    const Tensor& t = g.initializers.at(w);
    const int64_t per = t.numel() / 6;
    for (int64_t o = 0; o < 6; ++o)
      for (int64_t i = 0; i < per; ++i) sum[static_cast<size_t>(o)] += std::fabs(t.data<float>()[o * per + i]);
  }
  std::vector<int64_t> order{0, 1, 2, 3, 4, 5};
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sum[a] > sum[b]; });
  std::vector<int64_t> keep(order.begin(), order.begin() + 3);
  std::sort(keep.begin(), keep.end());
  ZeroChannels z("relu", dropped(keep, 6));
  check_close(run(*p, x), run(g, x, &z));
  // conv_a's channels end at conv_b, outside the group.
  auto pa = ChannelPrune("conv_a", 0.4).apply(g);
  REQUIRE_MESSAGE(pa.ok(), pa.status().message());
  CHECK(pa->initializers.at("wb").shape() == Shape{6, 3, 3, 3});
}

TEST_CASE("prune: groups that reach the graph input, graph outputs and other ops are refused with the node named") {
  std::mt19937 rng(7);
  auto identity = ChannelPrune("conv_b", 0.5).apply(residual_block(rng, true));
  CHECK(identity.status().message().find("reaches the graph input 'x'") != std::string::npos);
  const Graph residual = residual_graph(rng);
  auto r = ChannelPrune("conv1", 0.5).apply(residual);
  CHECK(r.status().code() == Errc::invalid_input);
  CHECK(r.status().message().find("node 'shape'") != std::string::npos);
  CHECK(ChannelPrune("bn1", 0.5).apply(residual).status().message().find("is not a Conv") != std::string::npos);
  CHECK(ChannelPrune("nope", 0.5).apply(residual).status().message().find("no node 'nope'") != std::string::npos);
  Graph g = chain_graph(rng);
  g.outputs.push_back({"r1", DType::f32, std::nullopt});
  CHECK(ChannelPrune("conv1", 0.5).apply(g).status().message().find("reach the graph output 'r1'") !=
        std::string::npos);
  CHECK(ChannelPrune("conv1", 1.0).apply(chain_graph(rng)).status().message().find("outside (0, 1)") !=
        std::string::npos);
}

TEST_CASE("prune repair: a dropped channel that copies a kept one is repaired exactly; otherwise the error shrinks") {
  std::mt19937 rng(13);
  Graph g = chain_graph(rng);
  // conv1's channel 5 copies channel 0 (filter, bias, BatchNorm), and both
  // are the smallest: a prune of 1/6 drops 5 and keeps 0 (ties keep the
  // lower channel).
  Tensor w1 = g.initializers.at("w1").clone();
  const int64_t per = w1.numel() / 6;
  for (int64_t i = 0; i < per; ++i) {
    w1.data<float>()[i] *= 0.01f;
    w1.data<float>()[5 * per + i] = w1.data<float>()[i];
  }
  g.initializers["w1"] = w1;
  for (const char* v : {"b1", "gamma", "beta", "mean", "var"}) {
    Tensor t = g.initializers.at(v).clone();
    t.data<float>()[5] = t.data<float>()[0];
    g.initializers[v] = t;
  }
  // conv2 sees 2x2 outputs per sample and 5 x 3 x 3 = 45 taps: 32 samples
  // give 128 rows, enough to determine them.
  const Tensor x = random_tensor({32, 3, 8, 8}, rng);
  auto backend = make_reference_backend({});
  auto plan = plan_prune(g, "conv1", 1.0 / 6.0 + 1e-9);
  REQUIRE_MESSAGE(plan.ok(), plan.status().message());
  CHECK(plan->keep == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(plan->conv_ends == std::vector<std::string>{"conv2"});
  auto pruned = ChannelPrune("conv1", 1.0 / 6.0 + 1e-9).apply(g);
  REQUIRE(pruned.ok());
  RepairReport report;
  auto repaired = repair_pruned(g, *pruned, *plan, x, *backend, {}, &report);
  REQUIRE_MESSAGE(repaired.ok(), repaired.status().message());
  REQUIRE(report.layers.size() == 1);
  CHECK(report.layers[0].rows == 32 * 2 * 2);  // every sample's output positions
  CHECK(report.layers[0].mse_after < 1e-8);
  CHECK(report.layers[0].mse_before > 1e-3);
  const auto original = run(g, x), fixed = run(*repaired, x), cut = run(*pruned, x);
  for (size_t i = 0; i < original.size(); ++i) CHECK(fixed[i] == doctest::Approx(original[i]).epsilon(1e-3).scale(1.0));
  CHECK(cut != original);

  // Random weights: nothing to copy, but the re-fit still lowers the error.
  const Graph h = chain_graph(rng);
  auto plan2 = plan_prune(h, "conv1", 0.5);
  auto pruned2 = ChannelPrune("conv1", 0.5).apply(h);
  RepairReport report2;
  REQUIRE(repair_pruned(h, *pruned2, *plan2, x, *backend, {}, &report2).ok());
  CHECK(report2.layers[0].mse_after < report2.layers[0].mse_before);
}

TEST_CASE("prune repair: a batch the session runs in chunks is fitted on all of its samples, Gemm ends too") {
  // The bundled LeNet: conv2 -> Relu -> MaxPool -> Flatten -> fc1 (Gemm).
  // Its session splits a batch of 128 into chunks; the re-fit must see the
  // whole batch (it once saw only the last chunk, and fitted fc1 on 8
  // samples).
  auto g = load_onnx(std::string(CALIPROX_SOURCE_ROOT) + "/models/fashion_lenet.onnx");
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  std::mt19937 rng(5);
  const Tensor calib = random_tensor({128, 1, 28, 28}, rng), other = random_tensor({128, 1, 28, 28}, rng);
  auto backend = make_reference_backend({});
  auto session = [&](const Graph& graph, const Shape& shape, bool optimize) {
    SessionOptions opt;
    opt.optimize = optimize;
    auto s = Session::create(graph, *backend, {{graph.inputs[0].name, shape}}, opt);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    return std::move(s).value();
  };
  auto outputs = [&](const Graph& graph, const Tensor& x) {
    auto s = session(graph, x.shape(), false);
    REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
    auto v = s->output(0).span<float>();
    return std::vector<float>(v.begin(), v.end());
  };
  {
    auto s = session(*g, calib.shape(), true);
    const BatchSplit& split = s->batch_split();
    if (!(split.chunk > 0 && split.chunk < 128))
      MESSAGE("this machine's caches let the session run 128 samples in one piece: chunking not exercised");
  }
  auto plan = plan_prune(*g, "/conv2/Conv", 0.5);
  REQUIRE_MESSAGE(plan.ok(), plan.status().message());
  REQUIRE(plan->gemm_ends == std::vector<std::string>{"/fc1/Gemm"});
  auto pruned = ChannelPrune("/conv2/Conv", 0.5).apply(*g);
  REQUIRE(pruned.ok());
  RepairReport report;
  auto repaired = repair_pruned(*g, *pruned, *plan, calib, *backend, {}, &report);
  REQUIRE_MESSAGE(repaired.ok(), repaired.status().message());
  REQUIRE(report.layers.size() == 1);
  CHECK(report.layers[0].node == "/fc1/Gemm");
  CHECK(report.layers[0].rows == 128);
  CHECK(report.layers[0].mse_after < report.layers[0].mse_before);
  // On samples the fit never saw, the network's outputs move towards the
  // original's: the ridge generalises rather than interpolating.
  const auto original = outputs(*g, other), fixed = outputs(*repaired, other), cut = outputs(*pruned, other);
  double e_fixed = 0, e_cut = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    e_fixed += (fixed[i] - original[i]) * (fixed[i] - original[i]);
    e_cut += (cut[i] - original[i]) * (cut[i] - original[i]);
  }
  CHECK(e_fixed < 0.8 * e_cut);
}
