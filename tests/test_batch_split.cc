// Batch splitting (engine/batch_split.h): the chunk plan, the same results
// split and unsplit (partial last chunk, several threads, knobs, timings,
// int8 ranges), and graphs that mix samples running as one piece.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "engine/batch_split.h"
#include "engine/session.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

Attribute int_attribute(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = v;
  return a;
}

Tensor int64_tensor(std::vector<int64_t> v) {
  Tensor t(DType::i64, {static_cast<int64_t>(v.size())});
  std::memcpy(t.raw(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  const char* name_;
};

void check_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.type() == b.type());
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// x[N,4,6,6] -> Relu -> `op` ... -> out: a one-op graph around a node that
// may mix samples.
Graph mixing_graph(Node node, std::map<std::string, Tensor> constants = {}, int64_t opset = 13) {
  Graph g;
  g.name = "mixing";
  g.opset = opset;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{4, ""}, Dim{6, ""}, Dim{6, ""}}));
  g.initializers = std::move(constants);
  g.nodes.push_back(make_node("Relu", {"x"}, {"r"}, "relu"));
  node.inputs.insert(node.inputs.begin(), "r");
  node.outputs = {"out"};
  node.opset = opset;
  g.nodes.push_back(node);
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

}  // namespace

TEST_CASE("batch split: the plan") {
  // Working set 200 KiB per sample, budget 1 MiB: chunks of 4 (a power of two).
  BatchSplit p = plan_batch_split(64, 1, 200 * 1024, 1024 * 1024);
  CHECK(p.chunk == 4);
  CHECK(p.chunks == 16);
  CHECK(p.workers == 1);
  // Two threads: the same chunks, one worker per thread.
  p = plan_batch_split(64, 2, 200 * 1024, 1024 * 1024);
  CHECK((p.chunk == 4 && p.chunks == 16 && p.workers == 2));
  // One thread and a batch that fits: no split.
  CHECK(plan_batch_split(3, 1, 200 * 1024, 1024 * 1024).chunk == 0);
  CHECK(plan_batch_split(1, 2, 200 * 1024, 1024 * 1024).chunk == 0);
  // It fits, but two threads each take a half.
  p = plan_batch_split(3, 2, 200 * 1024, 1024 * 1024);
  CHECK((p.chunk == 2 && p.chunks == 2 && p.workers == 2));
  // 100 samples: 25 chunks of 4.
  p = plan_batch_split(100, 1, 200 * 1024, 1024 * 1024);
  CHECK((p.chunk == 4 && p.chunks == 25));
  p = plan_batch_split(10, 1, 300 * 1024, 1024 * 1024);  // cap 2: five chunks of 2
  CHECK((p.chunk == 2 && p.chunks == 5));
  // 5 samples on 4 threads: never more workers than chunks.
  p = plan_batch_split(5, 4, 1024, 1024 * 1024);
  CHECK(p.workers <= p.chunks);
  CHECK(p.chunk * p.chunks >= 5);
  // A sample larger than the budget: chunks of one.
  p = plan_batch_split(6, 1, 4e6, 1024 * 1024);
  CHECK((p.chunk == 1 && p.chunks == 6));
}

TEST_CASE("batch split: same results split and unsplit, partial last chunk, timings") {
  std::mt19937 rng(11);
  Graph g = residual_graph(rng);  // its Reshape target comes from Shape -> Gather -> Concat
  auto backend = make_reference_backend({});
  for (int64_t n : {3, 5, 8}) {
    for (int threads : {1, 2}) {
      // A small budget (2.3 KB per sample here) so that one thread splits
      // too, in chunks of 2: 3 and 5 samples end in a partial chunk.
      ScopedEnv budget("CALIPROX_BATCH_BUDGET_KB", "5");
      CAPTURE(n);
      CAPTURE(threads);
      Tensor x = random_tensor({n, 4, 6, 6}, rng);
      SessionOptions on;
      on.threads = threads;
      on.collect_timings = true;
      SessionOptions off = on;
      off.batch_split = false;
      auto split = Session::create(g, *backend, {{"x", x.shape()}}, on);
      auto whole = Session::create(g, *backend, {{"x", x.shape()}}, off);
      REQUIRE_MESSAGE(split.ok(), split.status().message());
      REQUIRE(whole.ok());
      const BatchSplit& p = (*split)->batch_split();
      REQUIRE(p.chunk > 0);
      CHECK(p.chunk < n);
      CHECK(p.workers == std::min<int64_t>(threads, p.chunks));
      CHECK((*whole)->batch_split().chunk == 0);
      CHECK((*split)->output_types() == (*whole)->output_types());
      for (int rep = 0; rep < 2; ++rep) {  // buffers are reused across runs
        Tensor xi = random_tensor({n, 4, 6, 6}, rng);
        REQUIRE((*split)->run(std::span<const Tensor>(&xi, 1)).ok());
        REQUIRE((*whole)->run(std::span<const Tensor>(&xi, 1)).ok());
        // Per-sample reference kernels: bit for bit.
        check_same((*split)->output(0), (*whole)->output(0));
      }
      const auto& ts = (*split)->timings();
      const auto& tw = (*whole)->timings();
      REQUIRE(ts.size() == tw.size());
      for (size_t i = 0; i < ts.size(); ++i) {
        CHECK(ts[i].node == tw[i].node);
        CHECK(ts[i].ms >= 0);
      }
    }
  }
}

TEST_CASE("batch split: knobs, configuration errors and int8 ranges go to every worker") {
  std::mt19937 rng(12);
  Graph g = residual_graph(rng);
  auto backend = make_reference_backend({});
  const int64_t n = 6;
  SessionOptions on;
  on.threads = 2;
  SessionOptions off = on;
  off.batch_split = false;
  auto split = Session::create(g, *backend, {{"x", {n, 4, 6, 6}}}, on);
  auto whole = Session::create(g, *backend, {{"x", {n, 4, 6, 6}}}, off);
  REQUIRE(split.ok());
  REQUIRE(whole.ok());
  REQUIRE((*split)->batch_split().workers == 2);

  // Knob sites describe this session's batch, not a chunk.
  REQUIRE((*split)->knob_sites().size() == (*whole)->knob_sites().size());
  for (size_t i = 0; i < (*split)->knob_sites().size(); ++i) {
    CHECK((*split)->knob_sites()[i].node == (*whole)->knob_sites()[i].node);
    CHECK((*split)->knob_sites()[i].flops == doctest::Approx((*whole)->knob_sites()[i].flops));
    CHECK((*split)->knob_sites()[i].geometry.n == n);
  }

  const KnobConfig config{{"conv1", "perf-row-2-1"}, {"shortcut", "samp-2-0"}};
  REQUIRE((*split)->configure(config).ok());
  REQUIRE((*whole)->configure(config).ok());
  CHECK((*split)->configuration() == config);
  Tensor x = random_tensor({n, 4, 6, 6}, rng);
  (*split)->track_input_ranges(true);
  (*whole)->track_input_ranges(true);
  REQUIRE((*split)->run(std::span<const Tensor>(&x, 1)).ok());
  REQUIRE((*whole)->run(std::span<const Tensor>(&x, 1)).ok());
  check_same((*split)->output(0), (*whole)->output(0));
  REQUIRE((*split)->input_ranges().size() == 2);
  REQUIRE((*whole)->input_ranges().size() == 2);
  for (const auto& [node, r] : (*whole)->input_ranges()) {
    CAPTURE(node);
    CHECK((*split)->input_ranges().at(node).min == r.min);
    CHECK((*split)->input_ranges().at(node).max == r.max);
  }
  (*split)->track_input_ranges(false);

  // A bad configuration changes nothing, in any worker.
  Status bad = (*split)->configure({{"conv1", "perf-row-9-0"}});
  CHECK(!bad.ok());
  CHECK((*split)->configuration() == config);
  REQUIRE((*split)->run(std::span<const Tensor>(&x, 1)).ok());
  check_same((*split)->output(0), (*whole)->output(0));
  for (const auto& [node, backend_name] : (*split)->node_backends()) CHECK(backend_name == "reference");
}

TEST_CASE("batch split: graphs that mix samples run as one piece, with correct results") {
  auto backend = make_reference_backend({});
  std::mt19937 rng(13);
  struct Variant {
    const char* what;
    Graph graph;
  };
  std::vector<Variant> variants;
  {
    Node n = make_node("Softmax", {}, {}, "softmax");
    n.attrs["axis"] = int_attribute(0);  // opset 11: the whole tensor is one row
    variants.push_back({"Softmax over everything (opset 11, axis 0)", mixing_graph(n, {}, 11)});
  }
  {
    Node n = make_node("ReduceMean", {}, {}, "mean");
    n.attrs["axes"] = ints_attr({0});
    variants.push_back({"ReduceMean over the batch", mixing_graph(n)});
  }
  {
    Node n = make_node("ReduceSum", {"axes"}, {}, "sum");
    variants.push_back({"ReduceSum over the batch (axes input)", mixing_graph(n, {{"axes", int64_tensor({0, 2})}})});
  }
  {
    Node n = make_node("LogSoftmax", {}, {}, "log_softmax");
    n.attrs["axis"] = int_attribute(0);
    variants.push_back({"LogSoftmax over everything (opset 11, axis 0)", mixing_graph(n, {}, 11)});
  }
  {
    Node n = make_node("Transpose", {}, {}, "transpose");
    n.attrs["perm"] = ints_attr({1, 0, 2, 3});
    variants.push_back({"Transpose moving the batch", mixing_graph(n)});
  }
  {
    Node n = make_node("Reshape", {"target"}, {}, "reshape");
    // The literal 4 equals the batch used below, but a chunk is smaller.
    variants.push_back({"Reshape to a literal batch length", mixing_graph(n, {{"target", int64_tensor({4, -1})}})});
  }
  {
    Node n = make_node("Flatten", {}, {}, "flatten");
    n.attrs["axis"] = int_attribute(0);
    variants.push_back({"Flatten from axis 0", mixing_graph(n)});
  }
  {
    Node n = make_node("Concat", {"r"}, {}, "concat");
    n.attrs["axis"] = int_attribute(0);
    variants.push_back({"Concat along the batch", mixing_graph(n)});
  }
  {
    // Shape -> Cast -> Mul: the batch length flows into the data.
    Graph g = mixing_graph(make_node("Identity", {}, {}, "identity"));
    g.nodes.back().outputs = {"id"};
    g.nodes.push_back(make_node("Shape", {"id"}, {"shape"}, "shape"));
    g.nodes.push_back(make_node("Cast", {"shape"}, {"shape_f"}, "cast"));
    g.nodes.back().attrs["to"] = int_attribute(static_cast<int64_t>(DType::f32));
    g.initializers["zero"] = int64_tensor({0});
    g.nodes.push_back(make_node("Gather", {"shape_f", "zero"}, {"batch_f"}, "gather"));
    g.nodes.push_back(make_node("Mul", {"id", "batch_f"}, {"out"}, "scale"));
    variants.push_back({"the batch length used as a value", g});
  }
  const int64_t n = 4;
  for (auto& v : variants) {
    const std::string what = v.what;
    CAPTURE(what);
    Tensor x = random_tensor({n, 4, 6, 6}, rng);
    SessionOptions two;
    two.threads = 2;
    auto s = Session::create(v.graph, *backend, {{"x", x.shape()}}, two);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    CHECK((*s)->batch_split().chunk == 0);
    SessionOptions off = two;
    off.batch_split = false;
    auto whole = Session::create(v.graph, *backend, {{"x", x.shape()}}, off);
    REQUIRE(whole.ok());
    REQUIRE((*s)->run(std::span<const Tensor>(&x, 1)).ok());
    REQUIRE((*whole)->run(std::span<const Tensor>(&x, 1)).ok());
    check_same((*s)->output(0), (*whole)->output(0));
  }
}

TEST_CASE("batch split: the reduce family splits when it keeps samples apart") {
  auto backend = make_reference_backend({});
  std::mt19937 rng(17);
  std::vector<std::pair<const char*, Graph>> graphs;
  {
    Node n = make_node("ReduceLogSumExp", {}, {}, "lse");
    n.attrs["axes"] = ints_attr({1, 3});
    graphs.emplace_back("ReduceLogSumExp over axes 1 and 3", mixing_graph(n));
  }
  {
    Node n = make_node("Hardmax", {}, {}, "hardmax");
    n.attrs["axis"] = int_attribute(1);
    graphs.emplace_back("Hardmax from axis 1 on (opset 11)", mixing_graph(n, {}, 11));
  }
  graphs.emplace_back("LRN", [] {
    Node n = make_node("LRN", {}, {}, "lrn");
    n.attrs["size"] = int_attribute(3);
    return mixing_graph(n);
  }());
  const int64_t n = 4;
  for (auto& [what, graph] : graphs) {
    CAPTURE(what);
    Tensor x = random_tensor({n, 4, 6, 6}, rng);
    SessionOptions two;
    two.threads = 2;
    auto s = Session::create(graph, *backend, {{"x", x.shape()}}, two);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    CHECK((*s)->batch_split().chunk > 0);
    SessionOptions off = two;
    off.batch_split = false;
    auto whole = Session::create(graph, *backend, {{"x", x.shape()}}, off);
    REQUIRE(whole.ok());
    REQUIRE((*s)->run(std::span<const Tensor>(&x, 1)).ok());
    REQUIRE((*whole)->run(std::span<const Tensor>(&x, 1)).ok());
    check_same((*s)->output(0), (*whole)->output(0));
  }
}
