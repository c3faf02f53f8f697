// The adaptation table (adapt/table.h) against its schema and through a
// round trip, and the embedding API (eval/adaptive_model.h) on the bundled
// LeNet: levels switch per call as the strategy says, and a table whose
// levels name nodes the model lacks is refused.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "adapt/table.h"
#include "eval/adaptive_model.h"
#include "experiment/schema_validator.h"

using namespace caliprox;
namespace fs = std::filesystem;

namespace {

const std::string kLenet = std::string(CALIPROX_SOURCE_ROOT) + "/models/fashion_lenet.onnx";

AdaptationTable lenet_table() {
  AdaptationTable t;
  t.experiment = "fashion-lenet";
  t.model = kLenet;
  t.output = "logits";
  t.classes = 10;
  for (int l = 0; l < 3; ++l) {
    AdaptationLevel level;
    level.level = l;
    level.id = l == 0 ? "exact" : "c" + std::to_string(l);
    if (l >= 1) level.knobs.emplace("/conv1/Conv", "perf-row-2-0");
    if (l >= 2) level.knobs.emplace("/conv2/Conv", "samp-2-0");
    level.latency_ms = 1.0 / (1 + l);
    level.latency_stat = nlohmann::json::object();
    level.time_proxy = 1.0 / (1 + l);
    level.accuracy = 0.9 - 0.01 * l;
    t.levels.push_back(level);
  }
  t.stats.correct.assign(3, std::vector<double>(10, 0.9));
  t.stats.wrong.assign(3, std::vector<double>(10, 0.5));
  t.stats.wrong[1][3] = std::nan("");
  t.strategy = AdaptStrategy::naive;
  t.energy_unavailable = "no powercap here";
  return t;
}

std::string write_table(const AdaptationTable& t, const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("caliprox-test-adapt-{}-{}", ::getpid(), name);
  std::ofstream(p) << adaptation_json(t).dump(2);
  return p.string();
}

}  // namespace

TEST_CASE("adapt table: adaptation.json follows its schema and reads back as written") {
  const AdaptationTable t = lenet_table();
  const nlohmann::json j = adaptation_json(t);
  auto validator = SchemaValidator::create(nlohmann::json::parse(
      std::ifstream(std::string(CALIPROX_SOURCE_ROOT) + "/schemas/adaptation.schema.json"), nullptr, true));
  REQUIRE(validator.ok());
  const auto errors = validator->validate(j);
  CHECK_MESSAGE(errors.empty(), (errors.empty() ? "" : errors[0].path.dotted() + ": " + errors[0].message));
  auto back = parse_adaptation(j, "t.json");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(adaptation_json(*back) == j);
  CHECK(std::isnan(back->stats.wrong[1][3]));  // null in JSON, NaN again
  nlohmann::json bad = j;
  bad["levels"][1]["level"] = 5;
  CHECK(parse_adaptation(bad, "t.json").status().message().find("levels[1] has level 5") != std::string::npos);
  bad = j;
  bad["strategy"]["params"]["factor"] = 0.5;
  CHECK(parse_adaptation(bad, "t.json").status().code() == Errc::invalid_input);
}

TEST_CASE("adaptive model: each call runs at the level the strategy chose, and says which") {
  if (!fs::exists(kLenet)) {
    MESSAGE("skipped: models/fashion_lenet.onnx is not trained");
    return;
  }
  const std::string path = write_table(lenet_table(), "good.json");
  auto m = AdaptiveModel::load(path, {"reference", 1, std::nullopt, std::nullopt});
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  Tensor x(DType::f32, {1, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 7919) % 255) / 255.0f;
  // naive on one input repeated: the top class never changes, so every call
  // moves to more approximation: 0, 1 (step 1), then 2 (step 2, clamped).
  std::vector<int> levels;
  for (int k = 0; k < 4; ++k) {
    auto a = (*m)->infer(x);
    REQUIRE_MESSAGE(a.ok(), a.status().message());
    CHECK(a->output.shape() == Shape{1, 10});
    levels.push_back(a->level);
  }
  CHECK(levels == std::vector<int>{0, 1, 2, 2});
  CHECK((*m)->controller().switches() == 2);
  fs::remove(path);

  AdaptationTable foreign = lenet_table();
  foreign.levels[2].knobs = {{"/blocks/blocks.0/conv1/Conv", "int8"}};
  const std::string bad = write_table(foreign, "bad.json");
  auto refused = AdaptiveModel::load(bad, {"reference", 1, std::nullopt, std::nullopt});
  CHECK(refused.status().code() == Errc::invalid_input);
  CHECK(refused.status().message().find("level 2 (c2)") != std::string::npos);
  fs::remove(bad);
}
