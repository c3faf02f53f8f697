// The transports of `caliprox deploy` (app/deploy_transport.h).
#include "app/deploy_transport.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "eval/interrupt.h"

namespace caliprox {

namespace fs = std::filesystem;

std::string shell_quote(std::string_view s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Result<std::string> find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const fs::path p = fs::path(dirs.substr(start, end - start)) / program;
    if (end > start && ::access(p.c_str(), X_OK) == 0) return p.string();
    start = end + 1;
  }
  return invalid_input("'{}' is not installed (not found in PATH)", program);
}

namespace {

// Runs a local program: output streamed or kept, Ctrl-C honoured.
Result<ProcessResult> run_local(std::vector<std::string> argv, bool stream, const std::string& stdin_path = "",
                                const std::string& stdout_path = "") {
  CP_ASSIGN_OR_RETURN(argv[0], find_program(argv[0]));
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.env = inherited_environment();
  for (const char* keep : {"SSH_AUTH_SOCK", "ANDROID_SERIAL", "ADB_SERVER_SOCKET"})
    if (const char* v = std::getenv(keep)) spec.env[keep] = v;
  spec.max_stdout = size_t{64} << 20;
  spec.stop = [] { return interrupt_requested(); };
  spec.stdin_path = stdin_path;
  spec.stdout_path = stdout_path;
  if (stream) {
    spec.on_stdout = [](std::string_view s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
    spec.on_stderr = [](std::string_view s) { std::fwrite(s.data(), 1, s.size(), stderr); };
  }
  CP_ASSIGN_OR_RETURN(ProcessResult r, run_process(spec));
  if (r.stopped) return Status(Errc::interrupted, "interrupted");
  return r;
}

std::string trimmed(const std::string& s) {
  const size_t end = s.find_last_not_of(" \n\r\t");
  return end == std::string::npos ? "" : s.substr(0, end + 1);
}

Status failed(const ProcessResult& r, const std::string& what) {
  return runtime_error("{}: {}{}", what, r.describe(), r.err_tail.empty() ? "" : ": " + trimmed(r.err_tail));
}

class SshTransport final : public Transport {
 public:
  explicit SshTransport(const TargetSpec::Remote& r) : r_(r) {}
  std::string describe() const override {
    return fmt::format("ssh {}{}", r_.host, r_.port > 0 ? fmt::format(":{}", r_.port) : "");
  }
  Result<ProcessResult> shell(const std::string& command, bool stream) override { return ssh(command, stream, "", ""); }
  Status push(const std::string& local, const std::string& remote) override {
    CP_ASSIGN_OR_RETURN(ProcessResult r, ssh("cat > " + shell_quote(remote), false, local, ""));
    return r.exit_code == 0 ? Status{} : failed(r, fmt::format("pushing {} to {}", local, remote));
  }
  Status pull_dir(const std::string& remote, const std::string& local) override {
    const std::string tar = (fs::path(local) / ".pull.tar").string();
    CP_ASSIGN_OR_RETURN(ProcessResult r, ssh("tar -C " + shell_quote(remote) + " -cf - .", false, "", tar));
    if (r.exit_code != 0) return failed(r, fmt::format("pulling {}", remote));
    CP_ASSIGN_OR_RETURN(ProcessResult x, run_local({"tar", "-xf", tar, "-C", local}, false));
    fs::remove(tar);
    return x.exit_code == 0 ? Status{} : failed(x, "unpacking the pulled artifacts");
  }

 private:
  Result<ProcessResult> ssh(const std::string& command, bool stream, const std::string& in, const std::string& out) {
    std::vector<std::string> argv{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"};
    if (r_.port > 0) argv.insert(argv.end(), {"-p", std::to_string(r_.port)});
    if (!r_.identity.empty()) argv.insert(argv.end(), {"-i", r_.identity});
    argv.insert(argv.end(), r_.ssh_options.begin(), r_.ssh_options.end());
    argv.insert(argv.end(), {"--", r_.host, command});
    CP_ASSIGN_OR_RETURN(ProcessResult r, run_local(std::move(argv), stream, in, out));
    // ssh exits 255 for its own errors (connection, authentication).
    if (r.exit_code == 255)
      return Status(Errc::unreachable, fmt::format("{} is unreachable: {}", describe(), trimmed(r.err_tail)));
    return r;
  }
  TargetSpec::Remote r_;
};

class AdbTransport final : public Transport {
 public:
  explicit AdbTransport(const TargetSpec::Remote& r) : r_(r) {}
  std::string describe() const override {
    return r_.serial.empty() ? "adb (the only device)" : fmt::format("adb (device {})", r_.serial);
  }
  Result<ProcessResult> shell(const std::string& command, bool stream) override {
    return adb({"shell", command}, stream);
  }
  Status push(const std::string& local, const std::string& remote) override {
    CP_ASSIGN_OR_RETURN(ProcessResult r, adb({"push", local, remote}, false));
    return r.exit_code == 0 ? Status{} : failed(r, fmt::format("adb push {} {}", local, remote));
  }
  Status pull_dir(const std::string& remote, const std::string& local) override {
    // adb pull DIR/. DEST copies the folder's contents into DEST.
    CP_ASSIGN_OR_RETURN(ProcessResult r, adb({"pull", remote + "/.", local}, false));
    return r.exit_code == 0 ? Status{} : failed(r, fmt::format("adb pull {}", remote));
  }

 private:
  Result<ProcessResult> adb(std::vector<std::string> args, bool stream) {
    std::vector<std::string> argv{"adb"};
    if (!r_.serial.empty()) argv.insert(argv.end(), {"-s", r_.serial});
    argv.insert(argv.end(), args.begin(), args.end());
    CP_ASSIGN_OR_RETURN(ProcessResult r, run_local(std::move(argv), stream));
    // adb's own failures: no device, the serial not found, the device offline.
    const std::string err = trimmed(r.err_tail);
    if (r.exit_code != 0 && (err.find("device") != std::string::npos || err.find("no devices") != std::string::npos) &&
        (err.find("not found") != std::string::npos || err.find("offline") != std::string::npos ||
         err.find("no devices") != std::string::npos || err.find("unauthorized") != std::string::npos))
      return Status(Errc::unreachable, fmt::format("{} is unreachable: {}", describe(), err));
    return r;
  }
  TargetSpec::Remote r_;
};

class LocalTransport final : public Transport {
 public:
  std::string describe() const override { return "local"; }
  Result<ProcessResult> shell(const std::string& command, bool stream) override {
    return run_local({"/bin/sh", "-c", command}, stream);
  }
  Status push(const std::string& local, const std::string& remote) override {
    CP_ASSIGN_OR_RETURN(ProcessResult r, run_local({"/bin/sh", "-c", "cat > " + shell_quote(remote)}, false, local));
    return r.exit_code == 0 ? Status{} : failed(r, fmt::format("copying {} to {}", local, remote));
  }
  Status pull_dir(const std::string& remote, const std::string& local) override {
    CP_ASSIGN_OR_RETURN(ProcessResult r, run_local({"cp", "-R", remote + "/.", local}, false));
    return r.exit_code == 0 ? Status{} : failed(r, fmt::format("copying {}", remote));
  }
};

}  // namespace

Result<std::unique_ptr<Transport>> make_transport(const TargetSpec& target) {
  const std::string& t = target.remote.transport;
  if (t == "ssh") return std::unique_ptr<Transport>(std::make_unique<SshTransport>(target.remote));
  if (t == "adb") return std::unique_ptr<Transport>(std::make_unique<AdbTransport>(target.remote));
  if (t == "local") return std::unique_ptr<Transport>(std::make_unique<LocalTransport>());
  return invalid_input("target '{}' has no transport (ssh, adb or local): it is this machine, which `caliprox {} ...` "
                       "runs on directly",
                       target.name, "<subcommand>");
}

}  // namespace caliprox
