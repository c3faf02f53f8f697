// The OpenCL device, its program and buffers (backends/opencl/runtime.h).
#include "backends/opencl/runtime.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <unistd.h>

#include <fmt/format.h>

#include "backends/opencl/kernels_cl.h"
#include "util/log.h"

namespace caliprox::opencl {

namespace fs = std::filesystem;

namespace {

// A string property through clGetPlatformInfo or clGetDeviceInfo ("" when unknown).
template <typename Id, typename Info>
std::string info_string(cl_int (*get)(Id, Info, size_t, void*, size_t*), Id id, Info what) {
  size_t n = 0;
  if (get(id, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  get(id, what, n, s.data(), nullptr);
  return s.substr(0, s.find('\0'));
}
std::string platform_string(cl_platform_id p, cl_platform_info what) { return info_string(clGetPlatformInfo, p, what); }
std::string device_string(cl_device_id d, cl_device_info what) { return info_string(clGetDeviceInfo, d, what); }

template <typename T> T device_value(cl_device_id d, cl_device_info what) {
  T v{};
  clGetDeviceInfo(d, what, sizeof(T), &v, nullptr);
  return v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// An index ("0") or a case-insensitive part of a name; empty matches all.
bool selects(const std::string& selector, size_t index, const std::string& name) {
  if (selector.empty()) return true;
  if (std::all_of(selector.begin(), selector.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::to_string(index) == selector;
  return lower(name).find(lower(selector)) != std::string::npos;
}

std::vector<cl_platform_id> platforms() {
  cl_uint n = 0;
  if (clGetPlatformIDs(0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::vector<cl_platform_id> ids(n);
  clGetPlatformIDs(n, ids.data(), nullptr);
  return ids;
}

std::vector<cl_device_id> devices_of(cl_platform_id p) {
  cl_uint n = 0;
  if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::vector<cl_device_id> ids(n);
  clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, n, ids.data(), nullptr);
  return ids;
}

uint64_t fnv1a(std::string_view data, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Where built programs are kept between runs ("" when there is no home).
fs::path cache_dir() {
  if (const char* d = std::getenv("CALIPROX_CACHE_DIR"); d && *d) return fs::path(d) / "opencl";
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "caliprox" / "opencl";
  if (const char* d = std::getenv("HOME"); d && *d) return fs::path(d) / ".cache" / "caliprox" / "opencl";
  return {};
}

// OpenCL C compiler options: CL 1.2, and CALIPROX_OPENCL_OPTIONS appended
// (e.g. -cl-fast-relaxed-math; part of the cache key).
std::string build_options() {
  std::string o = "-cl-std=CL1.2";
  if (const char* extra = std::getenv("CALIPROX_OPENCL_OPTIONS"); extra && *extra) o += std::string(" ") + extra;
  return o;
}

}  // namespace

std::string cl_error_name(cl_int code) {
  switch (code) {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND (-1)";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE (-2)";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE (-3)";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES (-5)";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY (-6)";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE (-11)";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE (-30)";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY (-42)";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME (-46)";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX (-49)";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE (-51)";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS (-52)";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE (-54)";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE (-61)";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (-1001: no OpenCL driver is installed)";
    default: return fmt::format("OpenCL error {}", code);
  }
}

Status cl_check(cl_int code, std::string_view what) {
  if (code == CL_SUCCESS) return {};
  return runtime_error("OpenCL: {}: {}", what, cl_error_name(code));
}

std::shared_ptr<void> own_buffer(cl_mem mem) {
  return std::shared_ptr<void>(mem, [](void* m) {
    if (m) clReleaseMemObject(static_cast<cl_mem>(m));
  });
}

Result<std::unique_ptr<Runtime>> Runtime::open(const DeviceSelector& selector) {
  std::vector<std::string> seen;
  std::unique_ptr<Runtime> rt(new Runtime());
  const std::vector<cl_platform_id> ps = platforms();
  for (size_t pi = 0; pi < ps.size() && !rt->device_; ++pi) {
    const std::string pname = platform_string(ps[pi], CL_PLATFORM_NAME);
    const std::vector<cl_device_id> ds = devices_of(ps[pi]);
    for (size_t di = 0; di < ds.size(); ++di)
      seen.push_back(
          fmt::format("platform {} '{}' device {} '{}'", pi, pname, di, device_string(ds[di], CL_DEVICE_NAME)));
    if (!selects(selector.platform, pi, pname)) continue;
    for (size_t di = 0; di < ds.size() && !rt->device_; ++di)
      if (selects(selector.device, di, device_string(ds[di], CL_DEVICE_NAME))) {
        rt->device_ = ds[di];
        rt->info_.platform = pname;
      }
  }
  if (!rt->device_) {
    const std::string wanted =
        fmt::format("platform '{}', device '{}'", selector.platform.empty() ? "any" : selector.platform,
                    selector.device.empty() ? "any" : selector.device);
    if (seen.empty())
      return Status(Errc::unreachable, fmt::format("OpenCL: no platform with a device was found (is an OpenCL driver "
                                                   "such as pocl-opencl-icd installed?); wanted {}",
                                                   wanted));
    return Status(Errc::unreachable,
                  fmt::format("OpenCL: nothing matches {}; found: {}", wanted, fmt::join(seen, "; ")));
  }
  DeviceInfo& i = rt->info_;
  i.name = device_string(rt->device_, CL_DEVICE_NAME);
  i.vendor = device_string(rt->device_, CL_DEVICE_VENDOR);
  i.driver = device_string(rt->device_, CL_DRIVER_VERSION);
  i.version = device_string(rt->device_, CL_DEVICE_VERSION);
  i.fp16 = device_string(rt->device_, CL_DEVICE_EXTENSIONS).find("cl_khr_fp16") != std::string::npos;
  i.global_memory = device_value<cl_ulong>(rt->device_, CL_DEVICE_GLOBAL_MEM_SIZE);
  i.max_allocation = device_value<cl_ulong>(rt->device_, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  i.compute_units = static_cast<int>(device_value<cl_uint>(rt->device_, CL_DEVICE_MAX_COMPUTE_UNITS));
  rt->memory_limit_ = selector.memory_limit;
  if (rt->memory_limit_ > 0) {
    i.global_memory = std::min<uint64_t>(i.global_memory, rt->memory_limit_);
    i.max_allocation = std::min<uint64_t>(i.max_allocation, rt->memory_limit_);
  }
  cl_int err = CL_SUCCESS;
  rt->context_ = clCreateContext(nullptr, 1, &rt->device_, nullptr, nullptr, &err);
  CP_TRY(cl_check(err, fmt::format("creating a context on '{}'", i.name)));
  rt->queue_ = clCreateCommandQueue(rt->context_, rt->device_, 0, &err);
  CP_TRY(cl_check(err, fmt::format("creating a queue on '{}'", i.name)));
  return rt;
}

Runtime::~Runtime() {
  if (queue_) clFinish(queue_);
  for (auto& s : scratch_) s.reset();
  if (program_) clReleaseProgram(program_);
  if (queue_) clReleaseCommandQueue(queue_);
  if (context_) clReleaseContext(context_);
}

std::string bytes_text(uint64_t bytes) {
  if (bytes < (uint64_t{1} << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

Status Runtime::fits(size_t bytes, std::string_view what) const {
  if (bytes <= info_.max_allocation) return {};
  return unsupported("{} needs a device buffer of {}; '{}' allows {} per buffer", what, bytes_text(bytes), info_.name,
                     bytes_text(info_.max_allocation));
}

Result<std::shared_ptr<void>> Runtime::allocate(size_t bytes) {
  CP_TRY(fits(bytes, "a value"));
  cl_int err = CL_SUCCESS;
  cl_mem m = clCreateBuffer(context_, CL_MEM_READ_WRITE, std::max<size_t>(bytes, 4), nullptr, &err);
  if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_INVALID_BUFFER_SIZE)
    return unsupported("'{}' could not allocate {}: {}", info_.name, bytes_text(bytes), cl_error_name(err));
  CP_TRY(cl_check(err, "clCreateBuffer"));
  return own_buffer(m);
}

Status Runtime::reserve_scratch(int slot, size_t bytes) {
  auto s = static_cast<size_t>(slot);
  if (scratch_bytes_[s] >= bytes) return {};
  auto lock = run_lock();  // no run uses the old buffer meanwhile
  scratch_[s].reset();
  CP_ASSIGN_OR_RETURN(scratch_[s], allocate(bytes));
  scratch_bytes_[s] = bytes;
  return {};
}

Status Runtime::build_program() {
  std::lock_guard<std::mutex> lock(build_mutex_);
  if (program_) return {};
  const auto t0 = std::chrono::steady_clock::now();
  const std::string source = kernel_source();
  const std::string options = build_options();
  const uint64_t key =
      fnv1a(source,
            fnv1a(fmt::format("{}|{}|{}|{}|{}", info_.platform, info_.name, info_.driver, info_.version, options)));
  const fs::path dir = cache_dir();
  const fs::path file = dir.empty() ? fs::path() : dir / fmt::format("{:016x}.bin", key);
  cl_int err = CL_SUCCESS;
  if (!file.empty() && fs::exists(file)) {
    std::ifstream in(file, std::ios::binary);
    std::vector<unsigned char> bin((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const unsigned char* ptr = bin.data();
    const size_t size = bin.size();
    cl_int status = CL_SUCCESS;
    program_ = clCreateProgramWithBinary(context_, 1, &device_, &size, &ptr, &status, &err);
    if (err == CL_SUCCESS && status == CL_SUCCESS &&
        clBuildProgram(program_, 1, &device_, options.c_str(), nullptr, nullptr) == CL_SUCCESS) {
      build_source_ = "from the cache";
    } else {
      log_debug("OpenCL: the cached program {} is not usable here; compiling", file.string());
      if (program_) clReleaseProgram(program_);
      program_ = nullptr;
    }
  }
  if (!program_) {
    const char* src = source.c_str();
    program_ = clCreateProgramWithSource(context_, 1, &src, nullptr, &err);
    CP_TRY(cl_check(err, "clCreateProgramWithSource"));
    err = clBuildProgram(program_, 1, &device_, options.c_str(), nullptr, nullptr);
    if (err != CL_SUCCESS) {
      size_t n = 0;
      clGetProgramBuildInfo(program_, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
      std::string log(n, '\0');
      clGetProgramBuildInfo(program_, device_, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
      clReleaseProgram(program_);
      program_ = nullptr;
      return runtime_error("OpenCL: building the kernels for '{}' with options '{}' failed ({}); build log:\n{}",
                           info_.name, options, cl_error_name(err), log.substr(0, log.find('\0')));
    }
    build_source_ = "compiled";
    size_t size = 0;
    if (!file.empty() &&
        clGetProgramInfo(program_, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, nullptr) == CL_SUCCESS && size > 0) {
      std::vector<unsigned char> bin(size);
      unsigned char* ptr = bin.data();
      std::error_code ec;
      fs::create_directories(dir, ec);
      const fs::path tmp = file.string() + fmt::format(".tmp{}", static_cast<long>(getpid()));
      if (clGetProgramInfo(program_, CL_PROGRAM_BINARIES, sizeof(ptr), &ptr, nullptr) == CL_SUCCESS && !ec) {
        std::ofstream(tmp, std::ios::binary)
            .write(reinterpret_cast<const char*>(bin.data()), static_cast<std::streamsize>(size));
        fs::rename(tmp, file, ec);
        if (ec) fs::remove(tmp, ec);
      }
    }
  }
  build_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  log_debug("OpenCL: kernels for '{}' {} in {:.0f} ms", info_.name, build_source_, build_ms_);
  return {};
}

std::string Runtime::build_summary() const {
  if (!program_) return "not built yet";
  return fmt::format("{} in {:.0f} ms", build_source_, build_ms_);
}

Result<cl_kernel> Runtime::kernel(const char* name) {
  CP_TRY(build_program());
  cl_int err = CL_SUCCESS;
  cl_kernel k = clCreateKernel(program_, name, &err);
  CP_TRY(cl_check(err, fmt::format("kernel '{}'", name)));
  return k;
}

Status launch(cl_command_queue queue, cl_kernel k, size_t global0, size_t global1) {
  if (global0 == 0) return {};
  const size_t global[2] = {global0, global1};
  const cl_uint dims = global1 == 0 ? 1 : 2;
  return cl_check(clEnqueueNDRangeKernel(queue, k, dims, nullptr, global, nullptr, 0, nullptr, nullptr),
                  "clEnqueueNDRangeKernel");
}

Result<std::shared_ptr<void>> upload_constant(Runtime& rt, const void* data, size_t bytes) {
  CP_ASSIGN_OR_RETURN(std::shared_ptr<void> buf, rt.allocate(bytes));
  if (bytes > 0)
    CP_TRY(cl_check(clEnqueueWriteBuffer(rt.queue(), static_cast<cl_mem>(buf.get()), CL_TRUE, 0, bytes, data, 0,
                                         nullptr, nullptr),
                    "uploading a constant"));
  return buf;
}

}  // namespace caliprox::opencl
