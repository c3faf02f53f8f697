#pragma once
// Internals shared by the OpenCL backend's files: the chosen device with its
// context and in-order queue, what the device is (name, driver, half
// precision, memory), device buffers as owning handles, the kernel program
// (built once per backend, cached on disk across runs), argument plumbing,
// and scratch buffers shared by the kernels of one backend.
//
// OpenCL 1.2 C API (Debian's ocl-icd loader); GEMMs through CLBlast.
#include <CL/cl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::opencl {

// "CL_OUT_OF_RESOURCES (-5)".
std::string cl_error_name(cl_int code);
// Errc::runtime "<what>: <error name>" unless code is CL_SUCCESS.
Status cl_check(cl_int code, std::string_view what);

struct DeviceInfo {
  std::string platform;
  std::string name;
  std::string vendor;
  std::string driver;   // CL_DRIVER_VERSION
  std::string version;  // CL_DEVICE_VERSION
  bool fp16 = false;    // cl_khr_fp16
  uint64_t global_memory = 0;
  uint64_t max_allocation = 0;  // the largest single buffer
  int compute_units = 0;
};

// "73.0 KiB", "1.5 MiB".
std::string bytes_text(uint64_t bytes);

// A device buffer; the shared pointer releases it (device tensors keep it).
std::shared_ptr<void> own_buffer(cl_mem mem);
inline cl_mem mem_of(const Tensor& t) { return static_cast<cl_mem>(const_cast<void*>(t.raw())); }

class Runtime {
 public:
  // Errc::unreachable when nothing matches `selector` (naming what exists).
  static Result<std::unique_ptr<Runtime>> open(const DeviceSelector& selector);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const DeviceInfo& info() const { return info_; }
  cl_context context() const { return context_; }
  cl_command_queue& queue() { return queue_; }
  cl_device_id device() const { return device_; }

  // A buffer of `bytes` (Errc::unsupported when the device cannot hold one
  // that large: the executor then runs the node on the host).
  Result<std::shared_ptr<void>> allocate(size_t bytes);
  // Same, but the check only (for prepare()).
  Status fits(size_t bytes, std::string_view what) const;

  // A kernel of the backend's program (built on first use; see kernels_cl.h).
  Result<cl_kernel> kernel(const char* name);
  // The program build's cost and where it came from, for `caliprox check`.
  std::string build_summary() const;

  // Scratch buffer `slot` of at least `bytes`, shared by the kernels of this
  // backend: grown at prepare time (reserve), fetched at run time (scratch).
  // Runs hold run_lock() while they use it.
  Status reserve_scratch(int slot, size_t bytes);
  cl_mem scratch(int slot) const { return static_cast<cl_mem>(scratch_[static_cast<size_t>(slot)].get()); }
  std::unique_lock<std::mutex> run_lock() { return std::unique_lock<std::mutex>(run_mutex_); }

 private:
  Runtime() = default;
  Status build_program();

  DeviceInfo info_;
  cl_device_id device_ = nullptr;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  cl_program program_ = nullptr;
  std::mutex build_mutex_;
  double build_ms_ = 0;
  std::string build_source_;  // "compiled" or "from the cache"
  uint64_t memory_limit_ = 0;
  std::shared_ptr<void> scratch_[2];
  size_t scratch_bytes_[2] = {0, 0};
  std::mutex run_mutex_;
};

// clSetKernelArg for each argument in order (cl_mem, ints, floats).
template <typename... Args> Status set_args(cl_kernel k, const Args&... args) {
  cl_uint index = 0;
  cl_int err = CL_SUCCESS;
  ((err = err == CL_SUCCESS ? clSetKernelArg(k, index++, sizeof(Args), &args) : err), ...);
  return cl_check(err, "clSetKernelArg");
}
// Same, starting at argument `first`.
template <typename... Args> Status set_args_from(cl_kernel k, cl_uint first, const Args&... args) {
  cl_uint index = first;
  cl_int err = CL_SUCCESS;
  ((err = err == CL_SUCCESS ? clSetKernelArg(k, index++, sizeof(Args), &args) : err), ...);
  return cl_check(err, "clSetKernelArg");
}

// A 1-D or 2-D NDRange launch (local size chosen by the driver).
Status launch(cl_command_queue queue, cl_kernel k, size_t global0, size_t global1 = 0);

// A device copy of host data, owned (constants: weights, bias, tables).
Result<std::shared_ptr<void>> upload_constant(Runtime& rt, const void* data, size_t bytes);

// Releases a kernel object when the owning Kernel goes.
struct KernelHandle {
  cl_kernel k = nullptr;
  KernelHandle() = default;
  explicit KernelHandle(cl_kernel kernel) : k(kernel) {}
  KernelHandle(KernelHandle&& o) noexcept : k(std::exchange(o.k, nullptr)) {}
  KernelHandle& operator=(KernelHandle&& o) noexcept {
    std::swap(k, o.k);
    return *this;
  }
  ~KernelHandle() {
    if (k) clReleaseKernel(k);
  }
};

}  // namespace caliprox::opencl
