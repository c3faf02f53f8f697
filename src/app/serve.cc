// caliprox serve: the networks under test for an application, over a Unix
// socket (eval/serve_host.h; man caliprox-serve documents the frames):
// each exact, under a knob configuration (--config [NAME=]FILE), or its
// exact outputs perturbed by an error model (--error-model [NAME=]JSON).
// SIGINT / SIGTERM stop it; the socket file is removed.
#include <algorithm>

#include <fmt/format.h>

#include "app/common.h"
#include "eval/interrupt.h"
#include "eval/serve_host.h"
#include "util/log.h"

namespace caliprox {

Status run_serve(const ServeSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  const ResolvedTarget target = resolve_target(exp, s.common);
  CP_ASSIGN_OR_RETURN(auto host, ServeHost::create(exp, target.backend, target.threads));
  std::map<std::string, ServedState> states;
  for (const std::string& arg : s.configs) {
    CP_ASSIGN_OR_RETURN(auto named, network_argument(exp, arg, "--config"));
    CP_ASSIGN_OR_RETURN(KnobConfig config, load_knob_config(named.second));
    states[named.first].config = std::move(config);
  }
  for (const std::string& arg : s.error_models) {
    CP_ASSIGN_OR_RETURN(auto named, network_argument(exp, arg, "--error-model"));
    const nlohmann::json j = nlohmann::json::parse(named.second, nullptr, false);
    if (j.is_discarded()) return invalid_input("--error-model: not JSON: {}", named.second);
    CP_ASSIGN_OR_RETURN(ErrorModel m, parse_error_model(j, "--error-model"));
    states[named.first].error_model = m;
  }
  CP_TRY(host->set(states, s.seed));
  std::vector<std::string> adapted;
  for (const std::string& arg : s.adaptations) {
    CP_ASSIGN_OR_RETURN(auto named, network_argument(exp, arg, "--adaptation"));
    if (states.count(named.first))
      return invalid_input("--adaptation {}: network '{}' already serves a --config or --error-model", arg,
                           named.first);
    CP_ASSIGN_OR_RETURN(AdaptationTable table, load_adaptation(named.second));
    AdaptStrategy kind = table.strategy;
    if (s.strategy) {
      const auto k = adapt_strategy_from_name(*s.strategy);
      if (!k) return invalid_input("--strategy {}: expected static, naive, state or confidence", *s.strategy);
      kind = *k;
    }
    const StrategyParams params = table.params;
    CP_TRY(host->set_adaptation(named.first, std::make_shared<const AdaptationTable>(std::move(table)), kind, params)
               .with_context(named.second));
    adapted.push_back(named.first);
  }
  if (s.strategy && s.adaptations.empty()) return invalid_input("--strategy needs --adaptation");
  std::vector<std::string> what;
  for (const std::string& name : host->names()) {
    const auto it = states.find(name);
    const char* served = std::count(adapted.begin(), adapted.end(), name) ? "adaptive levels"
                         : it == states.end() || (!it->second.config && !it->second.error_model) ? "exact"
                         : it->second.config ? "a knob configuration"
                                             : "exact outputs with an error model";
    what.push_back(fmt::format("{} ({})", name, served));
  }
  log_info("serve: {} on {}", fmt::join(what, ", "), s.socket_path);
  CP_TRY(host->serve(s.socket_path, interrupt_requested, s.max_requests));
  log_info("serve: {} request(s) answered; stopped", host->served());
  if (!adapted.empty()) {
    const auto& t = host->switch_times();
    log_info("serve: level switches: {} steady, {:.3f} ms each on average (reconfiguring the session's knobs, no "
             "reload); {} first use(s) of a level at a batch size, {:.3f} ms each (preparing its kernels)",
             t.steady.count, t.steady.mean_ms(), t.first.count, t.first.mean_ms());
  }
  return {};
}

}  // namespace caliprox
