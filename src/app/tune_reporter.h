#pragma once
// What `caliprox tune` shows while its phases run (tune/pipeline.h's
// PipelineReporter): info lines to the log, progress lines on a terminal.
#include <string>

#include <fmt/format.h>

#include "tune/pipeline.h"
#include "util/log.h"

namespace caliprox {

// Logs what the pipeline reports; progress lines only when stderr is a
// terminal and the command is not quiet.
class TuneReporter final : public PipelineReporter {
 public:
  explicit TuneReporter(bool progress) : progress_(progress) {}

  void info(const std::string& text) override { log_info("{}", text); }

  void progress(PipelinePhase phase, size_t index, size_t total) override {
    line(fmt::format("  {} {}/{}", phase == PipelinePhase::single ? "single-knob runs" : "validation", index + 1,
                     total));
  }

  void search_progress(const SearchProgress& pr) override {
    if (!progress_) return;
    std::string eta;
    if (pr.max_evaluations && pr.evaluations_per_second > 0)
      eta = fmt::format(", ETA {:.0f} s", (*pr.max_evaluations - pr.evaluations) / pr.evaluations_per_second);
    line(fmt::format("  search {}/{}: {:.1f} eval/s, best speedup within the goal {}{}", pr.evaluations,
                     pr.max_evaluations ? fmt::format("{}", *pr.max_evaluations) : std::string("-"),
                     pr.evaluations_per_second,
                     pr.best_feasible_speedup ? fmt::format("{:.2f}x", *pr.best_feasible_speedup) : "-", eta));
  }

  void progress_done(PipelinePhase) override {
    if (progress_) fmt::print(stderr, "\n");
  }

 private:
  void line(const std::string& text) {
    if (progress_) fmt::print(stderr, "\r\033[K{}", text);
  }

  bool progress_;
};

}  // namespace caliprox
