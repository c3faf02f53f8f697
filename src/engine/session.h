#pragma once
// A session: one graph, one backend (with per-node fallback to the reference
// backend), concrete input shapes. Creation resolves symbolic dims, infers
// shapes, folds constant subgraphs, prepares one kernel per node and plans
// memory; run() then only executes kernels.
#include <chrono>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "engine/graph.h"
#include "engine/tensor.h"
#include "util/status.h"

namespace caliprox {

struct SessionOptions {
  int threads = 1;
  // Graph inputs whose values are fixed for this session (they are folded as
  // constants: e.g. an int64 shape tensor fed to Reshape). Their shapes need
  // not be repeated in input_shapes.
  std::map<std::string, Tensor> bound_inputs;
  bool optimize = true;         // run graph passes (BN folding, activation fusion)
  bool collect_timings = false; // per-node wall time of the last run
};

struct NodeTiming {
  std::string node;
  std::string op_type;
  std::string backend;
  double ms = 0;
};

class Session {
 public:
  // `backend` must outlive the session. input_shapes: one entry per graph
  // input that is not bound (by name).
  static Result<std::unique_ptr<Session>> create(const Graph& graph, Backend& backend,
                                                 const std::map<std::string, Shape>& input_shapes,
                                                 SessionOptions options = {});
  ~Session();

  // Names/types of the graph inputs that run() expects, in order.
  const std::vector<std::string>& input_names() const;
  const std::vector<TensorType>& input_types() const;
  const std::vector<std::string>& output_names() const;
  const std::vector<TensorType>& output_types() const;

  // inputs in input_names() order; shapes and dtypes must match input_types().
  Status run(std::span<const Tensor> inputs);
  // Valid until the next run().
  const Tensor& output(size_t i) const;

  const std::vector<NodeTiming>& timings() const;
  // Which backend runs each node ("onednn" / "reference"), in execution order.
  std::vector<std::pair<std::string, std::string>> node_backends() const;

 private:
  Session();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace caliprox
