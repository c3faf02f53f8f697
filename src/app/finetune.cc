#include "app/finetune.h"

#include <fmt/format.h>

#include "util/log.h"

namespace caliprox {

Result<FinetuneReport> finetune_with_qos(Evaluator& ev, const std::string& split) {
  FinetuneReport report;
  report.split = split;
  CP_TRY(check_finetune_possible(ev));
  CP_ASSIGN_OR_RETURN(report.before, ev.run_split(split));
  const std::string metric(metric_name(ev.experiment().qos.metric));
  log_info("{} on split '{}' before fine-tuning: {:.4f}", metric, split, report.before.qos);
  if (const auto& hook = ev.experiment().network.finetune)
    log_info("fine-tuning network '{}' with its hook: {} (timeout {:g} s)", ev.experiment().network.name,
             fmt::join(hook->command, " "), hook->timeout_s);
  CP_ASSIGN_OR_RETURN(report.run, finetune_current(ev));
  std::string said = report.run.stderr_tail;  // its last line: the hook's own summary
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  if (!said.empty()) log_info("the hook said: {}", said.substr(said.rfind('\n') + 1));
  CP_ASSIGN_OR_RETURN(report.after, ev.run_split(split));
  log_info("{} on split '{}' after fine-tuning: {:.4f} (the hook took {:.1f} s)", metric, split, report.after.qos,
           report.run.seconds);
  return report;
}

nlohmann::json finetune_json(const FinetuneReport& report, const Experiment& exp) {
  return {{"seconds", report.run.seconds},
          {"split", report.split},
          {"metric", metric_name(exp.qos.metric)},
          {"before", report.before.metrics},
          {"after", report.after.metrics}};
}

std::string finetune_summary(const FinetuneReport& report, const Experiment& exp) {
  std::vector<std::string> changes;
  const std::string main(metric_name(exp.qos.metric));
  changes.push_back(fmt::format("{} {:.4g} -> {:.4g}", main, report.before.qos, report.after.qos));
  for (const auto& [name, value] : report.before.metrics) {
    auto it = report.after.metrics.find(name);
    if (name != main && it != report.after.metrics.end())
      changes.push_back(fmt::format("{} {:.4g} -> {:.4g}", name, value, it->second));
  }
  return fmt::format("fine-tuned by the hook in {:.1f} s: on split '{}' ({} samples), {}", report.run.seconds,
                     report.split, report.after.samples, fmt::join(changes, ", "));
}

}  // namespace caliprox
