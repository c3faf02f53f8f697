#pragma once
// The OpenCL backend's kernels by op (conv.cc: Conv with its knobs; ops.cc:
// the other ops the bundled and common mobile CNNs need). supports_* answer
// for f32 NCHW tensors under 2^31 elements (backend.cc checks those first);
// make_* prepare the kernel: constants uploaded, kernel objects created.
#include <memory>

#include "backends/backend.h"
#include "backends/opencl/runtime.h"

namespace caliprox::opencl {

bool supports_conv(const NodeContext& ctx);
Result<std::unique_ptr<Kernel>> make_conv(Runtime& rt, const NodeContext& ctx);

bool supports_resize(const NodeContext& ctx);
Result<std::unique_ptr<Kernel>> make_resize(Runtime& rt, const NodeContext& ctx);

bool supports_op(const NodeContext& ctx);
Result<std::unique_ptr<Kernel>> make_op(Runtime& rt, const NodeContext& ctx);

}  // namespace caliprox::opencl
