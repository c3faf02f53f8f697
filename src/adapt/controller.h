#pragma once
// The run-time half of adaptation, free of any executor: which level the
// next input runs at, and what the network's answer to it says for the one
// after. `serve --adaptation` and the embedding API (eval/adaptive_model.h)
// wrap it around their sessions.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "adapt/simulate.h"
#include "adapt/table.h"

namespace caliprox {

class AdaptiveController {
 public:
  // invalid_input when the table's strategy cannot be built for it.
  static Result<AdaptiveController> create(const AdaptationTable& table, AdaptStrategy kind,
                                           const StrategyParams& params);
  static Result<AdaptiveController> create(const AdaptationTable& table) {
    return create(table, table.strategy, table.params);
  }

  int level() const { return level_; }
  const KnobConfig& knobs() const { return table_->levels[static_cast<size_t>(level_)].knobs; }
  // After a batch ran at level(): its output rows (`classes` values each),
  // one observation per sample in order; the level moves as the strategy
  // says. Returns how many times it moved.
  int observe(std::span<const float> outputs);
  int64_t switches() const { return switches_; }

 private:
  AdaptiveController() = default;
  const AdaptationTable* table_ = nullptr;
  std::shared_ptr<AdaptationStrategy> strategy_;
  int level_ = 0;
  int64_t switches_ = 0;
};

}  // namespace caliprox
