// Session construction, step 1: bind the graph's inputs to the given shapes
// (or constant tensors), infer every value's type, and evaluate the nodes
// whose inputs are all constant with the reference kernels (this folds
// shape subgraphs). If, Loop and Scan are inlined on the way
// (fold_control.cc). What is left runs on data (plain_session.h).
#include <algorithm>

#include "engine/fold_state.h"
#include "engine/plain_session.h"
#include "ir/op_registry.h"

namespace caliprox {

namespace {

Status resolve_input_type(const ValueInfo& info, const Shape& shape, std::map<std::string, int64_t>& symbols) {
  if (!info.dims) return {};
  const auto& dims = *info.dims;
  if (dims.size() != shape.size())
    return invalid_input("input '{}' has rank {} in the model, but a tensor of shape {} was given", info.name,
                         dims.size(), shape_str(shape));
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i].fixed() && dims[i].value != shape[i])
      return invalid_input("input '{}': dimension {} is {} in the model, but {} was given (shape {})", info.name, i,
                           dims[i].value, shape[i], shape_str(shape));
    if (!dims[i].symbol.empty()) {
      auto [it, inserted] = symbols.emplace(dims[i].symbol, shape[i]);
      if (!inserted && it->second != shape[i])
        return invalid_input("input '{}': symbolic dimension '{}' is {} here but {} in another input", info.name,
                             dims[i].symbol, shape[i], it->second);
    }
  }
  return {};
}

// The axes [start, end) of its input that Shape outputs (start/end, opset 15).
std::pair<int64_t, int64_t> shape_axes(const Node& node, const Shape& in) {
  const auto rank = static_cast<int64_t>(in.size());
  auto clamp_axis = [rank](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  return {clamp_axis(node.attr_int("start", 0)), clamp_axis(node.attr_int("end", rank))};
}

// Shape's output computed from the input type alone (ONNX Shape with start/end, opset 15).
Tensor shape_value(const Node& node, const Shape& in) {
  const auto [start, end] = shape_axes(node, in);
  int64_t n = std::max<int64_t>(0, end - start);
  Tensor t(DType::i64, {n});
  for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = in[static_cast<size_t>(start + i)];
  return t;
}

// Graph inputs: bound (constant) or fed at run time with the given shapes.
Status bind_inputs(const Graph& graph, const std::map<std::string, Shape>& input_shapes,
                   const SessionOptions& options, FoldedGraph& f) {
  std::map<std::string, int64_t> symbols;
  for (const auto& [name, tensor] : options.bound_inputs) {
    const ValueInfo* info = graph.find_input(name);
    if (!info) return invalid_input("bound input '{}' is not an input of the model", name);
    if (info->dtype != DType::undefined && info->dtype != tensor.dtype())
      return invalid_input("input '{}' expects {} but a {} tensor was given", name, dtype_name(info->dtype),
                           dtype_name(tensor.dtype()));
    CP_TRY(resolve_input_type(*info, tensor.shape(), symbols));
    f.constants[name] = tensor;
    f.types[name] = tensor.type();
  }
  for (const auto& [name, shape] : input_shapes) {
    if (!graph.find_input(name)) {
      std::vector<std::string> names;
      for (const auto& v : graph.inputs) names.push_back(v.name);
      return invalid_input("the model has no input named '{}' (its inputs: {})", name, fmt::join(names, ", "));
    }
  }
  for (const auto& info : graph.inputs) {
    if (options.bound_inputs.count(info.name)) continue;
    auto it = input_shapes.find(info.name);
    if (it == input_shapes.end()) return invalid_input("no tensor given for model input '{}'", info.name);
    CP_TRY(check_shape(it->second, fmt::format("input '{}'", info.name)));
    CP_TRY(resolve_input_type(info, it->second, symbols));
    if (info.dtype == DType::undefined) return unsupported("input '{}' has no element type in the model", info.name);
    f.types[info.name] = {info.dtype, it->second};
    f.input_names.push_back(info.name);
    f.input_types.push_back(f.types[info.name]);
  }
  return {};
}

// Evaluates `node`, whose inputs are all constant, into f.constants.
Status fold_constant_node(const Node& node, const std::vector<InferInput>& inputs,
                          const std::vector<TensorType>& out_types, Backend& reference, FoldedGraph& f) {
  NodeContext ctx{node, {}, {}, {}, 1};
  std::vector<const Tensor*> in_ptrs;
  for (const auto& in : inputs) {
    ctx.input_types.push_back(in.type);
    ctx.constants.push_back(in.value);
    in_ptrs.push_back(in.value);
  }
  ctx.output_types.assign(out_types.begin(), out_types.begin() + static_cast<long>(node.outputs.size()));
  auto kernel = reference.prepare(ctx);
  if (!kernel.ok()) return kernel.status().with_context("while folding constants");
  std::vector<Tensor> outs;
  std::vector<Tensor*> out_ptrs;
  outs.reserve(node.outputs.size());
  for (size_t i = 0; i < node.outputs.size(); ++i) outs.emplace_back(ctx.output_types[i].dtype, ctx.output_types[i].shape);
  for (size_t i = 0; i < node.outputs.size(); ++i) out_ptrs.push_back(node.outputs[i].empty() ? nullptr : &outs[i]);
  CP_TRY((*kernel)->run(in_ptrs, out_ptrs).with_context(node.describe()));
  for (size_t i = 0; i < node.outputs.size(); ++i)
    if (!node.outputs[i].empty()) f.constants[node.outputs[i]] = std::move(outs[i]);
  return {};
}

}  // namespace

InferInput input_of(const std::string& name, const FoldState& s) {
  if (name.empty()) return {};
  auto t = s.f.types.find(name);
  if (t == s.f.types.end()) return {};
  auto c = s.f.constants.find(name);
  return {t->second, c == s.f.constants.end() ? nullptr : &c->second};
}

Status fold_node(const Node& node, FoldState& s) {
  FoldedGraph& f = s.f;
  if (is_control_flow(node)) return inline_control_flow(node, s);
  const OpDef* op = find_op(node.op_type);
  if (!op || !(node.domain.empty() || node.domain == "ai.onnx"))
    return unsupported("unsupported op '{}' ({}) in {}", node.op_type, node.describe(), s.source_path);
  std::vector<InferInput> inputs;
  bool all_constant = true;
  for (const auto& name : node.inputs) {
    inputs.push_back(input_of(name, s));
    if (name.empty()) continue;
    if (!inputs.back().present())
      return invalid_input("{} reads '{}', which no node, initializer or input produces", node.describe(), name);
    if (inputs.back().value == nullptr) all_constant = false;
  }
  CP_ASSIGN_OR_RETURN(std::vector<TensorType> out_types, op->infer(node, inputs));
  if (out_types.size() < node.outputs.size())
    return runtime_error("{}: shape inference returned {} outputs for {} declared", node.describe(), out_types.size(),
                         node.outputs.size());
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    if (node.outputs[i].empty()) continue;
    CP_TRY(check_shape(out_types[i].shape, fmt::format("{} output '{}'", node.describe(), node.outputs[i])));
    f.types[node.outputs[i]] = out_types[i];
  }

  if (node.op_type == "Shape") {
    f.constants[node.outputs[0]] = shape_value(node, inputs[0].type.shape);
    // A shape that includes axis 0 of a runtime value depends on the batch.
    if (const auto axes = shape_axes(node, inputs[0].type.shape); !all_constant && axes.first == 0 && axes.second > 0)
      f.batch_derived.insert(node.outputs[0]);
    return {};
  }
  if (all_constant && !node.inputs.empty()) {
    auto derived = [&](const std::string& v) { return f.batch_derived.count(v) != 0; };
    if (std::any_of(node.inputs.begin(), node.inputs.end(), derived))
      for (const auto& out : node.outputs) f.batch_derived.insert(out);
    return fold_constant_node(node, inputs, out_types, s.reference, f);
  }
  f.nodes.push_back(node);
  return {};
}

Result<FoldedGraph> fold_graph(const Graph& graph, const std::map<std::string, Shape>& input_shapes,
                               const SessionOptions& options) {
  FoldedGraph f;
  f.constants = graph.initializers;
  for (const auto& [name, t] : f.constants) f.types[name] = t.type();
  CP_TRY(bind_inputs(graph, input_shapes, options, f));
  for (const auto& o : graph.outputs) f.output_names.push_back(o.name);

  const std::unique_ptr<Backend> reference = make_reference_backend({});
  FoldState state{f, *reference, graph.source_path, 0, {}};
  for (const Node& node : graph.nodes) CP_TRY(fold_node(node, state));
  return f;
}

}  // namespace caliprox
