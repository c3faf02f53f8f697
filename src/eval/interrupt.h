#pragma once
// Interruption: SIGINT/SIGTERM set a flag that long loops poll (the
// evaluator's batch loops, the tuning pipeline's workers); the CLI then
// exits 130. Here rather than in app/ because the evaluator and the
// pipelines below app/ poll it.
#include <cstddef>
#include <string>

#include "util/status.h"

namespace caliprox {

void install_interrupt_handler();
bool interrupt_requested();
Status interrupted_status(const std::string& what);
// A resumable job's: what its records file keeps, and how to resume.
Status interrupted_status(const std::string& what, const std::string& records_path, size_t kept);

}  // namespace caliprox
