#pragma once
// Internal to the engine: a session that runs its batch as chunks
// (engine/batch_split.h) through plain sessions at the chunk size, one per
// worker thread, each worker running whole chunks through the whole network
// on one core. Everything else (configuration, observers, calibrated
// ranges) is forwarded to the workers, which all hold the same state.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/plain_session.h"

namespace caliprox {

class SplitSession final : public Session {
 public:
  // Null when the batch does not split (why is logged at debug level).
  static Result<std::unique_ptr<SplitSession>> try_create(const Graph& graph, Backend& backend,
                                                          const std::map<std::string, Shape>& input_shapes,
                                                          const SessionOptions& options, const FoldedGraph& folded);

  Status configure(const KnobConfig& config) override;
  size_t release_idle_kernels() override;
  void set_calibrated_ranges(std::map<std::string, ValueRange> ranges) override;
  const std::vector<CodesEdge>& codes_edges() const override { return workers_[0]->codes_edges(); }
  const BatchSplit& batch_split() const override { return plan_; }
  std::vector<std::pair<std::string, std::string>> node_backends() const override {
    return workers_[0]->node_backends();
  }
  Result<std::string> knob_backend(const std::string& node, const Knob& knob) const override {
    return workers_[0]->knob_backend(node, knob);
  }

 protected:
  Status execute(std::span<const Tensor> inputs) override;
  void observers_changed() override;

 private:
  SplitSession() = default;
  bool take_outputs(const std::vector<std::string>& graph_outputs, const std::map<std::string, TensorType>& types);
  Status run_worker(size_t w, std::span<const Tensor> inputs);

  BatchSplit plan_;
  int64_t n_ = 0;  // this session's batch
  bool collect_timings_ = false;
  std::vector<std::unique_ptr<PlainSession>> workers_;
  std::vector<std::vector<Tensor>> padded_;        // per worker: inputs of a last, partial chunk
  std::vector<std::vector<NodeTiming>> worker_timings_;  // per worker, summed over its chunks
  std::vector<NodeObserver*> forwarded_;           // the observers the workers hold
};

}  // namespace caliprox
