#pragma once
// The ranks of an MPI job (`mpirun -n N caliprox tune|calibrate|inject`):
// rank 0 drives the search and owns every file it writes; ranks 1..N-1
// answer the tasks it sends (a network's QoS run, an application run) and
// write nothing but their staging cache (dist/stage.h). MPI is used as a
// transport only: rank 0 talks to one worker at a time per thread, and the
// protocol (tasks as JSON, replies, the end of the job) lives here, so the
// transport is the only MPI-specific code (cluster_mpi.cc; without MPI in
// the build, cluster_none.cc refuses to start).
//
// Failure model: when a rank dies, mpirun ends the whole job; rank 0 has
// appended every finished evaluation to records.jsonl by then, so the same
// command resumes. Waiting never spins a core: receives poll with a short
// sleep, since a worker's core belongs to the application it runs.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace caliprox {

// How this process was started, from the launcher's environment (Open MPI's
// OMPI_COMM_WORLD_SIZE / _RANK, or PMI_SIZE / PMI_RANK).
struct Launch {
  bool by_mpirun = false;
  int size = 1;
  int rank = 0;
};
Launch launch_of_environment();

// This machine's host name (gethostname), as records name it.
std::string this_host_name();

// Whether this build has MPI ("" when not; else the library's version).
std::string mpi_library_version();

// A task handler: the task's JSON in, the result's JSON out. An error is
// sent back to rank 0, where call() returns it with its code.
using TaskHandler = std::function<Result<nlohmann::json>(const nlohmann::json& task)>;

class Cluster {
 public:
  // Message tags.
  enum Tag : int { kHello = 1, kTask = 2, kReply = 3, kDone = 4, kStage = 5, kStageData = 6 };

  virtual ~Cluster() = default;
  int rank() const { return rank_; }
  int size() const { return static_cast<int>(hosts_.size()); }
  // The host name of every rank (gathered at start).
  const std::string& host(int rank) const { return hosts_.at(static_cast<size_t>(rank)); }
  const std::vector<std::string>& hosts() const { return hosts_; }

  // Point to point. receive() waits (without spinning) for a message from
  // `from` with tag `tag` (-1: any tag; `got_tag` says which).
  virtual Status send(int to, int tag, std::string_view bytes) = 0;
  virtual Result<std::string> receive(int from, int tag, int* got_tag = nullptr) = 0;

  // Rank 0 <-> every worker, built on send / receive, so that a worker
  // waiting in one is released when rank 0 ends the job instead.
  // Rank 0 sends `text` to every worker (tag kHello).
  Status broadcast(const std::string& text);
  // A worker's next message from rank 0 with `tag`. When rank 0 ended the
  // job instead, the error is rank 0's status and ended() is true (rank 0
  // has reported it: the worker exits with its code, quietly).
  Result<std::string> from_root(int tag);
  bool ended() const { return ended_; }
  // Rank 0 collects one text per worker (index: rank; [0] empty).
  Result<std::vector<std::string>> collect(int tag);

  // Rank 0: runs `task` on rank `to` and waits for its result. Thread-safe
  // for different `to`; tasks to one rank must not overlap.
  Result<nlohmann::json> call(int to, const nlohmann::json& task);
  // Ranks 1..N-1: answers tasks with `handler` until rank 0 ends the job;
  // returns the status rank 0 ended it with (so every rank exits alike).
  Status serve(const TaskHandler& handler);
  // Rank 0: ends the job on every worker with `st` (once; later calls do
  // nothing). Workers still in a collective are released by it too.
  void finish(const Status& st);

 protected:
  int rank_ = 0;
  std::vector<std::string> hosts_;

 private:
  std::mutex finish_mu_;
  bool finished_ = false;
  bool ended_ = false;
  Status end_status_;
};

// Starts the MPI job this process is part of (call once, before any thread
// is started): the cluster, or an error saying why none can start (a build
// without MPI started by mpirun with several ranks).
Result<std::unique_ptr<Cluster>> start_cluster(int* argc, char*** argv);

// The job's cluster once started (main sets it), else null: local run.
Cluster* cluster();
void set_cluster(Cluster* c);

// Status <-> JSON, as results and the end of a job travel.
nlohmann::json status_json(const Status& st);
Status status_from_json(const nlohmann::json& j);

}  // namespace caliprox
