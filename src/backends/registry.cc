#include <fmt/format.h>

#include "backends/backend.h"

namespace caliprox {

namespace {
struct BackendEntry {
  std::string_view name;
  Result<std::unique_ptr<Backend>> (*make)(const BackendOptions&);
};

template <std::unique_ptr<Backend> (*Make)(const BackendOptions&)>
Result<std::unique_ptr<Backend>> infallible(const BackendOptions& options) {
  return Make(options);
}

constexpr BackendEntry kBackends[] = {
    {"reference", infallible<make_reference_backend>},
#ifdef CALIPROX_HAVE_ONEDNN
    {"onednn", infallible<make_onednn_backend>},
#endif
#ifdef CALIPROX_HAVE_OPENCL
    {"opencl", make_opencl_backend},
#endif
};
}  // namespace

std::string_view knob_run_name(KnobRun run) {
  switch (run) {
    case KnobRun::native: return "native";
    case KnobRun::emulated: return "emulated";
    case KnobRun::unavailable: break;
  }
  return "unavailable";
}

std::vector<std::string_view> backend_names() {
  std::vector<std::string_view> names;
  for (const auto& b : kBackends) names.push_back(b.name);
  return names;
}

Result<std::unique_ptr<Backend>> create_backend(std::string_view name, const BackendOptions& options) {
  for (const auto& b : kBackends)
    if (b.name == name) return b.make(options);
  return invalid_input("unknown backend '{}' (expected one of: {})", name, fmt::join(backend_names(), ", "));
}

}  // namespace caliprox
