#include "engine/session.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "engine/batch_split.h"
#include "engine/layout.h"
#include "engine/op_registry.h"
#include "engine/passes.h"
#include "util/log.h"

namespace caliprox {

namespace {

constexpr size_t kAlign = 64;
size_t aligned_size(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Where a value lives at run time.
struct ValueSlot {
  enum class Where { constant, graph_input, arena, owned_output } where = Where::arena;
  size_t index = 0;  // graph input index, arena slot or output index
  TensorType type;
};

// A prepared kernel and the backend that made it.
struct PreparedKernel {
  std::unique_ptr<Kernel> kernel;
  std::string backend;
};

struct Step {
  Node node;  // the node as executed (possibly fused)
  std::unique_ptr<Kernel> kernel;  // the exact kernel
  std::string backend;
  std::vector<std::string> inputs;   // value names ("" omitted)
  std::vector<std::string> outputs;  // value names ("" omitted)
  // What the NodeContext held at preparation, to prepare knob kernels later.
  std::vector<TensorType> input_types;
  std::vector<const Tensor*> constants;
  std::vector<TensorType> output_types;
  Layout layout = Layout::nchw;
  // Knob kernels prepared so far (switching between them is free; kept
  // until release_idle_kernels()).
  std::map<const Knob*, PreparedKernel> knob_kernels;
  // int8 / bf16 kernels writing codes for their readers, by (knob, codes); a null
  // kernel records that the backend has none.
  std::map<std::pair<const Knob*, ActivationCodes>, PreparedKernel> codes_kernels;
  // What configure() chose: the exact kernel or one of knob_kernels; and
  // what run() executes: that, or a codes-writing variant (plan_run).
  Kernel* configured = nullptr;
  Kernel* active = nullptr;
  const Knob* knob = nullptr;  // null: exact
  const std::string* active_backend = nullptr;
  int site = -1;  // index into knob_sites, or -1
  // The fused residual (input #3) dies here and lent its buffer to output #0;
  // kernels that cannot run in place read residual_copy instead.
  bool residual_lent = false;
  Tensor residual_copy;
};

// Runs an NCHW kernel inside an NHWC stretch of the graph: converts the
// non-constant rank-4 inputs to NCHW scratch tensors and the rank-4 outputs
// back. Used when a knob has no channels-last kernel in the chosen backend,
// so the layout plan of the session stays valid under every configuration.
class NchwAdapter final : public Kernel {
 public:
  NchwAdapter(std::unique_ptr<Kernel> inner, const std::vector<TensorType>& input_types,
              const std::vector<const Tensor*>& constants, const std::vector<TensorType>& output_types)
      : inner_(std::move(inner)),
        to_nchw_(make_layout_kernel(Layout::nhwc, Layout::nchw)),
        to_nhwc_(make_layout_kernel(Layout::nchw, Layout::nhwc)) {
    for (size_t i = 0; i < input_types.size(); ++i) {
      const bool convert = input_types[i].shape.size() == 4 && constants[i] == nullptr &&
                           input_types[i].dtype != DType::undefined && !layout_neutral(input_types[i].shape);
      in_scratch_.push_back(convert ? std::make_unique<Tensor>(input_types[i].dtype, input_types[i].shape) : nullptr);
    }
    for (const auto& t : output_types) {
      const bool convert = t.shape.size() == 4 && t.dtype != DType::undefined && !layout_neutral(t.shape);
      out_scratch_.push_back(convert ? std::make_unique<Tensor>(t.dtype, t.shape) : nullptr);
    }
    ins_.resize(input_types.size());
    outs_.resize(output_types.size());
  }

  // Converted inputs and outputs live in scratch tensors; unconverted ones
  // (layout-neutral shapes) are the inner kernel's business.
  bool residual_in_place() const override {
    return (in_scratch_.size() > 3 && in_scratch_[3]) || inner_->residual_in_place();
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    for (size_t i = 0; i < inputs.size(); ++i) {
      ins_[i] = inputs[i];
      if (inputs[i] && in_scratch_[i]) {
        const Tensor* from[] = {inputs[i]};
        Tensor* to[] = {in_scratch_[i].get()};
        CP_TRY(to_nchw_->run(from, to));
        ins_[i] = in_scratch_[i].get();
      }
    }
    for (size_t i = 0; i < outputs.size(); ++i)
      outs_[i] = outputs[i] && out_scratch_[i] ? out_scratch_[i].get() : outputs[i];
    CP_TRY(inner_->run(ins_, outs_));
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!outputs[i] || !out_scratch_[i]) continue;
      const Tensor* from[] = {out_scratch_[i].get()};
      Tensor* to[] = {outputs[i]};
      CP_TRY(to_nhwc_->run(from, to));
    }
    return {};
  }

 private:
  std::unique_ptr<Kernel> inner_;
  std::unique_ptr<Kernel> to_nchw_, to_nhwc_;
  std::vector<std::unique_ptr<Tensor>> in_scratch_, out_scratch_;
  std::vector<const Tensor*> ins_;
  std::vector<Tensor*> outs_;
};

void update_range(ValueRange& r, bool& first, const Tensor& t) {
  if (t.dtype() != DType::f32 || t.numel() == 0) return;
  const float* p = t.data<float>();
  float lo = p[0], hi = p[0];
  for (int64_t i = 1; i < t.numel(); ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  if (first) {
    r = {lo, hi};
    first = false;
  } else {
    r.min = std::min(r.min, lo);
    r.max = std::max(r.max, hi);
  }
}

std::string fused_summary(const Node& node) {
  std::vector<std::string> parts;
  if (node.attr_int(kAttrResidual, 0) == 1) parts.push_back("Add");
  if (auto it = node.attrs.find(kAttrActivation); it != node.attrs.end() && it->second.kind == Attribute::Kind::s)
    parts.push_back(it->second.s);
  return fmt::format("{}", fmt::join(parts, "+"));
}

// Arena slots: a value gets the smallest free slot that fits, or the largest
// free one grown, or a new one; slots are freed after a value's last reader.
class SlotPlanner {
 public:
  size_t acquire(size_t bytes) {
    bytes = aligned_size(std::max<size_t>(bytes, 1));
    std::optional<size_t> best, largest;
    for (size_t s : free_) {
      if (sizes_[s] >= bytes && (!best || sizes_[s] < sizes_[*best])) best = s;
      if (!largest || sizes_[s] > sizes_[*largest]) largest = s;
    }
    size_t slot;
    if (best) {
      slot = *best;
    } else if (largest) {
      slot = *largest;
      sizes_[slot] = bytes;
    } else {
      slot = sizes_.size();
      sizes_.push_back(bytes);
      return slot;
    }
    free_.erase(slot);
    return slot;
  }
  void release(size_t slot) { free_.insert(slot); }
  const std::vector<size_t>& sizes() const { return sizes_; }

 private:
  std::vector<size_t> sizes_;
  std::set<size_t> free_;
};

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

// Adds `part` (the node timings of one run) to `sum` node by node; `sum`
// takes `part` as it is when empty.
void add_timings(std::vector<NodeTiming>& sum, const std::vector<NodeTiming>& part) {
  if (sum.empty()) {
    sum = part;
    return;
  }
  for (size_t k = 0; k < sum.size() && k < part.size(); ++k) sum[k].ms += part[k].ms;
}

// CALIPROX_BATCH_SPLIT=0 turns batch splitting off for the process (for
// side-by-side benchmarks).
bool batch_split_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("CALIPROX_BATCH_SPLIT");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return on;
}

// Shape's output computed from the input type alone (ONNX Shape with start/end, opset 15).
Tensor shape_value(const Node& node, const Shape& in) {
  const auto [start, end] = shape_axes(node, in);
  int64_t n = std::max<int64_t>(0, end - start);
  Tensor t(DType::i64, {n});
  for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = in[static_cast<size_t>(start + i)];
  return t;
}

}  // namespace

struct Session::Impl {
  std::vector<std::string> input_names;
  std::vector<TensorType> input_types;
  std::vector<std::string> output_names;
  std::vector<TensorType> output_types;

  std::map<std::string, Tensor> constants;
  std::map<std::string, ValueSlot> values;
  std::vector<Step> steps;
  std::vector<Tensor> arena;          // one owned buffer per slot
  std::vector<Tensor> owned_outputs;  // graph outputs computed by nodes
  std::vector<Tensor> outputs;        // what output(i) returns
  std::vector<NodeTiming> timings;
  bool collect_timings = false;

  // Per step: resolved pointers into constants / arena / outputs, refreshed per run for inputs.
  struct StepIo {
    std::vector<const Tensor*> in;
    std::vector<Tensor*> out;
    std::vector<int> in_graph_input;  // graph input index per input, or -1
    // What the active kernel reads and writes: in/out, with low-precision codes in
    // place of floats on the edges plan_run() chose.
    std::vector<const Tensor*> in_now;
    std::vector<Tensor*> out_now;
    Tensor* quantize_to = nullptr;  // quantise input #0 into this before running
    bool copy_residual = false;     // copy input #3 into Step::residual_copy before running
  };
  std::vector<StepIo> io;
  std::map<std::string, Tensor> value_views;
  std::vector<Tensor> run_inputs;   // copies of the caller's tensor headers (views)

  // Knobs.
  Backend* backend = nullptr;             // the caller's (outlives the session)
  std::unique_ptr<Backend> reference;     // fallback
  int threads = 1;
  std::map<std::string, ValueRange> calibrated_ranges;
  std::vector<KnobSite> sites;
  std::map<std::string, size_t> step_of_node;  // node name -> step index
  KnobConfig config;
  bool track_ranges = false;
  std::map<std::string, ValueRange> seen_ranges;
  std::vector<bool> range_first;

  // Low-precision edges.
  bool lowp_edges = true;
  std::map<std::string, size_t> producer_of;  // value -> step writing it
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> readers_of;  // value -> (step, input #)
  std::map<std::pair<std::string, ActivationCodes>, Tensor> codes_buffers;  // kept across configurations
  std::vector<CodesEdge> edges;

  // Batch split: the chunk-size sessions (one per worker thread) that run
  // this session's batch, or null when it runs as one piece.
  struct Split {
    BatchSplit plan;
    int64_t n = 0;  // this session's batch
    std::vector<std::unique_ptr<Session>> workers;
    std::vector<std::vector<Tensor>> padded;  // per worker: inputs of a last, partial chunk
    std::vector<std::vector<NodeTiming>> timings;  // per worker, summed over its chunks
  };
  std::unique_ptr<Split> split;
  Result<bool> try_split(const Graph& graph, Backend& backend, const std::map<std::string, Shape>& input_shapes,
                         const SessionOptions& options, const BatchGraphView& view);
  Status run_worker(size_t w, std::span<const Tensor> inputs);
  Status run_split(std::span<const Tensor> inputs);

  NodeContext knob_context(const Step& step, const Knob& knob) const;
  Result<Kernel*> knob_kernel(Step& step, const Knob& knob);
  Kernel* codes_kernel(Step& step, const ActivationCodes& codes);
  void plan_run();
};

Session::Session() : impl_(std::make_unique<Impl>()) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::create(const Graph& graph, Backend& backend,
                                                 const std::map<std::string, Shape>& input_shapes,
                                                 SessionOptions options) {
  std::unique_ptr<Session> session(new Session());
  Impl& s = *session->impl_;
  s.collect_timings = options.collect_timings;
  s.constants = graph.initializers;
  std::map<std::string, TensorType> types;
  for (const auto& [name, t] : s.constants) types[name] = t.type();

  // Graph inputs: bound (constant) or fed at run time with the given shapes.
  std::map<std::string, int64_t> symbols;
  for (const auto& [name, tensor] : options.bound_inputs) {
    const ValueInfo* info = graph.find_input(name);
    if (!info) return invalid_input("bound input '{}' is not an input of the model", name);
    if (info->dtype != DType::undefined && info->dtype != tensor.dtype())
      return invalid_input("input '{}' expects {} but a {} tensor was given", name, dtype_name(info->dtype),
                           dtype_name(tensor.dtype()));
    CP_TRY(resolve_input_type(*info, tensor.shape(), symbols));
    s.constants[name] = tensor;
    types[name] = tensor.type();
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
    s.values[info.name] = {ValueSlot::Where::graph_input, s.input_names.size(), {info.dtype, it->second}};
    types[info.name] = {info.dtype, it->second};
    s.input_names.push_back(info.name);
    s.input_types.push_back(types[info.name]);
  }

  // Shape inference in node order; nodes whose inputs are all constant are
  // evaluated now with the reference kernels (this folds shape subgraphs).
  s.reference = make_reference_backend({});
  Backend* reference = s.reference.get();
  s.backend = &backend;
  s.threads = options.threads;
  s.calibrated_ranges = options.input_ranges;
  std::vector<Node> to_run;
  std::set<std::string> batch_derived;  // folded values computed from a fed value's shape
  for (const Node& node : graph.nodes) {
    const OpDef* op = find_op(node.op_type);
    if (!op || !(node.domain.empty() || node.domain == "ai.onnx"))
      return unsupported("unsupported op '{}' ({}) in {}", node.op_type, node.describe(), graph.source_path);
    std::vector<InferInput> inputs;
    bool all_constant = true;
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        inputs.push_back({});
        continue;
      }
      auto t = types.find(name);
      if (t == types.end())
        return invalid_input("{} reads '{}', which no node, initializer or input produces", node.describe(), name);
      auto c = s.constants.find(name);
      inputs.push_back({t->second, c == s.constants.end() ? nullptr : &c->second});
      if (c == s.constants.end()) all_constant = false;
    }
    CP_ASSIGN_OR_RETURN(std::vector<TensorType> out_types, op->infer(node, inputs));
    if (out_types.size() < node.outputs.size())
      return runtime_error("{}: shape inference returned {} outputs for {} declared", node.describe(), out_types.size(),
                           node.outputs.size());
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (node.outputs[i].empty()) continue;
      CP_TRY(check_shape(out_types[i].shape, fmt::format("{} output '{}'", node.describe(), node.outputs[i])));
      types[node.outputs[i]] = out_types[i];
    }

    if (node.op_type == "Shape") {
      s.constants[node.outputs[0]] = shape_value(node, inputs[0].type.shape);
      // A shape that includes axis 0 of a runtime value depends on the batch.
      if (const auto axes = shape_axes(node, inputs[0].type.shape); !all_constant && axes.first == 0 && axes.second > 0)
        batch_derived.insert(node.outputs[0]);
      continue;
    }
    if (all_constant && !node.inputs.empty()) {
      auto derived = [&](const std::string& v) { return batch_derived.count(v) != 0; };
      if (std::any_of(node.inputs.begin(), node.inputs.end(), derived))
        for (const auto& out : node.outputs) batch_derived.insert(out);
      NodeContext ctx{node, {}, {}, {}, 1};
      std::vector<const Tensor*> in_ptrs;
      for (const auto& in : inputs) {
        ctx.input_types.push_back(in.type);
        ctx.constants.push_back(in.value);
        in_ptrs.push_back(in.value);
      }
      ctx.output_types.assign(out_types.begin(), out_types.begin() + static_cast<long>(node.outputs.size()));
      auto kernel = reference->prepare(ctx);
      if (!kernel.ok()) return kernel.status().with_context("while folding constants");
      std::vector<Tensor> outs;
      std::vector<Tensor*> out_ptrs;
      outs.reserve(node.outputs.size());
      for (size_t i = 0; i < node.outputs.size(); ++i) outs.emplace_back(ctx.output_types[i].dtype, ctx.output_types[i].shape);
      for (size_t i = 0; i < node.outputs.size(); ++i) out_ptrs.push_back(node.outputs[i].empty() ? nullptr : &outs[i]);
      CP_TRY((*kernel)->run(in_ptrs, out_ptrs).with_context(node.describe()));
      for (size_t i = 0; i < node.outputs.size(); ++i)
        if (!node.outputs[i].empty()) s.constants[node.outputs[i]] = std::move(outs[i]);
      continue;
    }
    to_run.push_back(node);
  }

  std::set<std::string> graph_outputs;
  for (const auto& o : graph.outputs) graph_outputs.insert(o.name);

  // Batch split (batch_split.h): sessions at the chunk size do the work.
  if (options.batch_split && batch_split_enabled()) {
    std::vector<std::string> out_names;
    for (const auto& o : graph.outputs) out_names.push_back(o.name);
    CP_ASSIGN_OR_RETURN(bool split, s.try_split(graph, backend, input_shapes, options,
                                                BatchGraphView{to_run, types, s.constants, batch_derived,
                                                               s.input_names, out_names}));
    if (split) return session;
  }

  if (options.optimize) {
    PassStats st = fuse_conv_chains(to_run, s.constants, types, graph_outputs);
    log_debug("graph passes: {} HardSwish formed, {} BatchNorm folded, {} residual Add and {} activations fused "
              "into Conv",
              st.hardswish_formed, st.batchnorms_folded, st.residuals_fused, st.activations_fused);
  }

  // Graph outputs.
  for (const auto& o : graph.outputs) {
    auto t = types.find(o.name);
    if (t == types.end()) return invalid_input("model output '{}' is not produced by any node", o.name);
    s.output_names.push_back(o.name);
    s.output_types.push_back(t->second);
  }

  // Prepare kernels, choosing each node's layout; layout conversions become
  // steps of their own, shared by every consumer of the converted value.
  std::map<std::string, Layout> layout_of;  // values that are not NCHW
  std::map<std::string, std::string> converted;  // "<value>#<layout>" -> name of the converted value
  auto current_layout = [&](const std::string& v) {
    auto it = layout_of.find(v);
    return it == layout_of.end() ? Layout::nchw : it->second;
  };
  auto type_of = [&](const std::string& v) {
    auto c = s.constants.find(v);
    return c == s.constants.end() ? types.at(v) : c->second.type();
  };
  // The name under which `v` is available in layout `want` (converting once).
  auto in_layout = [&](const std::string& v, Layout want) -> std::string {
    const Layout have = current_layout(v);
    const TensorType t = type_of(v);
    if (have == want || t.shape.size() != 4 || layout_neutral(t.shape)) return v;
    const std::string key = fmt::format("{}#{}", v, layout_name(want));
    if (auto it = converted.find(key); it != converted.end()) return it->second;
    Step conv;
    conv.node.name = key;
    conv.node.op_type = "LayoutConversion";
    conv.node.inputs = {v};
    conv.node.outputs = {key};
    conv.inputs = conv.node.inputs;
    conv.outputs = conv.node.outputs;
    conv.kernel = make_layout_kernel(have, want);
    conv.backend = "engine";
    types[key] = t;
    if (want != Layout::nchw) layout_of[key] = want;
    s.steps.push_back(std::move(conv));
    converted[key] = key;
    return key;
  };

  // Which Convs will get their fused residual in the output's buffer (the
  // memory plan below lends it when the residual dies there): kernels are
  // told, so that they pick a variant that sums in place.
  std::map<std::string, size_t> last_node_reader;
  for (size_t n = 0; n < to_run.size(); ++n)
    for (const auto& in : to_run[n].inputs)
      if (!in.empty()) last_node_reader[in] = n;
  auto residual_dies_here = [&](const Node& node, size_t n) {
    if (node.op_type != "Conv" || node.attr_int(kAttrResidual, 0) != 1 || node.inputs.size() < 4 ||
        node.outputs.empty() || node.outputs[0].empty() || graph_outputs.count(node.outputs[0]))
      return false;
    const std::string& r = node.inputs[3];
    return !r.empty() && !s.constants.count(r) && !graph_outputs.count(r) &&
           std::find(s.input_names.begin(), s.input_names.end(), r) == s.input_names.end() &&
           last_node_reader.at(r) == n && std::count(node.inputs.begin(), node.inputs.end(), r) == 1 &&
           type_of(r) == types.at(node.outputs[0]);
  };

  s.steps.reserve(to_run.size() * 2);
  for (size_t node_index = 0; node_index < to_run.size(); ++node_index) {
    Node& node = to_run[node_index];
    NodeContext ctx{node, {}, {}, {}, options.threads};
    ctx.residual_in_place = residual_dies_here(node, node_index);
    for (const auto& in : node.inputs) {
      auto c = in.empty() ? s.constants.end() : s.constants.find(in);
      ctx.input_types.push_back(in.empty() ? TensorType{} : type_of(in));
      ctx.constants.push_back(c == s.constants.end() ? nullptr : &c->second);
    }
    for (const auto& out : node.outputs) ctx.output_types.push_back(out.empty() ? TensorType{} : types.at(out));
    bool writes_graph_output = false;
    for (const auto& out : node.outputs) writes_graph_output = writes_graph_output || graph_outputs.count(out);

    Backend* chosen = backend.supports(ctx) ? &backend : reference;
    // Channels-last where the backend computes in it; element-wise ops follow
    // their first activation input; graph outputs are always NCHW.
    Layout layout = Layout::nchw;
    if (!writes_graph_output) {
      if (chosen == &backend && backend.supports_nhwc(ctx)) {
        layout = Layout::nhwc;
      } else if (layout_transparent(ctx)) {
        for (size_t i = 0; i < node.inputs.size(); ++i)
          if (!node.inputs[i].empty() && !ctx.constants[i]) {
            layout = current_layout(node.inputs[i]);
            break;
          }
      }
    }
    ctx.layout = layout;
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (!node.inputs[i].empty() && !ctx.constants[i]) node.inputs[i] = in_layout(node.inputs[i], layout);

    auto kernel = chosen->prepare(ctx);
    if (!kernel.ok() && chosen != reference && kernel.status().code() == Errc::unsupported) {
      // Only NCHW is guaranteed to have a reference kernel.
      chosen = reference;
      if (layout != Layout::nchw && !layout_transparent(ctx)) {
        ctx.layout = layout = Layout::nchw;
        for (size_t i = 0; i < node.inputs.size(); ++i)
          if (!node.inputs[i].empty() && !ctx.constants[i]) node.inputs[i] = in_layout(node.inputs[i], layout);
      }
      kernel = chosen->prepare(ctx);
    }
    if (!kernel.ok()) return kernel.status();
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (!node.outputs[i].empty() && layout != Layout::nchw && ctx.output_types[i].shape.size() == 4)
        layout_of[node.outputs[i]] = layout;

    Step step;
    step.node = std::move(node);
    step.inputs = step.node.inputs;
    step.outputs = step.node.outputs;
    step.kernel = std::move(kernel).value();
    step.backend = std::string(chosen->name());
    step.input_types = ctx.input_types;
    step.constants = ctx.constants;
    step.output_types = ctx.output_types;
    step.layout = layout;
    s.steps.push_back(std::move(step));
  }

  // Knob sites: the 2-D convolutions that are executed (not folded).
  for (size_t i = 0; i < s.steps.size(); ++i) {
    Step& st = s.steps[i];
    st.configured = st.active = st.kernel.get();
    st.active_backend = &st.backend;
    if (st.node.op_type == "LayoutConversion") continue;
    s.step_of_node[st.node.name] = i;
    if (st.node.op_type != "Conv" || st.input_types.size() < 2 || st.input_types[0].shape.size() != 4) continue;
    auto g = conv_geometry(st.node, st.input_types[0].shape, st.input_types[1].shape);
    if (!g.ok()) continue;
    KnobSite site{st.node.name, st.node.op_type, *g, conv_layer_flops(*g), fused_summary(st.node), {}};
    for (const Knob& k : knob_catalogue())
      if (knob_applies(k, st.node, st.input_types[0].shape, st.input_types[1].shape).ok()) site.knobs.push_back(&k);
    st.site = static_cast<int>(s.sites.size());
    s.sites.push_back(std::move(site));
  }
  s.range_first.assign(s.sites.size(), true);

  // Memory plan: arena slots are reused once a value's last reader has run.
  std::map<std::string, size_t> last_reader;
  for (size_t i = 0; i < s.steps.size(); ++i)
    for (const auto& in : s.steps[i].inputs)
      if (!in.empty()) last_reader[in] = i;
  SlotPlanner planner;
  for (size_t i = 0; i < s.steps.size(); ++i) {
    Step& step = s.steps[i];
    // A Conv's fused residual that dies here lends its slot to the output:
    // the sum is then computed in place, with no copy of the residual.
    std::optional<size_t> lent;
    if (step.node.op_type == "Conv" && step.node.attr_int(kAttrResidual, 0) == 1 && step.inputs.size() > 3 &&
        !step.outputs.empty() && !step.outputs[0].empty() && !graph_outputs.count(step.outputs[0])) {
      const std::string& r = step.inputs[3];
      auto v = s.values.find(r);
      const TensorType& out_type = types.at(step.outputs[0]);
      if (v != s.values.end() && v->second.where == ValueSlot::Where::arena && last_reader.at(r) == i &&
          std::count(step.inputs.begin(), step.inputs.end(), r) == 1 && v->second.type == out_type) {
        lent = v->second.index;
        step.residual_lent = true;
      }
    }
    for (const auto& out : step.outputs) {
      if (out.empty()) continue;
      const TensorType& t = types.at(out);
      if (lent && out == step.outputs[0]) {
        s.values[out] = {ValueSlot::Where::arena, *lent, t};
      } else if (graph_outputs.count(out)) {
        s.values[out] = {ValueSlot::Where::owned_output, s.owned_outputs.size(), t};
        s.owned_outputs.emplace_back(t.dtype, t.shape);
      } else {
        s.values[out] = {ValueSlot::Where::arena, planner.acquire(shape_numel(t.shape) * dtype_size(t.dtype)), t};
      }
    }
    // Free values whose last reader is this step (and outputs nobody reads).
    auto release_if_dead = [&](const std::string& name) {
      auto v = s.values.find(name);
      if (v == s.values.end() || v->second.where != ValueSlot::Where::arena) return;
      auto lr = last_reader.find(name);
      if (lr == last_reader.end() || lr->second <= i) planner.release(v->second.index);
    };
    std::set<std::string> seen;
    if (lent) seen.insert(step.inputs[3]);  // its slot now holds the output
    for (const auto& in : step.inputs)
      if (!in.empty() && seen.insert(in).second) release_if_dead(in);
    for (const auto& out : step.outputs)
      if (!out.empty() && !last_reader.count(out)) release_if_dead(out);
  }
  for (size_t bytes : planner.sizes()) s.arena.emplace_back(DType::u8, Shape{static_cast<int64_t>(bytes)});

  // Resolve every step's tensors once; graph inputs are re-pointed per run.
  s.run_inputs.resize(s.input_names.size());
  auto tensor_for = [&](const std::string& name, int& graph_input) -> const Tensor* {
    graph_input = -1;
    if (auto c = s.constants.find(name); c != s.constants.end()) return &c->second;
    const ValueSlot& v = s.values.at(name);
    switch (v.where) {
      case ValueSlot::Where::graph_input: graph_input = static_cast<int>(v.index); return nullptr;
      case ValueSlot::Where::owned_output: return &s.owned_outputs[v.index];
      case ValueSlot::Where::arena:
      case ValueSlot::Where::constant: break;
    }
    auto [it, inserted] = s.value_views.try_emplace(name);
    if (inserted) it->second = Tensor::view(v.type.dtype, v.type.shape, s.arena[v.index].raw());
    return &it->second;
  };
  for (const Step& step : s.steps) {
    Impl::StepIo sio;
    for (const auto& in : step.inputs) {
      int gi = -1;
      sio.in.push_back(in.empty() ? nullptr : tensor_for(in, gi));
      sio.in_graph_input.push_back(gi);
    }
    for (const auto& out : step.outputs) {
      int gi = -1;
      sio.out.push_back(out.empty() ? nullptr : const_cast<Tensor*>(tensor_for(out, gi)));
    }
    s.io.push_back(std::move(sio));
  }
  s.outputs.resize(s.output_names.size());
  s.lowp_edges = options.lowp_edges;
  for (size_t i = 0; i < s.steps.size(); ++i) {
    for (size_t j = 0; j < s.steps[i].inputs.size(); ++j)
      if (!s.steps[i].inputs[j].empty()) s.readers_of[s.steps[i].inputs[j]].emplace_back(i, j);
    for (const auto& out : s.steps[i].outputs)
      if (!out.empty()) s.producer_of[out] = i;
  }
  s.plan_run();
  log_debug("session: {} kernels, {} constants, arena of {} slots", s.steps.size(), s.constants.size(), s.arena.size());
  return session;
}

Result<bool> Session::Impl::try_split(const Graph& graph, Backend& backend,
                                      const std::map<std::string, Shape>& input_shapes, const SessionOptions& options,
                                      const BatchGraphView& view) {
  if (input_names.empty()) return false;
  const int64_t n = input_types[0].shape.empty() ? 0 : input_types[0].shape[0];
  if (Status st = check_batch_separable(view, n); !st.ok()) {
    log_debug("batch split: no ({})", st.message());
    return false;
  }
  const double sample_bytes = sample_working_set(view, n);
  const BatchSplit plan = plan_batch_split(n, options.threads, sample_bytes, batch_split_budget());
  if (plan.chunk == 0) return false;

  auto sp = std::make_unique<Split>();
  sp->plan = plan;
  sp->n = n;
  std::map<std::string, Shape> chunk_shapes = input_shapes;
  for (auto& [name, shape] : chunk_shapes) shape[0] = plan.chunk;
  SessionOptions inner = options;
  inner.threads = 1;
  inner.batch_split = false;
  // A model may declare a fixed batch length; its chunks have another one.
  Graph chunk_graph = graph;
  for (ValueInfo& info : chunk_graph.inputs)
    if (chunk_shapes.count(info.name) && info.dims && !info.dims->empty()) (*info.dims)[0] = Dim{};
  for (int w = 0; w < plan.workers; ++w) {
    auto worker = Session::create(chunk_graph, backend, chunk_shapes, inner);
    if (!worker.ok()) {
      // E.g. a Reshape to a literal batch length: run the batch as one piece.
      log_debug("batch split: no (a session at {} samples fails: {})", plan.chunk, worker.status().message());
      return false;
    }
    if (w == 0) {
      // Belt and braces: each output must be this session's output cut to
      // the chunk (the copy in run_worker relies on it).
      for (size_t i = 0; i < (*worker)->output_types().size(); ++i) {
        const TensorType& part = (*worker)->output_types()[i];
        const auto it = std::find(view.outputs.begin(), view.outputs.end(), (*worker)->output_names()[i]);
        TensorType whole = part;
        if (!whole.shape.empty()) whole.shape[0] = n;
        if (part.shape.empty() || part.shape[0] != plan.chunk || it == view.outputs.end() ||
            view.types.at(*it) != whole) {
          log_debug("batch split: no (output '{}' is {} at {} samples)", (*worker)->output_names()[i],
                    shape_str(part.shape), plan.chunk);
          return false;
        }
      }
    }
    sp->workers.push_back(std::move(*worker));
  }
  const Session& first = *sp->workers[0];
  for (size_t i = 0; i < first.output_names().size(); ++i) {
    TensorType t = first.output_types()[i];
    t.shape[0] = n;
    output_names.push_back(first.output_names()[i]);
    output_types.push_back(t);
    outputs.emplace_back(t.dtype, t.shape);
  }
  for (KnobSite site : first.knob_sites()) {
    site.flops *= static_cast<double>(n) / static_cast<double>(plan.chunk);
    site.geometry.n = n;
    sites.push_back(std::move(site));
  }
  run_inputs.resize(input_names.size());
  sp->padded.resize(static_cast<size_t>(plan.workers));
  sp->timings.resize(static_cast<size_t>(plan.workers));
  log_debug("batch split: {} samples as {} chunks of {} on {} worker(s) ({:.0f} KiB per sample at most)", n,
            plan.chunks, plan.chunk, plan.workers, sample_bytes / 1024);
  split = std::move(sp);
  return true;
}

// Worker w runs chunks w, w + workers, ... and copies their outputs into
// this session's outputs (disjoint rows per chunk).
Status Session::Impl::run_worker(size_t w, std::span<const Tensor> inputs) {
  Split& sp = *split;
  Session& worker = *sp.workers[w];
  std::vector<NodeTiming>& times = sp.timings[w];
  times.clear();
  const int64_t b = sp.plan.chunk;
  std::vector<Tensor> chunk_inputs(inputs.size());
  for (auto c = static_cast<int64_t>(w); c < sp.plan.chunks; c += sp.plan.workers) {
    const int64_t begin = c * b;
    const int64_t count = std::min(b, sp.n - begin);
    for (size_t i = 0; i < inputs.size(); ++i) {
      Shape shape = inputs[i].shape();
      shape[0] = b;
      const size_t sample = inputs[i].nbytes() / static_cast<size_t>(sp.n);
      const auto* from = static_cast<const char*>(inputs[i].raw()) + static_cast<size_t>(begin) * sample;
      if (count == b) {
        // The worker session only reads its inputs.
        chunk_inputs[i] = Tensor::view(inputs[i].dtype(), shape, const_cast<char*>(from));
        continue;
      }
      // A partial last chunk: pad with copies of its last sample (they are
      // computed and dropped; repeating a real sample keeps calibrated
      // ranges unchanged).
      auto& padded = sp.padded[w];
      if (padded.size() != inputs.size()) padded.resize(inputs.size());
      if (padded[i].shape() != shape || padded[i].dtype() != inputs[i].dtype())
        padded[i] = Tensor(inputs[i].dtype(), shape);
      auto* to = static_cast<char*>(padded[i].raw());
      std::memcpy(to, from, static_cast<size_t>(count) * sample);
      for (int64_t k = count; k < b; ++k)
        std::memcpy(to + static_cast<size_t>(k) * sample, from + static_cast<size_t>(count - 1) * sample, sample);
      chunk_inputs[i] = padded[i];
    }
    CP_TRY(worker.run(chunk_inputs));
    for (size_t o = 0; o < outputs.size(); ++o) {
      const Tensor& part = worker.output(o);
      const size_t sample = part.nbytes() / static_cast<size_t>(b);
      std::memcpy(static_cast<char*>(outputs[o].raw()) + static_cast<size_t>(begin) * sample, part.raw(),
                  static_cast<size_t>(count) * sample);
    }
    if (collect_timings) add_timings(times, worker.timings());
  }
  return {};
}

Status Session::Impl::run_split(std::span<const Tensor> inputs) {
  Split& sp = *split;
  const auto workers = static_cast<int>(sp.workers.size());
  std::vector<Status> status(sp.workers.size());
  // One thread per worker, each running its chunks through the whole network
  // on one core. Nested kernels see they are inside a parallel region (and
  // were prepared for one thread) and do not start teams of their own.
#pragma omp parallel for num_threads(workers) schedule(static, 1)
  for (int w = 0; w < workers; ++w) status[static_cast<size_t>(w)] = run_worker(static_cast<size_t>(w), inputs);
  for (const Status& st : status)
    if (!st.ok()) return st;
  if (collect_timings) {
    // Per node: the threads' time summed over all chunks, divided by the
    // number of threads (the node's share of the run's wall time).
    timings.clear();
    for (const auto& t : sp.timings) add_timings(timings, t);
    for (NodeTiming& t : timings) t.ms /= static_cast<double>(workers);
  }
  if (track_ranges) {
    seen_ranges.clear();
    for (const auto& worker : sp.workers) merge_ranges(seen_ranges, worker->input_ranges());
  }
  return {};
}

const BatchSplit& Session::batch_split() const {
  static const BatchSplit none;
  return impl_->split ? impl_->split->plan : none;
}

const std::vector<std::string>& Session::input_names() const { return impl_->input_names; }
const std::vector<TensorType>& Session::input_types() const { return impl_->input_types; }
const std::vector<std::string>& Session::output_names() const { return impl_->output_names; }
const std::vector<TensorType>& Session::output_types() const { return impl_->output_types; }
const std::vector<NodeTiming>& Session::timings() const { return impl_->timings; }

std::vector<std::pair<std::string, std::string>> Session::node_backends() const {
  if (impl_->split) return impl_->split->workers[0]->node_backends();
  std::vector<std::pair<std::string, std::string>> r;
  for (const auto& st : impl_->steps) r.emplace_back(st.node.name, *st.active_backend);
  return r;
}

Result<std::string> Session::knob_backend(const std::string& node, const Knob& knob) const {
  if (impl_->split) return impl_->split->workers[0]->knob_backend(node, knob);
  auto it = impl_->step_of_node.find(node);
  if (it == impl_->step_of_node.end() ||
      std::none_of(impl_->sites.begin(), impl_->sites.end(), [&](const KnobSite& s) { return s.node == node; }))
    return invalid_input("'{}' is not a layer that takes knobs", node);
  NodeContext ctx = impl_->knob_context(impl_->steps[it->second], knob);
  if (knob.kind == KnobKind::int8 && !ctx.input_range) ctx.input_range = ValueRange{0.0f, 1.0f};
  return std::string(impl_->backend->supports(ctx) ? impl_->backend->name() : impl_->reference->name());
}

const std::vector<KnobSite>& Session::knob_sites() const { return impl_->sites; }
const std::vector<CodesEdge>& Session::codes_edges() const {
  return impl_->split ? impl_->split->workers[0]->codes_edges() : impl_->edges;
}
const KnobConfig& Session::configuration() const { return impl_->config; }

size_t Session::release_idle_kernels() {
  size_t freed = 0;
  if (impl_->split) {
    for (auto& worker : impl_->split->workers) freed += worker->release_idle_kernels();
    return freed;
  }
  for (Step& step : impl_->steps) {
    for (auto it = step.knob_kernels.begin(); it != step.knob_kernels.end();) {
      if (it->second.kernel.get() == step.configured) {
        ++it;
      } else {
        it = step.knob_kernels.erase(it);
        ++freed;
      }
    }
    for (auto it = step.codes_kernels.begin(); it != step.codes_kernels.end();) {
      if (it->second.kernel && it->second.kernel.get() == step.active) {
        ++it;
      } else {
        freed += it->second.kernel ? 1 : 0;
        it = step.codes_kernels.erase(it);
      }
    }
  }
  return freed;
}

void Session::track_input_ranges(bool on) {
  impl_->track_ranges = on;
  if (impl_->split) {
    for (auto& worker : impl_->split->workers) worker->track_input_ranges(on);
    if (on) impl_->seen_ranges.clear();
    return;
  }
  if (on) {
    impl_->seen_ranges.clear();
    impl_->range_first.assign(impl_->sites.size(), true);
  }
  impl_->plan_run();  // ranges are tracked on float inputs
}
const std::map<std::string, ValueRange>& Session::input_ranges() const { return impl_->seen_ranges; }
void Session::set_calibrated_ranges(std::map<std::string, ValueRange> ranges) {
  if (impl_->split)
    for (auto& worker : impl_->split->workers) worker->set_calibrated_ranges(ranges);
  impl_->calibrated_ranges = std::move(ranges);
}

// What a knob kernel of `step` is prepared from (layout left to the caller).
NodeContext Session::Impl::knob_context(const Step& step, const Knob& knob) const {
  NodeContext ctx{step.node, step.input_types, step.constants, step.output_types, threads};
  ctx.knob = &knob;
  ctx.residual_in_place = step.residual_lent;
  if (auto r = calibrated_ranges.find(step.node.name); r != calibrated_ranges.end()) ctx.input_range = r->second;
  return ctx;
}

Result<Kernel*> Session::Impl::knob_kernel(Step& step, const Knob& knob) {
  if (auto it = step.knob_kernels.find(&knob); it != step.knob_kernels.end()) return it->second.kernel.get();
  NodeContext ctx = knob_context(step, knob);
  if (knob.kind == KnobKind::int8 && !ctx.input_range)
    return invalid_input("knob 'int8' on {} needs the range of its input calibrated on the experiment's calibrate "
                         "split, and none was given",
                         step.node.describe());
  Backend* chosen = backend->supports(ctx) ? backend : reference.get();
  const bool nhwc = step.layout == Layout::nhwc;
  ctx.layout = nhwc && chosen == backend && backend->supports_nhwc(ctx) ? Layout::nhwc : Layout::nchw;
  auto kernel = chosen->prepare(ctx);
  if (!kernel.ok() && chosen != reference.get() && kernel.status().code() == Errc::unsupported) {
    chosen = reference.get();
    ctx.layout = Layout::nchw;
    kernel = chosen->prepare(ctx);
  }
  if (!kernel.ok()) return kernel.status().with_context(fmt::format("knob '{}'", knob.name));
  std::unique_ptr<Kernel> k = std::move(kernel).value();
  if (nhwc && ctx.layout == Layout::nchw)
    k = std::make_unique<NchwAdapter>(std::move(k), step.input_types, step.constants, step.output_types);
  auto& slot = step.knob_kernels[&knob];
  slot = {std::move(k), std::string(chosen->name())};
  return slot.kernel.get();
}

Kernel* Session::Impl::codes_kernel(Step& step, const ActivationCodes& codes) {
  if (step.knob == nullptr || (step.knob->kind != KnobKind::int8 && step.knob->kind != KnobKind::bf16)) return nullptr;
  auto [it, fresh] = step.codes_kernels.try_emplace({step.knob, codes});
  if (!fresh) return it->second.kernel.get();
  NodeContext ctx = knob_context(step, *step.knob);
  ctx.layout = step.layout;
  ctx.output_codes = codes;
  // Only the backend's own kernel in the step's layout: codes are not converted.
  if (!backend->supports(ctx) || (ctx.layout == Layout::nhwc && !backend->supports_nhwc(ctx))) return nullptr;
  auto kernel = backend->prepare(ctx);
  if (!kernel.ok()) {
    log_debug("{}: no kernel writing low-precision codes: {}", step.node.describe(), kernel.status().message());
    return nullptr;
  }
  it->second = {std::move(kernel).value(), std::string(backend->name())};
  return it->second.kernel.get();
}

// What each step's active kernel reads and writes under the current
// configuration. A lent residual is copied for kernels that cannot run in
// place. Low-precision edges: for every arena value, its readers that take
// codes (int8 or bf16) as input #0 are grouped by the codes they want; each
// group reads one codes buffer, written by the producer when it can write
// those codes (an int8 / bf16 layer) and the group is the value's only
// reader, else by the group's first reader, once (a single reader of a float
// producer just converts internally).
void Session::Impl::plan_run() {
  edges.clear();
  for (size_t k = 0; k < steps.size(); ++k) {
    steps[k].active = steps[k].configured;  // no codes writer until chosen below
    io[k].in_now = io[k].in;
    io[k].out_now = io[k].out;
    io[k].quantize_to = nullptr;
    io[k].copy_residual = steps[k].residual_lent && !steps[k].active->residual_in_place();
    if (io[k].copy_residual) {
      Step& st = steps[k];
      if (st.residual_copy.type() != st.input_types[3])
        st.residual_copy = Tensor(st.input_types[3].dtype, st.input_types[3].shape);
      io[k].in_now[3] = &st.residual_copy;
    }
  }
  if (!lowp_edges || track_ranges) return;
  for (const auto& [value, readers] : readers_of) {
    auto slot = values.find(value);
    if (slot == values.end() || slot->second.where != ValueSlot::Where::arena) continue;
    std::map<ActivationCodes, std::vector<size_t>> groups;
    size_t float_readers = 0;
    for (auto [k, i] : readers) {
      std::optional<ActivationCodes> c = i == 0 ? steps[k].active->input_codes() : std::nullopt;
      if (c) groups[*c].push_back(k);
      else ++float_readers;
    }
    for (const auto& [codes, group] : groups) {
      auto p = producer_of.find(value);
      Kernel* writer = nullptr;
      if (float_readers == 0 && groups.size() == 1 && p != producer_of.end() && steps[p->second].outputs.size() == 1)
        writer = codes_kernel(steps[p->second], codes);
      // The writer replaces the producer's kernel: it must read the
      // producer's own input the same way (the edges planned into it).
      if (writer && writer->input_codes() != steps[p->second].active->input_codes()) writer = nullptr;
      if (!writer && group.size() == 1) continue;  // the reader converts it itself, as without edges
      auto [buf, fresh] = codes_buffers.try_emplace({value, codes});
      if (fresh) buf->second = Tensor(codes.type, slot->second.type.shape);
      CodesEdge edge{value, codes, false, "", {}};
      if (writer) {
        steps[p->second].active = writer;
        io[p->second].out_now[0] = &buf->second;
        edge.producer_writes = true;
        edge.written_by = steps[p->second].node.name;
      } else {
        io[group.front()].quantize_to = &buf->second;
        edge.written_by = steps[group.front()].node.name;
      }
      for (size_t k : group) {
        io[k].in_now[0] = &buf->second;
        edge.readers.push_back(steps[k].node.name);
      }
      edges.push_back(std::move(edge));
    }
  }
}

Status Session::configure(const KnobConfig& config) {
  Impl& s = *impl_;
  if (s.split) {
    // All workers or none: one that fails puts the others back.
    auto& workers = s.split->workers;
    for (size_t w = 0; w < workers.size(); ++w) {
      if (Status st = workers[w]->configure(config); !st.ok()) {
        for (size_t v = 0; v < w; ++v) (void)workers[v]->configure(s.config);
        return st;
      }
    }
    s.config = workers[0]->configuration();
    return {};
  }
  // Validate and prepare everything first, switch only when all is well.
  std::vector<std::pair<Step*, const Knob*>> plan;
  for (const auto& [node, knob_name] : config) {
    const Knob* knob = find_knob(knob_name);
    if (!knob) return invalid_input("configuration: node '{}': unknown knob '{}'{}", node, knob_name, suggest_knob(knob_name));
    auto it = s.step_of_node.find(node);
    if (it == s.step_of_node.end()) {
      if (knob->kind == KnobKind::exact) continue;  // e.g. a node folded away: exact anyway
      std::vector<std::string> names;
      for (const auto& site : s.sites) names.push_back(site.node);
      return invalid_input("configuration: node '{}' (knob '{}') is not a node of this network that takes knobs "
                           "(those are: {})",
                           node, knob_name, names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", ")));
    }
    Step& step = s.steps[it->second];
    if (knob->kind != KnobKind::exact) {
      if (step.input_types.size() < 2)
        return invalid_input("knob '{}' does not apply to {}: it applies to Conv only", knob_name, step.node.describe());
      CP_TRY(knob_applies(*knob, step.node, step.input_types[0].shape, step.input_types[1].shape)
                 .with_context("configuration"));
    }
    plan.emplace_back(&step, knob->kind == KnobKind::exact ? nullptr : knob);
  }
  for (auto& [step, knob] : plan)
    if (knob) CP_TRY(s.knob_kernel(*step, *knob).status());
  for (Step& step : s.steps) {
    step.configured = step.kernel.get();
    step.active_backend = &step.backend;
    step.knob = nullptr;
  }
  for (auto& [step, knob] : plan) {
    if (!knob) continue;
    auto& slot = step->knob_kernels.at(knob);
    step->configured = slot.kernel.get();
    step->active_backend = &slot.backend;
    step->knob = knob;
  }
  s.config.clear();
  for (auto& [step, knob] : plan)
    if (knob) s.config[step->node.name] = knob->name;
  s.plan_run();
  return {};
}

Status Session::run(std::span<const Tensor> inputs) {
  Impl& s = *impl_;
  if (inputs.size() != s.input_names.size())
    return invalid_input("expected {} input tensors ({}), got {}", s.input_names.size(), fmt::join(s.input_names, ", "),
                         inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].type() != s.input_types[i])
      return invalid_input("input '{}' is {} {} but the session was created for {} {}", s.input_names[i],
                           dtype_name(inputs[i].dtype()), shape_str(inputs[i].shape()),
                           dtype_name(s.input_types[i].dtype), shape_str(s.input_types[i].shape));
    s.run_inputs[i] = inputs[i];
  }
  if (s.split) return s.run_split(inputs);
  if (s.collect_timings) s.timings.clear();
  for (size_t k = 0; k < s.steps.size(); ++k) {
    Impl::StepIo& sio = s.io[k];
    for (size_t j = 0; j < sio.in.size(); ++j)
      if (sio.in_graph_input[j] >= 0)
        sio.in[j] = sio.in_now[j] = &s.run_inputs[static_cast<size_t>(sio.in_graph_input[j])];
    Step& step = s.steps[k];
    if (s.track_ranges && step.site >= 0 && sio.in[0]) {
      const auto site = static_cast<size_t>(step.site);
      bool first = s.range_first[site];
      update_range(s.seen_ranges[step.node.name], first, *sio.in[0]);
      s.range_first[site] = first;
    }
    auto t0 = std::chrono::steady_clock::now();
    if (sio.copy_residual) std::memcpy(step.residual_copy.raw(), sio.in[3]->raw(), sio.in[3]->nbytes());
    Status st = sio.quantize_to ? step.active->quantize_input(*sio.in[0], *sio.quantize_to) : Status{};
    if (st.ok()) st = step.active->run(sio.in_now, sio.out_now);
    if (!st.ok()) return st.with_context(step.node.describe());
    if (s.collect_timings) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      s.timings.push_back({step.node.name, step.node.op_type, *step.active_backend,
                           step.knob ? step.knob->name : exact_knob().name, ms});
    }
  }
  for (size_t i = 0; i < s.output_names.size(); ++i) {
    const std::string& name = s.output_names[i];
    if (auto c = s.constants.find(name); c != s.constants.end()) {
      s.outputs[i] = c->second;
      continue;
    }
    const ValueSlot& v = s.values.at(name);
    if (v.where == ValueSlot::Where::graph_input) s.outputs[i] = s.run_inputs[v.index].clone();
    else s.outputs[i] = s.owned_outputs[v.index];
  }
  return {};
}

const Tensor& Session::output(size_t i) const { return impl_->outputs.at(i); }

}  // namespace caliprox
