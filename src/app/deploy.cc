// caliprox deploy EXPERIMENT --target NAME -- SUBCOMMAND [ARGS]: runs a
// subcommand on a remote device (app/deploy_transport.h) and brings its
// artifacts home.
//
//   1. The target is reached (`uname -m`; exit 4 with the transport's error
//      when it is not) and the binary's ABI checked against the target's.
//   2. What the remote run needs is pushed into <workdir>/store/<hash>/:
//      the binary (and its libraries), the models, the dataset files, the
//      experiment rewritten with those remote paths. Files are named by
//      their SHA-256, so what is already there is not pushed again; a push
//      goes to a temporary name, is checked by hash and then renamed.
//   3. The subcommand runs in <workdir>, its output streamed here; its
//      artifacts go to <workdir>/runs/<experiment>-<target>, which stays
//      there, so an interrupted tune resumes when the same deploy runs again.
//   4. Its artifacts are pulled into a temporary folder beside the local run
//      folder and renamed into place: nothing half-written locally.
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "app/deploy_transport.h"
#include "experiment/yaml_json.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Subcommands that make sense on a device: whether they take the experiment
// (infer takes a model instead) and whether they write artifacts (-o).
struct RemoteSubcommand {
  bool experiment = true;
  bool writes = true;
};
const std::map<std::string, RemoteSubcommand>& remote_subcommands() {
  static const std::map<std::string, RemoteSubcommand> subs{
      {"check", {true, false}}, {"knobs", {true, false}}, {"eval", {}}, {"profile", {}}, {"tune", {}},
      {"adapt-sim", {}},        {"infer", {false, true}}};
  return subs;
}

// The ELF machine of a binary: "x86_64", "aarch64", or what it is instead.
Result<std::string> elf_machine(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<unsigned char, 20> h{};
  if (!in.read(reinterpret_cast<char*>(h.data()), h.size()) || h[0] != 0x7f || h[1] != 'E' || h[2] != 'L' ||
      h[3] != 'F')
    return invalid_input("{} is not an ELF executable", path);
  const int machine = h[18] | (h[19] << 8);
  if (machine == 62) return std::string("x86_64");
  if (machine == 183) return std::string("aarch64");
  return fmt::format("ELF machine {}", machine);
}

std::string machine_of_abi(const std::string& abi) { return abi == "arm64-v8a" ? "aarch64" : "x86_64"; }

Result<std::string> sha256_of(const std::string& path) {
  ProcessSpec spec;
  CP_ASSIGN_OR_RETURN(const std::string prog, find_program("sha256sum"));
  spec.argv = {prog, "--", path};
  spec.env = inherited_environment();
  CP_ASSIGN_OR_RETURN(ProcessResult r, run_process(spec));
  if (r.exit_code != 0 || r.out.size() < 64) return runtime_error("sha256sum {}: {}", path, r.describe());
  return r.out.substr(0, 64);
}

struct PushFile {
  std::string local;
  std::string remote;  // <workdir>/store/<hash>/<name>
  std::string hash;
  bool executable = false;
};

class Deployer {
 public:
  Deployer(const DeploySettings& s, const Experiment& exp, const TargetSpec& t, Transport& tr)
      : s_(s), exp_(exp), t_(t), tr_(tr), workdir_(t.remote.workdir) {}

  Status run(const std::string& scratch);

 private:
  Status reach(const std::string& binary);
  Result<PushFile> stage(const std::string& local, const std::string& name, bool executable);
  Status push_missing(std::vector<PushFile>& files);
  Result<std::string> rewritten_experiment(const std::map<std::string, std::string>& remote_of);
  Status pull(const std::string& remote_out);

  const DeploySettings& s_;
  const Experiment& exp_;
  const TargetSpec& t_;
  Transport& tr_;
  std::string workdir_;
  std::string scratch_;  // local temporary folder
};

Status Deployer::reach(const std::string& binary) {
  CP_ASSIGN_OR_RETURN(const std::string machine, elf_machine(binary));
  const std::string want = machine_of_abi(t_.remote.abi);
  if (machine != want)
    return invalid_input("target '{}' has abi {} ({}), but the binary {} is {}: name the binary for that ABI in "
                         "targets[].binary",
                         t_.name, t_.remote.abi, want, binary, machine);
  CP_ASSIGN_OR_RETURN(ProcessResult r, tr_.shell("uname -m && mkdir -p " + shell_quote(workdir_ + "/store") + " " +
                                                 shell_quote(workdir_ + "/runs")));
  if (r.exit_code != 0)
    return runtime_error("{}: preparing {} failed: {}: {}", tr_.describe(), workdir_, r.describe(), r.err_tail);
  const std::string remote = r.out.substr(0, r.out.find('\n'));
  // With a prefix (an emulator) the machine itself may differ from the ABI.
  if (t_.remote.prefix.empty() && remote != want)
    return invalid_input("target '{}' says abi {} ({}), but {} is {}", t_.name, t_.remote.abi, want, tr_.describe(),
                         remote);
  log_info("deploy: {} reached ({}), working in {}", tr_.describe(), remote, workdir_);
  return {};
}

Result<PushFile> Deployer::stage(const std::string& local, const std::string& name, bool executable) {
  CP_ASSIGN_OR_RETURN(const std::string hash, sha256_of(local));
  return PushFile{local, fmt::format("{}/store/{}/{}", workdir_, hash.substr(0, 16), name), hash, executable};
}

// Pushes the files the target does not hold yet (checked by hash, renamed into place).
Status Deployer::push_missing(std::vector<PushFile>& files) {
  std::string probe = "true";
  for (const auto& f : files) probe += "; test -f " + shell_quote(f.remote) + " && echo " + shell_quote(f.remote);
  CP_ASSIGN_OR_RETURN(ProcessResult present, tr_.shell(probe));
  std::set<std::string> there;
  for (size_t a = 0, b; a < present.out.size(); a = b + 1) {
    b = present.out.find('\n', a);
    if (b == std::string::npos) b = present.out.size();
    there.insert(present.out.substr(a, b - a));
  }
  size_t pushed = 0;
  uintmax_t bytes = 0;
  for (const auto& f : files) {
    if (there.count(f.remote)) continue;
    const std::string dir = f.remote.substr(0, f.remote.rfind('/'));
    const std::string part = f.remote + ".part";
    CP_ASSIGN_OR_RETURN(ProcessResult mk, tr_.shell("mkdir -p " + shell_quote(dir)));
    if (mk.exit_code != 0) return runtime_error("{}: mkdir {}: {}", tr_.describe(), dir, mk.err_tail);
    Status st = tr_.push(f.local, part);
    std::string check;
    if (st.ok()) {
      CP_ASSIGN_OR_RETURN(ProcessResult sum, tr_.shell("sha256sum " + shell_quote(part)));
      check = sum.out.substr(0, 64);
      if (check != f.hash)
        st = runtime_error("{}: {} arrived as {} with SHA-256 {}, not {}{}", tr_.describe(), f.local, part,
                           check.empty() ? "(unreadable)" : check, f.hash,
                           sum.err_tail.empty() ? "" : ": " + sum.err_tail);
    }
    if (!st.ok()) {
      (void)tr_.shell("rm -f " + shell_quote(part));
      return st;
    }
    const std::string mode = f.executable ? "chmod 755 " + shell_quote(part) + " && " : "";
    CP_ASSIGN_OR_RETURN(ProcessResult mv, tr_.shell(mode + "mv " + shell_quote(part) + " " + shell_quote(f.remote)));
    if (mv.exit_code != 0) return runtime_error("{}: mv {}: {}", tr_.describe(), f.remote, mv.err_tail);
    ++pushed;
    bytes += fs::file_size(f.local);
  }
  log_info("deploy: pushed {} file(s) ({:.1f} MiB); {} already on the target", pushed,
           static_cast<double>(bytes) / (1 << 20), files.size() - pushed);
  return {};
}

// The experiment with the remote paths, one target (this one, as the host).
Result<std::string> Deployer::rewritten_experiment(const std::map<std::string, std::string>& remote_of) {
  CP_ASSIGN_OR_RETURN(YamlDocument doc, read_yaml_file(exp_.source_path));
  json root = doc.root;
  const auto remote = [&](const std::string& local) { return remote_of.at(local); };
  if (root.contains("network")) {
    root["network"]["model"] = remote(exp_.network.model_path);
    root["network"].erase("finetune");
    if (exp_.network.labels_path) root["network"]["labels"] = remote(*exp_.network.labels_path);
  }
  if (root.contains("networks"))
    for (const NetworkSpec& n : exp_.networks) {
      json& j = root["networks"][n.name];
      j["model"] = remote(n.model_path);
      j.erase("finetune");
      if (n.labels_path) j["labels"] = remote(*n.labels_path);
    }
  root["dataset"]["samples"] = remote(exp_.dataset.samples_path);
  if (exp_.dataset.labels_path) root["dataset"]["labels"] = remote(*exp_.dataset.labels_path);
  if (exp_.tune.profile) root["tune"]["profile"] = remote(*exp_.tune.profile);
  root.erase("application");  // the application runs where the experiment lives, not on the device
  json target{{"name", t_.name}, {"backend", t_.backend}, {"threads", t_.threads}};
  if (!t_.platform.empty()) target["platform"] = t_.platform;
  if (!t_.device.empty()) target["device"] = t_.device;
  if (t_.device_memory_mib > 0) target["device_memory_mib"] = t_.device_memory_mib;
  if (!t_.batch_sizes.empty()) target["batch_sizes"] = t_.batch_sizes;
  root["targets"] = json::array({target});
  return root.dump(2);
}

Status Deployer::pull(const std::string& remote_out) {
  const std::string local = s_.common.out_dir.value_or((fs::path("runs") / exp_.name / t_.name).string());
  const fs::path tmp = fs::path(local).string() + fmt::format(".pulling-{}", static_cast<long>(getpid()));
  fs::create_directories(tmp);
  Status st = tr_.pull_dir(remote_out, tmp.string());
  if (!st.ok()) {
    fs::remove_all(tmp);
    return st;
  }
  std::error_code ec;
  fs::remove_all(local, ec);
  fs::rename(tmp, local, ec);
  if (ec) return runtime_error("moving the pulled artifacts to {}: {}", local, ec.message());
  log_report_hint(local);  // (the remote subcommand named its own folder on the target, now pulled here)
  return {};
}

Status Deployer::run(const std::string& scratch) {
  scratch_ = scratch;
  const std::string binary = t_.remote.binary.empty() ? fs::read_symlink("/proc/self/exe").string() : t_.remote.binary;
  CP_TRY(reach(binary));
  std::vector<PushFile> files;
  std::map<std::string, std::string> remote_of;
  const auto add = [&](const std::string& local, bool executable) -> Status {
    if (remote_of.count(local)) return {};
    CP_ASSIGN_OR_RETURN(PushFile f, stage(local, fs::path(local).filename().string(), executable));
    remote_of[local] = f.remote;
    files.push_back(std::move(f));
    return {};
  };
  CP_TRY(add(binary, true));
  for (const auto& lib : t_.remote.libraries) CP_TRY(add(lib, false));
  for (const NetworkSpec& n : exp_.networks) {
    CP_TRY(add(n.model_path, false));
    if (n.labels_path) CP_TRY(add(*n.labels_path, false));
  }
  CP_TRY(add(exp_.dataset.samples_path, false));
  if (exp_.dataset.labels_path) CP_TRY(add(*exp_.dataset.labels_path, false));
  if (exp_.tune.profile) CP_TRY(add(*exp_.tune.profile, false));
  // Arguments naming local files (a --config, a frontier, infer's model and
  // inputs, also as NAME=FILE or --option=FILE) are pushed and renamed.
  std::vector<std::string> args;
  for (size_t i = 1; i < s_.command.size(); ++i) {
    const std::string& arg = s_.command[i];
    const size_t eq = arg.find('=');
    const std::string head = eq == std::string::npos ? "" : arg.substr(0, eq + 1);
    const std::string path = eq == std::string::npos ? arg : arg.substr(eq + 1);
    std::error_code ec;
    if (path.empty() || (arg.front() == '-' && head.empty()) || !fs::is_regular_file(path, ec)) {
      args.push_back(arg);
      continue;
    }
    const std::string local = fs::absolute(path).lexically_normal().string();
    CP_TRY(add(local, false));
    args.push_back(head + remote_of.at(local));
  }
  CP_ASSIGN_OR_RETURN(const std::string text, rewritten_experiment(remote_of));
  const std::string exp_file = (fs::path(scratch_) / "experiment.yaml").string();
  CP_TRY(write_file_atomic(exp_file, text));
  CP_ASSIGN_OR_RETURN(PushFile e, stage(exp_file, "experiment.yaml", false));
  files.push_back(e);
  CP_TRY(push_missing(files));

  // The remote command line: every word quoted.
  const std::string& sub = s_.command.front();
  const RemoteSubcommand how = remote_subcommands().at(sub);
  const std::string remote_out = fmt::format("{}/runs/{}-{}", workdir_, exp_.name, t_.name);
  std::string cmd = "cd " + shell_quote(workdir_) + " && ";
  if (how.writes) cmd += "mkdir -p " + shell_quote(remote_out) + " && ";
  std::set<std::string> lib_dirs;
  for (const auto& lib : t_.remote.libraries) lib_dirs.insert(fs::path(remote_of.at(lib)).parent_path().string());
  if (!lib_dirs.empty()) cmd += "LD_LIBRARY_PATH=" + shell_quote(fmt::format("{}", fmt::join(lib_dirs, ":"))) + " ";
  if (!t_.remote.cpus.empty()) cmd += "taskset -c " + shell_quote(t_.remote.cpus) + " ";
  for (const auto& p : t_.remote.prefix) cmd += shell_quote(p) + " ";
  cmd += shell_quote(remote_of.at(binary)) + " " + shell_quote(sub);
  if (how.experiment) cmd += " " + shell_quote(e.remote);
  if (how.writes) cmd += " -o " + shell_quote(remote_out);
  for (const auto& arg : args) cmd += " " + shell_quote(arg);
  log_info("deploy: running {} on {}", sub, tr_.describe());
  CP_ASSIGN_OR_RETURN(ProcessResult r, tr_.shell(cmd, true));
  const int code = r.exit_code.value_or(-1);
  if (code != 0 && code != 3) {
    if (code == 2) return invalid_input("the remote {} failed with exit status 2 (its messages are above)", sub);
    return runtime_error("the remote {} ended: {}; what it recorded stays in {} on the target, and the same deploy "
                         "resumes it",
                         sub, r.describe(), remote_out);
  }
  if (how.writes) CP_TRY(pull(remote_out));
  if (code == 3) return Status(Errc::goal_not_met, fmt::format("the remote {} did not meet the goal", sub));
  return {};
}

}  // namespace

Status run_deploy(const DeploySettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  const TargetSpec* target = nullptr;
  std::vector<std::string> names;
  for (const TargetSpec& t : exp.targets) {
    names.push_back(t.name);
    if (t.name == settings.target) target = &t;
  }
  if (!target)
    return invalid_input("{}: no target '{}' (targets: {})", settings.experiment_path, settings.target,
                         fmt::join(names, ", "));
  if (settings.command.empty() || !remote_subcommands().count(settings.command.front())) {
    std::vector<std::string> subs;
    for (const auto& [name, how] : remote_subcommands()) subs.push_back(name);
    return invalid_input("deploy runs one of {} on the target: caliprox deploy EXPERIMENT --target NAME -- "
                         "SUBCOMMAND [ARGS]{}",
                         fmt::join(subs, ", "),
                         settings.command.empty() ? "" : fmt::format(" (got '{}')", settings.command.front()));
  }
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, make_transport(*target));
  char tmpl[] = "/tmp/caliprox-deploy-XXXXXX";
  if (!::mkdtemp(tmpl)) return runtime_error("mkdtemp: {}", std::strerror(errno));
  Deployer d(settings, exp, *target, *transport);
  Status st = d.run(tmpl);
  std::error_code ec;
  fs::remove_all(tmpl, ec);
  return st;
}

}  // namespace caliprox
