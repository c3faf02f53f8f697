// The bundled networks on the engine vs the PyTorch logits recorded when
// they were exported (models/reference_outputs.json), on every backend.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "data/idx.h"
#include "ir/onnx_import.h"
#include "engine/session.h"

using namespace caliprox;
namespace fs = std::filesystem;

namespace {

nlohmann::json reference_outputs() {
  std::ifstream f(fs::path(CALIPROX_SOURCE_ROOT) / "models/reference_outputs.json");
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

// The first `n` t10k images, preprocessed as the models were trained.
Tensor first_images(const nlohmann::json& ref, int64_t n) {
  auto images = read_idx(ref["source"].get<std::string>());
  REQUIRE(images.ok());
  const double mean = ref["preprocessing"]["mean"].get<double>();
  const double std = ref["preprocessing"]["std"].get<double>();
  Tensor x(DType::f32, {n, 1, 28, 28});
  const uint8_t* px = images->data<uint8_t>();
  for (int64_t i = 0; i < n * 28 * 28; ++i)
    x.data<float>()[i] = static_cast<float>((px[i] / 255.0 - mean) / std);
  // The recorded uint8 pixels must be the ones we read.
  for (int64_t i = 0; i < 28 * 28; ++i) REQUIRE(ref["images_uint8"][0][static_cast<size_t>(i)].get<int>() == px[i]);
  return x;
}

}  // namespace

TEST_CASE("bundled models match PyTorch logits on every backend") {
  const nlohmann::json ref = reference_outputs();
  const int64_t n = ref["count"].get<int64_t>();
  const Tensor x = first_images(ref, n);
  REQUIRE(!ref["models"].empty());
  for (const auto& [file, expected] : ref["models"].items()) {
    const fs::path path = fs::path(CALIPROX_SOURCE_ROOT) / "models" / file;
    auto graph = load_onnx(path.string());
    REQUIRE_MESSAGE(graph.ok(), graph.status().message());
    // Nodes carry the opset they were exported under (the models are opset 13).
    for (const Node& node : graph->nodes) CHECK(node.opset == 13);
    for (std::string_view backend_name : backend_names()) {
      CAPTURE(file);
      CAPTURE(backend_name);
      auto backend = create_backend(backend_name, {2});
      if (!backend.ok() && backend.status().code() == Errc::unreachable) {
        MESSAGE("skipped on " << backend_name << ": " << backend.status().message());
        continue;
      }
      REQUIRE_MESSAGE(backend.ok(), backend.status().message());
      auto session = Session::create(*graph, **backend, {{"input", x.shape()}});
      REQUIRE_MESSAGE(session.ok(), session.status().message());
      REQUIRE((*session)->run(std::span<const Tensor>(&x, 1)).ok());
      const Tensor& y = (*session)->output(0);
      REQUIRE(y.shape() == Shape{n, 10});
      // Reference logits are rounded to 6 significant digits and come from a
      // different summation order: 1e-4 absolute plus 1e-4 relative is ample
      // for logits of magnitude ~10 and far below any decision margin.
      double worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        int64_t argmax = 0;
        for (int64_t k = 0; k < 10; ++k) {
          const double want = expected["logits"][static_cast<size_t>(i)][static_cast<size_t>(k)].get<double>();
          const double got = y.data<float>()[i * 10 + k];
          worst = std::max(worst, std::fabs(got - want) - 1e-4 * std::fabs(want));
          if (y.data<float>()[i * 10 + k] > y.data<float>()[i * 10 + argmax]) argmax = k;
        }
        CHECK(argmax == expected["argmax"][static_cast<size_t>(i)].get<int64_t>());
      }
      CHECK(worst <= 1e-4);
    }
  }
}
