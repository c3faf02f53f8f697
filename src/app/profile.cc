// caliprox profile: measured costs on the experiment's target. (a) Every
// (layer, knob) pair of the knob space, timed inside the running network
// (all layers that allow a knob take it at once, so one network run times
// every layer), rounds interleaved over the knobs; (b) whole-network
// configurations from --configs and (c) the network under each (layer,
// reshape knob) of the space, interleaved with the exact baseline.
// Writes profile.json (schemas/profile.schema.json) per batch size.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "eval/evaluator.h"
#include "tune/knob_space.h"
#include "tune/measure.h"
#include "tune/pareto.h"
#include "util/log.h"

namespace caliprox {

namespace {

struct NamedConfig {
  std::string id;
  KnobConfig knobs;
};

// A pareto.json, a JSON array of configurations, or one configuration.
Result<std::vector<NamedConfig>> read_configs(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_input("cannot open --configs file '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_input("{}: not valid JSON", path);
  std::vector<NamedConfig> out;
  if (j.is_object() && j.contains("configurations")) {
    CP_ASSIGN_OR_RETURN(ParetoDocument doc, parse_pareto_json(text, path));
    for (const auto& c : doc.configurations)
      if (!c.knobs.empty()) out.push_back({c.id, c.knobs});
    return out;
  }
  std::vector<nlohmann::json> items;
  if (j.is_array()) items.assign(j.begin(), j.end());
  else items.push_back(j);
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string where = j.is_array() ? fmt::format("{}[{}]", path, i) : path;
    CP_ASSIGN_OR_RETURN(KnobConfig c, parse_knob_config(items[i].dump(), where));
    std::string id = fmt::format("config{}", i + 1);
    if (items[i].contains("id")) id = items[i]["id"].is_string() ? items[i]["id"].get<std::string>() : items[i]["id"].dump();
    out.push_back({id, c});
  }
  return out;
}

// node -> knob -> milliseconds of each round.
using LayerTimes = std::map<std::string, std::map<std::string, std::vector<double>>>;

// Every knob applied in turn (per_knob[k]: knobs[k] on every layer that
// allows it), the times of the layers running it read from the session,
// round after round until the policy's rounds and seconds are reached.
Result<LayerTimes> time_layers(Session& s, const Tensor& x, const std::vector<std::string>& knobs,
                               const std::vector<KnobConfig>& per_knob, const RepeatPolicy& policy, bool progress) {
  LayerTimes layer_ms;
  int rounds = 0;
  double elapsed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (rounds < policy.warmup_rounds + policy.min_rounds ||
         elapsed < policy.min_seconds || rounds < policy.warmup_rounds + 1) {
    if (interrupt_requested()) return interrupted_status("profile");
    for (size_t k = 0; k < knobs.size(); ++k) {
      CP_TRY(s.configure(per_knob[k]));
      CP_TRY(s.run(std::span<const Tensor>(&x, 1)));
      if (rounds < policy.warmup_rounds) continue;
      for (const auto& t : s.timings())
        if (t.knob == knobs[k] && (k == 0 || per_knob[k].count(t.node))) layer_ms[t.node][knobs[k]].push_back(t.ms);
    }
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) fmt::print(stderr, "\r  layer costs: round {} ({:.1f} s)", rounds, elapsed);
    if (rounds >= 100000 || elapsed > 1800) break;
  }
  if (progress) fmt::print(stderr, "\n");
  return layer_ms;
}

// (b), (c) Whole-network configurations, interleaved with the baseline
// (samples[0]), each on a session of its own (a configuration may reshape
// the graph); each timed run follows one untimed run of the same session.
Result<InterleavedSamples> time_whole_networks(Evaluator& ev, const std::vector<NamedConfig>& configs, const Tensor& x,
                                               const RepeatPolicy& policy, EnergyMeter& energy) {
  std::vector<std::unique_ptr<Session>> own;
  CP_ASSIGN_OR_RETURN(auto base, ev.detached_session({}, x.dim(0)));
  own.push_back(std::move(base));
  for (const auto& c : configs) {
    CP_ASSIGN_OR_RETURN(auto cs, ev.detached_session(c.knobs, x.dim(0)));
    own.push_back(std::move(cs));
  }
  std::vector<MeasuredFn> fns;
  for (auto& o : own) fns.push_back([&x, sp = o.get()]() -> Status { return sp->run(std::span<const Tensor>(&x, 1)); });
  return measure_interleaved(fns, policy, energy.available() ? &energy : nullptr, {}, fns);
}

// The table of one batch size's profile.json.
void print_profile(int64_t batch, double base_median_s, const nlohmann::json& doc, const EnergyMeter& energy,
                   const std::string& path) {
  fmt::print("batch {}: exact network {:.3f} ms (median), rest outside the layers {:.3f} ms\n", batch,
             base_median_s * 1000.0, doc["rest_ms"].get<double>());
  fmt::print("  {:<40} {:>10} {:>10} {:>10}\n", "layer", "exact ms", "best knob", "speedup");
  for (const auto& l : doc["layers"]) {
    const double ex = l["knobs"][exact_knob().name]["latency_ms"]["median"].get<double>();
    std::string best = exact_knob().name;
    double best_ms = ex;
    for (const auto& [k, m] : l["knobs"].items())
      if (m["latency_ms"]["median"].get<double>() < best_ms) best = k, best_ms = m["latency_ms"]["median"].get<double>();
    fmt::print("  {:<40} {:>10.3f} {:>10} {:>9.2f}x\n", l["node"].get<std::string>(), ex, best, ex / best_ms);
  }
  for (const auto& [node, knobs] : doc["reshape"].items())
    for (const auto& [knob, m] : knobs.items())
      fmt::print("  {:<40} {:>10} whole network {:.3f} ms, {:.2f}x\n", node, knob,
                 m["latency_ms"]["median"].get<double>(), m["speedup"].get<double>());
  for (const auto& c : doc["configurations"])
    fmt::print("  configuration {}: {:.3f} ms, {:.2f}x\n", c["id"].get<std::string>(),
               c["latency_ms"]["median"].get<double>(), c["speedup"].get<double>());
  if (!energy.available()) fmt::print("  energy: not measured ({})\n", energy.unavailable_reason());
  fmt::print("  written: {}\n", path);
}

}  // namespace

Status run_profile(const ProfileSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  CP_TRY(select_network(exp, settings.common.network, "profile"));
  std::vector<NamedConfig> configs;
  if (settings.configs_path) {
    CP_ASSIGN_OR_RETURN(configs, read_configs(*settings.configs_path));
  }
  ResolvedTarget target = resolve_target(exp, settings.common);
  CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(exp, target.backend, target.threads, true, log_notice));
  CP_ASSIGN_OR_RETURN(const std::vector<KnobSite>* sites, ev->knob_sites());
  CP_ASSIGN_OR_RETURN(Session * first, ev->session(std::min(exp.dataset.batch, ev->dataset().size())));
  CP_ASSIGN_OR_RETURN(KnobSpace ks, make_knob_space(exp, *sites, ev->backend(), EmulatedKnobs::keep, first));
  warn_left_out(ks, "profile");
  for (const auto& c : configs) CP_TRY(ev->configure(c.knobs).with_context(fmt::format("--configs {}", c.id)));
  CP_TRY(ev->configure({}));

  std::vector<int64_t> batches = exp.default_target().batch_sizes;
  if (settings.batch) batches = {*settings.batch};
  if (batches.empty()) batches = {exp.dataset.batch};
  // Knobs in the space, each applied to every layer that allows it.
  // (Kernel knobs only: a reshape knob changes the graph, so (c) times the
  // whole network under it.)
  std::vector<std::string> knobs{exact_knob().name};
  for (const auto& l : ks.space.layers)
    for (const auto& k : l.knobs)
      if (!l.reshape && std::find(knobs.begin(), knobs.end(), k) == knobs.end()) knobs.push_back(k);
  std::vector<KnobConfig> per_knob;
  for (const auto& k : knobs) {
    KnobConfig c;
    for (const auto& l : ks.space.layers)
      if (!l.reshape && k != exact_knob().name && std::find(l.knobs.begin(), l.knobs.end(), k) != l.knobs.end())
        c[l.node] = k;
    per_knob.push_back(std::move(c));
  }
  // (c) One configuration per (layer, reshape knob), timed as a whole network.
  std::vector<NamedConfig> reshaped;
  for (const auto& l : ks.space.layers)
    if (l.reshape)
      for (size_t k = 1; k < l.knobs.size(); ++k) reshaped.push_back({l.node + " " + l.knobs[k], {{l.node, l.knobs[k]}}});

  if (std::find(knobs.begin(), knobs.end(), "int8") != knobs.end()) CP_TRY(ev->calibrated_ranges().status());

  RepeatPolicy policy;
  policy.warmup_rounds = settings.warmup;
  policy.min_rounds = settings.min_rounds;
  policy.min_seconds = settings.min_seconds;
  EnergyMeter energy;
  const std::string dir = run_directory(settings.common, exp, true);
  const bool progress = progress_enabled() && !settings.common.quiet;
  std::vector<std::string> written;
  nlohmann::json summaries = nlohmann::json::array();
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    const int64_t batch = std::min(batches[bi], ev->dataset().size());
    CP_ASSIGN_OR_RETURN(Session * s, ev->session(batch));
    Tensor x = ev->dataset().sample_batch(0, batch);
    CP_ASSIGN_OR_RETURN(std::string fp, network_fingerprint(exp, target.backend, target.threads, batch));
    log_info("profiling {} at batch {}: {} layers x {} knobs, then {} configuration(s)", exp.name, batch,
             ks.space.layers.size(), knobs.size(), configs.size());

    // (a) Per-(layer, knob) times inside the network, interleaved over knobs.
    CP_ASSIGN_OR_RETURN(LayerTimes layer_ms, time_layers(*s, x, knobs, per_knob, policy, progress));
    CP_TRY(s->configure({}));

    nlohmann::json layers = nlohmann::json::array();
    double exact_layers_ms = 0;
    for (size_t l = 0; l < ks.space.layers.size(); ++l) {
      const auto& layer = ks.space.layers[l];
      if (layer.reshape) continue;
      nlohmann::json kj = nlohmann::json::object();
      for (const auto& k : layer.knobs) {
        const auto& samples = layer_ms[layer.node][k];
        if (samples.empty()) return runtime_error("profile: no timing of {} under {}", layer.node, k);
        kj[k] = {{"latency_ms", stat_json(samples)}, {"energy_j", nullptr}};
        if (k == exact_knob().name) exact_layers_ms += summarize(samples).median;
      }
      ConvGeometry g = ks.geometries[l];
      g.n = batch;
      layers.push_back({{"node", layer.node}, {"flops", conv_layer_flops(g)}, {"knobs", kj}});
    }

    std::vector<NamedConfig> whole_configs = configs;
    whole_configs.insert(whole_configs.end(), reshaped.begin(), reshaped.end());
    CP_ASSIGN_OR_RETURN(InterleavedSamples whole, time_whole_networks(*ev, whole_configs, x, policy, energy));
    auto energy_of = [&](size_t i) -> nlohmann::json {
      if (!energy.available() || whole.joules.empty()) return nullptr;
      return stat_json(whole.joules[i]);
    };
    const double base_median = summarize(whole.seconds[0]).median;
    nlohmann::json conf_json = nlohmann::json::array(), reshape_json = nlohmann::json::object();
    for (size_t i = 0; i < reshaped.size(); ++i) {
      const auto& [node, knob] = *reshaped[i].knobs.begin();
      const size_t at = configs.size() + 1 + i;
      const double med = summarize(whole.seconds[at]).median;
      reshape_json[node][knob] = {{"latency_ms", stat_json(whole.seconds[at], 1000.0)},
                                  {"energy_j", energy_of(at)},
                                  {"speedup", med > 0 ? base_median / med : 0.0}};
    }
    for (size_t i = 0; i < configs.size(); ++i) {
      const double med = summarize(whole.seconds[i + 1]).median;
      conf_json.push_back({{"id", configs[i].id},
                           {"knobs", configs[i].knobs},
                           {"latency_ms", stat_json(whole.seconds[i + 1], 1000.0)},
                           {"energy_j", energy_of(i + 1)},
                           {"speedup", med > 0 ? base_median / med : 0.0}});
    }
    MeasurementContext mctx = current_measurement_context(target.threads, &energy);
    nlohmann::json doc = {
        {"experiment", exp.name},
        {"fingerprint", fp},
        {"target", target.name},
        {"backend", target.backend},
        {"batch_size", batch},
        {"context", context_json(mctx)},
        {"method", {{"warmup_rounds", policy.warmup_rounds}, {"min_rounds", policy.min_rounds},
                    {"min_seconds", policy.min_seconds}, {"order", "interleaved"}, {"ci", "order-statistics"},
                    {"confidence", 0.95}}},
        {"energy", {{"available", energy.available()},
                    {"source", energy.available() ? nlohmann::json(energy.source()) : nlohmann::json(nullptr)},
                    {"reason", energy.available() ? nlohmann::json(nullptr)
                                                  : nlohmann::json(energy.unavailable_reason())}}},
        {"baseline", {{"latency_ms", stat_json(whole.seconds[0], 1000.0)}, {"energy_j", energy_of(0)}}},
        {"rest_ms", std::max(0.0, base_median * 1000.0 - exact_layers_ms)},
        {"knob_support", knob_support_json(ev->backend())},
        {"left_out", left_out_json(ks)},
        {"layers", layers},
        {"reshape", reshape_json},
        {"configurations", conf_json},
    };
    const std::string name = bi == 0 ? "profile.json" : fmt::format("profile-b{}.json", batch);
    const std::string path = (std::filesystem::path(dir) / name).string();
    CP_TRY(write_json_file(path, doc));
    written.push_back(path);
    summaries.push_back({{"batch", batch}, {"artifact", path}, {"baseline_ms", base_median * 1000.0}});
    if (!settings.common.json) print_profile(batch, base_median, doc, energy, path);
  }
  if (settings.common.json) fmt::print("{}\n", nlohmann::json{{"profiles", summaries}}.dump());
  log_report_hint(dir);
  return {};
}

}  // namespace caliprox
