#pragma once
// The node observer: a seam through which a caller sees the inputs of chosen
// nodes before they run and sees, and may overwrite, their outputs after
// they run (int8 range calibration reads knob sites' inputs; error injection
// overwrites outputs; per-layer error statistics read them). A session with
// no observer pays one flag test per node and run.
#include <cstdint>
#include <span>
#include <string>

#include "backends/backend.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

// One node's run, as an observer sees it. Nodes are the executed ones: after
// the graph passes, a Conv carries what was fused into it (BatchNorm, the
// activation, a residual Add) and its output is the fused result
// (SessionOptions::optimize = false keeps every ONNX node on its own).
struct NodeEvent {
  const std::string& node;     // node name
  const std::string& op_type;  // "Conv", "Relu", ...
  // Memory order of the rank-4 activations handed over (shapes are always
  // logical NCHW; see Layout).
  Layout layout = Layout::nchw;
  // The samples this run covers, within the batch the caller handed to
  // Session::run: [first_sample, first_sample + samples). A session running
  // its batch as chunks (batch split) calls the observer once per chunk; a
  // last, partial chunk carries padding rows past `samples` (copies of its
  // last sample) that are dropped from the result.
  int64_t first_sample = 0;
  int64_t samples = 0;
};

// Which tensors of a node an observer wants.
struct ObserveWhat {
  bool inputs = false;   // before(): the node's inputs, read-only
  bool outputs = false;  // after(): the node's outputs, writable in place
  bool any() const { return inputs || outputs; }
};

// Errors returned by before() / after() abort the run with the node named.
// A session that runs its batch split over several threads calls the same
// observer from all of them at once (different chunks, different tensors):
// an observer that keeps state must be thread-safe.
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  // Asked once per executed node when the observer is added (the answer is
  // kept until it is removed).
  virtual ObserveWhat wants(const std::string& node, const std::string& op_type) const = 0;
  // inputs[i] is null for an omitted optional input. Values travel as floats
  // on every edge of an observed node (no low-precision codes in between).
  virtual Status before(const NodeEvent& /*event*/, std::span<const Tensor* const> /*inputs*/) { return {}; }
  // The outputs as written; the observer may change their values in place
  // (never their dtype or shape); later nodes read what it leaves there.
  virtual Status after(const NodeEvent& /*event*/, std::span<Tensor* const> /*outputs*/) { return {}; }
};

}  // namespace caliprox
