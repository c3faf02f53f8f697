#include "backends/onednn/common.h"

#include <omp.h>
#include <strings.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "ir/op_registry.h"

namespace caliprox::onednn {

void use_threads(int threads) {
  if (threads < 1) threads = 1;
  // Setting the same value again is cheap, but skip the call on the hot path.
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

ScopedThreads::ScopedThreads(int threads) : saved_(omp_get_max_threads()) { use_threads(threads); }

ScopedThreads::~ScopedThreads() { use_threads(saved_); }

namespace {

// One thread per `per_thread` of work, at least 1 and at most `threads`: a
// thread joins only when it brings that much work of its own, so a layer
// that pays for 2 threads on a 2-core machine does not spread over 16 (the
// fork, the join and the cold caches of 14 more threads cost more than they
// save).
int team_for_work(int threads, double work, double per_thread) {
  if (threads <= 1 || work < per_thread) return 1;
  return static_cast<int>(std::min<double>(threads, std::floor(work / per_thread) + 1));
}

}  // namespace

int team_for_elements(int threads, int64_t elements) {
  return team_for_work(threads, static_cast<double>(elements), static_cast<double>(int64_t{1} << 17));
}

double single_thread_flops() {
  static const double limit = [] {
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    return policy != nullptr && strcasecmp(policy, "passive") == 0 ? 16e6 : 4e6;
  }();
  return limit;
}

int team_for_flops(int threads, double flops) { return team_for_work(threads, flops, single_thread_flops()); }

memory::desc plain_desc(const memory::dims& dims) {
  if (dims.empty()) return plain_desc(memory::dims{1});
  memory::dims strides(dims.size(), 1);
  for (size_t i = dims.size() - 1; i > 0; --i) strides[i - 1] = strides[i] * dims[i];
  return memory::desc(dims, memory::data_type::f32, strides);
}

memory::desc nhwc_desc(const memory::dims& dims) {
  return memory::desc(dims, memory::data_type::f32, memory::format_tag::nhwc);
}

memory::desc host_desc(const memory::dims& dims, bool nhwc) {
  return nhwc && dims.size() == 4 ? nhwc_desc(dims) : plain_desc(dims);
}

bool input_is_nhwc(const NodeContext& ctx, size_t i) {
  return ctx.layout == Layout::nhwc && i < ctx.input_types.size() && ctx.input_types[i].shape.size() == 4 &&
         !(i < ctx.constants.size() && ctx.constants[i] != nullptr);
}

bool output_is_nhwc(const NodeContext& ctx, size_t j) {
  return ctx.layout == Layout::nhwc && j < ctx.output_types.size() && ctx.output_types[j].shape.size() == 4;
}

memory::desc input_host_desc(const NodeContext& ctx, size_t i) {
  return host_desc(ctx.input_types[i].shape, input_is_nhwc(ctx, i));
}

memory::desc output_host_desc(const NodeContext& ctx, size_t j) {
  return host_desc(ctx.output_types[j].shape, output_is_nhwc(ctx, j));
}

NodeContext nhwc_context(const NodeContext& ctx) {
  NodeContext c = ctx;
  c.layout = Layout::nhwc;
  return c;
}

memory user_memory(const memory::desc& md, const Runtime& rt) { return memory(md, rt.engine, DNNL_MEMORY_NONE); }

BoundPrimitive::BoundPrimitive(dnnl::primitive prim, std::vector<std::pair<int, memory>> args)
    : prim_(std::move(prim)) {
  keep_alive_.reserve(args.size());
  args_.reserve(args.size());
  for (auto& [arg, mem] : args) {
    if (!mem) continue;  // an absent optional argument (e.g. no bias)
    args_.push_back({arg, mem.get()});
    keep_alive_.push_back(std::move(mem));
  }
}

Status BoundPrimitive::execute(const dnnl::stream& stream) const {
  dnnl_status_t st = dnnl_primitive_execute(prim_.get(), stream.get(), static_cast<int>(args_.size()), args_.data());
  if (st != dnnl_success) return runtime_error("oneDNN primitive execution failed (status {})", static_cast<int>(st));
  return {};
}

Status execute_once(const BoundPrimitive& p, const Runtime& rt) {
  dnnl::stream stream(rt.engine);
  CP_TRY(p.execute(stream));
  stream.wait();
  return {};
}

BoundPrimitive bound_reorder(const memory& from, const memory& to, const Runtime& rt) {
  if (from.get() == to.get()) return {};
  dnnl::reorder::primitive_desc pd(rt.engine, from.get_desc(), rt.engine, to.get_desc());
  return BoundPrimitive(dnnl::reorder(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

dnnl::primitive_attr base_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

memory scratchpad_for(const dnnl::primitive_desc_base& pd, const Runtime& rt) {
  return memory(pd.scratchpad_desc(), rt.engine);
}

Result<std::vector<EltwiseOp>> activation_ops(std::string_view op_type, float alpha, float beta) {
  using dnnl::algorithm;
  if (op_type == "Relu") return std::vector<EltwiseOp>{{algorithm::eltwise_relu}};
  if (op_type == "LeakyRelu") return std::vector<EltwiseOp>{{algorithm::eltwise_relu, alpha}};
  if (op_type == "Sigmoid") return std::vector<EltwiseOp>{{algorithm::eltwise_logistic}};
  if (op_type == "Tanh") return std::vector<EltwiseOp>{{algorithm::eltwise_tanh}};
  // oneDNN: x * relu6(x + 3) / 6, i.e. ONNX's x * max(0, min(1, x/6 + 1/2)).
  if (op_type == "HardSwish") return std::vector<EltwiseOp>{{algorithm::eltwise_hardswish}};
  if (op_type == "Clip") {
    // Infinite bounds stay infinite in the kernel's comparisons; NaN bounds
    // have no oneDNN meaning.
    if (std::isnan(alpha) || std::isnan(beta)) return unsupported("Clip with a NaN bound");
    return std::vector<EltwiseOp>{{algorithm::eltwise_clip_v2, alpha, beta}};
  }
  // 2.6 has no hardsigmoid algorithm: max(0, min(1, alpha*x + beta)) is a
  // linear step followed by a clip to [0, 1].
  if (op_type == "HardSigmoid")
    return std::vector<EltwiseOp>{{algorithm::eltwise_linear, alpha, beta}, {algorithm::eltwise_clip_v2, 0.f, 1.f}};
  return unsupported("activation '{}' has no oneDNN eltwise equivalent", op_type);
}

Result<std::vector<EltwiseOp>> fused_activation_ops(const Node& node) {
  if (!node.has(kAttrActivation)) return std::vector<EltwiseOp>{};
  const std::string op = node.attr_string(kAttrActivation, "");
  float alpha = node.attr_float(kAttrAlpha, 0.f);
  float beta = node.attr_float(kAttrBeta, 0.f);
  // The fused attributes carry the activation's parameters; absent ones take
  // the ONNX defaults, as in the reference backend.
  if (!node.has(kAttrAlpha)) {
    if (op == "LeakyRelu") alpha = 0.01f;
    if (op == "HardSigmoid") alpha = 0.2f;
    if (op == "Clip") alpha = -INFINITY;
  }
  if (!node.has(kAttrBeta)) {
    if (op == "HardSigmoid") beta = 0.5f;
    if (op == "Clip") beta = INFINITY;
  }
  auto ops = activation_ops(op, alpha, beta);
  if (!ops.ok()) return ops.status().with_context(node.describe());
  return ops;
}

void append_eltwise_ops(dnnl::post_ops& ops, const std::vector<EltwiseOp>& steps) {
  for (const EltwiseOp& e : steps) ops.append_eltwise(1.f, e.alg, e.alpha, e.beta);
}

bool is_gemm(const dnnl::primitive_desc_base& pd) {
  return std::string(pd.impl_info_str()).find("gemm") != std::string::npos;
}

Status require_optimized(const Node& node, const dnnl::primitive_desc_base& pd, std::string_view what) {
  const std::string impl = pd.impl_info_str();
  if (impl.rfind("ref", 0) == 0)
    return unsupported("{}: oneDNN would run this {} with its unoptimized '{}' implementation", node.describe(), what,
                       impl);
  return {};
}

bool all_f32(const NodeContext& ctx) {
  for (const auto& t : ctx.input_types)
    if (t.dtype != DType::undefined && t.dtype != DType::f32) return false;
  for (const auto& t : ctx.output_types)
    if (t.dtype != DType::undefined && t.dtype != DType::f32) return false;
  return true;
}

bool has_input(const NodeContext& ctx, size_t i) {
  return i < ctx.input_types.size() && ctx.input_types[i].dtype != DType::undefined && i < ctx.node.inputs.size() &&
         !ctx.node.inputs[i].empty();
}

bool has_output(const NodeContext& ctx, size_t i) {
  return i < ctx.node.outputs.size() && !ctx.node.outputs[i].empty();
}

int context_threads(const NodeContext& ctx, int fallback) { return ctx.threads > 0 ? ctx.threads : fallback; }

Status dnnl_status(const Node& node, std::string_view what, const dnnl::error& e) {
  // dnnl_unimplemented: no implementation for this configuration on this CPU.
  if (e.status == dnnl_unimplemented)
    return unsupported("{}: oneDNN has no implementation for {} ({})", node.describe(), what, e.what());
  return runtime_error("{}: oneDNN failed to {} ({})", node.describe(), what, e.what());
}

}  // namespace caliprox::onednn
