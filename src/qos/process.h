#pragma once
// Running an application's own quality check as a child process (DESIGN:
// "QoS knows ... external evaluator processes"): executed directly (never
// through a shell), in its own process group, with a deadline after which
// the whole group is killed, its stdout captured up to a cap and the tail of
// its stderr kept for error messages. POSIX only.
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace caliprox {

struct ProcessSpec {
  std::vector<std::string> argv;          // argv[0]: the program's path (not searched in PATH)
  std::string cwd;                        // working folder ("" = the caller's)
  std::map<std::string, std::string> env; // the child's whole environment
  double timeout_s = 0;                   // 0: none
  size_t max_stdout = 1 << 20;            // bytes; more is an error (the group is killed)
  size_t stderr_tail = 4096;              // bytes of stderr kept (the last ones)
  // Polled while the program runs: true kills its process group (an
  // interrupted caliprox, whose Ctrl-C the child's own group does not get).
  std::function<bool()> stop;
  // Redirections (deploy's transports): stdin from a file instead of
  // /dev/null; stdout into a file (created or truncated) instead of `out`.
  std::string stdin_path;
  std::string stdout_path;
  // Each chunk of output as it arrives (a remote run's progress), besides
  // what the result keeps.
  std::function<void(std::string_view)> on_stdout, on_stderr;
};

struct ProcessResult {
  std::optional<int> exit_code;  // when it exited
  std::optional<int> signal;     // when a signal ended it
  bool timed_out = false;        // killed at the deadline
  bool stdout_overflow = false;  // killed for writing more than max_stdout
  bool stopped = false;          // killed because spec.stop said so
  std::string out;               // stdout (at most max_stdout bytes)
  std::string err_tail;          // the last stderr_tail bytes of stderr
  double seconds = 0;
  // "exit status 3", "killed by signal 9", "timed out after 2.0 s", ...
  std::string describe() const;
};

// Runs the process to its end. When the program exits, anything left in its
// process group (children it started and left behind) is killed too, so no
// run outlives its call. Errors: the program cannot be started (not found,
// not executable: invalid_input naming it) or a system call failed
// (runtime); the program's own failures are in the result, not errors.
Result<ProcessResult> run_process(const ProcessSpec& spec);

// The variables of the caller's environment that children inherit (the rest
// is not passed on): PATH, HOME, USER, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR,
// PYTHONPATH, LD_LIBRARY_PATH. Those that are set.
std::map<std::string, std::string> inherited_environment();

// invalid_input unless `path` names an executable regular file; `what`
// names it in the message ("application command").
Status check_executable(const std::string& path, const std::string& what);

}  // namespace caliprox
