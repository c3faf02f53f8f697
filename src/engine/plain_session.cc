// The plain session: built by the steps listed in plain_session.h, then run()
// only executes the prepared kernels in order.
#include "engine/plain_session.h"

#include <chrono>
#include <cstring>

#include "engine/device_steps.h"
#include "ir/passes.h"
#include "util/log.h"

namespace caliprox {

Result<std::unique_ptr<PlainSession>> PlainSession::build(FoldedGraph folded, Backend& backend,
                                                          const SessionOptions& options) {
  std::unique_ptr<PlainSession> session(new PlainSession());
  PlainSession& s = *session;
  s.collect_timings_ = options.collect_timings;
  s.backend_ = &backend;
  s.device_ = backend.device_memory();
  s.reference_ = make_reference_backend({});
  s.threads_ = options.threads;
  s.calibrated_ranges_ = options.input_ranges;
  s.lowp_edges_ = options.lowp_edges;
  s.constants_ = std::move(folded.constants);
  s.input_names_ = std::move(folded.input_names);
  s.input_types_ = std::move(folded.input_types);
  for (size_t i = 0; i < s.input_names_.size(); ++i)
    s.values_[s.input_names_[i]] = {ValueSlot::Where::graph_input, i, s.input_types_[i]};
  std::map<std::string, TensorType>& types = folded.types;
  const std::set<std::string> graph_outputs(folded.output_names.begin(), folded.output_names.end());

  if (options.optimize) {
    PassStats st = fuse_conv_chains(folded.nodes, s.constants_, types, graph_outputs);
    log_debug("graph passes: {} HardSwish formed, {} BatchNorm and {} scale/shift folded, {} residual Add and {} "
              "activations fused into Conv",
              st.hardswish_formed, st.batchnorms_folded, st.affines_folded, st.residuals_fused, st.activations_fused);
  }
  for (const auto& name : folded.output_names) {
    auto t = types.find(name);
    if (t == types.end()) return invalid_input("model output '{}' is not produced by any node", name);
    s.output_names_.push_back(name);
    s.output_types_.push_back(t->second);
  }
  CP_TRY(s.place_nodes(std::move(folded.nodes), types, graph_outputs, options.threads));
  s.find_knob_sites();
  CP_TRY(s.plan_memory(types, graph_outputs));
  s.resolve_io();
  s.plan_run();
  log_debug("session: {} kernels, {} constants, arena of {} slots", s.steps_.size(), s.constants_.size(),
            s.arena_.size());
  return session;
}

const BatchSplit& PlainSession::batch_split() const {
  static const BatchSplit none;
  return none;
}

void PlainSession::observers_changed() {
  any_observed_ = false;
  for (Step& step : steps_) {
    step.observe_inputs.clear();
    step.observe_outputs.clear();
    if (step.kind != StepKind::node) continue;
    for (NodeObserver* o : observers_) {
      const ObserveWhat what = o->wants(step.node.name, step.node.op_type);
      if (what.inputs) step.observe_inputs.push_back(o);
      if (what.outputs) step.observe_outputs.push_back(o);
    }
    any_observed_ = any_observed_ || step.observed();
  }
  plan_run();  // observed nodes keep float edges
}

Status PlainSession::notify(size_t k, bool before) {
  const Step& step = steps_[k];
  const int64_t batch = input_types_.empty() || input_types_[0].shape.empty() ? 0 : input_types_[0].shape[0];
  const NodeEvent event{step.node.name, step.node.op_type, step.layout, first_sample_,
                        samples_ < 0 ? batch : samples_};
  if (step.on_device) return notify_device(k, before, event);
  for (NodeObserver* o : before ? step.observe_inputs : step.observe_outputs) {
    Status st = before ? o->before(event, io_[k].in) : o->after(event, io_[k].out);
    if (!st.ok()) return st.with_context(fmt::format("observer {} {}", before ? "before" : "after", step.node.describe()));
  }
  return {};
}

// A device node's observers see host copies of its tensors; what they leave
// in the outputs goes back to the device.
Status PlainSession::notify_device(size_t k, bool before, const NodeEvent& event) {
  Step& step = steps_[k];
  if (!step.observed_copies) step.observed_copies = std::make_shared<ObservedDeviceTensors>();
  ObservedDeviceTensors& copies = *step.observed_copies;
  const auto context = [&] { return fmt::format("observer {} {}", before ? "before" : "after", step.node.describe()); };
  if (before) {
    CP_ASSIGN_OR_RETURN(auto in, copies.inputs(*device_, io_[k].in, transfers_));
    for (NodeObserver* o : step.observe_inputs)
      if (Status st = o->before(event, in); !st.ok()) return st.with_context(context());
    return {};
  }
  CP_ASSIGN_OR_RETURN(auto out, copies.outputs(*device_, io_[k].out, transfers_));
  for (NodeObserver* o : step.observe_outputs)
    if (Status st = o->after(event, out); !st.ok()) return st.with_context(context());
  return copies.upload_outputs(*device_, io_[k].out, transfers_);
}

Status PlainSession::execute(std::span<const Tensor> inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) run_inputs_[i] = inputs[i];
  if (collect_timings_) timings_.clear();
  transfers_ = {};
  for (size_t k = 0; k < steps_.size(); ++k) {
    StepIo& sio = io_[k];
    for (size_t j = 0; j < sio.in.size(); ++j)
      if (sio.in_graph_input[j] >= 0)
        sio.in[j] = sio.in_now[j] = &run_inputs_[static_cast<size_t>(sio.in_graph_input[j])];
    Step& step = steps_[k];
    if (any_observed_ && !step.observe_inputs.empty()) CP_TRY(notify(k, true));
    auto t0 = std::chrono::steady_clock::now();
    if (sio.copy_residual) std::memcpy(step.residual_copy.raw(), sio.in[3]->raw(), sio.in[3]->nbytes());
    Status st = sio.quantize_to ? step.active->quantize_input(*sio.in[0], *sio.quantize_to) : Status{};
    if (st.ok()) st = step.active->run(sio.in_now, sio.out_now);
    if (st.ok() && collect_timings_ && device_ && (step.on_device || step.kind == StepKind::transfer))
      st = device_->synchronize();  // the node's own time, not the queue's
    if (!st.ok()) return st.with_context(step.node.describe());
    if (collect_timings_) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      timings_.push_back({step.node.name, step.node.op_type, *step.active_backend,
                          step.knob ? step.knob->name : exact_knob().name, ms});
    }
    if (any_observed_ && !step.observe_outputs.empty()) CP_TRY(notify(k, false));
  }
  // Nothing queued on a device may still read the caller's inputs.
  if (device_) CP_TRY(device_->synchronize());
  collect_outputs();
  return {};
}

void PlainSession::collect_outputs() {
  for (size_t i = 0; i < output_names_.size(); ++i) {
    const std::string& name = output_names_[i];
    if (auto c = constants_.find(name); c != constants_.end()) {
      outputs_[i] = c->second;
      continue;
    }
    const ValueSlot& v = values_.at(name);
    if (v.where == ValueSlot::Where::graph_input) outputs_[i] = run_inputs_[v.index].clone();
    else outputs_[i] = owned_outputs_[v.index];
  }
}

}  // namespace caliprox
