#pragma once
// Where the jobs of a search engine run. A pool has N workers, numbered
// 0..N-1; whatever a job needs per worker (its own Evaluator, sessions,
// kernel caches) the caller keeps in a vector indexed by that number, so a
// worker never shares it. Jobs are numbered 0..count-1 and taken from one
// queue in order as workers become free; results go where the job puts them
// (by its number), so completion order does not matter.
//
// The seam: LocalWorkerPool runs the workers as threads of this process. A
// pool over MPI ranks would implement the same interface (each rank one
// worker with its own Evaluator); jobs would then have to send their results
// back instead of writing them into shared memory.
#include <cstddef>
#include <functional>
#include <memory>

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

}  // namespace caliprox
