// Resize on the device: 4-D NCHW float tensors whose batch and channel axes
// are unchanged, nearest / linear / cubic over height and width with the
// reference's taps (tensor_ops::resize_axis_taps) as per-row and per-column
// tables; tf_crop_and_resize reaching outside the input runs on the host.
#include <memory>
#include <vector>

#include "backends/opencl/ops.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::opencl {

namespace {

// The node's parameters, from its constant inputs (roi, scales, sizes).
Result<tensor_ops::ResizeParams> params_of(const NodeContext& ctx) {
  for (size_t i = 1; i < ctx.input_types.size(); ++i)
    if (ctx.input_types[i].dtype != DType::undefined && ctx.constants[i] == nullptr)
      return unsupported("Resize with roi, scales or sizes computed at run time");
  return tensor_ops::resolve_resize(ctx.node, infer_inputs(ctx));
}

// Taps of one axis as tables of 4 per output index; false when one reaches outside.
bool tables(const std::vector<tensor_ops::ResizeTaps>& taps, std::vector<int>& idx, std::vector<float>& w) {
  for (const auto& t : taps) {
    if (t.outside) return false;
    for (int k = 0; k < 4; ++k) {
      idx.push_back(k < t.count ? static_cast<int>(t.index[static_cast<size_t>(k)]) : 0);
      w.push_back(k < t.count ? static_cast<float>(t.weight[static_cast<size_t>(k)]) : 0.0f);
    }
  }
  return true;
}

class ResizeKernel final : public Kernel {
 public:
  ResizeKernel(Runtime& rt, KernelHandle k, size_t total, std::vector<std::shared_ptr<void>> tables)
      : rt_(rt), k_(std::move(k)), total_(total), tables_(std::move(tables)) {}
  Status run(std::span<const Tensor* const> in, std::span<Tensor* const> out) override {
    CP_TRY(set_args(k_.k, mem_of(*in[0]), mem_of(*out[0])));
    return launch(rt_.queue(), k_.k, total_);
  }

 private:
  Runtime& rt_;
  KernelHandle k_;
  size_t total_;
  std::vector<std::shared_ptr<void>> tables_;  // the kernel's arguments point to them
};

}  // namespace

bool supports_resize(const NodeContext& ctx) {
  if (ctx.input_types[0].shape.size() != 4) return false;
  auto p = params_of(ctx);
  if (!p.ok() || p->out_shape.size() != 4) return false;
  const Shape& x = ctx.input_types[0].shape;
  for (size_t a = 0; a < 2; ++a)
    if (!tensor_ops::resize_taps_identity(tensor_ops::resize_axis_taps(*p, a, x[a], p->out_shape[a]), x[a]))
      return false;
  std::vector<int> idx;
  std::vector<float> w;
  for (size_t a = 2; a < 4; ++a)
    if (!tables(tensor_ops::resize_axis_taps(*p, a, x[a], p->out_shape[a]), idx, w)) return false;
  return true;
}

Result<std::unique_ptr<Kernel>> make_resize(Runtime& rt, const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(tensor_ops::ResizeParams p, params_of(ctx));
  const Shape& x = ctx.input_types[0].shape;
  std::vector<std::shared_ptr<void>> bufs;
  for (size_t a = 2; a < 4; ++a) {
    std::vector<int> idx;
    std::vector<float> w;
    if (!tables(tensor_ops::resize_axis_taps(p, a, x[a], p.out_shape[a]), idx, w))
      return unsupported("Resize reaching outside its input (tf_crop_and_resize)");
    CP_ASSIGN_OR_RETURN(auto ib, upload_constant(rt, idx.data(), idx.size() * sizeof(int)));
    CP_ASSIGN_OR_RETURN(auto wb, upload_constant(rt, w.data(), w.size() * sizeof(float)));
    bufs.push_back(std::move(ib));
    bufs.push_back(std::move(wb));
  }
  CP_ASSIGN_OR_RETURN(cl_kernel k, rt.kernel("resize2d"));
  KernelHandle handle(k);
  CP_TRY(set_args_from(handle.k, 2, static_cast<int>(x[2]), static_cast<int>(x[3]), static_cast<int>(p.out_shape[2]),
                       static_cast<int>(p.out_shape[3]), static_cast<cl_mem>(bufs[0].get()),
                       static_cast<cl_mem>(bufs[1].get()), static_cast<cl_mem>(bufs[2].get()),
                       static_cast<cl_mem>(bufs[3].get())));
  const auto total = static_cast<size_t>(shape_numel(p.out_shape));
  return std::unique_ptr<Kernel>(std::make_unique<ResizeKernel>(rt, std::move(handle), total, std::move(bufs)));
}

}  // namespace caliprox::opencl
