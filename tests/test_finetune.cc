// Fine-tuning's seams in the evaluator: a replacement graph for the
// current variant (Evaluator::replace_current_graph).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "eval/evaluator.h"
#include "experiment/experiment.h"
#include "experiment_sandbox.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

const fs::path kRoot(CALIPROX_SOURCE_ROOT);

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
