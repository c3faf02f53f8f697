// The executor's low-precision edges and in-place residuals on the oneDNN
// backend: an int8 (bf16) producer whose only reader is int8 (bf16) writes
// that reader's codes (bfloat16 values), a value read by several int8 (bf16)
// layers is converted once, a fused
// residual that dies at its Conv lends its buffer to the output (kernels that
// cannot run in place get a copy). Each plan is checked for what it chose
// and for results: against the same session with code edges off (the two
// differ only where a float lands within rounding of a code boundary), and
// against the reference backend, the oracle.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backends/onednn/knob_conv.h"
#include "cpu_needs.h"
#include "engine/session.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

Node conv3x3(std::string in, std::string w, std::string b, std::string out, std::string name) {
  Node n = make_node("Conv", {std::move(in), std::move(w), std::move(b)}, {std::move(out)}, std::move(name));
  n.attrs["pads"] = ints_attr({1, 1, 1, 1});
  n.attrs["kernel_shape"] = ints_attr({3, 3});
  return n;
}

// x[N,8,10,10] -> A(3x3)+Relu -> a -> B(3x3)+Relu -> b
//   b -> C(3x3) ; Relu(C + b) -> c          (C reads b twice: as X and as the residual)
//   b -> D(1x1) ; c + D -> e -> GlobalAveragePool -> out   (the Add fuses into D: c dies there)
Graph chain_graph(std::mt19937& rng) {
  Graph g;
  g.name = "chain";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{8, ""}, Dim{10, ""}, Dim{10, ""}}));
  g.initializers["wa"] = random_tensor({16, 8, 3, 3}, rng, -0.3f, 0.3f);
  g.initializers["wb"] = random_tensor({16, 16, 3, 3}, rng, -0.2f, 0.2f);
  g.initializers["wc"] = random_tensor({16, 16, 3, 3}, rng, -0.2f, 0.2f);
  g.initializers["wd"] = random_tensor({16, 16, 1, 1}, rng, -0.5f, 0.5f);
  for (const char* b : {"ba", "bb", "bc", "bd"}) g.initializers[b] = random_tensor({16}, rng, -0.1f, 0.1f);
  g.nodes.push_back(conv3x3("x", "wa", "ba", "a0", "A"));
  g.nodes.push_back(make_node("Relu", {"a0"}, {"a"}, "relu_a"));
  g.nodes.push_back(conv3x3("a", "wb", "bb", "b0", "B"));
  g.nodes.push_back(make_node("Relu", {"b0"}, {"b"}, "relu_b"));
  g.nodes.push_back(conv3x3("b", "wc", "bc", "c0", "C"));
  g.nodes.push_back(make_node("Add", {"c0", "b"}, {"c1"}, "add_c"));
  g.nodes.push_back(make_node("Relu", {"c1"}, {"c"}, "relu_c"));
  g.nodes.push_back(make_node("Conv", {"b", "wd", "bd"}, {"d"}, "D"));
  g.nodes.push_back(make_node("Add", {"c", "d"}, {"e"}, "add_e"));
  g.nodes.push_back(make_node("GlobalAveragePool", {"e"}, {"out"}, "gap"));
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}

struct Fixture {
  std::mt19937 rng{2026};
  Graph graph = chain_graph(rng);
  Tensor x = random_tensor({4, 8, 10, 10}, rng, -1.f, 1.f);
  std::unique_ptr<Backend> onednn = make_onednn_backend({});
  std::unique_ptr<Backend> reference = make_reference_backend({});
  std::map<std::string, ValueRange> ranges;

  Fixture() {
    auto s = make(*reference, true);
    s->track_input_ranges(true);
    run(*s);
    ranges = s->input_ranges();
  }

  std::unique_ptr<Session> make(Backend& b, bool codes) {
    SessionOptions opt;
    opt.lowp_edges = codes;
    auto s = Session::create(graph, b, {{"x", x.shape()}}, opt);
    REQUIRE(s.ok());
    return std::move(s).value();
  }

  std::vector<float> run(Session& s) {
    REQUIRE(s.run(std::span<const Tensor>(&x, 1)).ok());
    auto v = s.output(0).span<float>();
    return {v.begin(), v.end()};
  }

  // A session with the calibrated ranges, configured.
  std::unique_ptr<Session> configured(Backend& b, bool codes, const KnobConfig& config) {
    auto s = make(b, codes);
    s->set_calibrated_ranges(ranges);
    REQUIRE(s->configure(config).ok());
    return s;
  }

  std::vector<float> run_config(Backend& b, bool codes, const KnobConfig& config) {
    return run(*configured(b, codes, config));
  }
};

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float f : v) m = std::max(m, std::fabs(f));
  return m;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

const KnobConfig all_int8{{"A", "int8"}, {"B", "int8"}, {"C", "int8"}, {"D", "int8"}};

}  // namespace

#define CP_NEEDS_NATIVE(kind, ext)                                                                         \
  CP_NEEDS(onednn::lowp_native(KnobKind::kind),                                                          \
           #kind " is emulated on this CPU (no " ext ", or not x86): its kernels compute on floats, so no codes travel")

TEST_CASE("int8 codes: the producer writes codes for its only int8 reader; a shared value is quantised once" *
          CP_NEEDS_NATIVE(int8, "AVX512-VNNI")) {
  Fixture f;
  auto s = f.configured(*f.onednn, true, all_int8);
  const auto& edges = s->codes_edges();
  REQUIRE(edges.size() == 2);
  const CodesEdge* a = nullptr;
  const CodesEdge* b = nullptr;
  for (const auto& e : edges) (e.readers.front() == "B" ? a : b) = &e;
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  // a: read by B only, written by A as B's codes (Relu output: u8).
  CHECK(a->producer_writes);
  CHECK(a->written_by == "A");
  CHECK(a->codes.type == DType::u8);
  CHECK(a->codes.scale == doctest::Approx(f.ranges.at("B").max / 255.0f));
  // b: C reads it as X and as its (float) residual, D as X: C quantises once for both.
  CHECK_FALSE(b->producer_writes);
  CHECK(b->written_by == "C");
  CHECK(b->readers == std::vector<std::string>{"C", "D"});

  // Off, or with no int8 reader, there are no edges.
  auto off = f.configured(*f.onednn, false, all_int8);
  CHECK(off->codes_edges().empty());
  REQUIRE(s->configure({{"A", "int8"}}).ok());
  CHECK(s->codes_edges().empty());
  // A and B int8: only the a edge. D alone: the only int8 reader of b, next
  // to float ones, quantises it itself (no edge, as with edges off).
  REQUIRE(s->configure({{"A", "int8"}, {"B", "int8"}}).ok());
  REQUIRE(s->codes_edges().size() == 1);
  CHECK(s->codes_edges()[0].producer_writes);
  REQUIRE(s->configure({{"D", "int8"}}).ok());
  CHECK(s->codes_edges().empty());
  // C and D int8 but B exact: b is quantised once, by C, for both.
  REQUIRE(s->configure({{"C", "int8"}, {"D", "int8"}}).ok());
  REQUIRE(s->codes_edges().size() == 1);
  CHECK(s->codes_edges()[0].written_by == "C");
}

// Watches one node's outputs without changing them.
class Watch final : public NodeObserver {
 public:
  explicit Watch(std::string node) : node_(std::move(node)) {}
  ObserveWhat wants(const std::string& node, const std::string&) const override { return {false, node == node_}; }
  Status after(const NodeEvent&, std::span<Tensor* const> outputs) override {
    dtype = outputs[0]->dtype();
    return {};
  }
  DType dtype = DType::undefined;

 private:
  std::string node_;
};

TEST_CASE("int8 codes: observed nodes keep float edges; tracking ranges keeps them all float" *
          CP_NEEDS_NATIVE(int8, "AVX512-VNNI")) {
  Fixture f;
  auto s = f.configured(*f.onednn, true, all_int8);
  const auto with_edges = f.run(*s);
  REQUIRE(s->codes_edges().size() == 2);
  // A writes B's codes; watching A's output keeps it float, and then B
  // quantises it itself (its only reader): one edge left, b's.
  Watch watch("A");
  s->add_observer(watch);
  REQUIRE(s->codes_edges().size() == 1);
  CHECK(s->codes_edges()[0].written_by == "C");
  const auto watched = f.run(*s);
  CHECK(watch.dtype == DType::f32);
  CHECK(max_diff(watched, with_edges) <= 0.05f * max_abs(with_edges));
  s->remove_observer(watch);
  CHECK(s->codes_edges().size() == 2);
  s->track_input_ranges(true);
  CHECK(s->codes_edges().empty());
  s->track_input_ranges(false);
  CHECK(s->codes_edges().size() == 2);
}

TEST_CASE("int8 codes: results match the session without code edges and the reference backend" *
          CP_NEEDS_NATIVE(int8, "AVX512-VNNI")) {
  Fixture f;
  const auto with = f.run_config(*f.onednn, true, all_int8);
  const auto without = f.run_config(*f.onednn, false, all_int8);
  const auto oracle = f.run_config(*f.reference, true, all_int8);
  const auto exact = f.run_config(*f.reference, true, {});
  const float scale = max_abs(exact);
  REQUIRE(scale > 0.1f);
  // Code edges change where a float is rounded to a code only in the last
  // bit (x * (1/s) in the producer's conversion against the reorder's), so
  // a code may move by one where x lies on a rounding boundary: per element
  // that moves an output by at most a few thousandths of its scale here.
  CHECK(max_diff(with, without) <= 5e-3f * scale);
  // The oracle quantises every layer's input itself; each kernel is tested
  // against it layer by layer (test_knob_onednn.cc), this is the chain.
  CHECK(max_diff(with, oracle) <= 5e-3f * scale);
  // And int8 is an approximation: close to exact, not equal.
  CHECK(max_diff(with, exact) > 0);
  CHECK(max_diff(with, exact) <= 0.05f * scale);

  // Switching back and forth re-plans the edges and reproduces both results.
  auto s = f.make(*f.onednn, true);
  s->set_calibrated_ranges(f.ranges);
  REQUIRE(s->configure(all_int8).ok());
  const auto first = f.run(*s);
  REQUIRE(s->configure({}).ok());
  const auto plain = f.run(*s);
  REQUIRE(s->configure(all_int8).ok());
  CHECK(f.run(*s) == first);
  CHECK(max_diff(plain, exact) <= 1e-4f * scale);
  // Tracking ranges turns the edges off (ranges are taken on floats) and
  // every kernel back to what the configuration chose: A must stop writing
  // codes into what is then a float tensor.
  REQUIRE(s->configure(all_int8).ok());
  s->track_input_ranges(true);
  CHECK(s->codes_edges().empty());
  CHECK(f.run(*s) == without);
  s->track_input_ranges(false);
  CHECK(s->codes_edges().size() == 2);
  CHECK(f.run(*s) == first);
  // C read codes quantised for it and D; alone it quantises its input into
  // its own buffer again (which must have survived being re-pointed).
  const KnobConfig c_only{{"C", "int8"}};
  REQUIRE(s->configure(c_only).ok());
  CHECK(f.run(*s) == f.run_config(*f.onednn, true, c_only));
}

TEST_CASE("int8 and bf16 chains match the reference backend on every CPU, natively or emulated") {
  Fixture f;
  const float scale = max_abs(f.run_config(*f.reference, true, {}));
  for (const char* knob : {"int8", "bf16"}) {
    const KnobConfig all{{"A", knob}, {"B", knob}, {"C", knob}, {"D", knob}};
    INFO("knob " << knob << ": " << knob_run_name(f.onednn->knob_support(find_knob(knob)->kind).run));
    // The bounds of the two cases above: a code (a bf16 ulp) apart where a
    // float lands on a rounding boundary.
    CHECK(max_diff(f.run_config(*f.onednn, true, all), f.run_config(*f.reference, true, all)) <= 5e-3f * scale);
  }
}

TEST_CASE("bf16 edges: bfloat16 activations between bf16 layers, as if each layer rounded its own input" *
          CP_NEEDS_NATIVE(bf16, "AVX512-BF16")) {
  Fixture f;
  const KnobConfig all_bf16{{"A", "bf16"}, {"B", "bf16"}, {"C", "bf16"}, {"D", "bf16"}};
  auto s = f.make(*f.onednn, true);
  s->set_calibrated_ranges(f.ranges);
  REQUIRE(s->configure(all_bf16).ok());
  const auto& edges = s->codes_edges();
  REQUIRE(edges.size() == 2);
  for (const auto& e : edges) {
    CHECK(e.codes.type == DType::bf16);
    CHECK(e.codes.scale == 1.0f);
    CHECK(e.producer_writes == (e.written_by == "A"));
  }
  const auto with = f.run(*s);
  const auto without = f.run_config(*f.onednn, false, all_bf16);
  const auto oracle = f.run_config(*f.reference, true, all_bf16);
  const float scale = max_abs(f.run_config(*f.reference, true, {}));
  // Rounding to bf16 in the producer's store or in the reader's reorder is
  // the same rounding (nearest even) of the same float, up to the order the
  // two convolutions sum in: a bf16 ulp (2^-8 relative) at most, rarely.
  CHECK(max_diff(with, without) <= 2e-3f * scale);
  CHECK(max_diff(with, oracle) <= 2e-3f * scale);

  // int8 and bf16 do not mix on an edge: A (int8) cannot write B's bf16
  // input, so B, its only reader, rounds it itself.
  REQUIRE(s->configure({{"A", "int8"}, {"B", "bf16"}}).ok());
  CHECK(s->codes_edges().empty());
}

TEST_CASE("in-place residual: a residual dying at its Conv lends its buffer, copied for kernels that need it") {
  Fixture f;
  const auto exact = f.run_config(*f.reference, true, {});
  const float scale = max_abs(exact);
  // Exact oneDNN convolutions add the residual in place (sum post-op).
  CHECK(max_diff(f.run_config(*f.onednn, true, {}), exact) <= 1e-4f * scale);
  // A perforated D (a kernel that writes its output before reading the
  // residual) gets a copy of the residual: same result as the reference.
  const KnobConfig perforated{{"D", "perf-row-2-0"}, {"C", "samp-2-0"}};
  CHECK(max_diff(f.run_config(*f.onednn, true, perforated), f.run_config(*f.reference, true, perforated)) <=
        1e-4f * scale);
  // int8 D in place, after a perforated C.
  const KnobConfig mixed{{"C", "perf-col-3-1"}, {"D", "int8"}};
  CHECK(max_diff(f.run_config(*f.onednn, true, mixed), f.run_config(*f.reference, true, mixed)) <= 5e-3f * scale);
}
