#pragma once
// The embedding API of run-time adaptation: an application that links
// caliprox instead of talking to `caliprox serve` loads the model with its
// adaptation table and calls infer(); each call runs at the level the
// strategy chose after the previous one, and says which. Switching a level
// reconfigures the session's knobs (no reload; kernels are cached).
//
//   auto m = AdaptiveModel::load("runs/x/adaptation.json");
//   auto [y, level] = *(*m)->infer(x);
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "adapt/controller.h"
#include "backends/backend.h"
#include "engine/session.h"
#include "ir/graph.h"

namespace caliprox {

class AdaptiveModel {
 public:
  struct Options {
    std::string backend = "onednn";
    int threads = 1;
    std::optional<AdaptStrategy> strategy;   // default: the table's
    std::optional<StrategyParams> params;   // default: the table's
  };
  // Loads adaptation.json, its model, and checks every level's knobs on the
  // model (invalid_input naming the file, the level and the node otherwise).
  static Result<std::unique_ptr<AdaptiveModel>> load(const std::string& adaptation_path, const Options& options);
  static Result<std::unique_ptr<AdaptiveModel>> load(const std::string& adaptation_path) {
    return load(adaptation_path, Options{});
  }

  struct Answer {
    Tensor output;  // the table's output, [N, classes]
    int level = 0;  // the level this batch ran at
  };
  // One batch [N, ...] of the model's single input.
  Result<Answer> infer(const Tensor& input);

  const AdaptationTable& table() const { return table_; }
  const AdaptiveController& controller() const { return *controller_; }

 private:
  AdaptiveModel() = default;
  Result<Session*> session(const Shape& shape);

  AdaptationTable table_;
  Graph graph_;
  std::string input_;
  std::unique_ptr<Backend> backend_;
  std::optional<AdaptiveController> controller_;
  struct Configured {
    std::unique_ptr<Session> session;
    int level = -1;
  };
  std::map<Shape, Configured> sessions_;
};

}  // namespace caliprox
