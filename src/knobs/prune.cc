#include "knobs/prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <fmt/format.h>

namespace caliprox {

namespace {

// Ops that compute each channel from the same channel alone: the pruned
// channels simply vanish from them (BatchNormalization also loses the
// channels' entries of its vectors).
const std::set<std::string> kChannelWise = {"Relu",        "LeakyRelu", "Clip",    "Sigmoid",          "Tanh",
                                            "HardSigmoid", "HardSwish", "MaxPool", "AveragePool",      "Identity",
                                            "Dropout",     "GlobalAveragePool",     "GlobalMaxPool", "BatchNormalization"};

// The nodes that read value `v`.
std::vector<const Node*> consumers(const Graph& g, const std::string& v) {
  std::vector<const Node*> out;
  for (const Node& n : g.nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), v) != n.inputs.end()) out.push_back(&n);
  return out;
}

// Rows `keep` of axis `axis` of a float tensor, in that order.
Result<Tensor> take(const Tensor& t, int64_t axis, const std::vector<int64_t>& keep, int64_t block = 1) {
  if (t.dtype() != DType::f32) return invalid_input("pruning: a {} tensor; float32 expected", dtype_name(t.dtype()));
  Shape shape = t.shape();
  const int64_t n = shape[static_cast<size_t>(axis)];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  // `block`: each kept index stands for `block` consecutive rows (a
  // channel's spatial positions in a flattened feature vector).
  shape[static_cast<size_t>(axis)] = static_cast<int64_t>(keep.size()) * block;
  Tensor out(DType::f32, shape);
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (size_t k = 0; k < keep.size(); ++k)
      for (int64_t b = 0; b < block; ++b) {
        const int64_t row = keep[k] * block + b;
        if (row >= n) return runtime_error("pruning: row {} of {}", row, n);
        std::copy_n(src + (o * n + row) * inner, inner,
                    dst + (o * static_cast<int64_t>(keep.size()) * block + static_cast<int64_t>(k) * block + b) * inner);
      }
  return out;
}

bool is_output(const Graph& g, const std::string& v) {
  return std::any_of(g.outputs.begin(), g.outputs.end(), [&](const ValueInfo& o) { return o.name == v; });
}

// Replaces initializer `name` by its rows `keep` along `axis`.
Status slice_initializer(Graph& g, const std::string& name, int64_t axis, const std::vector<int64_t>& keep,
                         const Node& node, int64_t block = 1) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end())
    return invalid_input("pruning: {} reads '{}', which is computed, not a weight", node.describe(), name);
  if (consumers(g, name).size() > 1)
    return invalid_input("pruning: '{}' of {} is shared with other nodes; slicing it would change them too", name,
                         node.describe());
  CP_ASSIGN_OR_RETURN(Tensor t, take(it->second, axis, keep, block));
  it->second = std::move(t);
  return {};
}

// One channel space: the values that carry the same channels, the convs
// whose outputs define them (members: all must keep the same channels, as
// their outputs meet at an Add), the channel-wise nodes they pass through,
// and the consumers where they end.
struct ChannelSpace {
  std::vector<const Node*> members, channel_wise, conv_ends, gemm_ends;
  std::vector<int64_t> gemm_axes;  // per gemm_ends: the weight axis of its input features
};

const Node* producer(const Graph& g, const std::string& v) {
  for (const Node& n : g.nodes)
    if (std::find(n.outputs.begin(), n.outputs.end(), v) != n.outputs.end()) return &n;
  return nullptr;
}

template <typename T>
void add_once(std::vector<T*>& v, T* x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

// Where value `v` comes from: a member Conv, a channel-wise node or an Add
// (whose inputs carry the same channels), else an error.
Status explore_up(const Graph& g, const std::string& v, ChannelSpace& sp, std::vector<std::string>& todo) {
  const Node* p = producer(g, v);
  if (p == nullptr) return invalid_input("pruning: the channel group reaches the graph input '{}'", v);
  if (p->op_type == "Conv") {
    if (p->attr_int("group", 1) != 1)
      return invalid_input("pruning: {} is grouped; its output channels are tied to its input channels", p->describe());
    add_once(sp.members, p);
  } else if (kChannelWise.count(p->op_type)) {
    add_once(sp.channel_wise, p);
    todo.push_back(p->inputs[0]);
  } else if (p->op_type == "Add" || p->op_type == "Sum") {
    for (const std::string& in : p->inputs) todo.push_back(in);
  } else {
    return invalid_input("pruning: the channels come from {}, which pruning does not carry them through", p->describe());
  }
  return {};
}

// Who reads value `v`: channel-wise nodes and Adds carry the channels on;
// a Conv or a Gemm after Flatten ends them.
Status explore_down(const Graph& g, const std::string& v, ChannelSpace& sp, std::vector<std::string>& todo) {
  if (is_output(g, v)) return invalid_input("pruning: the channels reach the graph output '{}'", v);
  const std::vector<const Node*> readers = consumers(g, v);
  if (readers.empty()) return invalid_input("pruning: '{}' is read by nothing", v);
  for (const Node* c : readers) {
    if (c->op_type == "Conv" && c->inputs[0] == v) {
      if (c->attr_int("group", 1) != 1)
        return invalid_input("pruning: {} is a grouped or depthwise convolution; its input channels cannot be "
                             "removed alone", c->describe());
      add_once(sp.conv_ends, c);
    } else if (c->op_type == "Flatten" && c->attr_int("axis", 1) == 1) {
      for (const Node* gemm : consumers(g, c->outputs[0])) {
        if (gemm->op_type != "Gemm" || gemm->inputs[0] != c->outputs[0])
          return invalid_input("pruning: {} reads the flattened channels; only a Gemm can end them", gemm->describe());
        if (std::find(sp.gemm_ends.begin(), sp.gemm_ends.end(), gemm) != sp.gemm_ends.end()) continue;
        sp.gemm_ends.push_back(gemm);
        sp.gemm_axes.push_back(gemm->attr_int("transB", 0) ? 1 : 0);
      }
    } else if (kChannelWise.count(c->op_type) && c->inputs[0] == v) {
      add_once(sp.channel_wise, c);
      todo.push_back(c->outputs[0]);
    } else if (c->op_type == "Add" || c->op_type == "Sum") {
      todo.push_back(c->outputs[0]);
      for (const std::string& in : c->inputs) todo.push_back(in);  // the other branches carry the same channels
    } else {
      return invalid_input("pruning: the channels reach {}, which pruning does not carry them through",
                           c->describe());
    }
  }
  return {};
}

// The whole space of the channels `seed` produces.
Result<ChannelSpace> channel_space(const Graph& g, const Node& seed) {
  ChannelSpace sp;
  sp.members.push_back(&seed);
  std::vector<std::string> todo{seed.outputs[0]};
  std::set<std::string> seen;
  while (!todo.empty()) {
    const std::string v = todo.back();
    todo.pop_back();
    if (!seen.insert(v).second) continue;
    CP_TRY(explore_down(g, v, sp, todo));
    const Node* p = producer(g, v);
    if (p != &seed && !(p && std::find(sp.members.begin(), sp.members.end(), p) != sp.members.end()))
      CP_TRY(explore_up(g, v, sp, todo));
  }
  return sp;
}

}  // namespace

std::string ChannelPrune::key() const { return fmt::format("prune:{}:{}", node_, fraction_); }

Result<std::vector<int64_t>> channels_to_keep(const Tensor& weight, double fraction, const std::string& node) {
  if (!(fraction > 0 && fraction < 1))
    return invalid_input("pruning {}: fraction {} is outside (0, 1)", node, fraction);
  const int64_t out = weight.dim(0);
  const int64_t drop = static_cast<int64_t>(std::floor(fraction * static_cast<double>(out)));
  if (drop >= out) return invalid_input("pruning {}: a fraction of {} would remove all {} channels", node, fraction, out);
  const int64_t per = out ? weight.numel() / out : 0;
  std::vector<double> norm(static_cast<size_t>(out), 0.0);
  const float* w = weight.data<float>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < per; ++i) norm[static_cast<size_t>(o)] += std::fabs(w[o * per + i]);
  std::vector<int64_t> order(static_cast<size_t>(out));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return norm[static_cast<size_t>(a)] > norm[static_cast<size_t>(b)]; });
  std::vector<int64_t> keep(order.begin(), order.begin() + (out - drop));
  std::sort(keep.begin(), keep.end());
  return keep;
}

Result<PrunePlan> plan_prune(const Graph& graph, const std::string& node, double fraction) {
  const Graph& g = graph;
  const Node* found = g.find_node(node);
  if (found == nullptr) return invalid_input("pruning: no node '{}'", node);
  const Node& conv = *found;
  if (conv.op_type != "Conv") return invalid_input("pruning: {} is not a Conv", conv.describe());
  if (conv.attr_int("group", 1) != 1)
    return invalid_input("pruning: {} is grouped; its output channels are tied to its input channels", conv.describe());
  CP_ASSIGN_OR_RETURN(ChannelSpace sp, channel_space(g, conv));
  // The members' filters ranked together: a channel stays or goes in all of
  // them (their outputs are added). Column m of `norms` holds member m's
  // row sums of |w|.
  PrunePlan plan;
  const int64_t cols = static_cast<int64_t>(sp.members.size());
  Tensor norms;
  for (int64_t m = 0; m < cols; ++m) {
    const Node& member = *sp.members[static_cast<size_t>(m)];
    const auto w = g.initializers.find(member.inputs[1]);
    if (w == g.initializers.end() || w->second.dtype() != DType::f32 || w->second.shape().size() != 4)
      return invalid_input("pruning: {} needs a float32 weight [O, I, kh, kw] stored in the model", member.describe());
    if (m > 0 && w->second.dim(0) != plan.channels)
      return invalid_input("pruning {}: the residual group's members disagree: {} has {} output channels, not {}",
                           node, member.describe(), w->second.dim(0), plan.channels);
    plan.channels = w->second.dim(0);
    if (m == 0) {
      norms = Tensor(DType::f32, {plan.channels, 1, 1, cols});
      std::fill_n(norms.data<float>(), norms.numel(), 0.f);
    }
    const int64_t per = w->second.numel() / plan.channels;
    for (int64_t o = 0; o < plan.channels; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < per; ++i) sum += std::fabs(w->second.data<float>()[o * per + i]);
      norms.data<float>()[o * cols + m] = static_cast<float>(sum);
    }
    plan.members.push_back(member.name);
  }
  CP_ASSIGN_OR_RETURN(plan.keep, channels_to_keep(norms, fraction, node));
  for (const Node* n : sp.channel_wise)
    if (n->op_type == "BatchNormalization") plan.batch_norms.push_back(n->name);
  for (const Node* c : sp.conv_ends) plan.conv_ends.push_back(c->name);
  for (const Node* c : sp.gemm_ends) plan.gemm_ends.push_back(c->name);
  return plan;
}

Result<Graph> ChannelPrune::apply(const Graph& graph) const {
  CP_ASSIGN_OR_RETURN(PrunePlan plan, plan_prune(graph, node_, fraction_));
  Graph g = graph;
  auto node = [&](const std::string& name) {
    return &*std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == name; });
  };
  for (const std::string& name : plan.members) {
    Node& m = *node(name);
    CP_TRY(slice_initializer(g, m.inputs[1], 0, plan.keep, m));
    if (m.inputs.size() > 2 && !m.inputs[2].empty()) CP_TRY(slice_initializer(g, m.inputs[2], 0, plan.keep, m));
  }
  // The BatchNormalizations on the way lose their entries.
  for (const std::string& name : plan.batch_norms) {
    const Node& bn = *node(name);
    for (size_t i = 1; i < 5 && i < bn.inputs.size(); ++i) CP_TRY(slice_initializer(g, bn.inputs[i], 0, plan.keep, bn));
  }
  for (const std::string& name : plan.conv_ends) CP_TRY(slice_initializer(g, node(name)->inputs[1], 1, plan.keep, *node(name)));
  for (size_t k = 0; k < plan.gemm_ends.size(); ++k) {
    Node& gemm = *node(plan.gemm_ends[k]);
    const int64_t axis = gemm.attr_int("transB", 0) ? 1 : 0;
    const auto w = g.initializers.find(gemm.inputs[1]);
    if (w == g.initializers.end()) return invalid_input("pruning: {} has a computed weight", gemm.describe());
    const int64_t features = w->second.dim(axis);
    if (features % plan.channels != 0)
      return invalid_input("pruning: {} takes {} features, not a multiple of {} channels", gemm.describe(), features,
                           plan.channels);
    CP_TRY(slice_initializer(g, gemm.inputs[1], axis, plan.keep, gemm, features / plan.channels));
  }
  return g;
}

}  // namespace caliprox
