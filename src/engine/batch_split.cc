#include "engine/batch_split.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <span>

#include "ir/ops/reduce_ops_util.h"
#include "ir/ops/tensor_ops_util.h"
#include "util/cpu.h"

namespace caliprox {
namespace {

using namespace tensor_ops;

bool batched_type(const TensorType& t, int64_t n) { return !t.shape.empty() && t.shape[0] == n; }

// Inputs of `node` as shape inference sees them.
std::vector<InferInput> infer_inputs(const BatchGraphView& g, const Node& node) {
  std::vector<InferInput> r;
  for (const auto& name : node.inputs) {
    if (name.empty()) {
      r.push_back({});
      continue;
    }
    auto c = g.constants.find(name);
    const Tensor* value = c == g.constants.end() ? nullptr : &c->second;
    r.push_back({value ? value->type() : g.types.at(name), value});
  }
  return r;
}

Status no_split(const Node& node, std::string_view why) {
  return unsupported("{} {}", node.describe(), why);
}

// Axes of a Squeeze / Unsqueeze (attribute before opset 13, input #1 after);
// nullopt when none are given.
Result<std::optional<std::vector<int64_t>>> squeeze_axes(const Node& node, std::span<const InferInput> in) {
  if (node_opset(node) < 13) return attr_ints(node, "axes");
  if (optional_input(in, 1) == nullptr) return std::optional<std::vector<int64_t>>{};
  CP_ASSIGN_OR_RETURN(auto axes, constant_ints(node, in, 1, "axes", "the batch split"));
  return std::optional<std::vector<int64_t>>{std::move(axes)};
}

// The reduce family's ops (ir/ops/reduce_ops_util.h) that may run split.
bool reduce_family(std::string_view op) {
  static constexpr std::string_view kOps[] = {"ArgMax", "ArgMin", "LogSoftmax", "Hardmax", "InstanceNormalization",
                                              "LRN"};
  return reduce_ops::reduce_kind(op) || std::find(std::begin(kOps), std::end(kOps), op) != std::end(kOps);
}

// A reduce-family node reading the batch through input #0 (its other inputs
// constants) keeps samples apart unless it reduces or normalises across the
// batch axis.
Status check_reduce_family(const Node& node, std::span<const InferInput> in, int64_t rank, int64_t n) {
  const std::string& op = node.op_type;
  if (reduce_ops::reduce_kind(op)) {
    CP_ASSIGN_OR_RETURN(ReduceParams p, resolve_reduce(node, in));
    if (std::find(p.axes.begin(), p.axes.end(), 0) != p.axes.end()) return no_split(node, "reduces the batch axis");
  } else if (op == "ArgMax" || op == "ArgMin") {
    CP_ASSIGN_OR_RETURN(int64_t axis, axis_attr(node, 0, rank));
    if (axis == 0) return no_split(node, "reduces the batch axis");
  } else if (op == "LogSoftmax" || op == "Hardmax") {
    CP_ASSIGN_OR_RETURN(SoftmaxLayout l, resolve_softmax(node, in[0].type.shape));
    if (l.outer % n != 0) return no_split(node, "normalises across samples");
  }
  return {};  // InstanceNormalization, LRN: per sample
}

// Whether `node` keeps the samples apart, given which of its inputs are
// batched (axis 0 is the batch, length n); every other input is a constant.
Status check_node(const BatchGraphView& g, const Node& node, const std::vector<bool>& batched, int64_t n) {
  const std::string& op = node.op_type;
  const auto in = infer_inputs(g, node);
  auto only_first_batched = [&]() -> Status {
    for (size_t i = 1; i < batched.size(); ++i)
      if (batched[i]) return no_split(node, "reads a batched value as a parameter");
    if (batched.empty() || !batched[0]) return no_split(node, "does not read the batch through its first input");
    return {};
  };
  const int64_t rank = in.empty() ? 0 : static_cast<int64_t>(in[0].type.shape.size());

  static constexpr std::string_view kPerElement[] = {"Relu",     "LeakyRelu",   "Sigmoid", "HardSigmoid",
                                                     "HardSwish", "Tanh",       "Sqrt",    "Cast",
                                                     "Identity", "Dropout",     "Clip",    "Conv",
                                                     "ConvTranspose", "BatchNormalization", "AveragePool",
                                                     "GlobalAveragePool", "GlobalMaxPool"};
  if (std::find(std::begin(kPerElement), std::end(kPerElement), op) != std::end(kPerElement))
    return only_first_batched();
  if (op == "MaxPool") {
    CP_TRY(only_first_batched());
    // Indices are flat positions in the whole input, batch included.
    if (node.outputs.size() > 1 && !node.outputs[1].empty()) return no_split(node, "outputs flat indices");
    return {};
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Max" || op == "Min") {
    const int64_t out_rank = static_cast<int64_t>(g.types.at(node.outputs[0]).shape.size());
    bool any = false;
    for (size_t i = 0; i < in.size(); ++i) {
      const Shape& s = in[i].type.shape;
      if (batched[i]) {
        if (static_cast<int64_t>(s.size()) != out_rank) return no_split(node, "broadcasts a batched input");
        any = true;
      } else if (static_cast<int64_t>(s.size()) == out_rank && s[0] != 1) {
        return no_split(node, "broadcasts a constant along the batch axis");
      }
    }
    if (!any) return no_split(node, "reads no batched value");
    return {};
  }
  if (op == "Softmax") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(SoftmaxLayout l, resolve_softmax(node, in[0].type.shape));
    if (l.outer % n != 0) return no_split(node, "normalises across samples");
    return {};
  }
  if (op == "Gemm") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(int64_t trans_a, attr_int(node, "transA", 0));
    if (trans_a != 0) return no_split(node, "transposes its batched input (transA)");
    if (const InferInput* c = optional_input(in, 2); c && c->type.shape.size() == 2 && c->type.shape[0] != 1)
      return no_split(node, "adds a bias with one row per sample");
    return {};
  }
  if (op == "MatMul") {
    if (batched.size() != 2 || !batched[0]) return no_split(node, "does not read the batch as its first operand");
    const Shape& b = in[1].type.shape;
    if (rank < 2) return no_split(node, "multiplies a batched vector");
    if (batched[1]) {
      if (static_cast<int64_t>(b.size()) != rank || rank < 3) return no_split(node, "mixes samples");
    } else if (static_cast<int64_t>(b.size()) > rank) {
      return no_split(node, "broadcasts the batched operand to more axes");
    } else if (static_cast<int64_t>(b.size()) == rank && b[0] != 1) {
      return no_split(node, "broadcasts a constant along the batch axis");
    }
    return {};
  }
  if (op == "Concat") {
    for (bool b : batched)
      if (!b) return no_split(node, "concatenates a constant with batched values");
    CP_ASSIGN_OR_RETURN(int64_t axis, axis_attr(node, 0, rank));
    if (axis == 0) return no_split(node, "concatenates along the batch axis");
    return {};
  }
  if (op == "Reshape") {
    CP_TRY(only_first_batched());
    // The output's axis 0 must be the batch again, and stay it for any chunk
    // size: the target's first entry copies it (0), is inferred (-1) or was
    // computed from the batch length (Shape -> ... -> Reshape, refolded for
    // each chunk size). A literal that happens to equal n is not enough.
    if (!batched_type(g.types.at(node.outputs[0]), n)) return no_split(node, "reshapes across samples");
    if (in.size() < 2 || in[1].value == nullptr) return no_split(node, "has no constant target shape");
    if (!g.batch_derived.count(node.inputs[1])) {
      CP_ASSIGN_OR_RETURN(auto target, constant_ints(node, in, 1, "shape", "the batch split"));
      CP_ASSIGN_OR_RETURN(int64_t allowzero, attr_int(node, "allowzero", 0));
      if (target.empty() || !((target[0] == 0 && allowzero == 0) || target[0] == -1))
        return no_split(node, "names the batch length in its target shape");
    }
    return {};
  }
  if (op == "Flatten") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(int64_t axis, attr_int(node, "axis", 1));
    if (axis < 0) axis += rank;
    if (axis < 1) return no_split(node, "flattens the batch axis");
    return {};
  }
  if (op == "Transpose") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(auto perm, resolve_perm(node, rank));
    if (perm.empty() || perm[0] != 0) return no_split(node, "moves the batch axis");
    return {};
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(auto axes, squeeze_axes(node, in));
    if (!axes) return no_split(node, "has no explicit axes");
    const int64_t axes_rank = op == "Squeeze" ? rank : rank + static_cast<int64_t>(axes->size());
    CP_ASSIGN_OR_RETURN(auto norm, normalize_axes(node, *axes, axes_rank, "'axes'"));
    if (std::find(norm.begin(), norm.end(), 0) != norm.end()) return no_split(node, "changes the batch axis");
    return {};
  }
  if (op == "Slice") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(SliceParams p, resolve_slice(node, in));
    if (p.starts[0] != 0 || p.steps[0] != 1 || p.out_shape[0] != n) return no_split(node, "slices the batch axis");
    return {};
  }
  if (op == "Gather") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(int64_t axis, axis_attr(node, 0, rank));
    if (axis == 0) return no_split(node, "gathers along the batch axis");
    return {};
  }
  if (op == "Pad") {
    CP_TRY(only_first_batched());
    CP_ASSIGN_OR_RETURN(PadParams p, resolve_pad(node, in));
    if (p.begins[0] != 0 || p.ends[0] != 0) return no_split(node, "pads the batch axis");
    return {};
  }
  if (op == "Resize") {
    CP_TRY(only_first_batched());
    // `sizes` names the batch length itself; scales must keep it.
    if (optional_input(in, 3) != nullptr) return no_split(node, "takes output sizes (with the batch length)");
    CP_ASSIGN_OR_RETURN(ResizeParams p, resolve_resize(node, in));
    if (p.scales.empty() || p.scales[0] != 1.0 || p.coordinate_mode == CoordinateMode::tf_crop_and_resize)
      return no_split(node, "resizes the batch axis");
    return {};
  }
  if (reduce_family(op)) {
    CP_TRY(only_first_batched());
    return check_reduce_family(node, in, rank, n);
  }
  return no_split(node, "is not known to keep samples apart");
}

}  // namespace

Status check_batch_separable(const BatchGraphView& g, int64_t n) {
  if (n < 2) return unsupported("a batch of {} cannot be split", n);
  std::set<std::string> batched;
  for (const auto& name : g.inputs) {
    if (!batched_type(g.types.at(name), n))
      return unsupported("input '{}' ({}) does not have the batch on axis 0", name, shape_str(g.types.at(name).shape));
    batched.insert(name);
  }
  for (const Node& node : g.nodes) {
    std::vector<bool> b;
    for (const auto& name : node.inputs) {
      if (!name.empty() && g.batch_derived.count(name) &&
          !(node.op_type == "Reshape" && node.inputs.size() > 1 && name == node.inputs[1]))
        return no_split(node, fmt::format("reads '{}', a value computed from the batch length", name));
      b.push_back(!name.empty() && batched.count(name) != 0);
    }
    CP_TRY(check_node(g, node, b, n));
    for (const auto& name : node.outputs) {
      if (name.empty()) continue;
      if (!batched_type(g.types.at(name), n))
        return no_split(node, fmt::format("output '{}' ({}) does not keep the batch on axis 0", name,
                                          shape_str(g.types.at(name).shape)));
      batched.insert(name);
    }
  }
  for (const auto& name : g.outputs)
    if (!batched.count(name)) return unsupported("graph output '{}' does not carry the batch", name);
  return {};
}

double sample_working_set(const BatchGraphView& g, int64_t n) {
  // After fusion a layer reads one activation and writes another: twice the
  // largest activation is what one layer keeps in flight.
  double largest = 0;
  auto consider = [&](const std::string& name) {
    const TensorType& t = g.types.at(name);
    largest = std::max(largest, static_cast<double>(shape_numel(t.shape)) * static_cast<double>(dtype_size(t.dtype)));
  };
  for (const Node& node : g.nodes)
    for (const auto& name : node.outputs)
      if (!name.empty()) consider(name);
  for (const auto& name : g.inputs) consider(name);
  return 2 * largest / static_cast<double>(std::max<int64_t>(n, 1));
}

BatchSplit plan_batch_split(int64_t n, int threads, double sample_bytes, double budget_bytes) {
  BatchSplit s;
  if (n < 2) return s;
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), n));
  const double fit = sample_bytes > 0 ? std::floor(budget_bytes / sample_bytes) : static_cast<double>(n);
  if (workers == 1 && fit >= static_cast<double>(n)) return s;
  // A power of two: kernels block batch and pixel loops by powers of two (a
  // chunk of 7 measured slower than chunks of 4 and 8).
  int64_t cap = 1;
  while (static_cast<double>(cap * 2) <= fit && cap * 2 <= n) cap *= 2;
  int64_t k = std::max<int64_t>(workers, (n + cap - 1) / cap);
  k = (k + workers - 1) / workers * workers;
  s.chunk = (n + k - 1) / k;
  s.chunks = (n + s.chunk - 1) / s.chunk;
  s.workers = static_cast<int>(std::min<int64_t>(workers, s.chunks));
  return s;
}

double batch_split_budget() {
  if (const char* v = std::getenv("CALIPROX_BATCH_BUDGET_KB")) {
    char* end = nullptr;
    const double kb = std::strtod(v, &end);
    if (end != v && kb > 0) return kb * 1024.0;
  }
  // One core's L2 as the kernel reports it (512 KiB to 2 MiB on the x86
  // parts this was measured on), 1 MiB when it cannot be read.
  const int64_t l2 = cpu::features().l2_bytes;
  return l2 > 0 ? static_cast<double>(l2) : 1024.0 * 1024.0;
}

}  // namespace caliprox
