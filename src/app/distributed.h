#pragma once
// tune, calibrate and inject across the ranks of an MPI job (man
// caliprox-mpi): main starts the cluster and checks that every rank runs
// the same caliprox on the same command line; rank 0 then runs the
// subcommand as usual, staging the experiment's files to the workers
// before it writes anything (distribute), and the other ranks receive them,
// load the experiment from their copy (join_experiment) and answer tasks
// until rank 0 ends the job.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dist/cluster.h"
#include "experiment/experiment.h"
#include "tune/worker_pool.h"

namespace caliprox {

// main, after parsing and before the subcommand: under mpirun with several
// ranks, starts the cluster into `owner` (so that main can end it whatever
// happens) and checks every rank's `identity` (version and arguments)
// against rank 0's. Not under mpirun, or with one rank (which says so):
// nothing, a local run. Errors: a subcommand that does not scale out, a
// build without MPI, ranks that differ (named with their hosts).
Status enter_cluster(int* argc, char*** argv, std::string_view subcommand, const std::string& identity,
                     std::unique_ptr<Cluster>& owner);

// What a worker needs of `exp` to run its evaluations: the experiment file,
// the models, labels and dataset files, the application's command arguments
// that name files and its `files`, the measured-cost profile.
std::vector<std::string> experiment_files(const Experiment& exp);

// Rank 0: stages the experiment's files to every worker (logging what was
// sent and what the workers had cached) and returns the pool whose worker r
// is rank r. Call before anything is written.
Result<std::unique_ptr<WorkerPool>> distribute(Cluster& cluster, const Experiment& exp);

// tune: speedups are measured on rank 0 alone. A target without a transport
// may name its machine (`host`); then rank 0 must run there. invalid_input
// naming the ranks that do (list that host first in the hostfile), or
// saying none does. A target naming no host: rank 0's machine, as a local
// tune measures the machine it runs on.
Status check_speed_host(const Cluster& cluster, const TargetSpec& target);

// A worker: receives the files, loads the experiment from its copy (the
// application command's arguments that name staged files point there too).
Result<Experiment> join_experiment(Cluster& cluster);

// A worker's scratch folder for request files: under the stage folder, per
// process; made by worker_scratch, removed with its contents on destruction.
struct WorkerScratch {
  std::string path;
  WorkerScratch() = default;
  WorkerScratch(const WorkerScratch&) = delete;
  WorkerScratch& operator=(const WorkerScratch&) = delete;
  ~WorkerScratch();
};
Result<std::unique_ptr<WorkerScratch>> worker_scratch(Cluster& cluster);

}  // namespace caliprox
