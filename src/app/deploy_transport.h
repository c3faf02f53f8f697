#pragma once
// How `caliprox deploy` reaches a device: ssh (ssh, commands and files
// through `sh` on the remote side), adb (`adb shell`, `adb push`, `adb pull`)
// or local (a folder on this machine). Every remote command is one `sh`
// command line whose arguments were quoted with shell_quote(); programs run
// through qos/process (no local shell).
#include <memory>
#include <string>
#include <string_view>

#include "experiment/experiment.h"
#include "qos/process.h"
#include "util/status.h"

namespace caliprox {

// A POSIX shell word that stands for `s` exactly ('...' with ' as '\'').
std::string shell_quote(std::string_view s);

class Transport {
 public:
  virtual ~Transport() = default;
  // "ssh root@127.0.0.1:2222", "adb (device 0123)", "local".
  virtual std::string describe() const = 0;
  // Runs `command` with sh on the target. With `stream` its output goes to
  // ours as it arrives. Errc::unreachable (with the transport's own error)
  // when the target cannot be reached.
  virtual Result<ProcessResult> shell(const std::string& command, bool stream = false) = 0;
  // Copies a local file to a remote path (its folder exists).
  virtual Status push(const std::string& local, const std::string& remote) = 0;
  // Copies the remote folder's contents into `local` (an empty local folder).
  virtual Status pull_dir(const std::string& remote, const std::string& local) = 0;
};

Result<std::unique_ptr<Transport>> make_transport(const TargetSpec& target);

// The path of `program` in PATH (invalid_input naming it when absent).
Result<std::string> find_program(const std::string& program);

}  // namespace caliprox
