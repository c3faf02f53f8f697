// Reshape knobs (prune-*, lowrank-*) as knobs: the catalogue's combined
// names, the evaluator's split of a configuration into rewrites and kernel
// knobs, the FLOPs each rewrite saves (checked against the rewritten graph's
// own count), the search space's two entries per layer, the cost models,
// and the evaluator running a reshaped configuration exactly as a session
// built by hand on the same rewritten graph.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backends/backend.h"
#include "engine/session.h"
#include "eval/evaluator.h"
#include "eval/prune_repair.h"
#include "eval/reshape.h"
#include "experiment/experiment.h"
#include "ir/onnx_import.h"
#include "knobs/lowrank.h"
#include "knobs/prune.h"
#include "tune/predict.h"
#include "tune/search.h"

using namespace caliprox;
namespace fs = std::filesystem;

namespace {

Graph model(const char* name) {
  auto g = load_onnx((fs::path(CALIPROX_SOURCE_ROOT) / "models" / name).string());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  return std::move(g).value();
}

const char* const kStem = "/stem/stem.0/Conv";
const char* const kBlock0Conv2 = "/blocks/blocks.0/conv2/Conv";  // in the stem's residual group
const char* const kBlock1Conv1 = "/blocks/blocks.1/conv1/Conv";

// The network's FLOPs at batch `n`: its executed 2-D convolutions (the
// session's sites) and its Gemms with stored weights.
double network_flops(const Graph& g, int64_t n) {
  auto backend = make_backend("reference", 1);
  REQUIRE(backend.ok());
  auto s = Session::create(g, **backend, {{g.inputs[0].name, {n, 1, 28, 28}}}, {});
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  double flops = 0;
  for (const KnobSite& site : (*s)->knob_sites()) flops += site.flops;
  for (const Node& node : g.nodes) {
    if (node.op_type != "Gemm") continue;
    const Tensor& w = g.initializers.at(node.inputs[1]);
    flops += 2.0 * static_cast<double>(n * w.dim(0) * w.dim(1));
  }
  return flops;
}

std::vector<KnobSite> sites_of(const Graph& g, int64_t n) {
  auto backend = make_backend("reference", 1);
  REQUIRE(backend.ok());
  auto s = Session::create(g, **backend, {{g.inputs[0].name, {n, 1, 28, 28}}}, {});
  REQUIRE(s.ok());
  std::vector<KnobSite> sites = (*s)->knob_sites();
  add_reshape_sites(g, n, sites);
  return sites;
}

}  // namespace

TEST_CASE("reshape knobs: combined names parse, print and refuse the wrong forms") {
  auto both = parse_knob_choice("prune-0.5+int8");
  REQUIRE(both.ok());
  CHECK(both->reshape->kind == KnobKind::prune);
  CHECK(both->reshape->fraction == 0.5);
  CHECK(both->kernel->name == "int8");
  CHECK(knob_choice_name(*both) == "prune-0.5+int8");
  auto alone = parse_knob_choice("lowrank-0.25");
  REQUIRE(alone.ok());
  CHECK(alone->kernel->kind == KnobKind::exact);
  CHECK(knob_choice_name(*alone) == "lowrank-0.25");
  CHECK(knob_choice_name(*parse_knob_choice("perf-row-2-0")) == "perf-row-2-0");
  for (const char* bad : {"int8+prune-0.5", "prune-0.5+lowrank-0.5", "prune-0.5+fp32", "int8+fp16"})
    CHECK(parse_knob_choice(bad).status().message().find("a combined knob is a reshape knob") != std::string::npos);
  CHECK(parse_knob_choice("prune-0.3").status().message().find("did you mean 'prune-0.5'") != std::string::npos);
  auto config = parse_knob_config(R"({"knobs": {"a": "prune-0.25+samp-2-0", "b": 121}})", "c.json");
  REQUIRE(config.ok());
  CHECK(config->at("a") == "prune-0.25+samp-2-0");
  auto bad = parse_knob_config(R"({"knobs": {"a": "int8+prune-0.5"}})", "c.json");
  CHECK(bad.status().message().find("c.json: knobs.a") != std::string::npos);
  // Sessions run kernel knobs only.
  const Graph g = model("fashion_lenet.onnx");
  auto backend = make_backend("reference", 1);
  REQUIRE(backend.ok());
  auto s = Session::create(g, **backend, {{"input", {1, 1, 28, 28}}}, {});
  REQUIRE(s.ok());
  CHECK((*s)->configure({{"/conv1/Conv", "prune-0.5"}}).message().find("reshapes the graph") != std::string::npos);
}

TEST_CASE("reshape knobs: a configuration splits into ordered rewrites and kernel knobs") {
  const Graph g = model("fashion_resnet.onnx");
  auto split = split_configuration(g, {{kBlock1Conv1, "prune-0.5+int8"},
                                       {kBlock0Conv2, "prune-0.25"},
                                       {"/fc/Gemm", "lowrank-0.5"},
                                       {kStem, "lowrank-0.5+perf-row-2-0"},
                                       {"/blocks/blocks.2/conv2/Conv", "samp-2-0"}});
  REQUIRE_MESSAGE(split.ok(), split.status().message());
  // Prunes first (the residual group named through its second member runs
  // as its first), then factorisations, each in graph order.
  REQUIRE(split->reshapes.size() == 4);
  CHECK(split->reshapes[0].node == kStem);
  CHECK(split->reshapes[0].knob->name == "prune-0.25");
  CHECK(split->reshapes[1].node == kBlock1Conv1);
  CHECK(split->reshapes[2].node == kStem);
  CHECK(split->reshapes[2].knob->kind == KnobKind::lowrank);
  CHECK(split->reshapes[3].op_type == "Gemm");
  CHECK(split->kernels == KnobConfig{{kBlock1Conv1, "int8"}, {kStem, "perf-row-2-0"},
                                     {"/blocks/blocks.2/conv2/Conv", "samp-2-0"}});
  // One group, one prune: both members agreeing is one rewrite.
  auto same = split_configuration(g, {{kStem, "prune-0.5"}, {kBlock0Conv2, "prune-0.5"}});
  REQUIRE(same.ok());
  CHECK(same->reshapes.size() == 1);
  auto disagree = split_configuration(g, {{kStem, "prune-0.5"}, {kBlock0Conv2, "prune-0.25"}});
  CHECK(disagree.status().code() == Errc::invalid_input);
  CHECK(disagree.status().message().find("belong to one residual group") != std::string::npos);
  CHECK(disagree.status().message().find("prune-0.25") != std::string::npos);
  CHECK(split_configuration(g, {{"/Flatten", "lowrank-0.5"}}).status().message().find("factorises Conv and Gemm") !=
        std::string::npos);
  CHECK(split_configuration(g, {{"nope", "prune-0.5"}}).status().message().find("not a node") != std::string::npos);
  // The last block's conv2 feeds Flatten through an Add with the shortcut:
  // the group reaches... whatever plan_prune says, the error names the node.
  auto gemm_prune = split_configuration(g, {{"/fc/Gemm", "prune-0.5"}});
  CHECK(gemm_prune.status().message().find("/fc/Gemm") != std::string::npos);
}

TEST_CASE("reshape knobs: the FLOPs a rewrite saves are those the rewritten graph lacks") {
  const int64_t n = 4;
  for (const char* name : {"fashion_lenet.onnx", "fashion_resnet.onnx"}) {
    CAPTURE(name);
    const Graph g = model(name);
    const double base = network_flops(g, n);
    size_t checked = 0;
    for (const KnobSite& site : sites_of(g, n))
      for (const Knob* k : site.knobs) {
        if (!reshapes(*k)) continue;
        CAPTURE(site.node);
        CAPTURE(k->name);
        Result<Graph> rewritten = k->kind == KnobKind::prune ? ChannelPrune(site.node, k->fraction).apply(g)
                                  : site.op_type == "Gemm"   ? GemmLowRank(site.node, k->fraction, LowRankBy::cost).apply(g)
                                                             : ConvSpatialSvd(site.node, k->fraction, LowRankBy::cost).apply(g);
        REQUIRE_MESSAGE(rewritten.ok(), rewritten.status().message());
        const double saved = base - network_flops(*rewritten, n);
        CHECK(saved > 0);
        CHECK(site.flops_saved.at(k->name) == doctest::Approx(saved).epsilon(1e-9));
        ++checked;
      }
    CHECK(checked >= 8);
  }
  // A prune is offered on the first member of its group only.
  const auto sites = sites_of(model("fashion_resnet.onnx"), n);
  for (const KnobSite& s : sites)
    if (s.node == kBlock0Conv2)
      for (const Knob* k : s.knobs) CHECK(k->kind != KnobKind::prune);
}

TEST_CASE("reshape knobs: configured FLOPs and weight sizes count the graph a configuration runs") {
  const int64_t n = 4;
  const Graph g = model("fashion_lenet.onnx");
  auto backend = make_backend("reference", 1);
  REQUIRE(backend.ok());
  auto exact = Session::create(g, **backend, {{g.inputs[0].name, {n, 1, 28, 28}}}, {});
  REQUIRE(exact.ok());
  const std::vector<KnobSite>& sites = (*exact)->knob_sites();
  REQUIRE(sites.size() >= 2);
  const KnobSite& conv = sites[1];
  // A kernel knob divides its layer's FLOPs by the knob's nominal speedup there.
  const Knob& perf = *find_knob("perf-row-2-0");
  const double base = network_flops(g, sites, n);
  CHECK(configured_flops(g, sites, {}, n) == doctest::Approx(base));
  CHECK(configured_flops(g, sites, {{conv.node, "perf-row-2-0"}}, n) ==
        doctest::Approx(base - conv.flops * (1 - 1 / layer_nominal_speedup(perf, conv.geometry))));
  // Pruned twice over (a layer's outputs, and so its consumer's inputs):
  // counted on the rewritten graph, the consumer's FLOPs are not subtracted twice.
  Result<Graph> pruned = ChannelPrune(sites[0].node, 0.5).apply(g);
  REQUIRE(pruned.ok());
  Result<Graph> both = ChannelPrune(conv.node, 0.5).apply(*pruned);
  REQUIRE(both.ok());
  auto s2 = Session::create(*both, **backend, {{g.inputs[0].name, {n, 1, 28, 28}}}, {});
  REQUIRE(s2.ok());
  const double twice = configured_flops(*both, (*s2)->knob_sites(), {}, n);
  CHECK(twice > 0);
  CHECK(twice == doctest::Approx(::network_flops(*both, n)));
  // Weights: every initializer's elements; int8 and fp16 weights at 1 and 2 bytes.
  const WeightSize w = weight_size(g, {});
  int64_t params = 0;
  for (const auto& [name, t] : g.initializers) params += t.numel();
  CHECK(w.parameters == params);
  CHECK(w.bytes == 4 * params);
  const Node* node = g.find_node(conv.node);
  REQUIRE(node != nullptr);
  const int64_t wn = g.initializers.at(node->inputs[1]).numel();
  CHECK(weight_size(g, {{conv.node, "int8"}}).bytes == 4 * params - 3 * wn);
  CHECK(weight_size(g, {{conv.node, "fp16"}}).bytes == 4 * params - 2 * wn);
  CHECK(weight_size(g, {{conv.node, "perf-row-2-0"}}).bytes == 4 * params);
  CHECK(weight_size(*both, {}).parameters < params);
}

TEST_CASE("reshape knobs: a layer's shape and kernel entries join into one configuration value") {
  SearchSpace space;
  space.layers = {{"a", {"fp32", "int8", "samp-2-0"}, false},
                  {"a", {"fp32", "prune-0.25", "prune-0.5"}, true},
                  {"b", {"fp32", "lowrank-0.5"}, true}};
  REQUIRE(space.validate().ok());
  const KnobConfig config = space.to_config({1, 2, 1});
  CHECK(config == KnobConfig{{"a", "prune-0.5+int8"}, {"b", "lowrank-0.5"}});
  auto back = space.from_config(config);
  REQUIRE(back.ok());
  CHECK(*back == Candidate{1, 2, 1});
  CHECK(space.to_config({0, 1, 0}) == KnobConfig{{"a", "prune-0.25"}});
  CHECK(space.from_config({{"b", "int8"}}).status().message().find("not among the knobs") != std::string::npos);
  SearchSpace mixed;
  mixed.layers = {{"a", {"fp32", "prune-0.5"}, false}};
  CHECK(mixed.validate().message().find("is a reshape knob, in the layer's kernel knobs") != std::string::npos);
  SearchSpace twice;
  twice.layers = {{"a", {"fp32", "int8"}, false}, {"a", {"fp32", "fp16"}, false}};
  CHECK(twice.validate().message().find("listed twice") != std::string::npos);
}

TEST_CASE("reshape knobs: cost models count a reshape entry as the network's change") {
  SearchSpace space;
  space.layers = {{"a", {"fp32", "int8"}, false}, {"a", {"fp32", "prune-0.5"}, true}};
  ConvGeometry geo;
  geo.n = 1;
  geo.c_in = geo.c_out = 8;
  geo.in_spatial = geo.out_spatial = {4, 4};
  geo.kernel = {3, 3};
  geo.strides = geo.dilations = {1, 1};
  geo.pads_begin = geo.pads_end = {1, 1};
  const double flops = conv_layer_flops(geo);
  auto nominal = nominal_cost_model(space, {geo, geo}, 0.0, {{}, {{"prune-0.5", flops * 0.5}}});
  REQUIRE_MESSAGE(nominal.ok(), nominal.status().message());
  CHECK(nominal->speedup({0, 1}) == doctest::Approx(2.0));
  CHECK(nominal->speedup({1, 0}) == doctest::Approx(4.0));
  CHECK(nominal->speedup({1, 1}) == doctest::Approx(100.0));  // additive, floored at 1 % of the exact cost
  CHECK(!nominal_cost_model(space, {geo, geo}, 0.0).ok());    // no saving known

  ProfileCosts costs;
  costs.baseline_ms = 10;
  costs.rest_ms = 6;
  costs.layer_ms["a"] = {{"fp32", 4.0}, {"int8", 1.0}};
  costs.reshape_ms["a"] = {{"prune-0.5", 7.5}};
  auto measured = measured_cost_model(space, costs, "p.json");
  REQUIRE(measured.ok());
  CHECK(measured->speedup({0, 1}) == doctest::Approx(10.0 / 7.5));
  CHECK(measured->speedup({1, 1}) == doctest::Approx(10.0 / 4.5));
  costs.reshape_ms.clear();
  CHECK(measured_cost_model(space, costs, "p.json").status().message().find("under reshape knob prune-0.5") !=
        std::string::npos);
  // profile.json's reshape section.
  const std::string stat = R"({"median": 7.5, "ci_low": null, "ci_high": null, "coverage": null,
      "method": "order-statistics", "count": 1, "min": 7.5, "max": 7.5, "mad": 0})";
  const std::string text = R"({"fingerprint": "f", "baseline": {"latency_ms": )" + stat +
                           R"(}, "rest_ms": 1, "layers": [], "reshape": {"a": {"prune-0.5": {"latency_ms": )" + stat +
                           "}}}}";
  auto parsed = parse_profile_costs(text, "p.json", "");
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().message());
  CHECK(parsed->reshape_ms.at("a").at("prune-0.5") == 7.5);
}

TEST_CASE("reshape knobs: the evaluator runs a reshaped configuration as a hand-built session on the same graph") {
  std::ifstream in(fs::path(CALIPROX_SOURCE_ROOT) / "configs" / "fashion-lenet.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  const auto at = yaml.find("../models/");
  yaml.replace(at, 10, (fs::path(CALIPROX_SOURCE_ROOT) / "models").string() + "/");
  const fs::path dir = fs::temp_directory_path() / ("caliprox_reshape_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "exp.yaml") << yaml;
  auto exp = load_experiment((dir / "exp.yaml").string());
  REQUIRE_MESSAGE(exp.ok(), exp.status().message());
  auto ev = Evaluator::create(*exp, "reference", 1);
  REQUIRE_MESSAGE(ev.ok(), ev.status().message());
  Evaluator& e = **ev;

  auto sites = e.knob_sites();
  REQUIRE(sites.ok());
  bool fc1_lowrank = false;
  for (const KnobSite& s : **sites)
    if (s.node == "/fc1/Gemm")
      for (const Knob* k : s.knobs) fc1_lowrank = fc1_lowrank || k->kind == KnobKind::lowrank;
  CHECK(fc1_lowrank);

  const KnobConfig config{{"/conv1/Conv", "prune-0.5+samp-2-0"}, {"/fc1/Gemm", "lowrank-0.5"}};
  REQUIRE(e.configure(config).ok());
  CHECK(e.current_graph().initializers.size() != e.graph().initializers.size());
  std::vector<float> got;
  REQUIRE(e.run_range(0, 8, &got).ok());

  // By hand: prune conv1 (repaired on the calibrate split's first 128
  // samples), factorise fc1, then samp-2-0 on conv1 in a session.
  auto backend = make_backend("reference", 1);
  REQUIRE(backend.ok());
  const Graph& g = e.graph();
  auto plan = plan_prune(g, "/conv1/Conv", 0.5);
  REQUIRE(plan.ok());
  auto pruned = ChannelPrune("/conv1/Conv", 0.5).apply(g);
  REQUIRE(pruned.ok());
  auto repaired = repair_pruned(g, *pruned, *plan, e.dataset().sample_batch(0, 128), **backend);
  REQUIRE(repaired.ok());
  auto factorised = GemmLowRank("/fc1/Gemm", 0.5, LowRankBy::cost).apply(*repaired);
  REQUIRE(factorised.ok());
  auto s = Session::create(*factorised, **backend, {{"input", {8, 1, 28, 28}}}, {});
  REQUIRE(s.ok());
  REQUIRE((*s)->configure({{"/conv1/Conv", "samp-2-0"}}).ok());
  Tensor x = e.dataset().sample_batch(0, 8);
  REQUIRE((*s)->run(std::span<const Tensor>(&x, 1)).ok());
  const Tensor& y = (*s)->output(0);
  REQUIRE(static_cast<int64_t>(got.size()) == y.numel());
  for (int64_t i = 0; i < y.numel(); ++i) CHECK(got[static_cast<size_t>(i)] == y.data<float>()[i]);

  // A failing configuration leaves the previous one running.
  CHECK(!e.configure({{"/conv1/Conv", "prune-0.5"}, {"/fc1/Gemm", "perf-row-2-0"}}).ok());
  CHECK(e.configuration() == config);
  std::vector<float> again;
  REQUIRE(e.run_range(0, 8, &again).ok());
  CHECK(again == got);
  // A detached session of the exact network, the evaluator's configuration untouched.
  auto exact = e.detached_session({}, 8);
  REQUIRE(exact.ok());
  REQUIRE((*exact)->run(std::span<const Tensor>(&x, 1)).ok());
  CHECK(e.configuration() == config);
  bool differs = false;
  for (int64_t i = 0; i < y.numel(); ++i) differs = differs || (*exact)->output(0).data<float>()[i] != got[static_cast<size_t>(i)];
  CHECK(differs);
  fs::remove_all(dir);
}
