#pragma once
// `--finetune` of export and eval: the configuration's reshaped network
// trained by the experiment's hook (eval/finetune.h), with the QoS of a
// split before and after, for the subcommands to print.
#include <string>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"
#include "eval/finetune.h"

namespace caliprox {

struct FinetuneReport {
  std::string split;
  SplitResult before, after;  // QoS of the split without and with the hook's weights
  FinetuneRun run;
};

// Runs the split under the evaluator's configuration, fine-tunes it
// (finetune_current: the evaluator then runs the hook's network) and runs
// the split again. Errors: those of run_split() and finetune_current(); on
// any, the evaluator keeps the variant it had.
Result<FinetuneReport> finetune_with_qos(Evaluator& ev, const std::string& split);

// {"seconds", "split", "metric", "before": {metrics}, "after": {metrics}}.
nlohmann::json finetune_json(const FinetuneReport& report, const Experiment& exp);
// One line for people: the metrics before -> after and the hook's seconds.
std::string finetune_summary(const FinetuneReport& report, const Experiment& exp);

}  // namespace caliprox
