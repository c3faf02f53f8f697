#include "qos/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace caliprox {

namespace {

using Clock = std::chrono::steady_clock;

// Closes a descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

Status make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return runtime_error("pipe: {}", std::strerror(errno));
  read_end.fd = fds[0];
  write_end.fd = fds[1];
  return {};
}

// The child's side of the fork: only async-signal-safe calls from here on.
[[noreturn]] void exec_child(const char* cwd, char* const* argv, char* const* envp, int in_fd, int out_fd, int err_fd,
                             int status_fd) {
  ::setpgid(0, 0);
  const int null_fd = in_fd >= 0 ? in_fd : ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  if (cwd[0] != '\0' && ::chdir(cwd) != 0) {
    const int e = errno;
    (void)!::write(status_fd, &e, sizeof e);
    ::_exit(127);
  }
  ::execve(argv[0], argv, envp);
  const int e = errno;
  (void)!::write(status_fd, &e, sizeof e);  // the parent reads why exec failed
  ::_exit(127);
}

}  // namespace

std::string ProcessResult::describe() const {
  if (timed_out) return fmt::format("timed out after {:.1f} s (its process group was killed)", seconds);
  if (stopped) return "stopped (its process group was killed)";
  if (stdout_overflow) return "wrote more output than allowed (its process group was killed)";
  if (signal) return fmt::format("killed by signal {} ({})", *signal, strsignal(*signal));
  if (exit_code) return fmt::format("exit status {}", *exit_code);
  return "ended in an unknown way";
}

std::map<std::string, std::string> inherited_environment() {
  static constexpr std::array<const char*, 10> kNames = {"PATH",   "HOME", "USER",   "LANG",       "LC_ALL",
                                                         "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "LD_LIBRARY_PATH"};
  std::map<std::string, std::string> env;
  for (const char* name : kNames)
    if (const char* v = std::getenv(name)) env[name] = v;
  return env;
}

Status check_executable(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return invalid_input("{} '{}' does not exist ({})", what, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return invalid_input("{} '{}' is not a regular file", what, path);
  if (::access(path.c_str(), X_OK) != 0)
    return invalid_input("{} '{}' is not executable (chmod +x it, or name its interpreter first)", what, path);
  return {};
}

Result<ProcessResult> run_process(const ProcessSpec& spec) {
  if (spec.argv.empty()) return invalid_input("no program to run");
  CP_TRY(check_executable(spec.argv[0], "program"));
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  Fd out_r, out_w, err_r, err_w, st_r, st_w, in_file, out_file;
  CP_TRY(make_pipe(out_r, out_w));
  CP_TRY(make_pipe(err_r, err_w));
  CP_TRY(make_pipe(st_r, st_w));
  if (!spec.stdin_path.empty() && (in_file.fd = ::open(spec.stdin_path.c_str(), O_RDONLY | O_CLOEXEC)) < 0)
    return runtime_error("cannot read '{}': {}", spec.stdin_path, std::strerror(errno));
  if (!spec.stdout_path.empty() &&
      (out_file.fd = ::open(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
    return runtime_error("cannot write '{}': {}", spec.stdout_path, std::strerror(errno));
  const auto t0 = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return runtime_error("fork: {}", std::strerror(errno));
  if (pid == 0)
    exec_child(spec.cwd.c_str(), argv.data(), envp.data(), in_file.fd, out_file.fd >= 0 ? out_file.fd : out_w.fd,
               err_w.fd, st_w.fd);
  in_file.reset();
  out_file.reset();
  if (!spec.stdout_path.empty()) out_r.reset();  // nothing comes through the pipe
  ::setpgid(pid, pid);  // also here: no race with a kill before the child ran setpgid
  out_w.reset();
  err_w.reset();
  st_w.reset();
  int exec_errno = 0;
  if (::read(st_r.fd, &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    ::waitpid(pid, nullptr, 0);
    return invalid_input("cannot run '{}': {}", spec.argv[0], std::strerror(exec_errno));
  }

  ProcessResult r;
  std::string err;
  bool group_killed = false;
  // Kills the whole group. Called only while the program is not yet reaped
  // (a zombie still holds its pid, so the group id cannot have been reused).
  auto kill_group = [&] {
    if (!group_killed) ::kill(-pid, SIGKILL);
    group_killed = true;
  };
  bool exited = false;
  std::array<char, 65536> buf{};
  while (!exited || out_r.fd >= 0 || err_r.fd >= 0) {
    if (spec.timeout_s > 0 && !group_killed &&
        std::chrono::duration<double>(Clock::now() - t0).count() >= spec.timeout_s) {
      r.timed_out = true;
      kill_group();
    }
    if (spec.stop && !group_killed && spec.stop()) {
      r.stopped = true;
      kill_group();
    }
    // The program exited (not reaped yet): end what it left in its group,
    // which may hold the pipes open, then drain what is left.
    siginfo_t info{};
    if (!exited && ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      exited = true;
      kill_group();
    }
    std::array<pollfd, 2> fds{{{out_r.fd, POLLIN, 0}, {err_r.fd, POLLIN, 0}}};
    const int n = ::poll(fds.data(), fds.size(), exited ? 10 : 50);  // look at the child now and then
    if (n < 0 && errno != EINTR) {
      kill_group();
      ::waitpid(pid, nullptr, 0);
      return runtime_error("poll: {}", std::strerror(errno));
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(fds[i].fd, buf.data(), buf.size());
      if (got <= 0) {
        (i == 0 ? out_r : err_r).reset();
        continue;
      }
      const std::string_view chunk(buf.data(), static_cast<size_t>(got));
      if (i == 0 && spec.on_stdout) spec.on_stdout(chunk);
      if (i == 1 && spec.on_stderr) spec.on_stderr(chunk);
      if (i == 0) {
        r.out.append(buf.data(), static_cast<size_t>(got));
        if (r.out.size() > spec.max_stdout) {
          r.stdout_overflow = true;
          r.out.resize(spec.max_stdout);
          kill_group();
          out_r.reset();
        }
      } else {
        err.append(buf.data(), static_cast<size_t>(got));
        if (err.size() > 2 * spec.stderr_tail) err.erase(0, err.size() - spec.stderr_tail);
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.err_tail = err.size() > spec.stderr_tail ? err.substr(err.size() - spec.stderr_tail) : err;
  return r;
}

}  // namespace caliprox
