// Session construction inlines the control-flow ops while it folds the graph
// (engine/fold_state.h): an If becomes the nodes of the branch its constant
// condition selects; a Loop or Scan becomes one copy of its body per
// iteration, whose count must follow from constants and shapes. The executor
// then sees only plain nodes, so memory planning, placement, fusion and the
// knobs treat a branch's convolutions like any other.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "engine/fold_state.h"
#include "ir/ops/control_ops.h"

namespace caliprox {

namespace {

// How a subgraph's value names map to the outer scope's.
using Renames = std::map<std::string, std::string>;

std::string renamed(const Renames& names, const std::string& name) {
  if (name.empty()) return name;
  auto it = names.find(name);
  return it == names.end() ? name : it->second;
}

// Binds the subgraph's captures to the owner's trailing inputs, by position
// (Graph::captures): a graph pass may have renamed those inputs since import.
Renames bind_captures(const Node& owner) {
  Renames names;
  const std::vector<std::string> captures = subgraph_captures(owner);
  const size_t first = explicit_input_count(owner);
  for (size_t k = 0; k < captures.size() && first + k < owner.inputs.size(); ++k)
    names[captures[k]] = owner.inputs[first + k];
  return names;
}

// Folds a copy of `body` whose local values (initializers, node outputs) are
// named `prefix` + their name; `names` binds its inputs and captures. When
// the body is inlined repeatedly (`repeated`: Loop, Scan), its nodes, and
// those of the Ifs inside it, are named under `prefix` too, so every
// iteration's nodes keep distinct names. Returns the outer names of the
// body's outputs.
Result<std::vector<std::string>> inline_body(const Graph& body, Renames names, const std::string& prefix, bool repeated,
                                             FoldState& s) {
  for (const auto& [name, t] : body.initializers) {
    const std::string outer = prefix + name;
    s.f.constants[outer] = t;
    s.f.types[outer] = t.type();
    names[name] = outer;
  }
  for (const auto& node : body.nodes)
    for (const auto& out : node.outputs)
      if (!out.empty()) names[out] = prefix + out;
  struct Restore {
    FoldState& s;
    std::string saved;
    ~Restore() { s.node_prefix = saved; }
  } restore{s, s.node_prefix};
  if (repeated) s.node_prefix = prefix;
  for (const auto& node : body.nodes) {
    Node copy = node;
    copy.name = s.node_prefix + node.name;
    for (auto& in : copy.inputs) in = renamed(names, in);
    for (auto& out : copy.outputs) out = renamed(names, out);
    CP_TRY(fold_node(copy, s));
  }
  std::vector<std::string> outs;
  for (const auto& o : body.outputs) outs.push_back(renamed(names, o.name));
  return outs;
}

// Makes the outer value `src` available as `dst` (the owner's output): a
// copy of a constant, else an Identity node.
Status bind_output(const std::string& src, const std::string& dst, const Node& owner, FoldState& s) {
  if (dst.empty()) return {};
  if (auto c = s.f.constants.find(src); c != s.f.constants.end()) {
    s.f.constants[dst] = c->second;
    s.f.types[dst] = s.f.types.at(src);
    if (s.f.batch_derived.count(src)) s.f.batch_derived.insert(dst);
    return {};
  }
  Node id;
  id.name = fmt::format("{}/{}", owner.name, dst);
  id.op_type = "Identity";
  id.index = owner.index;
  id.opset = owner.opset;
  id.inputs = {src};
  id.outputs = {dst};
  return fold_node(id, s);
}

// Remembers a control-flow node whose decision followed from `value`, when
// that value was computed from the batch length.
void note_batch_dependence(const Node& node, const std::string& value, FoldState& s) {
  if (s.f.batch_derived.count(value)) s.f.batch_dependent_control.push_back(node.describe());
}

Status inline_if(const Node& node, FoldState& s) {
  CP_TRY(control::check_if(node));
  const InferInput cond = input_of(node.inputs[0], s);
  if (!cond.present())
    return invalid_input("{} reads '{}', which no node, initializer or input produces", node.describe(),
                         node.inputs[0]);
  CP_ASSIGN_OR_RETURN(bool taken, control::if_condition(node, cond));
  note_batch_dependence(node, node.inputs[0], s);
  CP_ASSIGN_OR_RETURN(const Graph* branch, control::subgraph(node, taken ? "then_branch" : "else_branch"));
  auto outs = inline_body(*branch, bind_captures(node), node.name + "/", false, s);
  if (!outs.ok())
    return outs.status().with_context(
        fmt::format("in {} of {}", taken ? "then_branch" : "else_branch", node.describe()));
  for (size_t i = 0; i < node.outputs.size(); ++i) CP_TRY(bind_output((*outs)[i], node.outputs[i], node, s));
  return {};
}

// A node the inliner adds (Gather of a scan slice, the Unsqueeze and
// Concat that stack scan outputs), named under its owner.
Node helper_node(const Node& owner, std::string op, std::string name, std::vector<std::string> inputs,
                 std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = fmt::format("{}/{}", owner.name, name);
  n.op_type = std::move(op);
  n.index = owner.index;
  n.opset = owner.opset;
  n.inputs = std::move(inputs);
  n.outputs = {n.name};
  n.attrs = std::move(attrs);
  return n;
}

Attribute int_attribute(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = v;
  return a;
}

// A constant under `name` (an iteration number, a condition, an index).
std::string add_constant(Tensor t, const std::string& name, FoldState& s) {
  s.f.types[name] = t.type();
  s.f.constants[name] = std::move(t);
  return name;
}

// Stacks the per-iteration values along `axis` (of the stacked rank) into
// `dst`: an Unsqueeze of each, then one Concat.
Status stack_values(const std::vector<std::string>& values, int64_t axis, const std::string& dst, const Node& owner,
                    size_t k, FoldState& s) {
  if (dst.empty()) return {};
  Attribute axes;
  axes.kind = Attribute::Kind::ints;
  axes.ints = {axis};
  std::vector<std::string> parts;
  for (size_t i = 0; i < values.size(); ++i) {
    Node u = helper_node(owner, "Unsqueeze", fmt::format("scan{}/{}", k, i), {values[i]}, {{"axes", axes}});
    CP_TRY(fold_node(u, s));
    parts.push_back(u.outputs[0]);
  }
  Node concat = helper_node(owner, "Concat", fmt::format("scan{}", k), parts, {{"axis", int_attribute(axis)}});
  concat.outputs = {dst};
  return fold_node(concat, s);
}

// One more iteration, or unsupported past the model's unrolling budget.
Status count_iteration(const Node& node, FoldState& s) {
  if (++s.unrolled_iterations > control::kMaxUnrolledIterations)
    return unsupported("{}: unrolling passes {} iterations in this model; caliprox inlines loops when the session is "
                       "built and stops there",
                       node.describe(), control::kMaxUnrolledIterations);
  return {};
}

Status inline_loop(const Node& node, FoldState& s) {
  CP_ASSIGN_OR_RETURN(const control::LoopForm form, control::check_loop(node));
  CP_ASSIGN_OR_RETURN(const Graph* body, control::subgraph(node, "body"));
  const size_t n_carried = form.carried, n_scans = form.scans;
  CP_ASSIGN_OR_RETURN(const control::LoopBounds bounds,
                      control::loop_bounds(node, input_of(node.inputs[0], s), input_of(node.inputs[1], s)));
  note_batch_dependence(node, node.inputs[0], s);
  note_batch_dependence(node, node.inputs[1], s);
  std::vector<std::string> carried(node.inputs.begin() + 2, node.inputs.begin() + 2 + static_cast<long>(n_carried));
  std::vector<std::vector<std::string>> scans(n_scans);
  bool go = bounds.condition;
  for (int64_t i = 0; go && i < bounds.trip_count; ++i) {
    CP_TRY(count_iteration(node, s));
    const std::string prefix = fmt::format("{}/{}/", node.name, i);
    Renames names = bind_captures(node);
    names[body->inputs[0].name] = add_constant(Tensor::copy_of(DType::i64, {}, &i), prefix + "iteration", s);
    const uint8_t on = 1;
    names[body->inputs[1].name] = add_constant(Tensor::copy_of(DType::boolean, {}, &on), prefix + "condition", s);
    for (size_t j = 0; j < n_carried; ++j) names[body->inputs[2 + j].name] = carried[j];
    auto outs = inline_body(*body, std::move(names), prefix, true, s);
    if (!outs.ok()) return outs.status().with_context(fmt::format("in iteration {} of {}", i, node.describe()));
    CP_ASSIGN_OR_RETURN(go, control::loop_continues(node, input_of((*outs)[0], s)));
    note_batch_dependence(node, (*outs)[0], s);
    for (size_t j = 0; j < n_carried; ++j) carried[j] = (*outs)[1 + j];
    for (size_t k = 0; k < n_scans; ++k) scans[k].push_back((*outs)[1 + n_carried + k]);
  }
  for (size_t j = 0; j < n_carried; ++j) CP_TRY(bind_output(carried[j], node.outputs[j], node, s));
  for (size_t k = 0; k < n_scans; ++k) {
    if (scans[k].empty() && !node.outputs[n_carried + k].empty())
      return unsupported("{}: runs no iteration, so its scan output '{}' would be empty with an unknown element shape",
                         node.describe(), node.outputs[n_carried + k]);
    CP_TRY(stack_values(scans[k], 0, node.outputs[n_carried + k], node, k, s));
  }
  return {};
}

Status inline_scan(const Node& node, FoldState& s) {
  std::vector<TensorType> types;
  for (size_t i = 0; i < explicit_input_count(node); ++i) types.push_back(input_of(node.inputs[i], s).type);
  CP_ASSIGN_OR_RETURN(const control::ScanForm form, control::check_scan(node, types));
  CP_ASSIGN_OR_RETURN(const Graph* body, control::subgraph(node, "body"));
  std::vector<std::string> states(node.inputs.begin(), node.inputs.begin() + static_cast<long>(form.states));
  std::vector<std::vector<std::string>> scans(form.output_axes.size());
  for (int64_t t = 0; t < form.length; ++t) {
    CP_TRY(count_iteration(node, s));
    const std::string prefix = fmt::format("{}/{}/", node.name, t);
    Renames names = bind_captures(node);
    for (size_t j = 0; j < form.states; ++j) names[body->inputs[j].name] = states[j];
    for (size_t j = 0; j < form.input_axes.size(); ++j) {
      const int64_t at = form.input_reversed[j] ? form.length - 1 - t : t;
      const std::string index =
          add_constant(Tensor::copy_of(DType::i64, {}, &at), prefix + fmt::format("index{}", j), s);
      Node slice = helper_node(node, "Gather", fmt::format("{}/slice{}", t, j), {node.inputs[form.states + j], index},
                               {{"axis", int_attribute(form.input_axes[j])}});
      CP_TRY(fold_node(slice, s));
      names[body->inputs[form.states + j].name] = slice.outputs[0];
    }
    auto outs = inline_body(*body, std::move(names), prefix, true, s);
    if (!outs.ok()) return outs.status().with_context(fmt::format("in iteration {} of {}", t, node.describe()));
    for (size_t j = 0; j < form.states; ++j) states[j] = (*outs)[j];
    for (size_t k = 0; k < scans.size(); ++k) scans[k].push_back((*outs)[form.states + k]);
  }
  for (size_t j = 0; j < form.states; ++j) CP_TRY(bind_output(states[j], node.outputs[j], node, s));
  for (size_t k = 0; k < scans.size(); ++k) {
    if (form.output_reversed[k]) std::reverse(scans[k].begin(), scans[k].end());
    CP_TRY(stack_values(scans[k], form.output_axes[k], node.outputs[form.states + k], node, k, s));
  }
  return {};
}

}  // namespace

bool is_control_flow(const Node& node) {
  return node.domain.empty() && (node.op_type == "If" || node.op_type == "Loop" || node.op_type == "Scan");
}

Status inline_control_flow(const Node& node, FoldState& s) {
  if (node.op_type == "If") return inline_if(node, s);
  if (node.op_type == "Loop") return inline_loop(node, s);
  return inline_scan(node, s);
}

}  // namespace caliprox
