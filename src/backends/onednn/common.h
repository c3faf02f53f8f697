#pragma once
// Internals shared by the oneDNN backend's op files: the engine/stream pair,
// primitives bound to their arguments once at prepare time (so run() neither
// allocates nor builds anything), plain memory descriptors for host tensors,
// fused activations as post-ops, and the thread count plumbing.
//
// oneDNN 2.6 (2.x API). The library reports failures as dnnl::error
// exceptions; they are caught in this backend and turned into Status values.
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "backends/backend.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::onednn {

using dnnl::memory;

// The CPU engine, shared by every kernel of a backend. Each kernel owns its
// stream (streams are not meant for concurrent use, sessions may run on
// different threads). With the OpenMP runtime, CPU primitives execute
// synchronously on the calling thread's OpenMP team.
struct Runtime {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
};

// Makes the calling thread's OpenMP team `threads` wide. oneDNN sizes its
// kernels from omp_get_max_threads() both when a primitive is created and
// when it runs, so this is called before both (backends in one process may
// use different widths).
void use_threads(int threads);

// use_threads for one scope, then back to the width it found. For the const
// queries (Backend::supports, supports_nhwc): the checks behind them build
// primitive descriptors, which must see the width the kernel would run with
// (some checks set a narrower team of their own), and a const query leaves
// no state behind (DESIGN style rule 5). The width is the calling thread's
// own OpenMP setting (nthreads-var), so other threads are not affected.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int saved_;
};

// OpenMP width for a memory-bound primitive touching `elements` floats:
// below ~128K elements one core finishes before a second would have woken;
// above, one more thread per further 128K elements, up to `threads`.
int team_for_elements(int threads, int64_t elements);
// Smallest tensor an elementwise-type node (activation, arithmetic, Softmax)
// is claimed for: below it the reference loop beats a primitive call
// (~0.2 us of oneDNN overhead against ~0.5 ns per element).
inline constexpr int64_t kMinElementwiseElements = 256;
// Below this many operations a primitive runs on one thread: the OpenMP
// team's fork/join costs more than the second core saves. About 1 us per
// primitive while the team's threads spin, 4 MFLOP of work; with a passive
// wait policy (what the caliprox CLI sets) a sleeping thread takes tens of
// microseconds to wake: the bundled ResNet at batch 1, whose convolutions
// are 0.8-14.5 MFLOP, ran in 0.73 ms on two threads against 0.28 ms on one
// (untuned), so the limit is 16 MFLOP there. Prepare-time tuning still times
// both teams below 50 MFLOP (conv_select.cc); this is its default.
double single_thread_flops();
// The team for a compute-bound primitive of `flops` operations: 1 below
// single_thread_flops(), then one more thread per further
// single_thread_flops() of work, up to `threads` (on 2 threads the same as
// all-or-one; on 16, with the passive policy's 16 MFLOP, a 40 MFLOP layer
// gets 3, not 16).
int team_for_flops(int threads, double flops);

// Row-major f32 descriptor of a host tensor (Shape and memory::dims are the
// same type); a scalar becomes a 1-element 1-D tensor (oneDNN has no rank 0).
memory::desc plain_desc(const memory::dims& dims);

// Channels-last f32 descriptor over logical NCHW dims (rank 4): the memory
// order of a tensor the executor hands over in Layout::nhwc.
memory::desc nhwc_desc(const memory::dims& dims);
// plain_desc, or nhwc_desc when `nhwc` (rank 4 only).
memory::desc host_desc(const memory::dims& dims, bool nhwc);
// Whether input i / output j of the node is channels-last in memory: a
// non-constant rank-4 input, or a rank-4 output, of a node prepared with
// ctx.layout == Layout::nhwc (backend.h). Constants and other ranks stay
// row-major.
bool input_is_nhwc(const NodeContext& ctx, size_t i);
bool output_is_nhwc(const NodeContext& ctx, size_t j);
// The descriptors of input i / output j as the executor hands them over.
memory::desc input_host_desc(const NodeContext& ctx, size_t i);
memory::desc output_host_desc(const NodeContext& ctx, size_t j);
// A copy of ctx prepared for channels-last (what supports_nhwc checks).
NodeContext nhwc_context(const NodeContext& ctx);

// A memory object with no buffer yet: bound to a host tensor on each run.
memory user_memory(const memory::desc& md, const Runtime& rt);

// Points a user memory at a host tensor (no allocation, no copy). oneDNN only
// reads src memories, so dropping const here is safe.
inline void bind(const memory& m, const Tensor* t) { m.set_data_handle(const_cast<void*>(t->raw())); }

// A primitive with its argument list resolved once. The memories are shared
// handles: rebinding a user memory's data handle changes what the next
// execute() reads or writes, without rebuilding the argument list.
class BoundPrimitive {
 public:
  BoundPrimitive() = default;
  BoundPrimitive(dnnl::primitive prim, std::vector<std::pair<int, memory>> args);
  bool empty() const { return !prim_; }
  // Executes through the C API: the C++ wrapper would build a std::vector of
  // arguments (an allocation) on every call.
  Status execute(const dnnl::stream& stream) const;

 private:
  dnnl::primitive prim_;
  std::vector<memory> keep_alive_;
  std::vector<dnnl_exec_arg_t> args_;
};

// Runs a primitive once at prepare time (e.g. reordering constant weights)
// on a stream of its own, and waits for it.
Status execute_once(const BoundPrimitive& p, const Runtime& rt);

// A reorder from one memory to another, bound. Empty when no reorder is
// needed (same descriptor); then the memories are one and the same object.
BoundPrimitive bound_reorder(const memory& from, const memory& to, const Runtime& rt);

// The attributes every primitive of this backend uses: user-managed
// scratchpad, so each kernel owns its scratch buffer (allocated at prepare).
dnnl::primitive_attr base_attr();
// Allocates the scratchpad a primitive descriptor asks for.
memory scratchpad_for(const dnnl::primitive_desc_base& pd, const Runtime& rt);

// One oneDNN eltwise step (algorithm and its alpha/beta).
struct EltwiseOp {
  dnnl::algorithm alg;
  float alpha = 0, beta = 0;
};
// The eltwise steps computing one activation (ONNX op type and the
// alpha/beta of op_registry.h's fused attributes). Errc::unsupported for an
// activation oneDNN 2.6 cannot express exactly.
Result<std::vector<EltwiseOp>> activation_ops(std::string_view op_type, float alpha, float beta);
// The fused activation of a Conv node (empty when it has none).
Result<std::vector<EltwiseOp>> fused_activation_ops(const Node& node);
void append_eltwise_ops(dnnl::post_ops& ops, const std::vector<EltwiseOp>& steps);

// oneDNN's "ref:" implementations are plain C++ loops, no faster than the
// reference backend: a primitive descriptor that lands on one is refused
// (Errc::unsupported naming `what`), so the node falls back.
Status require_optimized(const Node& node, const dnnl::primitive_desc_base& pd, std::string_view what);
// Whether the descriptor landed on one of oneDNN's GEMM-based convolutions
// (x64:gemm:jit, x64:gemm_s8s8s32, ...).
bool is_gemm(const dnnl::primitive_desc_base& pd);

// Every input and output of the node that is present is float32.
bool all_f32(const NodeContext& ctx);
bool has_input(const NodeContext& ctx, size_t i);
bool has_output(const NodeContext& ctx, size_t i);
int context_threads(const NodeContext& ctx, int fallback);

// Turns a dnnl::error into a Status naming the node and what was attempted.
Status dnnl_status(const Node& node, std::string_view what, const dnnl::error& e);

// Base for this backend's kernels: fixes the thread count, then runs the
// kernel's bound primitives.
class OnednnKernel : public Kernel {
 public:
  OnednnKernel(std::shared_ptr<const Runtime> rt, int threads)
      : rt_(std::move(rt)), stream_(rt_->engine), threads_(threads) {}
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) final {
    use_threads(threads_);
    return execute(inputs, outputs);
  }

 protected:
  virtual Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) = 0;
  const Runtime& rt() const { return *rt_; }
  const dnnl::stream& stream() const { return stream_; }
  int threads() const { return threads_; }

 private:
  std::shared_ptr<const Runtime> rt_;
  dnnl::stream stream_;
  int threads_;
};

// What each op family file registers: `check` decides supports() (it builds
// the primitive descriptors, so a true answer means prepare() succeeds; it
// may set the calling thread's width, which supports() scopes),
// `make` builds the kernel. Both return Errc::unsupported for nodes outside
// what the family maps exactly onto oneDNN.
struct OpEntry {
  std::string_view op_type;
  Status (*check)(const NodeContext& ctx, const Runtime& rt);
  Result<std::unique_ptr<Kernel>> (*make)(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads);
  // True when `make` also builds the kernel with ctx.layout == Layout::nhwc
  // (Backend::supports_nhwc). Null: NCHW only.
  bool (*nhwc)(const NodeContext& ctx, const Runtime& rt) = nullptr;
};

// Convolutions with an approximation knob (ctx.knob non-null and not exact):
// knob_conv.cc. check_knob_conv decides supports(), make_knob_conv builds the
// kernel, knob_conv_nhwc answers supports_nhwc().
Status check_knob_conv(const NodeContext& ctx, const Runtime& rt);
Result<std::unique_ptr<Kernel>> make_knob_conv(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads);
bool knob_conv_nhwc(const NodeContext& ctx, const Runtime& rt);

void register_conv_ops(std::vector<OpEntry>& table);     // conv.cc
void register_pool_ops(std::vector<OpEntry>& table);     // pool.cc
void register_matmul_ops(std::vector<OpEntry>& table);   // matmul.cc
void register_eltwise_ops(std::vector<OpEntry>& table);  // eltwise.cc
void register_binary_ops(std::vector<OpEntry>& table);   // binary.cc
void register_norm_ops(std::vector<OpEntry>& table);     // norm.cc
void register_concat_ops(std::vector<OpEntry>& table);   // concat.cc
void register_resize_ops(std::vector<OpEntry>& table);   // resize.cc

}  // namespace caliprox::onednn
