#include "engine/session.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string_view>

#include "engine/plain_session.h"
#include "engine/split_session.h"

namespace caliprox {

namespace {

// CALIPROX_BATCH_SPLIT=0 turns batch splitting off for the process (for
// side-by-side benchmarks).
bool batch_split_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("CALIPROX_BATCH_SPLIT");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return on;
}

}  // namespace

// Records the min/max of input #0 of the knob sites (int8 calibration).
// Thread-safe: a split session's workers report their chunks at once.
class RangeTracker final : public NodeObserver {
 public:
  explicit RangeTracker(const std::vector<KnobSite>& sites) {
    for (const KnobSite& s : sites) sites_.insert(s.node);
  }
  ObserveWhat wants(const std::string& node, const std::string& /*op_type*/) const override {
    return {sites_.count(node) > 0, false};
  }
  Status before(const NodeEvent& event, std::span<const Tensor* const> inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return {};
    const Tensor& t = *inputs[0];
    const bool measured = t.dtype() == DType::f32 && t.numel() > 0;
    float lo = 0, hi = 0;
    if (measured) {
      const float* p = t.data<float>();
      lo = hi = p[0];
      for (int64_t i = 1; i < t.numel(); ++i) {
        lo = std::min(lo, p[i]);
        hi = std::max(hi, p[i]);
      }
    }
    std::lock_guard lock(mutex_);
    ValueRange& r = seen_[event.node];
    if (!measured) return {};
    if (first_.insert(event.node).second) {
      r = {lo, hi};
    } else {
      r.min = std::min(r.min, lo);
      r.max = std::max(r.max, hi);
    }
    return {};
  }
  const std::map<std::string, ValueRange>& ranges() const { return seen_; }

 private:
  std::set<std::string> sites_;
  std::mutex mutex_;
  std::map<std::string, ValueRange> seen_;
  std::set<std::string> first_;  // nodes with a measured range
};

Session::Session() = default;
Session::~Session() = default;

Result<std::map<std::string, TensorType>> infer_value_types(const Graph& graph,
                                                            const std::map<std::string, Shape>& input_shapes) {
  CP_ASSIGN_OR_RETURN(FoldedGraph folded, fold_graph(graph, input_shapes, SessionOptions{}));
  for (const auto& [name, value] : folded.constants) folded.types.emplace(name, value.type());
  return std::move(folded.types);
}

Result<std::unique_ptr<Session>> Session::create(const Graph& graph, Backend& backend,
                                                 const std::map<std::string, Shape>& input_shapes,
                                                 SessionOptions options) {
  CP_ASSIGN_OR_RETURN(FoldedGraph folded, fold_graph(graph, input_shapes, options));
  // A device backend runs the whole batch on its one queue.
  if (options.batch_split && batch_split_enabled() && backend.device_memory() == nullptr) {
    CP_ASSIGN_OR_RETURN(std::unique_ptr<SplitSession> split,
                        SplitSession::try_create(graph, backend, input_shapes, options, folded));
    if (split) return std::unique_ptr<Session>(std::move(split));
  }
  CP_ASSIGN_OR_RETURN(std::unique_ptr<PlainSession> plain, PlainSession::build(std::move(folded), backend, options));
  return std::unique_ptr<Session>(std::move(plain));
}

Status Session::run(std::span<const Tensor> inputs) {
  if (inputs.size() != input_names_.size())
    return invalid_input("expected {} input tensors ({}), got {}", input_names_.size(), fmt::join(input_names_, ", "),
                         inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].type() != input_types_[i])
      return invalid_input("input '{}' is {} {} but the session was created for {} {}", input_names_[i],
                           dtype_name(inputs[i].dtype()), shape_str(inputs[i].shape()),
                           dtype_name(input_types_[i].dtype), shape_str(input_types_[i].shape));
  }
  return execute(inputs);
}

void Session::add_observer(NodeObserver& observer) {
  if (std::find(observers_.begin(), observers_.end(), &observer) != observers_.end()) return;
  observers_.push_back(&observer);
  observers_changed();
}

void Session::remove_observer(NodeObserver& observer) {
  auto it = std::find(observers_.begin(), observers_.end(), &observer);
  if (it == observers_.end()) return;
  observers_.erase(it);
  observers_changed();
}

void Session::track_input_ranges(bool on) {
  if (ranges_) remove_observer(*ranges_);
  if (!on) return;  // what was seen stays readable
  ranges_ = std::make_unique<RangeTracker>(sites_);
  add_observer(*ranges_);
}

const std::map<std::string, ValueRange>& Session::input_ranges() const {
  static const std::map<std::string, ValueRange> none;
  return ranges_ ? ranges_->ranges() : none;
}

}  // namespace caliprox
