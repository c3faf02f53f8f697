#include "knobs/fused_conv.h"

#include "ir/op_registry.h"
#include "ir/passes.h"

namespace caliprox {

namespace {

// The graph as a session's passes see it: the nodes it executes (the ones
// it folds left out, by fold_graph's rule: Shape, and nodes whose inputs are
// all constant) and the type of every value inference could tell.
struct StaticView {
  std::vector<Node> nodes;
  std::map<std::string, TensorType> types;
  std::set<std::string> folded_values;  // computed from constants when a session is made: unknown here
};

StaticView static_view(const Graph& g) {
  StaticView v;
  for (const auto& [name, t] : g.initializers) v.types[name] = t.type();
  for (const ValueInfo& in : g.inputs) {
    if (!in.dims || in.dtype == DType::undefined) continue;
    Shape s;
    for (const Dim& d : *in.dims) s.push_back(d.fixed() ? d.value : 1);
    v.types[in.name] = {in.dtype, s};
  }
  for (const Node& node : g.nodes) {
    std::vector<InferInput> inputs;
    bool all_constant = true, known = true;
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        inputs.push_back({});
        continue;
      }
      auto init = g.initializers.find(name);
      if (init == g.initializers.end() && !v.folded_values.count(name)) all_constant = false;
      auto t = v.types.find(name);
      known = known && t != v.types.end();
      inputs.push_back({known ? t->second : TensorType{}, init == g.initializers.end() ? nullptr : &init->second});
    }
    if (node.op_type == "Shape" || (all_constant && !node.inputs.empty())) {
      for (const auto& out : node.outputs)
        if (!out.empty()) v.folded_values.insert(out);
    } else {
      v.nodes.push_back(node);
    }
    const OpDef* op = node.domain.empty() ? find_op(node.op_type) : nullptr;
    if (!known || op == nullptr) continue;
    auto out = op->infer(node, inputs);
    if (!out.ok()) continue;  // e.g. Reshape to a computed shape: its value is unknown here
    for (size_t i = 0; i < node.outputs.size() && i < out->size(); ++i)
      if (!node.outputs[i].empty()) v.types[node.outputs[i]] = (*out)[i];
  }
  return v;
}

const Node* sole_reader(const std::vector<Node>& nodes, const std::string& value) {
  const Node* found = nullptr;
  for (const Node& n : nodes)
    for (const auto& in : n.inputs)
      if (in == value) {
        if (found != nullptr && found != &n) return nullptr;
        found = &n;
      }
  return found;
}

bool may_fuse(const Node& n) {
  static const std::set<std::string> ops = {"BatchNormalization", "Add",       "Relu", "LeakyRelu", "Clip", "Sigmoid",
                                            "HardSigmoid",        "HardSwish", "Tanh", "Mul"};
  return ops.count(n.op_type) != 0;
}

// The passes decide from the constants and types of the nodes after the
// Conv; where those are unknown here, a session could decide otherwise.
Status check_decidable(const Node& conv, const StaticView& v, const std::set<std::string>& keep) {
  std::string value = conv.outputs[0];
  for (int step = 0; step < 6 && !keep.count(value); ++step) {
    const Node* r = sole_reader(v.nodes, value);
    if (r == nullptr || !may_fuse(*r)) break;
    for (const auto& in : r->inputs) {
      if (in.empty() || in == value) continue;
      if (v.folded_values.count(in) || !v.types.count(in))
        return unsupported("{} follows {} and reads '{}', whose {} known only when a session computes it; whether "
                           "the executor fuses it into the Conv (and so where a knob rounds) cannot be told from the "
                           "graph alone",
                           r->describe(), conv.describe(), in, v.folded_values.count(in) ? "value is" : "shape is");
    }
    if (r->outputs.empty() || r->outputs[0].empty()) break;
    value = r->outputs[0];
  }
  return {};
}

Status check_conv(const Graph& g, const std::string& name, const StaticView& v) {
  const Node* conv = g.find_node(name);
  if (conv == nullptr) return invalid_input("node '{}' is not a node of graph '{}'", name, g.name);
  if (conv->op_type != "Conv" || !conv->domain.empty())
    return invalid_input("{}: knobs apply to Conv nodes only", conv->describe());
  if (conv->inputs.size() < 2 || conv->outputs.empty() || conv->outputs[0].empty())
    return invalid_input("{}: a Conv needs inputs X and W and an output", conv->describe());
  auto w = g.initializers.find(conv->inputs[1]);
  if (w == g.initializers.end() || w->second.dtype() != DType::f32)
    return unsupported("{}: its weight '{}' is not a float32 initializer; only constant weights can be approximated "
                       "into the exported file",
                       conv->describe(), conv->inputs[1]);
  if (conv->inputs.size() > 2 && !conv->inputs[2].empty()) {
    auto b = g.initializers.find(conv->inputs[2]);
    if (b == g.initializers.end() || b->second.dtype() != DType::f32)
      return unsupported("{}: its bias '{}' is not a float32 initializer", conv->describe(), conv->inputs[2]);
  }
  for (const std::string& value : {conv->inputs[0], conv->outputs[0]}) {
    auto t = v.types.find(value);
    if (t == v.types.end())
      return unsupported("{}: the shape of '{}' cannot be inferred from the graph alone (it depends on values "
                         "computed at run time); knobs are lowered where shapes are static",
                         conv->describe(), value);
    if (t->second.dtype != DType::f32)
      return unsupported("{}: '{}' is {}; knobs apply to float32 convolutions", conv->describe(), value,
                         dtype_name(t->second.dtype));
  }
  return {};
}

const Node* producer_of(const Graph& g, const std::string& value) {
  for (const Node& n : g.nodes)
    for (const auto& out : n.outputs)
      if (out == value) return &n;
  return nullptr;
}

}  // namespace

Result<std::map<std::string, FusedConv>> plan_fused_convs(const Graph& graph, const std::set<std::string>& convs) {
  const StaticView view = static_view(graph);
  std::set<std::string> keep;
  for (const ValueInfo& out : graph.outputs) keep.insert(out.name);
  for (const auto& name : convs) {
    CP_TRY(check_conv(graph, name, view));
    CP_TRY(check_decidable(*graph.find_node(name), view, keep));
  }
  std::vector<Node> nodes = view.nodes;
  std::map<std::string, Tensor> constants = graph.initializers;  // shares the data; folding adds new tensors
  fuse_conv_chains(nodes, constants, view.types, keep);

  std::map<std::string, FusedConv> plans;
  for (const auto& name : convs) {
    const Node& conv = *graph.find_node(name);
    const Node* fused = nullptr;
    std::set<std::string> kept;
    for (const Node& n : nodes) {
      kept.insert(n.name);
      if (n.name == name && n.op_type == "Conv") fused = &n;
    }
    if (fused == nullptr) return runtime_error("{}: the executor's passes lost the node", conv.describe());
    FusedConv fc;
    fc.node = name;
    fc.input_shape = view.types.at(conv.inputs[0]).shape;
    fc.weight = constants.at(fused->inputs[1]);
    if (fused->inputs.size() > 2 && !fused->inputs[2].empty()) fc.bias = constants.at(fused->inputs[2]);
    fc.conv_output = conv.outputs[0];
    for (const Node* bn = sole_reader(view.nodes, fc.conv_output);
         bn != nullptr && bn->op_type == "BatchNormalization" && !kept.count(bn->name);
         bn = sole_reader(view.nodes, fc.conv_output)) {
      fc.folded.push_back(bn->name);
      fc.conv_output = bn->outputs[0];
    }
    if (fused->has(kAttrResidual)) {
      const Node* add = sole_reader(view.nodes, fc.conv_output);
      if (add == nullptr || add->op_type != "Add")
        return runtime_error("{}: the executor fused a residual but no Add reads '{}'", conv.describe(),
                             fc.conv_output);
      fc.residual_add = add->name;
      fc.residual = fused->inputs[3];
    }
    fc.output = fused->outputs[0];
    const Node* producer = fc.output == fc.conv_output ? &conv : producer_of(graph, fc.output);
    if (producer == nullptr) return runtime_error("{}: no node produces '{}'", conv.describe(), fc.output);
    fc.output_producer = producer->name;
    plans.emplace(name, std::move(fc));
  }
  return plans;
}

}  // namespace caliprox
