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
#include "engine/batch_split.h"
#include "engine/observer.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "knobs/knobs.h"
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
  // Calibrated range of input #0 per node name, for int8 knobs (see
  // Session::track_input_ranges).
  std::map<std::string, ValueRange> input_ranges;
  // int8 (bf16) layers hand each other 8-bit codes (bfloat16 values) instead
  // of floats where they can (see Session::codes_edges). Off: every such
  // layer converts its own float input.
  bool lowp_edges = true;
  // Run a batch as chunks (engine/batch_split.h) when the graph keeps its
  // samples apart: with threads > 1 each thread runs whole chunks on one
  // core; with one thread, chunks small enough for the core's caches. The
  // results are the same; CALIPROX_BATCH_SPLIT=0 turns it off process-wide.
  bool batch_split = true;
};

// A value that travels in low precision under the current configuration
// (int8 codes or bfloat16): its int8 (bf16) readers take the codes; either
// the producer, itself int8 (bf16), writes them directly (all readers want
// the same codes) or the first reader converts the float value once for all
// of them.
struct CodesEdge {
  std::string value;
  ActivationCodes codes;
  bool producer_writes = false;
  std::string written_by;            // the producer's or the quantising reader's node name
  std::vector<std::string> readers;  // node names reading the codes
};

// A layout conversion the executor inserted runs as a node of this op type
// on this pseudo-backend (NodeTiming, Session::node_backends()).
inline constexpr const char* kLayoutConversionOp = "LayoutConversion";
inline constexpr const char* kEngineBackend = "engine";

struct NodeTiming {
  std::string node;
  std::string op_type;
  std::string backend;
  std::string knob;  // knob name the node ran with ("fp32" when exact)
  double ms = 0;
};

// Host <-> device traffic of the last run (device backends, engine/
// device_steps.h): the executor's transfer steps, host kernels run for
// device nodes, and observed device nodes.
struct TransferStats {
  int64_t uploads = 0, downloads = 0;
  int64_t bytes_up = 0, bytes_down = 0;
};

class RangeTracker;

// A session has two shapes behind one interface (session.cc decides which):
// a plain session executes the network's kernels on the whole batch
// (engine/plain_session.h), and a split session runs the batch as chunks
// through plain sessions at the chunk size (engine/split_session.h).
class Session {
 public:
  // `backend` must outlive the session. input_shapes: one entry per graph
  // input that is not bound (by name).
  static Result<std::unique_ptr<Session>> create(const Graph& graph, Backend& backend,
                                                 const std::map<std::string, Shape>& input_shapes,
                                                 SessionOptions options = {});
  virtual ~Session();

  // Names/types of the graph inputs that run() expects, in order.
  const std::vector<std::string>& input_names() const { return input_names_; }
  const std::vector<TensorType>& input_types() const { return input_types_; }
  const std::vector<std::string>& output_names() const { return output_names_; }
  const std::vector<TensorType>& output_types() const { return output_types_; }

  // inputs in input_names() order; shapes and dtypes must match input_types().
  Status run(std::span<const Tensor> inputs);
  // Valid until the next run().
  const Tensor& output(size_t i) const { return outputs_.at(i); }

  // With collect_timings: per node, its wall time in the last run; when the
  // batch ran split over several threads, the threads' time in the node
  // summed over all chunks and divided by the number of threads.
  const std::vector<NodeTiming>& timings() const { return timings_; }
  // Transfers between host and device in the last run (zeros on CPU backends).
  const TransferStats& transfers() const { return transfers_; }

  // Switches the per-node knobs: nodes named in `config` run their knob, all
  // others exact. Kernels are prepared once per (node, knob) and cached
  // (until release_idle_kernels()), so switching back and forth costs no
  // rebuild. On error (unknown node or knob, a knob that does not apply,
  // int8 without a calibrated range) the previous configuration stays
  // active; the error names node and knob.
  virtual Status configure(const KnobConfig& config) = 0;
  const KnobConfig& configuration() const { return config_; }
  // Frees the prepared knob kernels the current configuration does not run
  // (configuring them again rebuilds them, 1-25 ms each): a search that
  // visits many (node, knob) pairs once keeps memory bounded. Returns how
  // many kernels were freed.
  virtual size_t release_idle_kernels() = 0;
  // Nodes that take knobs, in execution order.
  const std::vector<KnobSite>& knob_sites() const { return sites_; }

  // Observers (engine/observer.h) see the nodes they ask for from the next
  // run() on, in the order they were added; the caller keeps each alive
  // until it is removed or the session is destroyed. Adding one twice, or
  // removing one that was not added, does nothing.
  void add_observer(NodeObserver& observer);
  void remove_observer(NodeObserver& observer);

  // While on, run() records the min/max of input #0 of every knob site (for
  // int8 calibration; an observer); input_ranges() returns what was seen
  // since enabled.
  void track_input_ranges(bool on);
  const std::map<std::string, ValueRange>& input_ranges() const;
  // Calibrated ranges for int8 kernels prepared from now on (replaces
  // SessionOptions::input_ranges).
  virtual void set_calibrated_ranges(std::map<std::string, ValueRange> ranges) = 0;
  // The low-precision edges of the current configuration (empty without
  // int8 / bf16 knobs, with SessionOptions::lowp_edges off, or on the
  // edges of observed nodes).
  virtual const std::vector<CodesEdge>& codes_edges() const = 0;
  // How run() splits the batch (chunk 0: it runs as one piece).
  virtual const BatchSplit& batch_split() const = 0;
  // Which backend runs each node ("onednn" / "reference") under the current
  // configuration, in execution order.
  virtual std::vector<std::pair<std::string, std::string>> node_backends() const = 0;
  // Which backend would run `knob` on knob site `node` ("onednn", or
  // "reference" where the session's backend declines it and the executor
  // falls back to the reference's plain loops), without preparing it.
  // (int8's placement does not depend on the calibrated range; an
  // uncalibrated site is asked with a unit range.) invalid_input for a node
  // that is not a knob site.
  virtual Result<std::string> knob_backend(const std::string& node, const Knob& knob) const = 0;

 protected:
  Session();
  // run() after its inputs were checked against input_types().
  virtual Status execute(std::span<const Tensor> inputs) = 0;
  // The observer list changed.
  virtual void observers_changed() = 0;

  std::vector<std::string> input_names_;
  std::vector<TensorType> input_types_;
  std::vector<std::string> output_names_;
  std::vector<TensorType> output_types_;
  std::vector<Tensor> outputs_;  // what output(i) returns
  std::vector<NodeTiming> timings_;
  TransferStats transfers_;
  std::vector<KnobSite> sites_;
  KnobConfig config_;
  std::vector<NodeObserver*> observers_;

 private:
  std::unique_ptr<RangeTracker> ranges_;  // while tracking input ranges
};

// Every value's type (initializers, inputs, node outputs) at these input
// shapes after constant folding: the types a session would plan with. Tools
// and benchmarks read layer geometry from it; no backend is involved.
Result<std::map<std::string, TensorType>> infer_value_types(const Graph& graph,
                                                            const std::map<std::string, Shape>& input_shapes);

}  // namespace caliprox
