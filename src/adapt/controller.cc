#include "adapt/controller.h"

namespace caliprox {

Result<AdaptiveController> AdaptiveController::create(const AdaptationTable& table, AdaptStrategy kind,
                                                        const StrategyParams& params) {
  CP_TRY(check_strategy_params(params));
  AdaptiveController c;
  c.table_ = &table;
  CP_ASSIGN_OR_RETURN(auto strategy,
                      make_strategy(kind, params, static_cast<int>(table.levels.size()), &table.stats));
  c.strategy_ = std::move(strategy);
  c.level_ = c.strategy_->start();
  return c;
}

int AdaptiveController::observe(std::span<const float> outputs) {
  const int64_t classes = table_->classes;
  int moves = 0;
  for (const Observation& o : observations(outputs, classes, level_)) {
    const int next = strategy_->next(o);
    moves += next != level_;
    level_ = next;
  }
  switches_ += moves;
  return moves;
}

}  // namespace caliprox
