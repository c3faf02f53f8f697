// Shape/type inference for the recurrent ops RNN, GRU and LSTM, and the
// resolver of rnn_params.h that their reference kernels share.
#include <cctype>
#include <string>

#include <fmt/format.h>

#include "ir/ops/rnn_params.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox {

namespace rnn {

using tensor_ops::optional_input;

Shape Params::y_shape() const {
  return batch_major ? Shape{batch, seq_length, num_directions, hidden}
                     : Shape{seq_length, num_directions, batch, hidden};
}

Shape Params::state_shape() const {
  return batch_major ? Shape{batch, num_directions, hidden} : Shape{num_directions, batch, hidden};
}

namespace {

struct ActivationSpec {
  std::string_view name;  // lower case
  ActivationKind kind;
  bool uses_alpha;
  bool uses_beta;
  float alpha;  // defaults
  float beta;
};
constexpr ActivationSpec kActivations[] = {
    {"relu", ActivationKind::relu, false, false, 0, 0},
    {"tanh", ActivationKind::tanh, false, false, 0, 0},
    {"sigmoid", ActivationKind::sigmoid, false, false, 0, 0},
    {"affine", ActivationKind::affine, true, true, 1.0f, 0.0f},
    {"leakyrelu", ActivationKind::leaky_relu, true, false, 0.01f, 0},
    {"thresholdedrelu", ActivationKind::thresholded_relu, true, false, 1.0f, 0},
    {"scaledtanh", ActivationKind::scaled_tanh, true, true, 1.0f, 1.0f},
    {"hardsigmoid", ActivationKind::hard_sigmoid, true, true, 0.2f, 0.5f},
    {"elu", ActivationKind::elu, true, false, 1.0f, 0},
    {"softsign", ActivationKind::softsign, false, false, 0, 0},
    {"softplus", ActivationKind::softplus, false, false, 0, 0},
};

// The 'activations' attribute (names compared without case, as ONNX Runtime
// does), or the cell's defaults: RNN Tanh; GRU Sigmoid, Tanh; LSTM Sigmoid,
// Tanh, Tanh. Functions that take alpha (beta) consume the next value of
// activation_alpha (activation_beta) in order, else their default. One set
// of functions given for a bidirectional node serves both directions.
Result<std::vector<Activation>> resolve_activations(const Node& node, const Params& p) {
  std::vector<std::string> names;
  if (auto it = node.attrs.find("activations"); it != node.attrs.end()) {
    if (it->second.kind != Attribute::Kind::strings)
      return invalid_input("{}: attribute 'activations' must be a list of strings", node.describe());
    names = it->second.strings;
  } else {
    names = p.cell == Cell::rnn   ? std::vector<std::string>{"Tanh"}
            : p.cell == Cell::gru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                  : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  }
  const size_t per_direction = p.gate_functions();
  const size_t total = per_direction * static_cast<size_t>(p.num_directions);
  if (names.size() != per_direction && names.size() != total)
    return invalid_input("{}: 'activations' must name {} function(s) per direction ({} in all), found {}",
                         node.describe(), per_direction, total, names.size());
  const std::vector<float> alphas = node.attr_floats("activation_alpha");
  const std::vector<float> betas = node.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<Activation> out;
  for (size_t i = 0; i < total; ++i) {
    std::string lower = names[i % names.size()];
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const ActivationSpec* spec = nullptr;
    for (const auto& s : kActivations)
      if (s.name == lower) spec = &s;
    if (spec == nullptr)
      return unsupported("{}: activation function '{}' is not supported", node.describe(), names[i % names.size()]);
    Activation a{spec->kind, spec->alpha, spec->beta};
    // A repeated set (bidirectional) reuses the first direction's values.
    if (i == names.size()) next_alpha = next_beta = 0;
    if (spec->uses_alpha && next_alpha < alphas.size()) a.alpha = alphas[next_alpha++];
    if (spec->uses_beta && next_beta < betas.size()) a.beta = betas[next_beta++];
    out.push_back(a);
  }
  return out;
}

Status check_shape(const Node& node, const InferInput* in, const Shape& want, std::string_view what) {
  if (in != nullptr && in->type.shape != want)
    return invalid_input("{}: {} must have shape {}, found {}", node.describe(), what, shape_str(want),
                         shape_str(in->type.shape));
  return {};
}

Status check_input_types(const Node& node, std::span<const InferInput> in, size_t max_inputs) {
  CP_TRY(tensor_ops::check_inputs(node, in, 3, max_inputs));
  const DType t = in[0].type.dtype;
  if (!tensor_ops::is_float_dtype(t))
    return invalid_input("{}: input X must be a floating-point tensor, found {}", node.describe(), dtype_name(t));
  for (size_t i = 1; i < in.size(); ++i) {
    if (!in[i].present()) continue;
    const DType want = i == 4 ? DType::i32 : t;  // sequence_lens is int32
    if (in[i].type.dtype != want)
      return invalid_input("{}: input #{} must be {}, found {}", node.describe(), i, dtype_name(want),
                           dtype_name(in[i].type.dtype));
  }
  return {};
}

// direction, layout, hidden_size, clip and the cell-specific flags.
Status resolve_attributes(const Node& node, std::span<const InferInput> in, Params& p) {
  CP_ASSIGN_OR_RETURN(const std::string dir, tensor_ops::attr_string(node, "direction", "forward"));
  if (dir == "forward") p.direction = Direction::forward;
  else if (dir == "reverse") p.direction = Direction::reverse;
  else if (dir == "bidirectional") p.direction = Direction::bidirectional;
  else
    return invalid_input("{}: direction must be forward, reverse or bidirectional, found '{}'", node.describe(), dir);
  p.num_directions = p.direction == Direction::bidirectional ? 2 : 1;
  CP_ASSIGN_OR_RETURN(const int64_t layout, tensor_ops::attr_int(node, "layout", 0));
  if (layout != 0 && (layout != 1 || tensor_ops::node_opset(node) < 14))
    return invalid_input("{}: layout must be 0{}, found {}", node.describe(),
                         tensor_ops::node_opset(node) < 14 ? " before opset 14" : " or 1", layout);
  p.batch_major = layout == 1;
  const Shape& r = in[2].type.shape;
  CP_ASSIGN_OR_RETURN(p.hidden, tensor_ops::attr_int(node, "hidden_size", r.size() == 3 ? r[2] : 0));
  if (p.hidden <= 0) return invalid_input("{}: hidden_size must be positive, found {}", node.describe(), p.hidden);
  if (node.has("clip")) {
    p.has_clip = true;
    CP_ASSIGN_OR_RETURN(p.clip, tensor_ops::attr_float(node, "clip", 0));
    if (!(p.clip > 0)) return invalid_input("{}: clip must be positive, found {}", node.describe(), p.clip);
  }
  CP_ASSIGN_OR_RETURN(const int64_t lbr, tensor_ops::attr_int(node, "linear_before_reset", 0));
  CP_ASSIGN_OR_RETURN(const int64_t input_forget, tensor_ops::attr_int(node, "input_forget", 0));
  p.linear_before_reset = p.cell == Cell::gru && lbr != 0;
  p.input_forget = p.cell == Cell::lstm && input_forget != 0;
  return {};
}

}  // namespace

Result<Params> resolve(const Node& node, std::span<const InferInput> in, Cell cell) {
  Params p;
  p.cell = cell;
  CP_TRY(check_input_types(node, in, cell == Cell::lstm ? 8 : 6));
  CP_TRY(resolve_attributes(node, in, p));
  const Shape& x = in[0].type.shape;
  if (x.size() != 3) return invalid_input("{}: input X must have rank 3, found {}", node.describe(), shape_str(x));
  p.seq_length = p.batch_major ? x[1] : x[0];
  p.batch = p.batch_major ? x[0] : x[1];
  p.input_size = x[2];
  const int64_t dirs = p.num_directions, gh = p.gates() * p.hidden;
  CP_TRY(check_shape(node, &in[1], {dirs, gh, p.input_size}, "W"));
  CP_TRY(check_shape(node, &in[2], {dirs, gh, p.hidden}, "R"));
  CP_TRY(check_shape(node, optional_input(in, 3), {dirs, 2 * gh}, "B"));
  CP_TRY(check_shape(node, optional_input(in, 4), {p.batch}, "sequence_lens"));
  CP_TRY(check_shape(node, optional_input(in, 5), p.state_shape(), "initial_h"));
  CP_TRY(check_shape(node, optional_input(in, 6), p.state_shape(), "initial_c"));
  CP_TRY(check_shape(node, optional_input(in, 7), {dirs, 3 * p.hidden}, "P"));
  if (const InferInput* lens = optional_input(in, 4); lens != nullptr && lens->value != nullptr)
    for (int64_t v : lens->value->to_int64_vector())
      if (v < 0 || v > p.seq_length)
        return invalid_input("{}: sequence_lens values must be in [0, {}], found {}", node.describe(), p.seq_length, v);
  CP_ASSIGN_OR_RETURN(p.activations, resolve_activations(node, p));
  return p;
}

}  // namespace rnn

namespace {

template <rnn::Cell kCell>
Result<std::vector<TensorType>> infer_recurrent(const Node& node, std::span<const InferInput> inputs) {
  const size_t max_outputs = kCell == rnn::Cell::lstm ? 3 : 2;
  if (node.outputs.size() > max_outputs)
    return invalid_input("{}: expects at most {} outputs, found {}", node.describe(), max_outputs, node.outputs.size());
  CP_ASSIGN_OR_RETURN(rnn::Params p, rnn::resolve(node, inputs, kCell));
  const DType t = inputs[0].type.dtype;
  std::vector<TensorType> out;
  for (size_t i = 0; i < node.outputs.size(); ++i) out.push_back({t, i == 0 ? p.y_shape() : p.state_shape()});
  return out;
}

}  // namespace

void register_rnn_ops(std::vector<OpDef>& table) {
  table.push_back({"RNN", infer_recurrent<rnn::Cell::rnn>});
  table.push_back({"GRU", infer_recurrent<rnn::Cell::gru>});
  table.push_back({"LSTM", infer_recurrent<rnn::Cell::lstm>});
}

}  // namespace caliprox
