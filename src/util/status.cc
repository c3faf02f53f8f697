#include "util/status.h"

namespace caliprox {

int exit_code_for(Errc code) {
  switch (code) {
    case Errc::ok: return 0;
    case Errc::runtime: return 1;
    case Errc::invalid_input: return 2;
    case Errc::unsupported: return 2;
    case Errc::goal_not_met: return 3;
    case Errc::unreachable: return 4;
    case Errc::interrupted: return 130;
  }
  return 1;
}

Status result_without_value(const char* file, int line, const char* function) {
  return runtime_error("internal error: a Result was made from a success status, so it has neither a value nor an "
                       "error ({}:{}, in {})",
                       file, line, function);
}

}  // namespace caliprox
