#include "util/log.h"

#include <unistd.h>

#include <atomic>

namespace caliprox {

namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
}

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_line(LogLevel level, std::string_view text) {
  const char* prefix = level == LogLevel::error ? "caliprox: error: " : level == LogLevel::warning ? "caliprox: warning: " : "caliprox: ";
  fmt::print(stderr, "{}{}\n", prefix, text);
}

bool progress_enabled() { return log_level() >= LogLevel::info && isatty(STDERR_FILENO) == 1; }

}  // namespace caliprox
