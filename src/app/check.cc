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

}  // namespace

Status run_check(const CheckSettings& settings) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(settings.experiment_path));
  CP_ASSIGN_OR_RETURN(Graph graph, load_onnx(exp.network.model_path));
  CP_ASSIGN_OR_RETURN(ModelIo io, model_io(graph, exp.network, exp.source_path));
  CP_ASSIGN_OR_RETURN(Dataset data, load_dataset(exp.dataset));
  const int64_t batch = std::min<int64_t>(exp.dataset.batch, data.size());
  Tensor x = data.sample_batch(0, batch);
  CP_TRY(check_input_fits(*io.input, x.shape(), exp.dataset.samples_path));

  // Building a session infers every shape in the graph for this input: it
  // catches mismatches deep inside the network, not only at its input.
  for (const TargetSpec& t : exp.targets) {
    CP_ASSIGN_OR_RETURN(auto backend, make_backend(settings.common.backend.value_or(t.backend),
                                                   settings.common.threads.value_or(t.threads)));
    auto session = Session::create(graph, *backend, {{io.input->name, x.shape()}});
    if (!session.ok())
      return session.status().with_context(fmt::format("{}: network.model {} with samples of shape {}", exp.source_path,
                                                       exp.network.model_path, shape_str(x.shape())));
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

  nlohmann::json splits = nlohmann::json::object();
  for (const auto& [name, r] : data.splits) splits[name] = {r.begin, r.end};
  if (settings.common.json) {
    nlohmann::json doc{{"ok", true},
                       {"experiment", exp.name},
                       {"model", exp.network.model_path},
                       {"nodes", graph.nodes.size()},
                       {"input", {{"name", io.input->name}, {"shape", x.shape()}}},
                       {"output", {{"name", io.output}, {"shape", out.shape}}},
                       {"samples", data.size()},
                       {"splits", splits}};
    if (exp.application) doc["application"] = application_json(*exp.application);
    fmt::print("{}\n", doc.dump());
  } else {
    fmt::print("{}: ok\n", exp.source_path);
    fmt::print("  network  {} ({} nodes, opset {})\n", exp.network.model_path, graph.nodes.size(), graph.opset);
    fmt::print("  input    {} {}  output {} {}\n", io.input->name, shape_str(x.shape()), io.output, shape_str(out.shape));
    fmt::print("  dataset  {} samples; splits:", data.size());
    for (const auto& [name, r] : data.splits) fmt::print(" {} [{}, {})", name, r.begin, r.end);
    fmt::print("\n  targets ");
    for (const auto& t : exp.targets) fmt::print(" {} ({}, {} threads)", t.name, t.backend, t.threads);
    fmt::print("\n");
    if (const auto& a = exp.application)
      fmt::print("  application  {} (timeout {} s, {} repeat(s)); goal: {}\n", fmt::join(a->command, " "),
                 a->timeout_s, a->repeats, goal_text(a->goal));
  }
  return {};
}

}  // namespace caliprox
