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
std::vector<Node*> consumers(Graph& g, const std::string& v) {
  std::vector<Node*> out;
  for (Node& n : g.nodes)
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

// Ends the channels at a consumer, or carries them through a channel-wise node.
Status prune_consumer(Graph& g, Node& c, const std::string& value, const std::vector<int64_t>& keep, int64_t channels,
                      std::vector<std::string>& next) {
  if (c.op_type == "Conv" && c.inputs[0] == value) {
    if (c.attr_int("group", 1) != 1)
      return invalid_input("pruning: {} is a grouped or depthwise convolution; its input channels cannot be "
                           "removed alone", c.describe());
    return slice_initializer(g, c.inputs[1], 1, keep, c);
  }
  if (c.op_type == "Flatten" && c.attr_int("axis", 1) == 1) {
    // The features of channel k are [k * s, (k + 1) * s) with s its spatial size.
    for (Node* gemm : consumers(g, c.outputs[0])) {
      if (gemm->op_type != "Gemm" || gemm->inputs[0] != c.outputs[0])
        return invalid_input("pruning: {} reads the flattened channels; only a Gemm can end them", gemm->describe());
      const auto it = g.initializers.find(gemm->inputs[1]);
      if (it == g.initializers.end()) return invalid_input("pruning: {} has a computed weight", gemm->describe());
      const int64_t axis = gemm->attr_int("transB", 0) ? 1 : 0;
      const int64_t features = it->second.dim(axis);
      if (features % channels != 0)
        return invalid_input("pruning: {} takes {} features, not a multiple of {} channels", gemm->describe(), features,
                             channels);
      CP_TRY(slice_initializer(g, gemm->inputs[1], axis, keep, *gemm, features / channels));
    }
    return {};
  }
  if (kChannelWise.count(c.op_type) && c.inputs[0] == value) {
    if (c.op_type == "BatchNormalization")
      for (size_t i = 1; i < 5 && i < c.inputs.size(); ++i) CP_TRY(slice_initializer(g, c.inputs[i], 0, keep, c));
    if (c.op_type == "Clip" || c.op_type == "Dropout") {
      // Their extra inputs are scalars: nothing to slice.
    }
    next.push_back(c.outputs[0]);
    return {};
  }
  if (c.op_type == "Add" || c.op_type == "Concat" || c.op_type == "Sum")
    return invalid_input("pruning: the channels reach {}: a residual or concatenated group, which must be pruned "
                         "together", c.describe());
  return invalid_input("pruning: the channels reach {}, which pruning does not carry them through", c.describe());
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

Result<Graph> ChannelPrune::apply(const Graph& graph) const {
  Graph g = graph;
  auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == node_; });
  if (it == g.nodes.end()) return invalid_input("pruning: no node '{}'", node_);
  Node& conv = *it;
  if (conv.op_type != "Conv") return invalid_input("pruning: {} is not a Conv", conv.describe());
  if (conv.attr_int("group", 1) != 1)
    return invalid_input("pruning: {} is grouped; its output channels are tied to its input channels", conv.describe());
  const auto w = g.initializers.find(conv.inputs[1]);
  if (w == g.initializers.end() || w->second.dtype() != DType::f32 || w->second.shape().size() != 4)
    return invalid_input("pruning: {} needs a float32 weight [O, I, kh, kw] stored in the model", conv.describe());
  const int64_t channels = w->second.dim(0);
  CP_ASSIGN_OR_RETURN(std::vector<int64_t> keep, channels_to_keep(w->second, fraction_, node_));
  CP_TRY(slice_initializer(g, conv.inputs[1], 0, keep, conv));
  if (conv.inputs.size() > 2 && !conv.inputs[2].empty()) CP_TRY(slice_initializer(g, conv.inputs[2], 0, keep, conv));
  // Follow the channels to where they end.
  std::vector<std::string> values{conv.outputs[0]};
  std::set<std::string> seen;
  while (!values.empty()) {
    const std::string v = values.back();
    values.pop_back();
    if (!seen.insert(v).second) continue;
    if (is_output(g, v))
      return invalid_input("pruning {}: its channels reach the graph output '{}'", node_, v);
    const std::vector<Node*> readers = consumers(g, v);
    if (readers.empty()) return invalid_input("pruning {}: '{}' is read by nothing", node_, v);
    for (Node* c : readers) CP_TRY(prune_consumer(g, *c, v, keep, channels, values));
  }
  return g;
}

}  // namespace caliprox
