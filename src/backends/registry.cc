#include <fmt/format.h>

#include "backends/backend.h"

namespace caliprox {

namespace {
struct BackendEntry {
  std::string_view name;
  std::unique_ptr<Backend> (*make)(const BackendOptions&);
};

constexpr BackendEntry kBackends[] = {
    {"reference", make_reference_backend},
#ifdef CALIPROX_HAVE_ONEDNN
    {"onednn", make_onednn_backend},
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
