#pragma once
// The OpenCL C source of the backend's kernels (kernels_cl.cc), built once
// per device into one program (Runtime::kernel).
#include <string>

namespace caliprox::opencl {

// Activation kinds as the kernels number them: act::ActivationKind's values.
std::string kernel_source();

}  // namespace caliprox::opencl
