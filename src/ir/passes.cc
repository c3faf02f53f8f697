#include "ir/passes.h"

#include <array>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "ir/op_registry.h"

namespace caliprox {

namespace {

// Who reads each value, as indices into `nodes`.
std::map<std::string, std::vector<size_t>> consumers_of(const std::vector<Node>& nodes) {
  std::map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& in : nodes[i].inputs)
      if (!in.empty()) readers[in].push_back(i);
  return readers;
}

bool is_f32_const(const std::map<std::string, Tensor>& constants, const std::string& name) {
  auto it = constants.find(name);
  return it != constants.end() && it->second.dtype() == DType::f32;
}

// The single node reading `value`, when fusing it away is allowed.
std::optional<size_t> sole_consumer(const std::string& value, const std::map<std::string, std::vector<size_t>>& readers,
                                    const std::set<std::string>& keep) {
  if (keep.count(value)) return std::nullopt;
  auto it = readers.find(value);
  if (it == readers.end() || it->second.size() != 1) return std::nullopt;
  return it->second.front();
}

bool only_first_output_used(const Node& n, const std::map<std::string, std::vector<size_t>>& readers,
                            const std::set<std::string>& keep) {
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty() && (readers.count(n.outputs[i]) || keep.count(n.outputs[i]))) return false;
  return true;
}

// Folds BN(conv(x, W, b)) into conv(x, W', b'): W' = W*s, b' = (b - mean)*s + beta, s = gamma/sqrt(var + eps).
bool fold_batchnorm(Node& conv, const Node& bn, std::map<std::string, Tensor>& constants) {
  if (bn.inputs.size() < 5 || bn.attr_int("training_mode", 0) != 0) return false;
  for (size_t i = 1; i < 5; ++i)
    if (!is_f32_const(constants, bn.inputs[i])) return false;
  const Tensor& w = constants.at(conv.inputs[1]);
  const int64_t oc = w.dim(0);
  const Tensor& gamma = constants.at(bn.inputs[1]);
  const Tensor& beta = constants.at(bn.inputs[2]);
  const Tensor& mean = constants.at(bn.inputs[3]);
  const Tensor& var = constants.at(bn.inputs[4]);
  if (gamma.numel() != oc || beta.numel() != oc || mean.numel() != oc || var.numel() != oc) return false;
  const bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
  if (has_bias && (!is_f32_const(constants, conv.inputs[2]) || constants.at(conv.inputs[2]).numel() != oc))
    return false;
  const float eps = bn.attr_float("epsilon", 1e-5f);

  Tensor new_w = w.clone();
  Tensor new_b(DType::f32, {oc});
  const int64_t per_oc = w.numel() / oc;
  float* pw = new_w.data<float>();
  for (int64_t o = 0; o < oc; ++o) {
    const double s = gamma.data<float>()[o] / std::sqrt(static_cast<double>(var.data<float>()[o]) + eps);
    for (int64_t k = 0; k < per_oc; ++k) pw[o * per_oc + k] = static_cast<float>(pw[o * per_oc + k] * s);
    const double b = has_bias ? constants.at(conv.inputs[2]).data<float>()[o] : 0.0;
    new_b.data<float>()[o] = static_cast<float>((b - mean.data<float>()[o]) * s + beta.data<float>()[o]);
  }
  const std::string w_name = conv.name + "::folded_weight";
  const std::string b_name = conv.name + "::folded_bias";
  constants[w_name] = std::move(new_w);
  constants[b_name] = std::move(new_b);
  conv.inputs.resize(3);
  conv.inputs[1] = w_name;
  conv.inputs[2] = b_name;
  conv.outputs = {bn.outputs[0]};
  return true;
}

// The value of a float32 constant that is one number (any rank), if it is one.
std::optional<float> scalar_const(const std::map<std::string, Tensor>& constants, const std::string& name) {
  if (!is_f32_const(constants, name) || constants.at(name).numel() != 1) return std::nullopt;
  return constants.at(name).data<float>()[0];
}

// Per output channel values of a constant that a conv output [N, C, ...]
// broadcasts per channel: one number, or shape [C, 1, ...] / [1, C, 1, ...]
// of rank at most the output's. Empty when it is neither.
std::vector<float> per_channel_const(const std::map<std::string, Tensor>& constants, const std::string& name,
                                     int64_t oc, size_t out_rank) {
  if (!is_f32_const(constants, name)) return {};
  const Tensor& t = constants.at(name);
  const float* v = t.data<float>();
  if (t.numel() == 1) return std::vector<float>(static_cast<size_t>(oc), v[0]);
  if (t.numel() != oc || t.shape().size() > out_rank) return {};
  // The channel axis of the output, counted from the right, must hold all values.
  const size_t channel_from_right = out_rank - 2;  // [N, C, spatial...]: C is rank - 2 from the right
  const Shape& s = t.shape();
  if (s.size() <= channel_from_right || s[s.size() - 1 - channel_from_right] != oc) return {};
  return std::vector<float>(v, v + oc);
}

// Folds y = conv(x) * m or y = conv(x) + a (m, a per-channel or scalar
// constants; either operand order) into the conv's weights and bias:
// PaddlePaddle's learnable affine blocks (PP-LCNetV3) and TensorFlow's
// separate BiasAdd. The conv output must have no other reader.
bool fold_affine(Node& conv, const Node& op, std::map<std::string, Tensor>& constants, size_t out_rank, int step) {
  if (op.inputs.size() != 2 || (op.op_type != "Mul" && op.op_type != "Add")) return false;
  const std::string& other = op.inputs[0] == conv.outputs[0] ? op.inputs[1] : op.inputs[0];
  if (other == conv.outputs[0]) return false;
  const Tensor& w = constants.at(conv.inputs[1]);
  const int64_t oc = w.dim(0);
  const std::vector<float> k = per_channel_const(constants, other, oc, out_rank);
  if (k.empty()) return false;
  const bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
  if (has_bias && (!is_f32_const(constants, conv.inputs[2]) || constants.at(conv.inputs[2]).numel() != oc))
    return false;
  Tensor new_b(DType::f32, {oc});
  for (int64_t o = 0; o < oc; ++o)
    new_b.data<float>()[o] = has_bias ? constants.at(conv.inputs[2]).data<float>()[o] : 0.f;
  const bool mul = op.op_type == "Mul";
  if (mul) {
    Tensor new_w = w.clone();
    const int64_t per_oc = w.numel() / oc;
    for (int64_t o = 0; o < oc; ++o) {
      for (int64_t j = 0; j < per_oc; ++j) new_w.data<float>()[o * per_oc + j] *= k[static_cast<size_t>(o)];
      new_b.data<float>()[o] *= k[static_cast<size_t>(o)];
    }
    const std::string w_name = fmt::format("{}::affine_weight_{}", conv.name, step);
    constants[w_name] = std::move(new_w);
    conv.inputs[1] = w_name;
  } else {
    for (int64_t o = 0; o < oc; ++o) new_b.data<float>()[o] += k[static_cast<size_t>(o)];
  }
  const std::string b_name = fmt::format("{}::affine_bias_{}", conv.name, step);
  constants[b_name] = std::move(new_b);
  conv.inputs.resize(3);
  conv.inputs[2] = b_name;
  conv.outputs = {op.outputs[0]};
  return true;
}

// Activation op -> (alpha, beta) for the fused attributes, when fusable.
std::optional<std::pair<float, float>> activation_params(const Node& act, const std::map<std::string, Tensor>& constants) {
  const std::string& op = act.op_type;
  if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") return std::make_pair(0.f, 0.f);
  if (op == "LeakyRelu") return std::make_pair(act.attr_float("alpha", 0.01f), 0.f);
  if (op == "HardSigmoid") return std::make_pair(act.attr_float("alpha", 0.2f), act.attr_float("beta", 0.5f));
  if (op == "Clip") {
    float lo = -INFINITY, hi = INFINITY;
    if (act.has("min") || act.has("max")) {  // opset < 11
      lo = act.attr_float("min", lo);
      hi = act.attr_float("max", hi);
    }
    for (size_t i = 1; i < act.inputs.size() && i < 3; ++i) {
      if (act.inputs[i].empty()) continue;
      if (!is_f32_const(constants, act.inputs[i]) || constants.at(act.inputs[i]).numel() != 1) return std::nullopt;
      (i == 1 ? lo : hi) = constants.at(act.inputs[i]).data<float>()[0];
    }
    return std::make_pair(lo, hi);
  }
  return std::nullopt;
}

}  // namespace

namespace {

// x * Clip(x + 3, 0, 6) / 6 (or * 1/6), as PaddlePaddle and TensorFlow
// export hard_swish: the node indices of the Add, Clip and Mul (the Div /
// final Mul is `last`), when every intermediate has one reader.
std::optional<std::array<size_t, 3>> arithmetic_hardswish(const std::vector<Node>& nodes, size_t last,
                                                          const std::map<std::string, Tensor>& constants,
                                                          const std::map<std::string, std::vector<size_t>>& readers,
                                                          const std::set<std::string>& keep) {
  const Node& d = nodes[last];
  if (d.inputs.size() != 2 || d.outputs.size() != 1) return std::nullopt;
  auto producer = [&](const std::string& v) -> std::optional<size_t> {
    for (size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].outputs.size() == 1 && nodes[i].outputs[0] == v) return i;
    return std::nullopt;
  };
  auto near = [](std::optional<float> v, float want) { return v && std::fabs(*v - want) <= 1e-6f * want; };
  std::string prod;
  if (d.op_type == "Div" && near(scalar_const(constants, d.inputs[1]), 6.f)) prod = d.inputs[0];
  if (d.op_type == "Mul" && near(scalar_const(constants, d.inputs[1]), 1.f / 6.f)) prod = d.inputs[0];
  if (d.op_type == "Mul" && near(scalar_const(constants, d.inputs[0]), 1.f / 6.f)) prod = d.inputs[1];
  if (prod.empty()) return std::nullopt;
  auto mi = producer(prod);
  if (!mi || nodes[*mi].op_type != "Mul" || nodes[*mi].inputs.size() != 2 || sole_consumer(prod, readers, keep) != last)
    return std::nullopt;
  const Node& m = nodes[*mi];
  for (int side = 0; side < 2; ++side) {
    const std::string& x = m.inputs[static_cast<size_t>(side)];
    const std::string& clipped = m.inputs[static_cast<size_t>(1 - side)];
    auto ci = producer(clipped);
    if (!ci || nodes[*ci].op_type != "Clip" || sole_consumer(clipped, readers, keep) != *mi) continue;
    const Node& c = nodes[*ci];
    auto lo_hi = activation_params(c, constants);
    if (!lo_hi || lo_hi->first != 0.f || lo_hi->second != 6.f || c.inputs.empty()) continue;
    auto ai = producer(c.inputs[0]);
    if (!ai || nodes[*ai].op_type != "Add" || nodes[*ai].inputs.size() != 2 ||
        sole_consumer(c.inputs[0], readers, keep) != *ci)
      continue;
    const Node& a = nodes[*ai];
    const bool x_first = a.inputs[0] == x && near(scalar_const(constants, a.inputs[1]), 3.f);
    const bool x_second = a.inputs[1] == x && near(scalar_const(constants, a.inputs[0]), 3.f);
    if (x_first || x_second) return std::array<size_t, 3>{*ai, *ci, *mi};
  }
  return std::nullopt;
}

}  // namespace

int form_hardswish(std::vector<Node>& nodes, const std::map<std::string, Tensor>& constants,
                   const std::set<std::string>& keep) {
  int formed = 0;
  auto readers = consumers_of(nodes);
  std::vector<bool> removed(nodes.size(), false);
  for (size_t di = 0; di < nodes.size(); ++di) {
    auto parts = arithmetic_hardswish(nodes, di, constants, readers, keep);
    if (!parts) continue;
    const Node& m = nodes[(*parts)[2]];
    const std::string& clipped = nodes[(*parts)[1]].outputs[0];
    Node swish;
    swish.op_type = "HardSwish";
    swish.name = nodes[di].name;
    swish.index = nodes[di].index;
    swish.opset = nodes[di].opset;
    swish.inputs = {m.inputs[0] == clipped ? m.inputs[1] : m.inputs[0]};
    swish.outputs = nodes[di].outputs;
    for (size_t part : *parts) removed[part] = true;
    nodes[di] = std::move(swish);  // at the last node's position: x is computed by then
    ++formed;
  }
  for (size_t hi = 0; hi < nodes.size(); ++hi) {
    if (removed[hi]) continue;
    const Node& h = nodes[hi];
    if (h.op_type != "HardSigmoid" || h.inputs.size() != 1 || h.outputs.size() != 1) continue;
    if (std::fabs(h.attr_float("alpha", 0.2f) - 1.f / 6.f) > 1e-7f || h.attr_float("beta", 0.5f) != 0.5f) continue;
    auto mi = sole_consumer(h.outputs[0], readers, keep);
    if (!mi || removed[*mi] || nodes[*mi].op_type != "Mul" || nodes[*mi].inputs.size() != 2) continue;
    const Node& m = nodes[*mi];
    const std::string& x = h.inputs[0];
    if (!((m.inputs[0] == x && m.inputs[1] == h.outputs[0]) || (m.inputs[1] == x && m.inputs[0] == h.outputs[0])))
      continue;
    Node swish;
    swish.op_type = "HardSwish";
    swish.name = m.name;
    swish.index = m.index;
    swish.opset = m.opset;
    swish.inputs = {x};
    swish.outputs = m.outputs;
    nodes[*mi] = std::move(swish);  // at the Mul's position: x is computed by then
    removed[hi] = true;
    ++formed;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
  return formed;
}

PassStats fuse_conv_chains(std::vector<Node>& nodes, std::map<std::string, Tensor>& constants,
                           const std::map<std::string, TensorType>& types, const std::set<std::string>& keep) {
  PassStats stats;
  stats.hardswish_formed = form_hardswish(nodes, constants, keep);
  std::vector<bool> removed(nodes.size(), false);
  for (size_t ci = 0; ci < nodes.size(); ++ci) {
    if (removed[ci] || nodes[ci].op_type != "Conv" || nodes[ci].has(kAttrActivation) || nodes[ci].has(kAttrResidual))
      continue;
    if (nodes[ci].inputs.size() < 2 || !is_f32_const(constants, nodes[ci].inputs[1])) continue;
    auto out_type = types.find(nodes[ci].outputs[0]);
    if (out_type == types.end() || out_type->second.dtype != DType::f32) continue;

    // The fused node moves to the position of the last node of its chain so
    // that every value it reads is computed before it runs.
    size_t pos = ci;
    Node fused = nodes[ci];
    auto readers = consumers_of(nodes);
    auto next = [&](const std::string& op_family) -> std::optional<size_t> {
      auto c = sole_consumer(fused.outputs[0], readers, keep);
      if (!c || removed[*c] || nodes[*c].inputs.empty()) return std::nullopt;
      const std::string& op = nodes[*c].op_type;
      if (op_family == "bn" && op == "BatchNormalization" && nodes[*c].inputs[0] == fused.outputs[0]) return c;
      if (op_family == "add" && op == "Add") return c;
      if (op_family == "act" && activation_params(nodes[*c], constants) && nodes[*c].inputs[0] == fused.outputs[0]) return c;
      return std::nullopt;
    };

    if (auto bn = next("bn"); bn && only_first_output_used(nodes[*bn], readers, keep) &&
                              fold_batchnorm(fused, nodes[*bn], constants)) {
      removed[*bn] = true;
      pos = *bn;
      ++stats.batchnorms_folded;
    }
    // Per-channel scales and shifts (any number, in any order) fold into
    // the weights and bias; a residual Add is then one of two activations.
    for (int step = 0;; ++step) {
      auto c = sole_consumer(fused.outputs[0], readers, keep);
      if (!c || removed[*c] || !fold_affine(fused, nodes[*c], constants, out_type->second.shape.size(), step)) break;
      removed[*c] = true;
      pos = std::max(pos, *c);
      ++stats.affines_folded;
    }
    if (auto add = next("add")) {
      const Node& a = nodes[*add];
      const std::string& other = a.inputs[0] == fused.outputs[0] ? a.inputs[1] : a.inputs[0];
      auto ot = types.find(other);
      bool same_shape = ot != types.end() && ot->second == out_type->second && a.inputs.size() == 2 &&
                        other != fused.outputs[0];
      if (same_shape) {
        fused.inputs.resize(4);
        fused.inputs[3] = other;
        fused.attrs[kAttrResidual].kind = Attribute::Kind::i;
        fused.attrs[kAttrResidual].i = 1;
        fused.outputs = {a.outputs[0]};
        removed[*add] = true;
        pos = std::max(pos, *add);
        ++stats.residuals_fused;
      }
    }
    if (auto act = next("act")) {
      auto params = activation_params(nodes[*act], constants);
      Attribute kind;
      kind.kind = Attribute::Kind::s;
      kind.s = nodes[*act].op_type;
      fused.attrs[kAttrActivation] = kind;
      Attribute alpha, beta;
      alpha.kind = beta.kind = Attribute::Kind::f;
      alpha.f = params->first;
      beta.f = params->second;
      fused.attrs[kAttrAlpha] = alpha;
      fused.attrs[kAttrBeta] = beta;
      fused.outputs = {nodes[*act].outputs[0]};
      removed[*act] = true;
      pos = std::max(pos, *act);
      ++stats.activations_fused;
    }
    if (pos != ci) {
      removed[ci] = true;
      nodes[pos] = std::move(fused);
      removed[pos] = false;
    }
  }
  std::vector<Node> kept;
  kept.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
  return stats;
}

}  // namespace caliprox
