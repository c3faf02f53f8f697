// run_search: the propose / evaluate / observe loop with budgets, parallel
// workers, replay of recorded results and interruption.
#include <algorithm>
#include <chrono>
#include <mutex>

#include "tune/search.h"

namespace caliprox {

namespace {

std::string candidate_text(const Candidate& c) { return fmt::format("[{}]", fmt::join(c, ",")); }

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::iterations: return "iterations";
    case StopReason::time: return "time";
    case StopReason::exhausted: return "exhausted";
    case StopReason::interrupted: return "interrupted";
  }
  return "?";
}

Result<SearchOutcome> run_search(SearchStrategy& strategy, const SearchBudget& budget, int jobs,
                                 const SearchHooks& hooks) {
  if (jobs < 1) return invalid_input("--jobs must be at least 1, found {}", jobs);
  LocalWorkerPool pool(jobs);
  return run_search(strategy, budget, pool, hooks);
}

Result<SearchOutcome> run_search(SearchStrategy& strategy, const SearchBudget& budget, WorkerPool& pool,
                                 const SearchHooks& hooks) {
  if (!hooks.evaluate) return invalid_input("run_search: no evaluate callback");
  if (budget.max_evaluations && *budget.max_evaluations <= 0)
    return invalid_input("search budget: the number of iterations must be at least 1, found {}",
                         *budget.max_evaluations);
  if (budget.max_seconds && !(*budget.max_seconds > 0))
    return invalid_input("search budget: the time limit must be more than 0 seconds, found {}", *budget.max_seconds);
  if (!budget.max_evaluations && !budget.max_seconds && !strategy.ends_by_itself())
    return invalid_input("search budget: the {} strategy needs an iteration or a time budget", strategy.name());
  const std::function<double()> now = hooks.clock ? hooks.clock : std::function<double()>(steady_seconds);
  const double start = now();
  auto time_left = [&] { return !budget.max_seconds || now() - start < *budget.max_seconds; };
  auto stop_requested = [&] { return hooks.should_stop && hooks.should_stop(); };

  SearchOutcome out;
  std::optional<double> best;
  int64_t next = 0;
  for (;;) {
    if (budget.max_evaluations && next >= *budget.max_evaluations) {
      out.stop_reason = StopReason::iterations;
      break;
    }
    if (stop_requested()) {
      out.stop_reason = StopReason::interrupted;
      break;
    }
    std::vector<Proposal> batch = strategy.propose();
    if (batch.empty()) {
      out.stop_reason = StopReason::exhausted;
      break;
    }
    size_t limit = batch.size();
    if (budget.max_evaluations)
      limit = std::min<size_t>(limit, static_cast<size_t>(*budget.max_evaluations - next));

    std::vector<std::optional<Evaluation>> results(batch.size());
    std::vector<bool> replayed(batch.size(), false);
    std::vector<size_t> todo;
    for (size_t i = 0; i < limit; ++i) {
      const int64_t iteration = next + static_cast<int64_t>(i);
      std::optional<RecordedEvaluation> rec = hooks.recorded ? hooks.recorded(iteration) : std::nullopt;
      if (!rec) {
        todo.push_back(i);
        continue;
      }
      if (rec->candidate != batch[i].candidate)
        return invalid_input("search iteration {}: the recorded configuration {} differs from the one the search "
                             "proposes now {}: the records come from other settings or another caliprox version",
                             iteration, candidate_text(rec->candidate), candidate_text(batch[i].candidate));
      results[i] = rec->evaluation;
      replayed[i] = true;
    }

    // Fresh evaluations on the pool's workers; results land in their
    // proposal slot, so completion order does not matter.
    std::mutex mu;
    std::optional<StopReason> halt_reason;  // guarded by mu
    const WorkerPool::StopFn halt = [&] {
      std::lock_guard<std::mutex> lock(mu);
      if (!halt_reason && stop_requested()) halt_reason = StopReason::interrupted;
      if (!halt_reason && !time_left()) halt_reason = StopReason::time;
      return halt_reason.has_value();
    };
    const WorkerPool::Job evaluate = [&](size_t k, int w) -> Status {
      const size_t i = todo[k];
      const int64_t iteration = next + static_cast<int64_t>(i);
      const double t0 = now();
      Result<Evaluation> r = hooks.evaluate(batch[i], iteration, w);
      const double dt = now() - t0;
      if (!r.ok()) return r.status().with_context(fmt::format("search iteration {}", iteration));
      std::lock_guard<std::mutex> lock(mu);
      results[i] = *r;
      return hooks.on_evaluated ? hooks.on_evaluated(iteration, batch[i], *r, dt, w) : Status();
    };
    CP_TRY(pool.run(todo.size(), evaluate, halt));
    bool complete = true;
    std::vector<Evaluation> evals;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!results[i]) {
        complete = false;
        continue;
      }
      const Evaluation& e = *results[i];
      if (feasible(e, strategy.max_loss()) && (!best || e.speedup > *best)) best = e.speedup;
      out.results.push_back({next + static_cast<int64_t>(i), batch[i], e, replayed[i]});
      (replayed[i] ? out.replayed : out.fresh) += 1;
      evals.push_back(e);
    }
    if (complete) {
      CP_TRY(strategy.observe(evals));
      next += static_cast<int64_t>(batch.size());
    }
    if (hooks.on_progress) {
      SearchProgress p;
      p.evaluations = out.replayed + out.fresh;
      p.replayed = out.replayed;
      p.max_evaluations = budget.max_evaluations;
      p.elapsed_seconds = now() - start;
      p.max_seconds = budget.max_seconds;
      p.evaluations_per_second = p.elapsed_seconds > 0 ? static_cast<double>(out.fresh) / p.elapsed_seconds : 0;
      p.best_feasible_speedup = best;
      hooks.on_progress(p);
    }
    if (!complete) {
      // Cut short by the iteration budget (limit < batch size), the clock or a stop request.
      out.stop_reason = halt_reason.value_or(StopReason::iterations);
      break;
    }
  }
  return out;
}

}  // namespace caliprox
