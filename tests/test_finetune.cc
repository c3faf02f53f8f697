// Fine-tuning through the experiment's hook (eval/finetune.h): the check
// that a hook's model has the structure of the one it got, the plan JSON
// (against schemas/prune-plan.schema.json, each prune computed on the graph
// its step applies to), the evaluator running a replacement graph, and the
// networks' finetune key. The hook itself runs in tests/cli_finetune_test.py.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"
#include "eval/finetune.h"
#include "experiment/experiment.h"
#include "experiment/schema_validator.h"
#include "experiment_sandbox.h"
#include "ir/onnx_import.h"
#include "knobs/prune.h"

using namespace caliprox;
using namespace caliprox::testing;
using json = nlohmann::json;

namespace {

const fs::path kRoot(CALIPROX_SOURCE_ROOT);

Graph lenet() {
  auto g = load_onnx((kRoot / "models/fashion_lenet.onnx").string());
  REQUIRE_MESSAGE(g.ok(), g.status().message());
  return std::move(g).value();
}

// The message of check_same_structure(expected, got), "" when they agree.
std::string difference(const Graph& expected, const Graph& got) {
  Status st = check_same_structure(expected, got, "m.onnx");
  if (st.ok()) return "";
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message().rfind("m.onnx: not the structure of the network it was given: ", 0) == 0);
  return st.message();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// configs/fashion-lenet.yaml with absolute model paths, loaded.
Experiment lenet_experiment(const ExperimentSandbox& box) {
  std::string yaml = read_text(kRoot / "configs/fashion-lenet.yaml");
  for (size_t at = yaml.find("../models/"); at != std::string::npos; at = yaml.find("../models/"))
    yaml.replace(at, 10, (kRoot / "models").string() + "/");
  auto exp = load_experiment(box.write("lenet.yaml", yaml));
  REQUIRE_MESSAGE(exp.ok(), exp.status().message());
  return std::move(exp).value();
}

}  // namespace

TEST_CASE("fine-tune: the structure check takes new weights and names the first difference") {
  if (!fs::exists(kRoot / "models/fashion_lenet.onnx")) {
    MESSAGE("skipped: models/fashion_lenet.onnx is not trained");
    return;
  }
  const Graph g = lenet();
  Graph same = g;
  // Other weight values: the point of fine-tuning.
  Tensor w = g.initializers.at("fc1.weight").clone();
  for (float& v : w.span<float>()) v *= 0.5f;
  same.initializers["fc1.weight"] = w;
  CHECK(difference(g, same).empty());

  Graph other = g;
  other.initializers["fc1.weight"] = Tensor(DType::f32, {255, 800});
  CHECK(
      has(difference(g, other), "initializer 'fc1.weight' is float32 [255, 800], the network's is float32 [256, 800]"));
  other = g;
  Tensor nan = w.clone();
  nan.span<float>()[7] = std::nanf("");
  other.initializers["fc1.weight"] = nan;
  CHECK(has(difference(g, other), "initializer 'fc1.weight' holds nan"));
  other = g;
  other.initializers.erase("fc3.bias");
  CHECK(has(difference(g, other), "initializer 'fc3.bias' is missing"));
  other = g;
  other.initializers["extra"] = Tensor(DType::f32, {1});
  CHECK(has(difference(g, other), "initializer 'extra' is not the network's"));
  // Integer initializers are shapes and indices: their values must stay.
  Graph with_shape = g;
  Tensor shape(DType::i64, {2});
  shape.span<int64_t>()[0] = -1;
  with_shape.initializers["shape"] = shape;
  other = with_shape;
  Tensor shape2 = shape.clone();
  shape2.span<int64_t>()[1] = 3;
  other.initializers["shape"] = shape2;
  CHECK(has(difference(with_shape, other),
            "initializer 'shape' (int64: a shape or an index, not a weight) has other values"));

  other = g;
  other.nodes[1].name = "/relu/Other";
  CHECK(has(difference(g, other), "node #1 is '/relu/Other' (Relu), the network's is"));
  other = g;
  other.nodes.pop_back();
  CHECK(has(difference(g, other), "nodes where the network has"));
  other = g;
  other.nodes[0].attrs["strides"].ints = {2, 2};
  CHECK(has(difference(g, other), "has another value of attribute 'strides'"));
  other = g;
  other.nodes[0].attrs.erase("pads");
  CHECK(has(difference(g, other), "lacks attribute 'pads'"));
  other = g;
  other.nodes[0].inputs[0] = "x";
  CHECK(has(difference(g, other), "reads (x, "));
  other = g;
  (*other.inputs[0].dims)[1].value = 3;
  CHECK(has(difference(g, other), "graph input 'input' has dims [N, 3, 28, 28], the network's has [N, 1, 28, 28]"));
  other = g;
  other.opset = 11;
  CHECK(has(difference(g, other), "default-domain opset 11, the network's is 13"));
  other = g;
  other.outputs[0].name = "probabilities";
  CHECK(has(difference(g, other), "graph output #0 is 'probabilities'"));
}

TEST_CASE("fine-tune: the plan follows its schema, each prune planned on the graph its step applies to") {
  if (!fs::exists(kRoot / "models/fashion_lenet.onnx")) {
    MESSAGE("skipped: models/fashion_lenet.onnx is not trained");
    return;
  }
  ExperimentSandbox box;
  const Experiment exp = lenet_experiment(box);
  REQUIRE(exp.network.finetune.has_value());  // the bundled hook
  auto ev = Evaluator::create(exp, "reference", 1);
  REQUIRE_MESSAGE(ev.ok(), ev.status().message());
  Evaluator& e = **ev;
  // conv2 is where conv1's channels end: the repair of conv1's prune re-fits
  // its weight, so its own prune must rank the re-fitted filters.
  const KnobConfig config{{"/conv2/Conv", "prune-0.25"},
                          {"/conv1/Conv", "prune-0.5+samp-2-0"},
                          {"/fc2/Gemm", "lowrank-0.5"}};
  REQUIRE(e.configure(config).ok());
  auto plan = prune_plan_json(e, "/tmp/m.onnx", "/tmp/o.onnx");
  REQUIRE_MESSAGE(plan.ok(), plan.status().message());

  auto validator =
      SchemaValidator::create(json::parse(std::ifstream(kRoot / "schemas/prune-plan.schema.json"), nullptr, true));
  REQUIRE(validator.ok());
  auto errors = validator->validate(*plan);
  CHECK_MESSAGE(errors.empty(), (errors.empty() ? "" : errors[0].path.dotted() + ": " + errors[0].message));
  CHECK((*plan)["model"] == "/tmp/m.onnx");
  CHECK((*plan)["output"] == "/tmp/o.onnx");
  CHECK((*plan)["network"] == "network");
  CHECK((*plan)["original_model"] == exp.network.model_path);
  CHECK((*plan)["kernel_knobs"] == json{{"/conv1/Conv", "samp-2-0"}});
  const json& steps = (*plan)["steps"];
  REQUIRE(steps.size() == 3);
  CHECK(steps[0]["node"] == "/conv1/Conv");  // prunes in graph order, then factorisations
  CHECK(steps[0]["conv_ends"] == json{"/conv2/Conv"});
  CHECK(steps[0]["keep"].size() == 8);
  CHECK(steps[1]["node"] == "/conv2/Conv");
  CHECK(steps[1]["channels"] == 32);
  CHECK(steps[1]["keep"].size() == 24);
  CHECK(steps[1]["gemm_ends"] == json{"/fc1/Gemm"});
  CHECK(steps[2] == json{{"kind", "lowrank"},
                         {"node", "/fc2/Gemm"},
                         {"op_type", "Gemm"},
                         {"knob", "lowrank-0.5"},
                         {"fraction", 0.5}});

  auto applied = e.applied_reshapes();
  REQUIRE(applied.ok());
  REQUIRE(applied->size() == 3);
  CHECK((*applied)[0].before.get() == &e.graph());
  const Graph& after_first = *(*applied)[1].before;
  const Tensor& w2 = after_first.initializers.at(after_first.find_node("/conv2/Conv")->inputs[1]);
  CHECK(w2.dim(1) == 8);  // conv1's prune applied
  auto keep = channels_to_keep(w2, 0.25, "/conv2/Conv");
  REQUIRE(keep.ok());
  CHECK(steps[1]["keep"] == json(*keep));
  // The repair changed the ranking: planned on the network as loaded, the
  // step would keep other channels (so the check above tells them apart).
  auto keep_loaded = channels_to_keep(e.graph().initializers.at("conv2.weight"), 0.25, "/conv2/Conv");
  REQUIRE(keep_loaded.ok());
  CHECK(*keep_loaded != *keep);

  // A plan without a step's keep is not one.
  json bad = *plan;
  bad["steps"][0].erase("keep");
  CHECK_FALSE(validator->validate(bad).empty());
}

TEST_CASE("fine-tune: the evaluator runs a replacement graph until the next configure") {
  if (!fs::exists(kRoot / "models/fashion_lenet.onnx")) {
    MESSAGE("skipped: models/fashion_lenet.onnx is not trained");
    return;
  }
  ExperimentSandbox box;
  Experiment exp = lenet_experiment(box);
  // A metric against the exact network: its outputs are computed in the
  // middle of run_range, which must leave the replacement in place.
  exp.qos.metric = Metric::agreement_top1;
  auto ev = Evaluator::create(exp, "reference", 1);
  REQUIRE(ev.ok());
  Evaluator& e = **ev;
  const KnobConfig config{{"/conv1/Conv", "prune-0.5+int8"}};
  REQUIRE(e.configure(config).ok());
  std::vector<float> pruned;
  REQUIRE(e.run_range(0, 8, &pruned).ok());
  Graph zeroed = e.current_graph();
  Tensor b = zeroed.initializers.at("fc3.bias").clone();
  for (float& v : b.span<float>()) v += 1.0f;
  zeroed.initializers["fc3.bias"] = b;
  REQUIRE(check_same_structure(e.current_graph(), zeroed, "replacement").ok());
  REQUIRE(e.replace_current_graph(zeroed).ok());
  CHECK(e.current_graph().initializers.at("fc3.bias").span<float>()[0] == b.span<float>()[0]);
  CHECK(e.kernel_configuration() == KnobConfig{{"/conv1/Conv", "int8"}});
  std::vector<float> replaced;  // a range whose exact outputs are not cached yet
  REQUIRE(e.run_range(0, 16, &replaced).ok());
  REQUIRE(replaced.size() == 2 * pruned.size());
  for (size_t i = 0; i < pruned.size(); ++i) CHECK(replaced[i] == doctest::Approx(pruned[i] + 1.0f).epsilon(1e-5));
  // The same configuration again: the variant the rewrites build.
  REQUIRE(e.configure(config).ok());
  std::vector<float> again;
  REQUIRE(e.run_range(0, 8, &again).ok());
  CHECK(again == pruned);
}

TEST_CASE("load_experiment: a network's finetune hook") {
  ExperimentSandbox box;
  const std::string minimal = read_text(kFixtures / "minimal.yaml");
  const std::string one = "network: {model: models/net.onnx}\n";
  auto with = [&](const std::string& name, const std::string& finetune) {
    std::string text = minimal;
    text.replace(text.find(one), one.size(), "network:\n  model: models/net.onnx\n  finetune: " + finetune + "\n");
    return box.write(name, text);
  };
  fs::copy_file(kRoot / "tests/data/apps/good.py", box.dir / "hook.py");
  Result<Experiment> r = load_experiment(
      with("good.yaml",
           R"({command: [hook.py, --plan, "{plan}", "--model={model}", "{out}"], timeout: 30, env: {A: b}})"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->network.finetune.has_value());
  const FinetuneSpec& f = *r->network.finetune;
  CHECK(f.command ==
        std::vector<std::string>{(box.dir / "hook.py").string(), "--plan", "{plan}", "--model={model}", "{out}"});
  CHECK(f.dir == box.dir.string());
  CHECK(f.timeout_s == 30);
  CHECK(f.env.at("A") == "b");
  CHECK(load_experiment(with("default.yaml", "{command: [hook.py]}"))->network.finetune->timeout_s == 600);
  CHECK_FALSE(load_experiment(box.stage("minimal.yaml"))->network.finetune.has_value());

  std::string m = load_error(with("typo.yaml", R"({command: [hook.py, "{modle}", "--x={plan}{outt}"]})"));
  CHECK(has(m, "network.finetune.command[1]: unknown placeholder '{modle}' (the hook's arguments may hold {plan}, "
               "{model} and {out})"));
  CHECK(has(m, "network.finetune.command[2]: unknown placeholder '{outt}'"));
  m = load_error(with("missing.yaml", "{command: [nope.py]}"));
  CHECK(
      has(m, "network.finetune.command[0]: fine-tune command '" + (box.dir / "nope.py").string() + "' does not exist"));
  CHECK(has(load_error(with("zero.yaml", "{command: [hook.py], timeout: 0}")), "network.finetune.timeout"));
  CHECK(has(load_error(with("key.yaml", "{command: [hook.py], timeout_s: 5}")), "unknown key 'timeout_s'"));
  CHECK(has(load_error(with("none.yaml", "{timeout: 5}")), "command"));
}
