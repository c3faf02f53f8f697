// The OpenCL backend: an accelerator (a GPU, or PoCL's CPU device) chosen by
// platform and device, its kernels (conv.cc, ops.cc, ops_gemm.cc) and its
// memory, in which the executor keeps values between the nodes it runs
// (backends/backend.h DeviceMemory, engine/device_steps.h).
#include <climits>
#include <memory>

#include <fmt/format.h>

#include "backends/opencl/ops.h"

namespace caliprox {

namespace opencl {
namespace {

class Memory final : public DeviceMemory {
 public:
  explicit Memory(Runtime& rt) : rt_(rt) {}
  Result<Tensor> allocate(DType dtype, const Shape& shape) override {
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    Result<std::shared_ptr<void>> buf = rt_.allocate(bytes);
    if (!buf.ok()) return runtime_error("{}", buf.status().message());  // the session cannot be built
    void* handle = buf->get();
    return Tensor::device(dtype, shape, handle, std::move(buf).value());
  }
  // Blocking: the host value may live in an arena slot the memory plan hands
  // to the next host node as soon as this step is done, and a write still
  // queued would then send that node's output instead.
  Status upload(const Tensor& host, Tensor& device) override {
    if (host.nbytes() == 0) return {};
    return cl_check(clEnqueueWriteBuffer(rt_.queue(), mem_of(device), CL_TRUE, 0, host.nbytes(), host.raw(), 0,
                                         nullptr, nullptr),
                    "uploading a value");
  }
  Status download(const Tensor& device, Tensor& host) override {
    if (host.nbytes() == 0) return {};
    return cl_check(clEnqueueReadBuffer(rt_.queue(), mem_of(device), CL_TRUE, 0, host.nbytes(), host.raw(), 0, nullptr,
                                        nullptr),
                    "downloading a value");
  }
  Status synchronize() override { return cl_check(clFinish(rt_.queue()), "clFinish"); }

 private:
  Runtime& rt_;
};

bool small_f32(const TensorType& t) { return t.dtype == DType::f32 && shape_numel(t.shape) < INT_MAX; }

class OpenClBackend final : public Backend {
 public:
  explicit OpenClBackend(std::unique_ptr<Runtime> rt) : rt_(std::move(rt)), memory_(*rt_) {}

  std::string_view name() const override { return "opencl"; }

  bool supports(const NodeContext& ctx) const override {
    if (ctx.layout != Layout::nchw || ctx.input_types.empty() || ctx.output_types.empty()) return false;
    if (!small_f32(ctx.input_types[0]) || ctx.output_codes) return false;
    for (const auto& t : ctx.output_types)
      if (t.dtype != DType::undefined && !small_f32(t)) return false;
    if (ctx.knob && ctx.knob->kind != KnobKind::exact && ctx.node.op_type != "Conv") return false;
    if (ctx.node.op_type == "Conv") return supports_conv(ctx);
    return supports_op(ctx);
  }

  Result<std::unique_ptr<Kernel>> prepare(const NodeContext& ctx) override {
    if (!supports(ctx)) return unsupported("{}: not an op the OpenCL backend runs", ctx.node.describe());
    // Every value this node reads or writes must fit one device buffer.
    for (const auto* types : {&ctx.input_types, &ctx.output_types})
      for (const auto& t : *types)
        if (t.dtype != DType::undefined)
          CP_TRY(rt_->fits(static_cast<size_t>(shape_numel(t.shape)) * dtype_size(t.dtype), "one of its values"));
    if (ctx.node.op_type == "Conv") return make_conv(*rt_, ctx);
    return make_op(*rt_, ctx);
  }

  KnobSupport knob_support(KnobKind kind) const override {
    const std::string& dev = rt_->info().name;
    switch (kind) {
      case KnobKind::perforation:
        return {KnobRun::native, fmt::format("im2col of the computed rows or columns, a smaller GEMM ({})", dev)};
      case KnobKind::sampling:
        return {KnobRun::native, fmt::format("im2col of the kept filter taps, a GEMM with a smaller K ({})", dev)};
      case KnobKind::fp16:
        return {KnobRun::emulated,
                fmt::format("values rounded to IEEE half on the device, GEMM in fp32 ({}: {})", dev,
                            rt_->info().fp16 ? "cl_khr_fp16 present, no half GEMM path yet" : "no cl_khr_fp16")};
      case KnobKind::bf16:
      case KnobKind::int8:
        return {KnobRun::unavailable,
                "no OpenCL kernel: the layer runs on the host's reference kernel, its values moved to and from the "
                "device"};
      default: break;
    }
    return Backend::knob_support(kind);
  }

  DeviceMemory* device_memory() override { return &memory_; }

  std::vector<std::pair<std::string, std::string>> device_facts() const override {
    const DeviceInfo& i = rt_->info();
    return {{"platform", i.platform},
            {"device", i.name},
            {"vendor", i.vendor},
            {"driver", i.driver},
            {"opencl", i.version},
            {"fp16", i.fp16 ? "cl_khr_fp16" : "none"},
            {"memory",
             fmt::format("{:.0f} MiB (largest buffer {:.0f} MiB)", static_cast<double>(i.global_memory) / (1 << 20),
                         static_cast<double>(i.max_allocation) / (1 << 20))},
            {"compute units", std::to_string(i.compute_units)},
            {"kernels", rt_->build_summary()}};
  }

 private:
  std::unique_ptr<Runtime> rt_;
  Memory memory_;
};

}  // namespace
}  // namespace opencl

Result<std::unique_ptr<Backend>> make_opencl_backend(const BackendOptions& options) {
  CP_ASSIGN_OR_RETURN(auto rt, opencl::Runtime::open(options.device));
  return std::unique_ptr<Backend>(std::make_unique<opencl::OpenClBackend>(std::move(rt)));
}

}  // namespace caliprox
