#include "knobs/standard_ops.h"

#include <cmath>
#include <optional>
#include <set>

#include "knobs/fused_conv.h"

namespace caliprox {

namespace {

// ONNX TensorProto element types the Casts name (DType has no public bf16).
constexpr int64_t kOnnxFloat = 1;
constexpr int64_t kOnnxFloat16 = 10;
constexpr int64_t kOnnxBfloat16 = 16;
// QuantizeLinear / DequantizeLinear exist from opset 10; their axis
// (per-channel scales) from opset 13.
constexpr int64_t kQuantizeOpset = 10;
constexpr int64_t kPerAxisQuantizeOpset = 13;

float round_half(float v) { return half_to_float(float_to_half(v)); }

Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = v;
  return a;
}

// The lowered graph under construction: nodes replaced, dropped (folded
// BatchNormalizations) or inserted around an original node, and new
// initializers. Every new name is checked against the graph's.
class Lowering {
 public:
  explicit Lowering(const Graph& g) : g_(g) {
    for (const auto& [name, t] : g.initializers) taken_.insert(name);
    for (const ValueInfo& v : g.inputs) taken_.insert(v.name);
    for (const Node& n : g.nodes) {
      taken_.insert(n.name);
      for (const auto& v : n.outputs) taken_.insert(v);
    }
  }

  Status claim(const std::string& name) {
    if (!taken_.insert(name).second)
      return invalid_input("cannot add '{}' to graph '{}': it already has a node or value of that name", name, g_.name);
    return {};
  }

  // A node of the original graph, as edited so far.
  Node& edit(const std::string& name) {
    auto it = replaced_.find(name);
    if (it == replaced_.end()) it = replaced_.emplace(name, *g_.find_node(name)).first;
    return it->second;
  }
  void set(const std::string& name, Node node) { replaced_[name] = std::move(node); }
  void drop(const std::string& name) { dropped_.insert(name); }

  Result<std::string> add_initializer(const std::string& name, Tensor t) {
    CP_TRY(claim(name));
    initializers_[name] = std::move(t);
    return name;
  }

  // A new node `name` placed before (or after) original node `anchor`.
  Status add_node(const std::string& anchor, bool before, std::string name, std::string op,
                  std::vector<std::string> inputs, std::vector<std::string> outputs,
                  std::map<std::string, Attribute> attrs = {}) {
    CP_TRY(claim(name));
    Node n;
    n.name = std::move(name);
    n.op_type = std::move(op);
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.attrs = std::move(attrs);
    n.opset = g_.opset;
    n.index = g_.find_node(anchor)->index;
    (before ? before_ : after_)[anchor].push_back(std::move(n));
    return {};
  }

  // Cast `value` to `to` and back to float32 in front of `anchor`
  // (`before`) or behind it: nodes "<conv>/<part>_to_<type>" and
  // "<conv>/<part>_to_float". The rounded value is `rounded`, or a new
  // "<conv>/<part>_rounded".
  Result<std::string> round_trip(const std::string& conv, const std::string& part, const std::string& value, int64_t to,
                                 const std::string& anchor, bool before, std::string rounded = "") {
    const std::string type = to == kOnnxFloat16 ? "half" : "bfloat16";
    const std::string narrow = fmt::format("{}/{}_{}", conv, part, type);
    if (rounded.empty()) {
      rounded = fmt::format("{}/{}_rounded", conv, part);
      CP_TRY(claim(rounded));
    }
    CP_TRY(claim(narrow));
    CP_TRY(add_node(anchor, before, fmt::format("{}/{}_to_{}", conv, part, type), "Cast", {value}, {narrow},
                    {{"to", int_attr(to)}}));
    CP_TRY(add_node(anchor, before, fmt::format("{}/{}_to_float", conv, part), "Cast", {narrow}, {rounded},
                    {{"to", int_attr(kOnnxFloat)}}));
    return rounded;
  }

  Graph finish() const {
    Graph out = g_;
    out.nodes.clear();
    for (const Node& n : g_.nodes) {
      if (dropped_.count(n.name)) continue;
      if (auto b = before_.find(n.name); b != before_.end())
        out.nodes.insert(out.nodes.end(), b->second.begin(), b->second.end());
      auto r = replaced_.find(n.name);
      out.nodes.push_back(r != replaced_.end() ? r->second : n);
      if (auto a = after_.find(n.name); a != after_.end())
        out.nodes.insert(out.nodes.end(), a->second.begin(), a->second.end());
    }
    // Initializers only the replaced nodes read (original weights, folded
    // BatchNormalization parameters) go; the new ones come in.
    std::set<std::string> read;
    for (const Node& n : out.nodes) read.insert(n.inputs.begin(), n.inputs.end());
    for (const ValueInfo& v : out.outputs) read.insert(v.name);
    std::set<std::string> read_before;
    for (const Node& n : g_.nodes) read_before.insert(n.inputs.begin(), n.inputs.end());
    for (auto it = out.initializers.begin(); it != out.initializers.end();)
      it = read_before.count(it->first) && !read.count(it->first) ? out.initializers.erase(it) : std::next(it);
    for (const auto& [name, t] : initializers_) out.initializers[name] = t;
    return out;
  }

 private:
  const Graph& g_;
  std::set<std::string> taken_;
  std::map<std::string, Node> replaced_;
  std::set<std::string> dropped_;
  std::map<std::string, std::vector<Node>> before_, after_;
  std::map<std::string, Tensor> initializers_;
};

// The knob's effective float weights (the reference kernel's
// transform_weights): sampling's mask and scale, then half or bfloat16.
Tensor effective_weights(const Knob& knob, const Tensor& w) {
  const Shape& s = w.shape();
  const int64_t filter = s[1] * s[2] * s[3];
  const bool sampled = knob.kind == KnobKind::sampling;
  const std::vector<bool> keep = sampled ? sampling_mask(knob, s[1], s[2], s[3]) : std::vector<bool>(filter, true);
  const float scale = sampled ? sampling_scale(knob) : 1.0f;
  Tensor out(DType::f32, s);
  const float* src = w.data<float>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < w.numel(); ++i) {
    float v = 0;
    if (keep[static_cast<size_t>(i % filter)]) {
      v = src[i];
      if (sampled) v *= scale;
      if (knob.half) v = round_half(v);
      if (knob.kind == KnobKind::bf16) v = round_to_bf16(v);
    }
    dst[i] = v;
  }
  return out;
}

Tensor scalar_of(DType dtype, const void* value) { return Tensor::copy_of(dtype, {}, value); }

// int8 input: QuantizeLinear / DequantizeLinear with the calibrated scale.
Result<std::string> quantize_input(Lowering& l, const Node& conv, const ValueRange& range) {
  const Int8Input q = int8_input_quantisation(range);
  const std::string& c = conv.name;
  CP_ASSIGN_OR_RETURN(std::string scale, l.add_initializer(c + "/input_scale", scalar_of(DType::f32, &q.scale)));
  const uint8_t zero = 0;
  const DType zp_type = q.lo == 0 ? DType::u8 : DType::i8;
  CP_ASSIGN_OR_RETURN(std::string zp, l.add_initializer(c + "/input_zero_point", scalar_of(zp_type, &zero)));
  const std::string codes = c + "/input_codes", dequantized = c + "/input_dequantized";
  CP_TRY(l.claim(codes));
  CP_TRY(l.claim(dequantized));
  CP_TRY(l.add_node(c, true, c + "/quantize", "QuantizeLinear", {conv.inputs[0], scale, zp}, {codes}));
  CP_TRY(l.add_node(c, true, c + "/dequantize", "DequantizeLinear", {codes, scale, zp}, {dequantized}));
  return dequantized;
}

// int8 weights: codes in [-127, 127] with one scale per output channel.
// Per-axis DequantizeLinear where the opset has it, else the float32
// values it would compute.
Result<std::string> quantize_weights(Lowering& l, const Node& conv, const Tensor& w, int64_t opset) {
  const int64_t c_out = w.dim(0), filter = w.numel() / c_out;
  Tensor codes(DType::i8, w.shape()), scales(DType::f32, {c_out}), values(DType::f32, w.shape());
  for (int64_t oc = 0; oc < c_out; ++oc) {
    const float* f = w.data<float>() + oc * filter;
    const float sw = int8_weight_scale(f, filter);
    scales.data<float>()[oc] = sw;
    for (int64_t i = 0; i < filter; ++i) {
      const int32_t code = int8_code(f[i], sw, -127, 127);
      codes.data<int8_t>()[oc * filter + i] = static_cast<int8_t>(code);
      values.data<float>()[oc * filter + i] = static_cast<float>(code) * sw;
    }
  }
  const std::string& c = conv.name;
  if (opset < kPerAxisQuantizeOpset) return l.add_initializer(c + "/weight", std::move(values));
  CP_ASSIGN_OR_RETURN(std::string code_name, l.add_initializer(c + "/weight_codes", std::move(codes)));
  CP_ASSIGN_OR_RETURN(std::string scale_name, l.add_initializer(c + "/weight_scale", std::move(scales)));
  CP_ASSIGN_OR_RETURN(std::string zp_name, l.add_initializer(c + "/weight_zero_point", Tensor(DType::i8, {c_out})));
  const std::string dequantized = c + "/weight_dequantized";
  CP_TRY(l.claim(dequantized));
  CP_TRY(l.add_node(c, true, c + "/weight_dequantize", "DequantizeLinear", {code_name, scale_name, zp_name},
                    {dequantized}, {{"axis", int_attr(0)}}));
  return dequantized;
}

// A half knob's rounding of the fused residual and of the fused output.
Status round_residual_and_output(Lowering& l, const FusedConv& fc) {
  if (!fc.residual.empty()) {
    CP_ASSIGN_OR_RETURN(std::string r,
                        l.round_trip(fc.node, "residual", fc.residual, kOnnxFloat16, fc.residual_add, true));
    for (auto& in : l.edit(fc.residual_add).inputs)
      if (in == fc.residual) in = r;
  }
  // The producer writes an unrounded value; the rounding writes the value
  // every reader (and a graph output) knows by its original name.
  const std::string unrounded = fc.node + "/output_unrounded";
  CP_TRY(l.claim(unrounded));
  for (auto& out : l.edit(fc.output_producer).outputs)
    if (out == fc.output) out = unrounded;
  return l.round_trip(fc.node, "output", unrounded, kOnnxFloat16, fc.output_producer, false, fc.output).status();
}

Status lower_conv(Lowering& l, const Graph& g, const Knob& knob, const FusedConv& fc, const ValueRange* range) {
  const Node& conv = *g.find_node(fc.node);
  CP_TRY(knob_applies(knob, conv, fc.input_shape, fc.weight.shape()));
  Node lowered = conv;
  lowered.outputs = {fc.conv_output};
  for (const auto& bn : fc.folded) l.drop(bn);
  std::string x = conv.inputs[0];
  std::string w;
  if (knob.kind == KnobKind::int8) {
    CP_ASSIGN_OR_RETURN(x, quantize_input(l, conv, *range));
    CP_ASSIGN_OR_RETURN(w, quantize_weights(l, conv, fc.weight, g.opset));
  } else {
    if (knob.half || knob.kind == KnobKind::bf16) {
      const int64_t to = knob.half ? kOnnxFloat16 : kOnnxBfloat16;
      CP_ASSIGN_OR_RETURN(x, l.round_trip(conv.name, "input", x, to, conv.name, true));
    }
    CP_ASSIGN_OR_RETURN(w, l.add_initializer(conv.name + "/weight", effective_weights(knob, fc.weight)));
  }
  lowered.inputs = {x, w};
  if (!fc.bias.empty()) {
    const bool same = fc.folded.empty() && !knob.half;
    Tensor b = same ? fc.bias : fc.bias.clone();
    if (knob.half)
      for (float& v : b.span<float>()) v = round_half(v);
    if (same) {
      lowered.inputs.push_back(conv.inputs[2]);
    } else {
      CP_ASSIGN_OR_RETURN(std::string bias, l.add_initializer(conv.name + "/bias", std::move(b)));
      lowered.inputs.push_back(bias);
    }
  }
  l.set(conv.name, std::move(lowered));
  return knob.half ? round_residual_and_output(l, fc) : Status();
}

// The knobs of `config` to lower, by node; invalid_input for unknown knobs,
// perforation, and int8 without a usable calibrated range or opset.
Result<std::map<std::string, const Knob*>> knobs_to_lower(const Graph& graph, const KnobConfig& config,
                                                          const std::map<std::string, ValueRange>& ranges) {
  std::map<std::string, const Knob*> knobs;
  for (const auto& [node, name] : config) {
    const Knob* knob = find_knob(name);
    if (knob == nullptr)
      return invalid_input("configuration: node '{}': unknown knob '{}'{}", node, name, suggest_knob(name));
    if (knob->kind == KnobKind::exact) continue;
    if (!knob_has_standard_form(*knob))
      return invalid_input("node '{}': knob '{}' (perforation) cannot be exported: no standard ONNX op skips output "
                           "rows or columns and fills them in by interpolation",
                           node, name);
    if (knob->kind == KnobKind::int8) {
      if (graph.opset < min_opset_for_standard_form(*knob))
        return unsupported("node '{}': knob '{}' needs QuantizeLinear / DequantizeLinear (ONNX opset {}), and graph "
                           "'{}' is opset {}; the exporter does not raise opsets (ops changed meaning between them): "
                           "re-export the network at opset 13 or later",
                           node, name, kQuantizeOpset, graph.name, graph.opset);
      auto r = ranges.find(node);
      if (r == ranges.end())
        return invalid_input("node '{}': knob '{}' needs the calibrated range of input #0 (from the experiment's "
                             "calibrate split), and none was given",
                             node, name);
      if (!std::isfinite(r->second.min) || !std::isfinite(r->second.max) || r->second.min > r->second.max)
        return invalid_input("node '{}': knob '{}': the calibrated range of input #0 must be finite with min <= max, "
                             "found [{}, {}]",
                             node, name, r->second.min, r->second.max);
    }
    knobs[node] = knob;
  }
  return knobs;
}

}  // namespace

bool knob_has_standard_form(const Knob& knob) { return knob.kind != KnobKind::perforation; }

int64_t min_opset_for_standard_form(const Knob& knob) { return knob.kind == KnobKind::int8 ? kQuantizeOpset : 0; }

Result<Graph> lower_to_standard_ops(const Graph& graph, const KnobConfig& config,
                                    const std::map<std::string, ValueRange>& ranges) {
  std::set<std::string> names;
  for (const Node& n : graph.nodes)
    if (!names.insert(n.name).second)
      return invalid_input("graph '{}': two nodes are named '{}'; knob configurations name nodes, so names must be "
                           "unique",
                           graph.name, n.name);
  CP_ASSIGN_OR_RETURN(const auto knobs, knobs_to_lower(graph, config, ranges));
  std::set<std::string> convs;
  for (const auto& [node, knob] : knobs) convs.insert(node);
  CP_ASSIGN_OR_RETURN(const auto fused, plan_fused_convs(graph, convs));
  Lowering lowering(graph);
  for (const auto& [node, knob] : knobs) {
    auto r = ranges.find(node);
    CP_TRY(lower_conv(lowering, graph, *knob, fused.at(node), r == ranges.end() ? nullptr : &r->second)
               .with_context(fmt::format("lowering knob '{}' on node '{}'", knob->name, node)));
  }
  return lowering.finish();
}

}  // namespace caliprox
