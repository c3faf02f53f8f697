// Knob kernels of a plain session: prepared on demand per (node, knob) and
// cached, in the step's layout where the backend has one, or in NCHW inside
// an adapter that converts at the kernel's boundary; and configure(), which
// switches between them.
#include <algorithm>

#include "backends/layout.h"
#include "engine/device_steps.h"
#include "engine/plain_session.h"
#include "util/log.h"

namespace caliprox {

namespace {

// Runs an NCHW kernel inside an NHWC stretch of the graph: converts the
// non-constant rank-4 inputs to NCHW scratch tensors and the rank-4 outputs
// back. Used when a knob has no channels-last kernel in the chosen backend,
// so the layout plan of the session stays valid under every configuration.
class NchwAdapter final : public Kernel {
 public:
  NchwAdapter(std::unique_ptr<Kernel> inner, const std::vector<TensorType>& input_types,
              const std::vector<const Tensor*>& constants, const std::vector<TensorType>& output_types)
      : inner_(std::move(inner)),
        to_nchw_(make_layout_kernel(Layout::nhwc, Layout::nchw)),
        to_nhwc_(make_layout_kernel(Layout::nchw, Layout::nhwc)) {
    for (size_t i = 0; i < input_types.size(); ++i) {
      const bool convert = input_types[i].shape.size() == 4 && constants[i] == nullptr &&
                           input_types[i].dtype != DType::undefined && !layout_neutral(input_types[i].shape);
      in_scratch_.push_back(convert ? std::make_unique<Tensor>(input_types[i].dtype, input_types[i].shape) : nullptr);
    }
    for (const auto& t : output_types) {
      const bool convert = t.shape.size() == 4 && t.dtype != DType::undefined && !layout_neutral(t.shape);
      out_scratch_.push_back(convert ? std::make_unique<Tensor>(t.dtype, t.shape) : nullptr);
    }
    ins_.resize(input_types.size());
    outs_.resize(output_types.size());
  }

  // Converted inputs and outputs live in scratch tensors; unconverted ones
  // (layout-neutral shapes) are the inner kernel's business.
  bool residual_in_place() const override {
    return (in_scratch_.size() > 3 && in_scratch_[3]) || inner_->residual_in_place();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    for (size_t i = 0; i < inputs.size(); ++i) {
      ins_[i] = inputs[i];
      if (inputs[i] && in_scratch_[i]) {
        const Tensor* from[] = {inputs[i]};
        Tensor* to[] = {in_scratch_[i].get()};
        CP_TRY(to_nchw_->run(from, to));
        ins_[i] = in_scratch_[i].get();
      }
    }
    for (size_t i = 0; i < outputs.size(); ++i)
      outs_[i] = outputs[i] && out_scratch_[i] ? out_scratch_[i].get() : outputs[i];
    CP_TRY(inner_->run(ins_, outs_));
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!outputs[i] || !out_scratch_[i]) continue;
      const Tensor* from[] = {out_scratch_[i].get()};
      Tensor* to[] = {outputs[i]};
      CP_TRY(to_nhwc_->run(from, to));
    }
    return {};
  }

 private:
  std::unique_ptr<Kernel> inner_;
  std::unique_ptr<Kernel> to_nchw_, to_nhwc_;
  std::vector<std::unique_ptr<Tensor>> in_scratch_, out_scratch_;
  std::vector<const Tensor*> ins_;
  std::vector<Tensor*> outs_;
};

}  // namespace

// What a knob kernel of `step` is prepared from (layout left to the caller).
NodeContext PlainSession::knob_context(const Step& step, const Knob& knob) const {
  NodeContext ctx{step.node, step.input_types, step.constants, step.output_types, threads_};
  ctx.knob = &knob;
  ctx.residual_in_place = step.residual_lent;
  if (auto r = calibrated_ranges_.find(step.node.name); r != calibrated_ranges_.end()) ctx.input_range = r->second;
  return ctx;
}

Result<Kernel*> PlainSession::knob_kernel(Step& step, const Knob& knob) {
  if (auto it = step.knob_kernels.find(&knob); it != step.knob_kernels.end()) return it->second.kernel.get();
  NodeContext ctx = knob_context(step, knob);
  if (knob.kind == KnobKind::int8 && !ctx.input_range)
    return invalid_input("knob 'int8' on {} needs the range of its input calibrated on the experiment's calibrate "
                         "split, and none was given",
                         step.node.describe());
  Backend* chosen = backend_->supports(ctx) ? backend_ : reference_.get();
  const bool nhwc = step.layout == Layout::nhwc;
  ctx.layout = nhwc && chosen == backend_ && backend_->supports_nhwc(ctx) ? Layout::nhwc : Layout::nchw;
  auto kernel = chosen->prepare(ctx);
  if (!kernel.ok() && chosen != reference_.get() && kernel.status().code() == Errc::unsupported) {
    chosen = reference_.get();
    ctx.layout = Layout::nchw;
    kernel = chosen->prepare(ctx);
  }
  if (!kernel.ok()) return kernel.status().with_context(fmt::format("knob '{}'", knob.name));
  std::unique_ptr<Kernel> k = std::move(kernel).value();
  if (step.on_device && chosen != backend_)
    k = run_on_host_for_device(std::move(k), *device_, step.input_types, step.constants, step.output_types, transfers_);
  if (nhwc && ctx.layout == Layout::nchw)
    k = std::make_unique<NchwAdapter>(std::move(k), step.input_types, step.constants, step.output_types);
  auto& slot = step.knob_kernels[&knob];
  slot = {std::move(k), std::string(chosen->name())};
  return slot.kernel.get();
}

Kernel* PlainSession::codes_kernel(Step& step, const ActivationCodes& codes) {
  if (step.knob == nullptr || (step.knob->kind != KnobKind::int8 && step.knob->kind != KnobKind::bf16)) return nullptr;
  auto [it, fresh] = step.codes_kernels.try_emplace({step.knob, codes});
  if (!fresh) return it->second.kernel.get();
  NodeContext ctx = knob_context(step, *step.knob);
  ctx.layout = step.layout;
  ctx.output_codes = codes;
  // Only the backend's own kernel in the step's layout: codes are not converted.
  if (!backend_->supports(ctx) || (ctx.layout == Layout::nhwc && !backend_->supports_nhwc(ctx))) return nullptr;
  auto kernel = backend_->prepare(ctx);
  if (!kernel.ok()) {
    log_debug("{}: no kernel writing low-precision codes: {}", step.node.describe(), kernel.status().message());
    return nullptr;
  }
  it->second = {std::move(kernel).value(), std::string(backend_->name())};
  return it->second.kernel.get();
}


// Validates `config` and prepares its kernels; nothing is switched yet.
Result<std::vector<std::pair<Step*, const Knob*>>> PlainSession::plan_configuration(const KnobConfig& config) {
  std::vector<std::pair<Step*, const Knob*>> plan;
  for (const auto& [node, knob_name] : config) {
    const Knob* knob = find_knob(knob_name);
    if (auto choice = parse_knob_choice(knob_name); choice.ok() && choice->reshape != nullptr)
      return invalid_input("configuration: node '{}': '{}' reshapes the graph, which a session cannot do (the "
                           "evaluator rewrites the graph before it builds sessions)",
                           node, knob_name);
    if (!knob) return invalid_input("configuration: node '{}': unknown knob '{}'{}", node, knob_name, suggest_knob(knob_name));
    auto it = step_of_node_.find(node);
    if (it == step_of_node_.end()) {
      if (knob->kind == KnobKind::exact) continue;  // e.g. a node folded away: exact anyway
      std::vector<std::string> names;
      for (const auto& site : sites_) names.push_back(site.node);
      return invalid_input("configuration: node '{}' (knob '{}') is not a node of this network that takes knobs "
                           "(those are: {})",
                           node, knob_name, names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", ")));
    }
    Step& step = steps_[it->second];
    if (knob->kind != KnobKind::exact) {
      if (step.input_types.size() < 2)
        return invalid_input("knob '{}' does not apply to {}: it applies to Conv only", knob_name, step.node.describe());
      CP_TRY(knob_applies(*knob, step.node, step.input_types[0].shape, step.input_types[1].shape)
                 .with_context("configuration"));
    }
    plan.emplace_back(&step, knob->kind == KnobKind::exact ? nullptr : knob);
  }
  for (auto& [step, knob] : plan)
    if (knob) CP_TRY(knob_kernel(*step, *knob).status());
  return plan;
}

Status PlainSession::configure(const KnobConfig& config) {
  // Validate and prepare everything first, switch only when all is well.
  CP_ASSIGN_OR_RETURN(auto plan, plan_configuration(config));
  for (Step& step : steps_) {
    step.configured = step.kernel.get();
    step.active_backend = &step.backend;
    step.knob = nullptr;
  }
  for (auto& [step, knob] : plan) {
    if (!knob) continue;
    auto& slot = step->knob_kernels.at(knob);
    step->configured = slot.kernel.get();
    step->active_backend = &slot.backend;
    step->knob = knob;
  }
  config_.clear();
  for (auto& [step, knob] : plan)
    if (knob) config_[step->node.name] = knob->name;
  plan_run();
  return {};
}

size_t PlainSession::release_idle_kernels() {
  size_t freed = 0;
  for (Step& step : steps_) {
    for (auto it = step.knob_kernels.begin(); it != step.knob_kernels.end();) {
      if (it->second.kernel.get() == step.configured) {
        ++it;
      } else {
        it = step.knob_kernels.erase(it);
        ++freed;
      }
    }
    for (auto it = step.codes_kernels.begin(); it != step.codes_kernels.end();) {
      if (it->second.kernel && it->second.kernel.get() == step.active) {
        ++it;
      } else {
        freed += it->second.kernel ? 1 : 0;
        it = step.codes_kernels.erase(it);
      }
    }
  }
  return freed;
}

void PlainSession::set_calibrated_ranges(std::map<std::string, ValueRange> ranges) {
  calibrated_ranges_ = std::move(ranges);
}

Result<std::string> PlainSession::knob_backend(const std::string& node, const Knob& knob) const {
  auto it = step_of_node_.find(node);
  if (it == step_of_node_.end() ||
      std::none_of(sites_.begin(), sites_.end(), [&](const KnobSite& s) { return s.node == node; }))
    return invalid_input("'{}' is not a layer that takes knobs", node);
  NodeContext ctx = knob_context(steps_[it->second], knob);
  if (knob.kind == KnobKind::int8 && !ctx.input_range) ctx.input_range = ValueRange{0.0f, 1.0f};
  return std::string(backend_->supports(ctx) ? backend_->name() : reference_->name());
}

std::vector<std::pair<std::string, std::string>> PlainSession::node_backends() const {
  std::vector<std::pair<std::string, std::string>> r;
  for (const auto& st : steps_) r.emplace_back(st.node.name, *st.active_backend);
  return r;
}

}  // namespace caliprox
