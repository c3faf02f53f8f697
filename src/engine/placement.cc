// Session construction, step 2: one kernel per node, from the session's
// backend where it supports the node and from the reference backend
// otherwise, each in the layout it computes in; layout conversions become
// steps of their own, shared by every consumer of the converted value.
// Then the knob sites: the executed 2-D convolutions.
#include <algorithm>
#include <optional>

#include "backends/layout.h"
#include "engine/device_steps.h"
#include "engine/plain_session.h"
#include "ir/op_registry.h"
#include "util/log.h"

namespace caliprox {

namespace {

// Which values are not NCHW, and the conversion steps made so far.
class LayoutPlan {
 public:
  LayoutPlan(std::map<std::string, TensorType>& types, const std::map<std::string, Tensor>& constants,
             std::vector<Step>& steps)
      : types_(types), constants_(constants), steps_(steps) {}

  Layout current(const std::string& v) const {
    auto it = layout_of_.find(v);
    return it == layout_of_.end() ? Layout::nchw : it->second;
  }
  TensorType type_of(const std::string& v) const {
    auto c = constants_.find(v);
    return c == constants_.end() ? types_.at(v) : c->second.type();
  }
  void set(const std::string& v, Layout l) { layout_of_[v] = l; }

  // The name under which `v` is available in layout `want` (converting once).
  std::string in_layout(const std::string& v, Layout want) {
    const Layout have = current(v);
    const TensorType t = type_of(v);
    if (have == want || t.shape.size() != 4 || layout_neutral(t.shape)) return v;
    const std::string key = fmt::format("{}#{}", v, layout_name(want));
    if (auto it = converted_.find(key); it != converted_.end()) return it->second;
    Step conv;
    conv.kind = StepKind::layout_conversion;
    conv.node.name = key;
    conv.node.op_type = kLayoutConversionOp;
    conv.node.inputs = {v};
    conv.node.outputs = {key};
    conv.inputs = conv.node.inputs;
    conv.outputs = conv.node.outputs;
    conv.kernel = make_layout_kernel(have, want);
    conv.backend = kEngineBackend;
    types_[key] = t;
    if (want != Layout::nchw) layout_of_[key] = want;
    steps_.push_back(std::move(conv));
    converted_[key] = key;
    return key;
  }

  // Renames the node's non-constant inputs to their versions in `layout`.
  void convert_inputs(Node& node, const NodeContext& ctx, Layout layout) {
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (!node.inputs[i].empty() && !ctx.constants[i]) node.inputs[i] = in_layout(node.inputs[i], layout);
  }

 private:
  std::map<std::string, TensorType>& types_;
  const std::map<std::string, Tensor>& constants_;
  std::vector<Step>& steps_;
  std::map<std::string, Layout> layout_of_;       // values that are not NCHW
  std::map<std::string, std::string> converted_;  // "<value>#<layout>" -> name of the converted value
};

// Prepares `node` on the device backend and adds its step, reading its
// non-constant inputs and writing its outputs on the device; false when the
// backend declines the node (Errc::unsupported, e.g. a buffer larger than the
// device allows): it then runs on the host, as the log says.
Result<bool> place_on_device(Node& node, NodeContext& ctx, Backend& backend, LayoutPlan& layouts,
                             DeviceResidency& residency, std::vector<Step>& steps) {
  ctx.layout = Layout::nchw;
  auto kernel = backend.prepare(ctx);
  if (!kernel.ok()) {
    if (kernel.status().code() != Errc::unsupported) return kernel.status();
    log_info("{} runs on the host: {}", node.describe(), kernel.status().message());
    return false;
  }
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (!node.inputs[i].empty() && !ctx.constants[i])
      node.inputs[i] = residency.for_device_reader(layouts.in_layout(node.inputs[i], Layout::nchw));
  for (auto& out : node.outputs)
    if (!out.empty()) out = residency.device_output(out);
  Step step;
  step.node = std::move(node);
  step.inputs = step.node.inputs;
  step.outputs = step.node.outputs;
  step.kernel = std::move(kernel).value();
  step.backend = std::string(backend.name());
  step.input_types = ctx.input_types;
  step.constants = ctx.constants;
  step.output_types = ctx.output_types;
  step.on_device = true;
  steps.push_back(std::move(step));
  return true;
}

std::string fused_summary(const Node& node) {
  std::vector<std::string> parts;
  if (node.attr_int(kAttrResidual, 0) == 1) parts.push_back("Add");
  if (auto it = node.attrs.find(kAttrActivation); it != node.attrs.end() && it->second.kind == Attribute::Kind::s)
    parts.push_back(it->second.s);
  return fmt::format("{}", fmt::join(parts, "+"));
}

}  // namespace

bool residual_shares_output(const Node& node, const std::vector<std::string>& inputs, size_t at,
                            const ResidualFacts& facts) {
  if (node.op_type != "Conv" || node.attr_int(kAttrResidual, 0) != 1 || inputs.size() < 4 || node.outputs.empty() ||
      node.outputs[0].empty() || facts.graph_outputs.count(node.outputs[0]))
    return false;
  const std::string& r = inputs[3];
  return !r.empty() && facts.computed(r) && !facts.graph_outputs.count(r) && facts.last_reader.at(r) == at &&
         std::count(inputs.begin(), inputs.end(), r) == 1 && facts.type_of(r) == facts.type_of(node.outputs[0]);
}

Status PlainSession::place_nodes(std::vector<Node> to_run, std::map<std::string, TensorType>& types,
                                 const std::set<std::string>& graph_outputs, int threads) {
  LayoutPlan layouts(types, constants_, steps_);
  // Which Convs will get their fused residual in the output's buffer (the
  // memory plan lends it when the residual dies there): kernels are told,
  // so that they pick a variant that sums in place.
  std::map<std::string, size_t> last_node_reader;
  for (size_t n = 0; n < to_run.size(); ++n)
    for (const auto& in : to_run[n].inputs)
      if (!in.empty()) last_node_reader[in] = n;
  const ResidualFacts facts{
      graph_outputs,
      [&](const std::string& v) {
        return !constants_.count(v) && std::find(input_names_.begin(), input_names_.end(), v) == input_names_.end();
      },
      last_node_reader, [&](const std::string& v) { return layouts.type_of(v); }};

  steps_.reserve(to_run.size() * 2);
  std::optional<DeviceResidency> residency;
  if (device_) residency.emplace(*device_, types, steps_, transfers_);
  for (size_t node_index = 0; node_index < to_run.size(); ++node_index) {
    Node& node = to_run[node_index];
    NodeContext ctx{node, {}, {}, {}, threads};
    ctx.residual_in_place = residual_shares_output(node, node.inputs, node_index, facts);
    for (const auto& in : node.inputs) {
      auto c = in.empty() ? constants_.end() : constants_.find(in);
      ctx.input_types.push_back(in.empty() ? TensorType{} : layouts.type_of(in));
      ctx.constants.push_back(c == constants_.end() ? nullptr : &c->second);
    }
    for (const auto& out : node.outputs) ctx.output_types.push_back(out.empty() ? TensorType{} : types.at(out));
    bool writes_graph_output = false;
    for (const auto& out : node.outputs) writes_graph_output = writes_graph_output || graph_outputs.count(out);

    Backend* reference = reference_.get();
    Backend* chosen = backend_->supports(ctx) ? backend_ : reference;
    if (residency && chosen == backend_) {
      CP_ASSIGN_OR_RETURN(const bool placed, place_on_device(node, ctx, *backend_, layouts, *residency, steps_));
      if (placed) continue;
      chosen = reference;
    }
    if (residency)
      for (size_t i = 0; i < node.inputs.size(); ++i)
        if (!node.inputs[i].empty() && !ctx.constants[i]) residency->for_host_reader(node.inputs[i]);
    // Channels-last where the backend computes in it; element-wise ops (and
    // ops the backend runs in either layout) follow their first activation
    // input; graph outputs are always NCHW.
    Layout layout = Layout::nchw;
    if (!writes_graph_output) {
      if (chosen == backend_ && backend_->supports_nhwc(ctx)) {
        layout = Layout::nhwc;
        // An op that computes in either layout keeps its inputs' one.
        if (layout_following(ctx))
          for (size_t i = 0; i < node.inputs.size(); ++i)
            if (!node.inputs[i].empty() && !ctx.constants[i]) {
              layout = layouts.current(node.inputs[i]);
              break;
            }
      } else if (layout_transparent(ctx)) {
        for (size_t i = 0; i < node.inputs.size(); ++i)
          if (!node.inputs[i].empty() && !ctx.constants[i]) {
            layout = layouts.current(node.inputs[i]);
            break;
          }
      }
    }
    ctx.layout = layout;
    layouts.convert_inputs(node, ctx, layout);

    auto kernel = chosen->prepare(ctx);
    if (!kernel.ok() && chosen != reference && kernel.status().code() == Errc::unsupported) {
      // Only NCHW is guaranteed to have a reference kernel.
      chosen = reference;
      if (layout != Layout::nchw && !layout_transparent(ctx)) {
        ctx.layout = layout = Layout::nchw;
        layouts.convert_inputs(node, ctx, layout);
      }
      kernel = chosen->prepare(ctx);
    }
    if (!kernel.ok()) return kernel.status();
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (!node.outputs[i].empty() && layout != Layout::nchw && ctx.output_types[i].shape.size() == 4)
        layouts.set(node.outputs[i], layout);

    Step step;
    step.node = std::move(node);
    step.inputs = step.node.inputs;
    step.outputs = step.node.outputs;
    step.kernel = std::move(kernel).value();
    step.backend = std::string(chosen->name());
    step.input_types = ctx.input_types;
    step.constants = ctx.constants;
    step.output_types = ctx.output_types;
    step.layout = layout;
    steps_.push_back(std::move(step));
  }
  if (residency) {
    for (const auto& out : graph_outputs) residency->for_host_reader(out);
    device_values_ = residency->device_values();
  }
  return {};
}

// The 2-D convolutions that are executed (not folded) take knobs.
void PlainSession::find_knob_sites() {
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& st = steps_[i];
    st.configured = st.active = st.kernel.get();
    st.active_backend = &st.backend;
    if (st.kind != StepKind::node) continue;
    step_of_node_[st.node.name] = i;
    if (st.node.op_type != "Conv" || st.input_types.size() < 2 || st.input_types[0].shape.size() != 4) continue;
    auto g = conv_geometry(st.node, st.input_types[0].shape, st.input_types[1].shape);
    if (!g.ok()) continue;
    KnobSite site{st.node.name, st.node.op_type, *g, conv_layer_flops(*g), fused_summary(st.node), {}, {}};
    for (const Knob& k : knob_catalogue())
      if (knob_applies(k, st.node, st.input_types[0].shape, st.input_types[1].shape).ok()) site.knobs.push_back(&k);
    st.site = static_cast<int>(sites_.size());
    sites_.push_back(std::move(site));
  }
}

}  // namespace caliprox
