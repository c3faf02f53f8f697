#pragma once
// Fine-tuning a reshaped network through the experiment's hook (the
// network's `finetune:`; man caliprox-experiment, FINE-TUNING). Pruning and
// low-rank factorisation without training lose accuracy that a few epochs of
// training win back; caliprox does not train, so it hands the network to an
// external command:
//   1. the current variant of the evaluator (current_graph(): reshape knobs
//      applied, pruned layers repaired by least squares) is written as ONNX
//      next to the plan of its reshape steps (schemas/prune-plan.schema.json),
//      in a temporary folder;
//   2. the hook runs (qos/process.h: argv, never a shell; its own process
//      group, killed at the timeout or on interruption) with {plan},
//      {model} and {out} in its arguments replaced by their paths;
//   3. the ONNX file it wrote must have the same interface and structure
//      as the one it got (check_same_structure): only weight values change;
//   4. the evaluator then runs it in place of the variant
//      (Evaluator::replace_current_graph).
// The temporary folder is removed in every case. A hook that fails, hangs or
// answers with another network is an error saying why; the evaluator keeps
// the variant it had.
#include <string>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"
#include "ir/graph.h"
#include "util/status.h"

namespace caliprox {

// The plan of the evaluator's current configuration: experiment, network,
// model paths, the configuration, and each reshape step in the order the
// evaluator applies them. A prune step holds the PrunePlan (knobs/prune.h)
// computed on the graph that step applies to, after the earlier steps, as
// the evaluator's rewrite computes it; its `keep` indices number the
// members' output channels, which no earlier step changes (the original
// network's numbering). `model_path` and `out_path` are what the hook reads
// and writes. Errors: those of Evaluator::applied_reshapes().
Result<nlohmann::json> prune_plan_json(Evaluator& ev, const std::string& model_path, const std::string& out_path);

// invalid_input unless `got` has the opset, the interface (inputs and
// outputs: names, element types; the inputs' dims) and the structure (nodes
// in order: names, op types, domains, inputs, outputs, attributes;
// initializers: names, element types, shapes, and the values of those that
// are not float) of `expected`, and finite float weights. The message
// starts with `what` and names the first difference.
Status check_same_structure(const Graph& expected, const Graph& got, const std::string& what);

// invalid_input when the evaluator's configuration has no reshape knob
// (the network is the trained one) or its network no fine-tune hook.
Status check_finetune_possible(Evaluator& ev);

struct FinetuneRun {
  double seconds = 0;       // the hook's wall time
  std::string stderr_tail;  // the last of what it wrote on stderr
  nlohmann::json plan;      // the plan it was given
};

// Fine-tunes the evaluator's current variant with the hook of its network
// (ev.experiment().network.finetune) and switches the evaluator to the
// result. Errors: check_finetune_possible()'s; runtime when the hook fails, times out or writes
// no model, an unreadable one or one of another structure (each saying so,
// with the tail of the hook's stderr); interrupted when caliprox is.
Result<FinetuneRun> finetune_current(Evaluator& ev);

}  // namespace caliprox
