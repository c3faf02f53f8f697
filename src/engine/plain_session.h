#pragma once
// Internal to the engine: the session that executes the network's kernels on
// the whole batch, and the steps that build it. Session::create (session.cc)
// runs them in order:
//   fold_graph       fold.cc           bind inputs, infer shapes, fold constants
//   (batch split)    split_session.cc  when the batch runs as chunks instead
//   place_nodes      placement.cc      graph passes, backend and layout per node
//   find_knob_sites  placement.cc      the executed Convs that take knobs
//   plan_memory      memory_plan.cc    arena slots, lent residuals, tensor views
//   plan_run         lowp_edges.cc     what each kernel reads and writes now
// Knob kernels are prepared on demand (knob_kernels.cc).
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/session.h"

namespace caliprox {

// What fold_graph() leaves for the executor: every value typed at this
// batch, the initializers and folded values, and the nodes that run on data.
struct FoldedGraph {
  std::map<std::string, Tensor> constants;
  std::map<std::string, TensorType> types;
  std::vector<Node> nodes;                  // in graph order
  std::set<std::string> batch_derived;      // folded values computed from a fed value's shape
  // Inlined If and Loop nodes whose condition or trip count came from the
  // batch length: a chunk of the batch could take another branch, so such a
  // graph is never split (engine/split_session.cc).
  std::vector<std::string> batch_dependent_control;
  std::vector<std::string> input_names;     // fed graph inputs, in graph order
  std::vector<TensorType> input_types;
  std::vector<std::string> output_names;    // graph outputs
};
Result<FoldedGraph> fold_graph(const Graph& graph, const std::map<std::string, Shape>& input_shapes,
                               const SessionOptions& options);

// Where a value lives at run time.
struct ValueSlot {
  // device: a slot of the device arena (a value named "<value>@dev").
  enum class Where { constant, graph_input, arena, owned_output, device } where = Where::arena;
  size_t index = 0;  // graph input index, arena or device arena slot, or output index
  TensorType type;
};

// A prepared kernel and the backend that made it.
struct PreparedKernel {
  std::unique_ptr<Kernel> kernel;
  std::string backend;
};

class ObservedDeviceTensors;

// What a step is: a node of the graph, or a layout conversion or a transfer
// between host and device the executor inserted (backend "engine").
enum class StepKind { node, layout_conversion, transfer };

struct Step {
  StepKind kind = StepKind::node;
  Node node;  // the node as executed (possibly fused)
  std::unique_ptr<Kernel> kernel;  // the exact kernel
  std::string backend;
  std::vector<std::string> inputs;   // value names ("" omitted)
  std::vector<std::string> outputs;  // value names ("" omitted)
  // What the NodeContext held at preparation, to prepare knob kernels later.
  std::vector<TensorType> input_types;
  std::vector<const Tensor*> constants;
  std::vector<TensorType> output_types;
  Layout layout = Layout::nchw;
  // Knob kernels prepared so far (switching between them is free; kept
  // until release_idle_kernels()).
  std::map<const Knob*, PreparedKernel> knob_kernels;
  // int8 / bf16 kernels writing codes for their readers, by (knob, codes); a null
  // kernel records that the backend has none.
  std::map<std::pair<const Knob*, ActivationCodes>, PreparedKernel> codes_kernels;
  // What configure() chose: the exact kernel or one of knob_kernels; and
  // what run() executes: that, or a codes-writing variant (plan_run).
  Kernel* configured = nullptr;
  Kernel* active = nullptr;
  const Knob* knob = nullptr;  // null: exact
  const std::string* active_backend = nullptr;
  int site = -1;  // index into knob_sites, or -1
  // The fused residual (input #3) dies here and lent its buffer to output #0;
  // kernels that cannot run in place read residual_copy instead.
  bool residual_lent = false;
  Tensor residual_copy;
  // Observers (Session::add_observer) that want this step's inputs / outputs.
  std::vector<NodeObserver*> observe_inputs, observe_outputs;
  bool observed() const { return !observe_inputs.empty() || !observe_outputs.empty(); }
  // A node of a device backend: its non-constant inputs and outputs are device tensors.
  bool on_device = false;
  std::shared_ptr<ObservedDeviceTensors> observed_copies;  // host copies for observers
};

// Per step: resolved pointers into constants / arena / outputs; graph inputs
// are re-pointed per run.
struct StepIo {
  std::vector<const Tensor*> in;
  std::vector<Tensor*> out;
  std::vector<int> in_graph_input;  // graph input index per input, or -1
  // What the active kernel reads and writes: in/out, with low-precision codes in
  // place of floats on the edges plan_run() chose.
  std::vector<const Tensor*> in_now;
  std::vector<Tensor*> out_now;
  Tensor* quantize_to = nullptr;  // quantise input #0 into this before running
  bool copy_residual = false;     // copy input #3 into Step::residual_copy before running
};

// The one rule for lending a Conv's fused residual (input #3) the buffer of
// its output #0: the residual is a value computed by a node (not a
// constant, graph input or graph output), this node is its last reader and
// reads it once, and it has the output's type. `at` is the node's position
// in the order `last_reader` counts in.
struct ResidualFacts {
  const std::set<std::string>& graph_outputs;
  std::function<bool(const std::string&)> computed;  // produced by a node, not a graph input or constant
  const std::map<std::string, size_t>& last_reader;
  std::function<TensorType(const std::string&)> type_of;
};
bool residual_shares_output(const Node& node, const std::vector<std::string>& inputs, size_t at,
                            const ResidualFacts& facts);

class PlainSession final : public Session {
 public:
  static Result<std::unique_ptr<PlainSession>> build(FoldedGraph folded, Backend& backend,
                                                     const SessionOptions& options);

  Status configure(const KnobConfig& config) override;
  size_t release_idle_kernels() override;
  void set_calibrated_ranges(std::map<std::string, ValueRange> ranges) override;
  const std::vector<CodesEdge>& codes_edges() const override { return edges_; }
  const BatchSplit& batch_split() const override;
  std::vector<std::pair<std::string, std::string>> node_backends() const override;
  Result<std::string> knob_backend(const std::string& node, const Knob& knob) const override;

  // The samples the next runs cover within the caller's batch (NodeEvent):
  // a split session's chunk. Default: all of its own batch.
  void set_sample_window(int64_t first, int64_t count) {
    first_sample_ = first;
    samples_ = count;
  }

 protected:
  Status execute(std::span<const Tensor> inputs) override;
  void observers_changed() override;

 private:
  PlainSession() = default;
  // placement.cc
  Status place_nodes(std::vector<Node> nodes, std::map<std::string, TensorType>& types,
                     const std::set<std::string>& graph_outputs, int threads);
  void find_knob_sites();
  // memory_plan.cc
  Status plan_memory(const std::map<std::string, TensorType>& types, const std::set<std::string>& graph_outputs);
  void resolve_io();
  // knob_kernels.cc
  NodeContext knob_context(const Step& step, const Knob& knob) const;
  Result<Kernel*> knob_kernel(Step& step, const Knob& knob);
  Kernel* codes_kernel(Step& step, const ActivationCodes& codes);
  Result<std::vector<std::pair<Step*, const Knob*>>> plan_configuration(const KnobConfig& config);
  // lowp_edges.cc
  void plan_run();
  void plan_codes_edges();
  // plain_session.cc
  Status notify(size_t k, bool before);
  Status notify_device(size_t k, bool before, const NodeEvent& event);
  void collect_outputs();

  std::map<std::string, Tensor> constants_;
  std::map<std::string, ValueSlot> values_;
  std::vector<Step> steps_;
  std::vector<StepIo> io_;
  std::vector<Tensor> arena_;          // one owned buffer per slot
  std::vector<Tensor> owned_outputs_;  // graph outputs computed by nodes
  std::map<std::string, Tensor> value_views_;
  // Device backends (engine/device_steps.h).
  DeviceMemory* device_ = nullptr;       // the backend's, or null
  std::set<std::string> device_values_;  // values in the device arena
  std::vector<Tensor> device_arena_;     // one device buffer per slot
  std::vector<Tensor> run_inputs_;     // copies of the caller's tensor headers (views)
  bool collect_timings_ = false;
  bool any_observed_ = false;
  int64_t first_sample_ = 0, samples_ = -1;  // -1: the whole batch

  // Knobs.
  Backend* backend_ = nullptr;          // the caller's (outlives the session)
  std::unique_ptr<Backend> reference_;  // fallback
  int threads_ = 1;
  std::map<std::string, ValueRange> calibrated_ranges_;
  std::map<std::string, size_t> step_of_node_;  // node name -> step index

  // Low-precision edges.
  bool lowp_edges_ = true;
  std::map<std::string, size_t> producer_of_;  // value -> step writing it
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> readers_of_;  // value -> (step, input #)
  std::map<std::pair<std::string, ActivationCodes>, Tensor> codes_buffers_;  // kept across configurations
  std::vector<CodesEdge> edges_;
};

}  // namespace caliprox
