#pragma once
// Error injection inside a session: a node observer (engine/observer.h) that
// perturbs chosen nodes' outputs with an error model (qos/error_model.h)
// after they run, so what follows them — the rest of the network, the
// application — sees the perturbed values. Draws follow the sample's index
// in the caller's batch plus a fixed offset (NodeEvent), so the result does
// not depend on batch splitting.
#include <map>
#include <string>

#include "engine/observer.h"
#include "qos/error_model.h"

namespace caliprox {

class ErrorInjector final : public NodeObserver {
 public:
  // `models`: node name -> its model. `first_sample`: the index of the
  // batch's first sample in the whole dataset or stream (draws depend on it).
  ErrorInjector(std::map<std::string, ErrorModel> models, uint64_t seed, int64_t first_sample = 0)
      : models_(std::move(models)), seed_(seed), first_sample_(first_sample) {}

  void set_first_sample(int64_t first) { first_sample_ = first; }

  ObserveWhat wants(const std::string& node, const std::string& /*op_type*/) const override {
    return {false, models_.count(node) > 0};
  }
  // Output #0 of the node. Rank-4 values stored channels-last are refused:
  // rows would not hold the elements in the order the model's per-element
  // values and draws assume (network outputs are always NCHW).
  Status after(const NodeEvent& event, std::span<Tensor* const> outputs) override;

 private:
  std::map<std::string, ErrorModel> models_;
  uint64_t seed_;
  int64_t first_sample_;
};

}  // namespace caliprox
