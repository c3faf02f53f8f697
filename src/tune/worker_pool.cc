#include "tune/worker_pool.h"

#include "dist/cluster.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace caliprox {

Status LocalWorkerPool::run(size_t count, const Job& job, const StopFn& stop) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status failure;  // guarded by mu
  auto work = [&](int w) {
    for (;;) {
      if (failed.load() || (stop && stop())) return;
      const size_t i = next.fetch_add(1);
      if (i >= count) return;
      Status st = job(i, w);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (failure.ok()) failure = std::move(st);
        failed.store(true);
        return;
      }
    }
  };
  // Even with nothing to do, one worker looks at `stop` once, so that a
  // caller's stop function sees the moment the queue was found empty.
  const int n = static_cast<int>(std::clamp<size_t>(count, 1, static_cast<size_t>(workers_)));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n - 1));
  for (int w = 1; w < n; ++w) threads.emplace_back(work, w);
  work(0);
  for (auto& t : threads) t.join();
  return failure;
}

Result<nlohmann::json> WorkerPool::run_task(int /*worker*/, const nlohmann::json& task, const TaskFn& local) {
  return local(task);
}

std::string WorkerPool::host(int /*worker*/) const { return this_host_name(); }

ClusterWorkerPool::ClusterWorkerPool(Cluster& cluster) : cluster_(cluster), threads_(cluster.size()) {}

int ClusterWorkerPool::workers() const { return cluster_.size(); }

Status ClusterWorkerPool::run(size_t count, const Job& job, const StopFn& stop) {
  return threads_.run(count, job, stop);
}

Result<nlohmann::json> ClusterWorkerPool::run_task(int worker, const nlohmann::json& task, const TaskFn& local) {
  if (worker == 0) return local(task);
  return cluster_.call(worker, task);
}

std::string ClusterWorkerPool::host(int worker) const { return cluster_.host(worker); }

}  // namespace caliprox
