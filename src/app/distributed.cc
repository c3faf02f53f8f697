#include "app/distributed.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "dist/stage.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kScaledOut[] = {"tune", "calibrate", "inject"};

// Rank 0: every worker's identity against its own.
Status check_identities(Cluster& cl, const std::string& mine) {
  CP_ASSIGN_OR_RETURN(std::vector<std::string> all, cl.collect(Cluster::kHello));
  std::string differ;
  for (int r = 1; r < cl.size(); ++r)
    if (all[static_cast<size_t>(r)] != mine)
      differ += fmt::format("\n  rank {} ({}): {}", r, cl.host(r), all[static_cast<size_t>(r)]);
  if (!differ.empty())
    return invalid_input("the ranks of this MPI job differ: every rank must run the same caliprox on the same "
                         "command line (experiment and options).\n  rank 0 ({}): {}{}",
                         cl.host(0), mine, differ);
  return cl.broadcast("go");
}

}  // namespace

Status enter_cluster(int* argc, char*** argv, std::string_view subcommand, const std::string& identity,
                     std::unique_ptr<Cluster>& owner) {
  const Launch l = launch_of_environment();
  if (!l.by_mpirun) return {};
  if (l.size == 1) {
    log_info("started by mpirun with 1 rank: {} runs locally, as without mpirun", subcommand);
    return {};
  }
  if (std::find(std::begin(kScaledOut), std::end(kScaledOut), subcommand) == std::end(kScaledOut))
    return invalid_input("'{}' does not run across MPI ranks (tune, calibrate and inject do): run it without mpirun",
                         subcommand);
  CP_ASSIGN_OR_RETURN(owner, start_cluster(argc, argv));
  set_cluster(owner.get());
  if (owner->rank() == 0) return check_identities(*owner, identity);
  CP_TRY(owner->send(0, Cluster::kHello, identity));
  return owner->from_root(Cluster::kHello).status();
}

std::vector<std::string> experiment_files(const Experiment& exp) {
  std::vector<std::string> files{exp.source_path};
  for (const NetworkSpec& n : exp.networks) {
    files.push_back(n.model_path);
    if (n.labels_path) files.push_back(*n.labels_path);
  }
  files.push_back(exp.network.model_path);
  if (exp.network.labels_path) files.push_back(*exp.network.labels_path);
  files.push_back(exp.dataset.samples_path);
  if (exp.dataset.labels_path) files.push_back(*exp.dataset.labels_path);
  if (exp.tune.profile) files.push_back(*exp.tune.profile);
  if (exp.application) {
    const AppSpec& a = *exp.application;
    // The program itself unless a system one (every host has its own
    // /usr/bin/python3); then its arguments that name files.
    const std::string& program = a.command[0];
    if (!program.starts_with("/usr/") && !program.starts_with("/bin/") && !program.starts_with("/sbin/"))
      files.push_back(program);
    for (size_t i = 1; i < a.command.size(); ++i) {
      fs::path p(a.command[i]);
      if (p.is_relative()) p = fs::path(a.dir) / p;
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) files.push_back(p.lexically_normal().string());
    }
    files.insert(files.end(), a.files.begin(), a.files.end());
  }
  return files;
}

Status check_speed_host(const Cluster& cl, const TargetSpec& target) {
  const std::string& want = target.remote.host;
  if (!target.remote.transport.empty() || want.empty()) return {};
  // "node7" names node7.example.org too.
  auto is = [&](const std::string& host) { return host == want || host.substr(0, host.find('.')) == want; };
  if (is(cl.host(0))) return {};
  std::vector<int> there;
  for (int r = 1; r < cl.size(); ++r)
    if (is(cl.host(r))) there.push_back(r);
  if (there.empty())
    return invalid_input("target '{}' is host {}, and no rank of this MPI job runs there (ranks on {}): speedups are "
                         "measured on the target host only",
                         target.name, want, fmt::join(cl.hosts(), ", "));
  return invalid_input("target '{}' is host {}, where rank(s) {} run, but speedups are measured on rank 0, which runs "
                       "on {}: list {} first in the hostfile",
                       target.name, want, fmt::join(there, ", "), cl.host(0), want);
}

Result<std::unique_ptr<WorkerPool>> distribute(Cluster& cl, const Experiment& exp) {
  CP_ASSIGN_OR_RETURN(StageManifest m, make_manifest(experiment_files(exp)));
  m.primary = exp.source_path;
  log_info("MPI: {} ranks on {}; staging {} file(s) of {} to the workers", cl.size(), fmt::join(cl.hosts(), ", "),
           m.files.size(), exp.source_path);
  CP_ASSIGN_OR_RETURN(StageOutcome o, stage_files(cl, &m, default_stage_dir()));
  log_info("MPI: staged {} file(s) to {} worker(s): {} sent ({:.1f} MiB), {} already cached", m.files.size(),
           cl.size() - 1, o.sent_files, static_cast<double>(o.sent_bytes) / (1 << 20), o.cached_files);
  return std::unique_ptr<WorkerPool>(new ClusterWorkerPool(cl));
}

Result<Experiment> join_experiment(Cluster& cl) {
  CP_ASSIGN_OR_RETURN(StageOutcome o, stage_files(cl, nullptr, default_stage_dir()));
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(o.mirror + o.primary, o.mirror));
  if (exp.application) {
    // Rank 0's absolute paths in the command: the staged copies.
    for (size_t i = 0; i < exp.application->command.size(); ++i) {
      std::string& arg = exp.application->command[i];
      std::error_code ec;
      if (fs::path(arg).is_absolute() && fs::is_regular_file(o.mirror + arg, ec)) arg = o.mirror + arg;
    }
  }
  return exp;
}

WorkerScratch::~WorkerScratch() {
  std::error_code ec;
  if (!path.empty()) fs::remove_all(path, ec);
}

Result<std::unique_ptr<WorkerScratch>> worker_scratch(Cluster& cl) {
  auto s = std::make_unique<WorkerScratch>();
  s->path = fmt::format("{}/work/rank{}-{}", default_stage_dir(), cl.rank(), ::getpid());
  CP_TRY(ensure_directory(s->path));
  return s;
}

}  // namespace caliprox
