#pragma once
// The small backend interface (DESIGN: "Backends declare which (op, knob,
// dtype) they support; the executor falls back per node to the reference").
// A backend prepares one kernel per node once, at session creation; running
// a kernel must not allocate or build primitives.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "knobs/knobs.h"
#include "util/status.h"

namespace caliprox {

// Physical layout of 4-D activation tensors. Shapes stay logical (NCHW) in
// every case; with nhwc the memory holds the same values channels-last.
// Keeping activations channels-last between the nodes of a backend that
// computes in that layout saves a conversion around every node.
enum class Layout { nchw, nhwc };

// An activation stored in low precision: value = code * scale, code in u8
// [0, 255] or i8 [-128, 127] (int8 kernels' input #0), or bfloat16 with
// scale 1 (bf16 kernels' input #0), in the layout of the float tensor it
// stands for.
struct ActivationCodes {
  DType type = DType::u8;  // u8, i8 or bf16
  float scale = 1;
  bool operator==(const ActivationCodes&) const = default;
  auto operator<=>(const ActivationCodes&) const = default;
};

// Everything a backend may look at when deciding on and preparing a node.
struct NodeContext {
  const Node& node;
  std::vector<TensorType> input_types;    // dtype undefined for omitted optional inputs
  std::vector<const Tensor*> constants;   // per input: non-null when constant (e.g. weights)
  std::vector<TensorType> output_types;   // inferred; outputs arrive allocated with these
  int threads = 1;
  // Layout of every non-constant rank-4 input and every rank-4 output. Only
  // nhwc when the backend said supports_nhwc() for this node.
  Layout layout = Layout::nchw;
  // The approximation knob this kernel implements (knobs/knobs.h); null means
  // exact. A backend that cannot run the knob answers false in supports()
  // (the executor then falls back to the reference backend, which runs them all).
  const Knob* knob = nullptr;
  // int8: the range of input #0 calibrated on the experiment's calibrate
  // split (absent: the kernel cannot be prepared, Errc::invalid_input).
  std::optional<ValueRange> input_range{};
  // When set, output #0 is written as these codes (a u8 / i8 / bf16 tensor
  // of the output's shape in ctx.layout) instead of floats: an int8 (bf16)
  // producer feeding only int8 (bf16) readers. Backends that cannot answer
  // false in supports().
  std::optional<ActivationCodes> output_codes{};
  // The executor hands this Conv its fused residual (input #3) in output
  // #0's buffer (the residual dies here): a kernel summing in place needs
  // no copy of it (Kernel::residual_in_place).
  bool residual_in_place = false;
};

// The node's inputs as shape inference sees them (types, and the values of
// constant inputs), so a backend resolves parameters that live in inputs
// with the same code as inference (ir/ops/tensor_ops_util.h).
inline std::vector<InferInput> infer_inputs(const NodeContext& ctx) {
  std::vector<InferInput> in(ctx.input_types.size());
  for (size_t i = 0; i < in.size(); ++i)
    in[i] = {ctx.input_types[i], i < ctx.constants.size() ? ctx.constants[i] : nullptr};
  return in;
}

class Kernel {
 public:
  virtual ~Kernel() = default;
  // inputs[i] is null for an omitted optional input; outputs[j] is null for an
  // omitted optional output. Output tensors are allocated by the executor with
  // the inferred types (memory may be reused across nodes: do not keep pointers).
  virtual Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) = 0;

  // A kernel that quantises input #0 before computing (int8, bf16) may expose it,
  // so the executor can quantise a value once for all its readers, or have
  // the producer write the codes. input_codes() names the codes run() then
  // accepts as input #0 (a tensor of that dtype in place of the float one);
  // quantize_input() writes them from the float value, exactly as run()
  // would have internally.
  virtual std::optional<ActivationCodes> input_codes() const { return std::nullopt; }
  virtual Status quantize_input(const Tensor& /*value*/, Tensor& /*codes*/) {
    return runtime_error("this kernel does not quantise its input");
  }

  // True when run() is correct with output #0 in the same buffer as input #3
  // of a Conv with a fused residual (caliprox.residual = 1). The executor
  // lends a residual that dies at its Conv its buffer to the output; kernels
  // answering false are handed a copy of the residual instead.
  virtual bool residual_in_place() const { return false; }
};

// How a backend runs a knob kind on this CPU (DESIGN "a feature missing on a
// tier is reported, never silently slow"): native (a kernel computing in the
// knob's precision or skipping the knob's work), emulated (the knob's
// accuracy effect only, at about fp32 speed), or unavailable (the knob does
// not run on this backend here). `how`: the kernel, or the reason.
enum class KnobRun { native, emulated, unavailable };
std::string_view knob_run_name(KnobRun run);
struct KnobSupport {
  KnobRun run = KnobRun::native;
  std::string how;
};

// Memory of an accelerator (OpenCL): what the executor needs to keep values
// on the device between the nodes its backend runs and to move them where a
// node runs on the host. A device backend's kernels read their non-constant
// inputs from and write their outputs to device tensors (Tensor::on_device());
// constant inputs (weights) stay host tensors, copied to the device at
// prepare time. Transfers are the executor's (it plans and counts them).
class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  // A device tensor of its own buffer (Errc::runtime with the device's error
  // when the device cannot allocate it).
  virtual Result<Tensor> allocate(DType dtype, const Shape& shape) = 0;
  // host -> device and device -> host, both of the same type; the download
  // waits for the device, so the host tensor is ready on return.
  virtual Status upload(const Tensor& host, Tensor& device) = 0;
  virtual Status download(const Tensor& device, Tensor& host) = 0;
  // Waits until everything queued so far has finished (per-node timings).
  virtual Status synchronize() = 0;
};

// Which device a device backend uses (experiment targets: `platform`,
// `device`): an index, or a case-insensitive part of the name; empty: the
// first platform with a device, its first device.
struct DeviceSelector {
  std::string platform;
  std::string device;
  // Bytes of device memory the backend may use (0: the device's own
  // limits); a node needing more runs on the host.
  uint64_t memory_limit = 0;
};

struct BackendOptions {
  int threads = 1;
  DeviceSelector device{};
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // True when prepare() will succeed for this node (op, attributes, dtypes).
  virtual bool supports(const NodeContext& ctx) const = 0;
  virtual Result<std::unique_ptr<Kernel>> prepare(const NodeContext& ctx) = 0;
  // True when prepare() also succeeds with ctx.layout == Layout::nhwc, i.e.
  // the kernel reads its non-constant rank-4 inputs and writes its rank-4
  // outputs channels-last. The executor converts layouts at the boundaries.
  virtual bool supports_nhwc(const NodeContext&) const { return false; }
  // Decided by the CPU probe (util/cpu.h), not by trying kernels: tests hold
  // supports() to it. A backend that declares nothing runs no knob kernels
  // (the executor falls back to the reference backend for them).
  virtual KnobSupport knob_support(KnobKind /*kind*/) const {
    return {KnobRun::unavailable, "this backend has no knob kernels"};
  }
  // Non-null for a backend whose kernels compute in device memory.
  virtual DeviceMemory* device_memory() { return nullptr; }
  // The device a device backend runs on, as `caliprox check` and `knobs`
  // report it (name, driver, half precision, memory); empty for the CPU backends.
  virtual std::vector<std::pair<std::string, std::string>> device_facts() const { return {}; }
};

// A knob's support: its kind's, except that the half variants of perforation
// and sampling round to IEEE half as fp16 does (emulated precision whatever
// runs the skipping).
inline KnobSupport knob_support_for(const Backend& backend, const Knob& knob) {
  if (reshapes(knob)) return {KnobRun::native, "graph rewrite: the backend runs the reshaped layers' plain ops"};
  return backend.knob_support(knob.half ? KnobKind::fp16 : knob.kind);
}

// Explicit registry (src/backends/registry.cc): no static-initializer magic.
std::vector<std::string_view> backend_names();
// Errc::invalid_input for an unknown name (listing the known ones).
Result<std::unique_ptr<Backend>> create_backend(std::string_view name, const BackendOptions& options);

// Constructors of the built-in backends (each in its own folder).
std::unique_ptr<Backend> make_reference_backend(const BackendOptions& options);
#ifdef CALIPROX_HAVE_ONEDNN
std::unique_ptr<Backend> make_onednn_backend(const BackendOptions& options);
#endif
#ifdef CALIPROX_HAVE_OPENCL
// Errc::unreachable when no OpenCL platform or device matches the selector
// (naming what was found), Errc::invalid_input for a malformed selector.
Result<std::unique_ptr<Backend>> make_opencl_backend(const BackendOptions& options);
#endif

}  // namespace caliprox
