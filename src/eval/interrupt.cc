#include "eval/interrupt.h"

#include <csignal>

#include <fmt/format.h>

namespace caliprox {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_signal(int) { g_interrupted = 1; }
}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool interrupt_requested() { return g_interrupted != 0; }

Status interrupted_status(const std::string& what) {
  return Status(Errc::interrupted, fmt::format("interrupted during {}; nothing was written", what));
}

Status interrupted_status(const std::string& what, const std::string& records_path, size_t kept) {
  return Status(Errc::interrupted,
                fmt::format("interrupted during {}; {}: {} evaluations kept; re-run the same command to resume", what,
                            records_path, kept));
}

}  // namespace caliprox
