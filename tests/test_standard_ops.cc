// Knobs lowered to standard ONNX ops (knobs/standard_ops.h). Sampling and
// the half knobs lower to ops caliprox runs itself (Conv, Cast to float16),
// so the lowered graph run exact on the reference backend must give the
// bits the knob gives there; bf16 lowers to a Cast to bfloat16 caliprox has
// no kernel for, and int8 to QuantizeLinear / DequantizeLinear, so their
// graphs are checked by structure and values here and numerically against
// ONNX Runtime in tests/ort_export_test.py.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "backends/backend.h"
#include "engine/session.h"
#include "ir/onnx_export.h"
#include "ir/onnx_import.h"
#include "knobs/fused_conv.h"
#include "knobs/standard_ops.h"
#include "session_fixtures.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace caliprox;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

Graph load_model(const std::string& relative) {
  auto g = load_onnx((fs::path(CALIPROX_SOURCE_ROOT) / relative).string());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  return std::move(g).value();
}

std::vector<std::string> conv_nodes(const Graph& g) {
  std::vector<std::string> convs;
  for (const Node& n : g.nodes)
    if (n.op_type == "Conv") convs.push_back(n.name);
  return convs;
}

// A seeded batch of 2 for the graph's only input.
Tensor seeded_input(const Graph& g, uint32_t seed) {
  Shape shape;
  for (const Dim& d : *g.inputs.at(0).dims) shape.push_back(d.fixed() ? d.value : 2);
  std::mt19937 rng(seed);
  return caliprox::testing::random_tensor(shape, rng, -2.f, 2.f);
}

// Output #0 of `g` on the reference backend under `config`.
Tensor run_reference(const Graph& g, const Tensor& x, const KnobConfig& config = {},
                     const std::map<std::string, ValueRange>& ranges = {}) {
  auto backend = create_backend("reference", {1});
  REQUIRE(backend.ok());
  auto session = Session::create(g, **backend, {{g.inputs.at(0).name, x.shape()}});
  REQUIRE_MESSAGE(session.ok(), session.status().message());
  (*session)->set_calibrated_ranges(ranges);
  Status st = (*session)->configure(config);
  REQUIRE_MESSAGE(st.ok(), st.message());
  REQUIRE((*session)->run(std::span<const Tensor>(&x, 1)).ok());
  return (*session)->output(0).clone();
}

// The knob on the original graph and the lowered graph run exact: equal
// values (a zeroed weight may turn a -0 sum into +0, hence ==, not memcmp).
void check_lowering_matches(const Graph& g, const KnobConfig& config, const Tensor& x) {
  auto lowered = lower_to_standard_ops(g, config, {});
  REQUIRE_MESSAGE(lowered.ok(), lowered.status().message());
  const Tensor want = run_reference(g, x, config);
  const Tensor got = run_reference(*lowered, x);
  REQUIRE(want.shape() == got.shape());
  int64_t differ = 0;
  double worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float a = want.data<float>()[i], b = got.data<float>()[i];
    if (a != b) ++differ;
    worst = std::max(worst, std::fabs(static_cast<double>(a) - b));
  }
  CAPTURE(worst);
  CHECK(differ == 0);
}

const Node* find(const Graph& g, const std::string& name) { return g.find_node(name); }

}  // namespace

TEST_CASE("standard ops: sampling and half knobs give caliprox's bits on the bundled networks") {
  for (const char* model : {"models/fashion_lenet.onnx", "models/fashion_mobilenet.onnx", "models/fashion_resnet.onnx",
                            "examples/rowfollow/models/heading.onnx", "examples/rowfollow/models/distance.onnx"}) {
    CAPTURE(model);
    const Graph g = load_model(model);
    const auto convs = conv_nodes(g);
    REQUIRE(!convs.empty());
    const Tensor x = seeded_input(g, 11);
    for (const char* knob : {"samp-3-1", "samp-4-3-fp16", "fp16"}) {
      CAPTURE(knob);
      KnobConfig all;
      for (const auto& c : convs) all[c] = knob;
      check_lowering_matches(g, all, x);
    }
    // One layer at a time: the half rounding falls where that layer's fusion puts it.
    for (const auto& c : convs) {
      CAPTURE(c);
      check_lowering_matches(g, {{c, "fp16"}}, x);
    }
  }
}

TEST_CASE("standard ops: a BatchNorm is folded and a residual rounded as the executor fuses them") {
  std::mt19937 rng(5);
  const Graph g = caliprox::testing::residual_graph(rng);
  const Tensor x = caliprox::testing::random_tensor({2, 4, 6, 6}, rng, -2.f, 2.f);
  // conv1 comes first: it takes the BatchNorm, the Add (shortcut as residual) and the Relu.
  auto plan = plan_fused_convs(g, {"conv1", "shortcut"});
  REQUIRE_MESSAGE(plan.ok(), plan.status().message());
  const FusedConv& conv1 = plan->at("conv1");
  CHECK(conv1.folded == std::vector<std::string>{"bn1"});
  CHECK(conv1.conv_output == "bn1");
  CHECK(conv1.residual_add == "add");
  CHECK(conv1.residual == "sc");
  CHECK(conv1.output == "act");
  CHECK(conv1.output_producer == "relu");
  const FusedConv& shortcut = plan->at("shortcut");
  CHECK(shortcut.folded.empty());
  CHECK(shortcut.residual.empty());
  CHECK(shortcut.output == "sc");
  CHECK(shortcut.output_producer == "shortcut");

  for (const KnobConfig& config :
       {KnobConfig{{"conv1", "fp16"}}, KnobConfig{{"shortcut", "fp16"}},
        KnobConfig{{"conv1", "samp-2-1-fp16"}, {"shortcut", "fp16"}}, KnobConfig{{"conv1", "samp-2-0"}}}) {
    CAPTURE(config.begin()->first);
    check_lowering_matches(g, config, x);
  }
  auto lowered = lower_to_standard_ops(g, {{"conv1", "fp16"}}, {});
  REQUIRE(lowered.ok());
  CHECK(find(*lowered, "bn1") == nullptr);
  CHECK(find(*lowered, "conv1")->outputs == std::vector<std::string>{"bn1"});
  CHECK(find(*lowered, "add")->inputs == std::vector<std::string>{"bn1", "conv1/residual_rounded"});
  CHECK(find(*lowered, "relu")->outputs == std::vector<std::string>{"conv1/output_unrounded"});
  CHECK(find(*lowered, "conv1/output_to_float")->outputs == std::vector<std::string>{"act"});
  CHECK(lowered->initializers.count("gamma") == 0);  // folded away with bn1
  CHECK(lowered->initializers.count("w1") == 0);
}

TEST_CASE("standard ops: int8 as QuantizeLinear / DequantizeLinear with caliprox's scales") {
  const Graph g = load_model("models/fashion_lenet.onnx");
  const auto convs = conv_nodes(g);
  REQUIRE(convs.size() == 2);
  const std::map<std::string, ValueRange> ranges = {{convs[0], {-1.5f, 2.5f}}, {convs[1], {0.f, 6.f}}};
  KnobConfig config = {{convs[0], "int8"}, {convs[1], "int8"}};
  auto lowered = lower_to_standard_ops(g, config, ranges);
  REQUIRE_MESSAGE(lowered.ok(), lowered.status().message());
  for (size_t k = 0; k < 2; ++k) {
    const std::string& c = convs[k];
    CAPTURE(c);
    const Node* q = find(*lowered, c + "/quantize");
    const Node* dq = find(*lowered, c + "/dequantize");
    const Node* wdq = find(*lowered, c + "/weight_dequantize");
    REQUIRE((q && dq && wdq));
    CHECK(q->op_type == "QuantizeLinear");
    CHECK(dq->inputs[0] == c + "/input_codes");
    CHECK(wdq->attrs.at("axis").i == 0);
    CHECK(find(*lowered, c)->inputs[0] == c + "/input_dequantized");
    CHECK(find(*lowered, c)->inputs[1] == c + "/weight_dequantized");
    const Int8Input want = int8_input_quantisation(ranges.at(c));
    const Tensor& scale = lowered->initializers.at(c + "/input_scale");
    CHECK(scale.data<float>()[0] == want.scale);
    CHECK(lowered->initializers.at(c + "/input_zero_point").dtype() == (k == 0 ? DType::i8 : DType::u8));
    // Codes and per-channel scales: the reference kernel's.
    const Tensor& w = g.initializers.at(g.find_node(c)->inputs[1]);
    const Tensor& codes = lowered->initializers.at(c + "/weight_codes");
    const Tensor& scales = lowered->initializers.at(c + "/weight_scale");
    REQUIRE(codes.shape() == w.shape());
    const int64_t filter = w.numel() / w.dim(0);
    for (int64_t oc = 0; oc < w.dim(0); ++oc) {
      const float sw = int8_weight_scale(w.data<float>() + oc * filter, filter);
      CHECK(scales.data<float>()[oc] == sw);
      for (int64_t i = 0; i < filter; ++i)
        REQUIRE(codes.data<int8_t>()[oc * filter + i] == int8_code(w.data<float>()[oc * filter + i], sw, -127, 127));
    }
  }
  // The lowered graph is a valid file: written and read back unchanged.
  caliprox::testing::ScratchDir dir("standard_ops");
  const std::string path = (dir.path / "int8.onnx").string();
  REQUIRE(save_onnx(*lowered, path).ok());
  LoadOptions lenient;
  lenient.require_supported_ops = false;
  auto back = load_onnx(path, lenient);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->nodes.size() == lowered->nodes.size());
}

TEST_CASE("standard ops: int8 below opset 13 stores dequantised weights; opset 9 is refused") {
  Graph g = load_model("models/fashion_lenet.onnx");
  const std::string c = conv_nodes(g)[0];
  const std::map<std::string, ValueRange> ranges = {{c, {0.f, 1.f}}};
  g.opset = 11;
  for (Node& n : g.nodes) n.opset = 11;
  auto lowered = lower_to_standard_ops(g, {{c, "int8"}}, ranges);
  REQUIRE_MESSAGE(lowered.ok(), lowered.status().message());
  CHECK(find(*lowered, c + "/weight_dequantize") == nullptr);
  CHECK(find(*lowered, c + "/quantize")->opset == 11);
  const Tensor& w = g.initializers.at(g.find_node(c)->inputs[1]);
  const Tensor& values = lowered->initializers.at(c + "/weight");
  const int64_t filter = w.numel() / w.dim(0);
  for (int64_t oc = 0; oc < w.dim(0); ++oc) {
    const float sw = int8_weight_scale(w.data<float>() + oc * filter, filter);
    for (int64_t i = 0; i < filter; ++i)
      REQUIRE(values.data<float>()[oc * filter + i] ==
              static_cast<float>(int8_code(w.data<float>()[oc * filter + i], sw, -127, 127)) * sw);
  }
  g.opset = 9;
  auto refused = lower_to_standard_ops(g, {{c, "int8"}}, ranges);
  REQUIRE(!refused.ok());
  CHECK(refused.status().code() == Errc::unsupported);
  CHECK(contains(refused.status().message(), c));
  CHECK(contains(refused.status().message(), "opset 9"));
}

TEST_CASE("standard ops: bf16 rounds the input by Casts and the weights to bfloat16") {
  const Graph g = load_model("models/fashion_resnet.onnx");
  const std::string c = conv_nodes(g)[1];
  auto lowered = lower_to_standard_ops(g, {{c, "bf16"}}, {});
  REQUIRE_MESSAGE(lowered.ok(), lowered.status().message());
  const Node* to_bf16 = find(*lowered, c + "/input_to_bfloat16");
  REQUIRE(to_bf16 != nullptr);
  CHECK(to_bf16->attrs.at("to").i == 16);
  CHECK(find(*lowered, c)->inputs[0] == c + "/input_rounded");
  const Tensor& w = lowered->initializers.at(c + "/weight");
  auto plan = plan_fused_convs(g, {c});
  REQUIRE(plan.ok());
  const Tensor& original = plan->at(c).weight;  // BatchNorm folded: what the knob rounds
  CHECK(!plan->at(c).folded.empty());
  for (int64_t i = 0; i < w.numel(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, w.data<float>() + i, 4);
    REQUIRE((bits & 0xffffu) == 0);
    REQUIRE(w.data<float>()[i] == round_to_bf16(original.data<float>()[i]));
  }
  CHECK(find(*lowered, c + "/output_to_float") == nullptr);  // bf16 output stays float32
}

TEST_CASE("standard ops: what has no standard form is refused, naming the node and knob") {
  const Graph g = load_model("models/fashion_lenet.onnx");
  const std::string c = conv_nodes(g)[0];
  const auto refused = [&](const KnobConfig& config, const std::map<std::string, ValueRange>& ranges = {}) {
    auto r = lower_to_standard_ops(g, config, ranges);
    REQUIRE(!r.ok());
    return r.status();
  };
  Status perf = refused({{c, "perf-row-2-0-fp16"}});
  CHECK(perf.code() == Errc::invalid_input);
  CHECK(contains(perf.message(), c));
  CHECK(contains(perf.message(), "perf-row-2-0-fp16"));
  CHECK(contains(perf.message(), "no standard ONNX op"));
  CHECK(contains(refused({{c, "fp1"}}).message(), "did you mean 'fp16'"));
  CHECK(contains(refused({{"nope", "fp16"}}).message(), "'nope'"));
  const std::string relu = g.nodes.at(1).op_type == "Relu" ? g.nodes[1].name : "";
  REQUIRE(!relu.empty());
  CHECK(contains(refused({{relu, "fp16"}}).message(), "Conv"));
  Status no_range = refused({{c, "int8"}});
  CHECK(no_range.code() == Errc::invalid_input);
  CHECK(contains(no_range.message(), "calibrated range"));
  CHECK(contains(refused({{c, "int8"}}, {{c, {2.f, 1.f}}}).message(), "min <= max"));
  // fp32 changes nothing.
  auto same = lower_to_standard_ops(g, {{c, "fp32"}}, {});
  REQUIRE(same.ok());
  CHECK(same->nodes.size() == g.nodes.size());
}
