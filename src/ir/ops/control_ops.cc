// Checks and shape inference of the control-flow ops (ir/ops/control_ops.h).
#include "ir/ops/control_ops.h"

#include <cstdint>

#include <fmt/format.h>

#include "ir/ops/tensor_ops_util.h"
#include "ir/tensor.h"

namespace caliprox::control {

Result<const Graph*> subgraph(const Node& node, const char* key) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return invalid_input("{}: needs the subgraph attribute '{}'", node.describe(), key);
  if (it->second.kind != Attribute::Kind::graph || !it->second.g)
    return invalid_input("{}: attribute '{}' must be a graph", node.describe(), key);
  return it->second.g.get();
}

Status check_if(const Node& node) {
  if (explicit_input_count(node) != 1)
    return invalid_input("{}: If takes exactly one input (the condition), found {}", node.describe(),
                         explicit_input_count(node));
  for (const char* key : {"then_branch", "else_branch"}) {
    CP_ASSIGN_OR_RETURN(const Graph* g, subgraph(node, key));
    if (g->outputs.size() != node.outputs.size())
      return invalid_input("{}: {} has {} outputs but the node has {}", node.describe(), key, g->outputs.size(),
                           node.outputs.size());
    if (!g->inputs.empty())
      return invalid_input("{}: {} declares {} inputs; If's branches take none", node.describe(), key,
                           g->inputs.size());
  }
  return {};
}

Result<bool> if_condition(const Node& node, const InferInput& cond) {
  if (cond.type.dtype != DType::boolean)
    return invalid_input("{}: the condition '{}' is {}, expected bool", node.describe(), node.inputs[0],
                         dtype_name(cond.type.dtype));
  if (shape_numel(cond.type.shape) != 1)
    return invalid_input("{}: the condition '{}' has shape {}, expected a single element", node.describe(),
                         node.inputs[0], shape_str(cond.type.shape));
  if (!cond.value)
    return unsupported("{}: the condition '{}' depends on run-time data; caliprox inlines If when the session is "
                       "built, so the condition must follow from constants, shapes or bound integer inputs",
                       node.describe(), node.inputs[0]);
  return cond.value->at_double(0) != 0;
}

Result<LoopForm> check_loop(const Node& node) {
  CP_ASSIGN_OR_RETURN(const Graph* body, subgraph(node, "body"));
  const size_t explicit_inputs = explicit_input_count(node);
  if (explicit_inputs < 2)
    return invalid_input("{}: Loop takes the trip count and the condition (either may be \"\") before its "
                         "loop-carried values, found {} inputs",
                         node.describe(), explicit_inputs);
  LoopForm form;
  form.carried = explicit_inputs - 2;
  if (body->inputs.size() != 2 + form.carried)
    return invalid_input("{}: the body takes {} inputs; with {} loop-carried values it needs {} (iteration, "
                         "condition, the values)",
                         node.describe(), body->inputs.size(), form.carried, 2 + form.carried);
  if (body->outputs.size() < 1 + form.carried)
    return invalid_input("{}: the body has {} outputs; it needs at least {} (condition, the loop-carried values)",
                         node.describe(), body->outputs.size(), 1 + form.carried);
  form.scans = body->outputs.size() - 1 - form.carried;
  if (node.outputs.size() != form.carried + form.scans)
    return invalid_input("{}: has {} outputs; its body gives {} loop-carried values and {} scan outputs",
                         node.describe(), node.outputs.size(), form.carried, form.scans);
  return form;
}

Result<LoopBounds> loop_bounds(const Node& node, const InferInput& trip_count, const InferInput& condition) {
  LoopBounds b{INT64_MAX, true};
  if (trip_count.present()) {
    if (trip_count.type.dtype != DType::i64 || shape_numel(trip_count.type.shape) != 1)
      return invalid_input("{}: the trip count must be one int64, found {} {}", node.describe(),
                           dtype_name(trip_count.type.dtype), shape_str(trip_count.type.shape));
    if (!trip_count.value)
      return unsupported("{}: the trip count '{}' depends on run-time data; caliprox unrolls Loop when the session is "
                         "built, so it must follow from constants, shapes or bound integer inputs",
                         node.describe(), node.inputs[0]);
    b.trip_count = trip_count.value->data<int64_t>()[0];
  }
  if (condition.present()) {
    CP_ASSIGN_OR_RETURN(b.condition, loop_continues(node, condition));
  }
  return b;
}

Result<bool> loop_continues(const Node& node, const InferInput& condition) {
  if (!condition.present() || condition.type.dtype != DType::boolean || shape_numel(condition.type.shape) != 1)
    return invalid_input("{}: a loop condition must be one bool", node.describe());
  if (!condition.value)
    return unsupported("{}: the loop condition depends on run-time data; caliprox unrolls Loop when the session is "
                       "built, so it must follow from constants, shapes or bound integer inputs",
                       node.describe());
  return condition.value->at_double(0) != 0;
}

namespace {

// The per-input attribute `key` (default all 0), of `count` entries.
Result<std::vector<int64_t>> per_value(const Node& node, const char* key, size_t count) {
  std::vector<int64_t> v = node.attr_ints(key, std::vector<int64_t>(count, 0));
  if (v.size() != count)
    return invalid_input("{}: '{}' has {} entries for {} values", node.describe(), key, v.size(), count);
  return v;
}

Result<std::vector<bool>> directions(const Node& node, const char* key, size_t count) {
  CP_ASSIGN_OR_RETURN(auto v, per_value(node, key, count));
  std::vector<bool> reversed;
  for (int64_t d : v) {
    if (d != 0 && d != 1) return invalid_input("{}: '{}' holds {} (0 forward, 1 reverse)", node.describe(), key, d);
    reversed.push_back(d == 1);
  }
  return reversed;
}

}  // namespace

Result<ScanForm> check_scan(const Node& node, std::span<const TensorType> types) {
  if (tensor_ops::node_opset(node) < 9)
    return unsupported("{}: Scan of opset {} (with a batch axis and sequence_lens) is not supported; opset 9 on is",
                       node.describe(), node.opset);
  CP_ASSIGN_OR_RETURN(const Graph* body, subgraph(node, "body"));
  const int64_t m = node.attr_int("num_scan_inputs", 0);
  if (m < 1 || static_cast<size_t>(m) > types.size())
    return invalid_input("{}: num_scan_inputs is {}, expected 1 to its {} inputs", node.describe(), m, types.size());
  ScanForm form;
  const auto scan_inputs = static_cast<size_t>(m);
  form.states = types.size() - scan_inputs;
  if (body->inputs.size() != types.size())
    return invalid_input("{}: the body takes {} inputs, the node gives {}", node.describe(), body->inputs.size(),
                         types.size());
  if (body->outputs.size() < form.states || node.outputs.size() != body->outputs.size())
    return invalid_input("{}: has {} outputs and its body {}; both need the {} states first", node.describe(),
                         node.outputs.size(), body->outputs.size(), form.states);
  const size_t scan_outputs = body->outputs.size() - form.states;
  CP_ASSIGN_OR_RETURN(form.input_axes, per_value(node, "scan_input_axes", scan_inputs));
  CP_ASSIGN_OR_RETURN(form.input_reversed, directions(node, "scan_input_directions", scan_inputs));
  CP_ASSIGN_OR_RETURN(form.output_axes, per_value(node, "scan_output_axes", scan_outputs));
  CP_ASSIGN_OR_RETURN(form.output_reversed, directions(node, "scan_output_directions", scan_outputs));
  for (size_t j = 0; j < scan_inputs; ++j) {
    const Shape& shape = types[form.states + j].shape;
    const auto rank = static_cast<int64_t>(shape.size());
    int64_t& axis = form.input_axes[j];
    if (axis < -rank || axis >= rank)
      return invalid_input("{}: scan input {} has rank {}; axis {} is outside it", node.describe(), j, rank, axis);
    if (axis < 0) axis += rank;
    const int64_t length = shape[static_cast<size_t>(axis)];
    if (j > 0 && length != form.length)
      return invalid_input("{}: scan inputs have lengths {} and {} along their axes", node.describe(), form.length,
                           length);
    form.length = length;
  }
  if (form.length == 0)
    return unsupported("{}: the scan inputs are empty, so the scan outputs' element shapes are unknown",
                       node.describe());
  return form;
}

namespace {

// Reached only outside a session (a session inlines If before inference):
// the checks, then what would have to hold to run it.
Result<std::vector<TensorType>> infer_if(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_if(node));
  if (inputs.empty()) return invalid_input("{}: the condition input is missing", node.describe());
  CP_TRY(if_condition(node, inputs[0]).status());
  return unsupported("{}: If has no kernel; a session inlines the branch its condition selects", node.describe());
}

Result<std::vector<TensorType>> infer_loop(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_loop(node).status());
  if (inputs.size() < 2) return invalid_input("{}: the trip count and condition inputs are missing", node.describe());
  CP_TRY(loop_bounds(node, inputs[0], inputs[1]).status());
  return unsupported("{}: Loop has no kernel; a session unrolls its iterations", node.describe());
}

Result<std::vector<TensorType>> infer_scan(const Node& node, std::span<const InferInput> inputs) {
  std::vector<TensorType> types;
  for (size_t i = 0; i < explicit_input_count(node) && i < inputs.size(); ++i) types.push_back(inputs[i].type);
  CP_TRY(check_scan(node, types).status());
  return unsupported("{}: Scan has no kernel; a session unrolls its iterations", node.describe());
}

}  // namespace

}  // namespace caliprox::control

namespace caliprox {

void register_control_ops(std::vector<OpDef>& table) {
  table.push_back({"If", control::infer_if});
  table.push_back({"Loop", control::infer_loop});
  table.push_back({"Scan", control::infer_scan});
}

}  // namespace caliprox
