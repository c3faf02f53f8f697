#pragma once
// Where the jobs of a search engine run. A pool has N workers, numbered
// 0..N-1; whatever a job needs per worker (its own Evaluator, sessions,
// kernel caches) the caller keeps in a vector indexed by that number, so a
// worker never shares it. Jobs are numbered 0..count-1 and taken from one
// queue in order as workers become free; results go where the job puts them
// (by its number), so completion order does not matter.
//
// The seam: LocalWorkerPool runs the workers as threads of this process;
// ClusterWorkerPool has one worker per MPI rank (dist/cluster.h). A job's
// work that may run on another rank goes through run_task(): a JSON task
// and a JSON result, computed by the same function on whichever rank runs
// it, so the job writes only the result it gets back into shared memory.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace caliprox {

class WorkerPool {
 public:
  // One job: `index` in [0, count), `worker` in [0, workers()).
  using Job = std::function<Status(size_t index, int worker)>;
  // Polled before each job starts; true: no further job starts.
  using StopFn = std::function<bool()>;

  virtual ~WorkerPool() = default;
  virtual int workers() const = 0;

  // Runs job(i, w) for each i until the queue is empty, a job fails or
  // `stop` says so. The first error wins: no job starts after it, jobs in
  // flight finish, and it is returned. A stop returns OK with jobs left
  // undone: the caller knows why it stopped (an interruption, a clock).
  // Returns when every worker is idle.
  virtual Status run(size_t count, const Job& job, const StopFn& stop = {}) = 0;

  // Runs `task` for worker `worker`: `local(task)` when the worker is a
  // thread of this process, else on the worker's rank, whose handler for
  // this job computes it with the same function.
  using TaskFn = std::function<Result<nlohmann::json>(const nlohmann::json& task)>;
  virtual Result<nlohmann::json> run_task(int worker, const nlohmann::json& task, const TaskFn& local);
  // The host a worker's tasks run on (records name it).
  virtual std::string host(int worker) const;
  // Whether the worker is a thread of this process (its state is here).
  virtual bool local(int /*worker*/) const { return true; }
};

// Threads of this process: worker 0 is the calling thread, workers 1..N-1
// are started per run() (at most one per job) and joined before it returns.
class LocalWorkerPool final : public WorkerPool {
 public:
  explicit LocalWorkerPool(int workers) : workers_(workers < 1 ? 1 : workers) {}
  int workers() const override { return workers_; }
  Status run(size_t count, const Job& job, const StopFn& stop = {}) override;

 private:
  int workers_;
};

class Cluster;

// One worker per rank of an MPI job: worker 0 is rank 0 itself (a thread
// of this process, like LocalWorkerPool's worker 0), worker r sends its
// tasks to rank r and waits for the result.
class ClusterWorkerPool final : public WorkerPool {
 public:
  explicit ClusterWorkerPool(Cluster& cluster);
  int workers() const override;
  Status run(size_t count, const Job& job, const StopFn& stop = {}) override;
  Result<nlohmann::json> run_task(int worker, const nlohmann::json& task, const TaskFn& local) override;
  std::string host(int worker) const override;
  bool local(int worker) const override { return worker == 0; }

 private:
  Cluster& cluster_;
  LocalWorkerPool threads_;
};

}  // namespace caliprox
