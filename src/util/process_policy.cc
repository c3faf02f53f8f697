#include "util/process_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace caliprox {

namespace {
constexpr const char* kGuard = "CALIPROX_REEXEC";
}  // namespace

std::vector<std::pair<std::string, std::string>> process_policy_changes(EnvLookup lookup) {
  std::vector<std::pair<std::string, std::string>> changes;
  if (lookup("OMP_WAIT_POLICY") != nullptr || lookup(kGuard) != nullptr) return changes;
  changes.emplace_back("OMP_WAIT_POLICY", "passive");
  if (lookup("GOMP_SPINCOUNT") == nullptr) changes.emplace_back("GOMP_SPINCOUNT", "30000");
  changes.emplace_back(kGuard, "1");
  return changes;
}

void apply_process_policy(char** argv) {
  const auto changes = process_policy_changes([](const char* name) -> const char* { return std::getenv(name); });
  if (changes.empty()) return;
  for (const auto& [name, value] : changes) setenv(name.c_str(), value.c_str(), 1);
  execv("/proc/self/exe", argv);  // returns only on failure: go on as we are
}

}  // namespace caliprox
