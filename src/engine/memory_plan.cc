// Session construction, step 3: where every value lives. Arena slots are
// reused once a value's last reader has run; a Conv's fused residual that
// dies at the Conv lends its slot to the output (the sum is computed in
// place); graph outputs get buffers of their own. Then every step's tensors
// are resolved once (graph inputs are re-pointed per run).
#include <algorithm>
#include <optional>

#include "engine/plain_session.h"

namespace caliprox {

namespace {

constexpr size_t kAlign = 64;
size_t aligned_size(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Arena slots: a value gets the smallest free slot that fits, or the largest
// free one grown, or a new one; slots are freed after a value's last reader.
class SlotPlanner {
 public:
  size_t acquire(size_t bytes) {
    bytes = aligned_size(std::max<size_t>(bytes, 1));
    std::optional<size_t> best, largest;
    for (size_t s : free_) {
      if (sizes_[s] >= bytes && (!best || sizes_[s] < sizes_[*best])) best = s;
      if (!largest || sizes_[s] > sizes_[*largest]) largest = s;
    }
    size_t slot;
    if (best) {
      slot = *best;
    } else if (largest) {
      slot = *largest;
      sizes_[slot] = bytes;
    } else {
      slot = sizes_.size();
      sizes_.push_back(bytes);
      return slot;
    }
    free_.erase(slot);
    return slot;
  }
  void release(size_t slot) { free_.insert(slot); }
  const std::vector<size_t>& sizes() const { return sizes_; }

 private:
  std::vector<size_t> sizes_;
  std::set<size_t> free_;
};

}  // namespace

Status PlainSession::plan_memory(const std::map<std::string, TensorType>& types,
                                 const std::set<std::string>& graph_outputs) {
  std::map<std::string, size_t> last_reader;
  for (size_t i = 0; i < steps_.size(); ++i)
    for (const auto& in : steps_[i].inputs)
      if (!in.empty()) last_reader[in] = i;
  const ResidualFacts facts{graph_outputs,
                            [&](const std::string& v) {
                              auto it = values_.find(v);
                              return it != values_.end() && (it->second.where == ValueSlot::Where::arena ||
                                                             it->second.where == ValueSlot::Where::device);
                            },
                            last_reader, [&](const std::string& v) { return types.at(v); }};
  SlotPlanner planner, device_planner;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& step = steps_[i];
    std::optional<ValueSlot> lent;
    if (residual_shares_output(step.node, step.inputs, i, facts)) {
      lent = values_.at(step.inputs[3]);
      step.residual_lent = true;
    }
    for (const auto& out : step.outputs) {
      if (out.empty()) continue;
      const TensorType& t = types.at(out);
      const size_t bytes = shape_numel(t.shape) * dtype_size(t.dtype);
      if (lent && out == step.outputs[0]) {
        values_[out] = {lent->where, lent->index, t};
      } else if (device_values_.count(out)) {
        values_[out] = {ValueSlot::Where::device, device_planner.acquire(bytes), t};
      } else if (graph_outputs.count(out)) {
        values_[out] = {ValueSlot::Where::owned_output, owned_outputs_.size(), t};
        owned_outputs_.emplace_back(t.dtype, t.shape);
      } else {
        values_[out] = {ValueSlot::Where::arena, planner.acquire(bytes), t};
      }
    }
    // Free values whose last reader is this step (and outputs nobody reads).
    auto release_if_dead = [&](const std::string& name) {
      auto v = values_.find(name);
      if (v == values_.end()) return;
      SlotPlanner* owner = v->second.where == ValueSlot::Where::arena    ? &planner
                           : v->second.where == ValueSlot::Where::device ? &device_planner
                                                                         : nullptr;
      auto lr = last_reader.find(name);
      if (owner && (lr == last_reader.end() || lr->second <= i)) owner->release(v->second.index);
    };
    std::set<std::string> seen;
    if (lent) seen.insert(step.inputs[3]);  // its slot now holds the output
    for (const auto& in : step.inputs)
      if (!in.empty() && seen.insert(in).second) release_if_dead(in);
    for (const auto& out : step.outputs)
      if (!out.empty() && !last_reader.count(out)) release_if_dead(out);
  }
  for (size_t bytes : planner.sizes()) arena_.emplace_back(DType::u8, Shape{static_cast<int64_t>(bytes)});
  for (size_t bytes : device_planner.sizes()) {
    CP_ASSIGN_OR_RETURN(Tensor buffer, device_->allocate(DType::u8, Shape{static_cast<int64_t>(bytes)}));
    device_arena_.push_back(std::move(buffer));
  }
  return {};
}

void PlainSession::resolve_io() {
  run_inputs_.resize(input_names_.size());
  auto tensor_for = [&](const std::string& name, int& graph_input) -> const Tensor* {
    graph_input = -1;
    if (auto c = constants_.find(name); c != constants_.end()) return &c->second;
    const ValueSlot& v = values_.at(name);
    switch (v.where) {
      case ValueSlot::Where::graph_input: graph_input = static_cast<int>(v.index); return nullptr;
      case ValueSlot::Where::owned_output: return &owned_outputs_[v.index];
      case ValueSlot::Where::arena:
      case ValueSlot::Where::device:
      case ValueSlot::Where::constant: break;
    }
    auto [it, inserted] = value_views_.try_emplace(name);
    if (inserted && v.where == ValueSlot::Where::device)
      it->second = Tensor::device(v.type.dtype, v.type.shape, device_arena_[v.index].raw());
    else if (inserted) it->second = Tensor::view(v.type.dtype, v.type.shape, arena_[v.index].raw());
    return &it->second;
  };
  for (const Step& step : steps_) {
    StepIo sio;
    for (const auto& in : step.inputs) {
      int gi = -1;
      sio.in.push_back(in.empty() ? nullptr : tensor_for(in, gi));
      sio.in_graph_input.push_back(gi);
    }
    for (const auto& out : step.outputs) {
      int gi = -1;
      sio.out.push_back(out.empty() ? nullptr : const_cast<Tensor*>(tensor_for(out, gi)));
    }
    io_.push_back(std::move(sio));
  }
  outputs_.resize(output_names_.size());
  for (size_t i = 0; i < steps_.size(); ++i) {
    for (size_t j = 0; j < steps_[i].inputs.size(); ++j)
      if (!steps_[i].inputs[j].empty()) readers_of_[steps_[i].inputs[j]].emplace_back(i, j);
    for (const auto& out : steps_[i].outputs)
      if (!out.empty()) producer_of_[out] = i;
  }
}

}  // namespace caliprox
