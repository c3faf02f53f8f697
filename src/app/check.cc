// caliprox check: the experiment file and everything it references.
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/common.h"
#include "ir/onnx_import.h"
#include "engine/session.h"

namespace caliprox {

namespace {

// "collisions <= 0, 0 <= deviation <= 0.15"
std::string goal_text(const AppGoal& goal) {
  std::vector<std::string> parts;
  for (const AppCondition& c : goal.conditions) {
    if (c.min && c.max) parts.push_back(fmt::format("{} <= {} <= {}", *c.min, c.metric, *c.max));
    else if (c.min) parts.push_back(fmt::format("{} >= {}", c.metric, *c.min));
    else parts.push_back(fmt::format("{} <= {}", c.metric, *c.max));
  }
  std::string text = fmt::format("{}", fmt::join(parts, ", "));
  if (goal.rule == RepeatRule::pass_rate)
    text += fmt::format("; pass rate >= {} at confidence {}", goal.pass_rate, goal.confidence);
  return text;
}

nlohmann::json application_json(const AppSpec& a) {
  nlohmann::json goal = nlohmann::json::array();
  for (const AppCondition& c : a.goal.conditions) {
    nlohmann::json j = {{"metric", c.metric}};
    if (c.min) j["min"] = *c.min;
    if (c.max) j["max"] = *c.max;
    goal.push_back(j);
  }
  return {{"command", a.command}, {"timeout", a.timeout_s}, {"repeats", a.repeats}, {"goal", goal}};
}

// One network of the experiment (exp.network) against the dataset, on every target.
struct NetworkCheck {
  nlohmann::json json;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> devices;  // by target, device backends
  std::string text;
  int64_t samples = 0;
  std::map<std::string, SplitRange> splits;
};

Result<NetworkCheck> check_network(const Experiment& exp, const CheckSettings& settings) {
  CP_ASSIGN_OR_RETURN(Graph graph, load_onnx(exp.network.model_path));
  CP_ASSIGN_OR_RETURN(ModelIo io, model_io(graph, exp.network, exp.source_path));
  CP_ASSIGN_OR_RETURN(Dataset data, load_dataset(exp.dataset));
  const int64_t batch = std::min<int64_t>(exp.dataset.batch, data.size());
  Tensor x = data.sample_batch(0, batch);
  CP_TRY(check_input_fits(*io.input, x.shape(), exp.dataset.samples_path));
  const std::string which = exp.networks.size() > 1 ? fmt::format("networks.{}", exp.network.name) : "network";

  // Building a session infers every shape in the graph for this input: it
  // catches mismatches deep inside the network, not only at its input.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> devices;
  for (const TargetSpec& t : exp.targets) {
    auto made = make_backend(settings.common.backend.value_or(t.backend), settings.common.threads.value_or(t.threads),
                             device_selector(t));
    if (!made.ok()) return made.status().with_context(fmt::format("{}: target '{}'", exp.source_path, t.name));
    std::unique_ptr<Backend> backend = std::move(made).value();
    if (!backend->device_facts().empty()) devices[t.name] = backend->device_facts();
    auto session = Session::create(graph, *backend, {{io.input->name, x.shape()}});
    if (!session.ok())
      return session.status().with_context(fmt::format("{}: {}.model {} with samples of shape {}", exp.source_path,
                                                       which, exp.network.model_path, shape_str(x.shape())));
  }
  SessionOptions opt;
  auto backend = make_backend("reference", 1);
  CP_ASSIGN_OR_RETURN(auto session, Session::create(graph, **backend, {{io.input->name, x.shape()}}, opt));
  TensorType out;
  for (size_t i = 0; i < session->output_names().size(); ++i)
    if (session->output_names()[i] == io.output) out = session->output_types()[i];

  const bool classification = exp.qos.metric == Metric::top1 || exp.qos.metric == Metric::topk;
  if (classification) {
    if (!data.labels || data.labels->dtype() != DType::i64)
      return invalid_input("{}: qos.metric {} needs class labels (dataset.labels)", exp.source_path,
                           metric_name(exp.qos.metric));
    if (out.shape.size() != 2)
      return invalid_input("{}: qos.metric {} needs an output of shape [N, classes]; '{}' has shape {}",
                           exp.source_path, metric_name(exp.qos.metric), io.output, shape_str(out.shape));
    const auto labels = data.labels->span<int64_t>();
    auto [mn, mx] = std::minmax_element(labels.begin(), labels.end());
    if (!labels.empty() && (*mn < 0 || *mx >= out.shape[1]))
      return invalid_input("{}: labels range over [{}, {}] but the network has {} classes", exp.dataset.labels_path.value_or(""),
                           *mn, *mx, out.shape[1]);
    if (exp.qos.metric == Metric::topk && exp.qos.k > out.shape[1])
      return invalid_input("{}: qos.k is {} but the network has only {} classes", exp.source_path, exp.qos.k,
                           out.shape[1]);
  }
  NetworkCheck c;
  c.json = {{"name", exp.network.name},
            {"model", exp.network.model_path},
            {"nodes", graph.nodes.size()},
            {"input", {{"name", io.input->name}, {"shape", x.shape()}}},
            {"output", {{"name", io.output}, {"shape", out.shape}}}};
  c.text = fmt::format("  {:<8} {} ({} nodes, opset {})\n  input    {} {}  output {} {}\n",
                       exp.networks.size() > 1 ? exp.network.name : "network", exp.network.model_path,
                       graph.nodes.size(), graph.opset, io.input->name, shape_str(x.shape()), io.output,
                       shape_str(out.shape));
  c.devices = std::move(devices);
  c.samples = data.size();
  c.splits = data.splits;
  return c;
}

}  // namespace

Status run_check(const CheckSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  std::vector<NetworkCheck> checks;
  for (const NetworkSpec& n : exp.networks) {
    Experiment one = exp;
    CP_TRY(select_network(one, n.name, "check"));
    CP_ASSIGN_OR_RETURN(NetworkCheck c, check_network(one, settings));
    checks.push_back(std::move(c));
  }
  const NetworkCheck& first = checks.front();
  nlohmann::json splits = nlohmann::json::object();
  for (const auto& [name, r] : first.splits) splits[name] = {r.begin, r.end};
  if (settings.common.json) {
    nlohmann::json doc{{"ok", true}, {"experiment", exp.name}, {"samples", first.samples}, {"splits", splits}};
    for (const auto& c : checks) doc["networks"].push_back(c.json);
    if (checks.size() == 1)
      for (const char* key : {"model", "nodes", "input", "output"}) doc[key] = first.json[key];
    if (exp.application) doc["application"] = application_json(*exp.application);
    for (const auto& t : exp.targets) {
      nlohmann::json tj{{"name", t.name},
                        {"backend", settings.common.backend.value_or(t.backend)},
                        {"threads", t.threads}};
      if (auto d = first.devices.find(t.name); d != first.devices.end())
        for (const auto& [k, v] : d->second) tj["device"][k] = v;
      doc["targets"].push_back(tj);
    }
    fmt::print("{}\n", doc.dump());
  } else {
    fmt::print("{}: ok\n", exp.source_path);
    for (const auto& c : checks) fmt::print("{}", c.text);
    fmt::print("  dataset  {} samples; splits:", first.samples);
    for (const auto& [name, r] : first.splits) fmt::print(" {} [{}, {})", name, r.begin, r.end);
    fmt::print("\n  targets ");
    for (const auto& t : exp.targets) fmt::print(" {} ({}, {} threads)", t.name, t.backend, t.threads);
    fmt::print("\n");
    for (const auto& [target, facts] : first.devices) {
      fmt::print("  device   {}:", target);
      for (const auto& [k, v] : facts) fmt::print("\n    {:<14} {}", k, v);
      fmt::print("\n");
    }
    if (const auto& a = exp.application)
      fmt::print("  application  {} (timeout {} s, {} repeat(s)); goal: {}\n", fmt::join(a->command, " "),
                 a->timeout_s, a->repeats, goal_text(a->goal));
  }
  return {};
}

}  // namespace caliprox
