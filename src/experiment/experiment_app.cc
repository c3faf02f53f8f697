// The experiment's networks, their fine-tune hooks, the application and
// calibrate sections (the reader's class is in reader.h).
#include <algorithm>
#include <filesystem>
#include <regex>

#include "experiment/reader.h"
#include "qos/process.h"

namespace caliprox {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string network_names(const std::vector<NetworkSpec>& networks) {
  std::string names;
  for (const NetworkSpec& n : networks) names += (names.empty() ? "" : ", ") + n.name;
  return names;
}

}  // namespace

void ExperimentReader::read_networks(const json& root, Experiment& e) {
  const KeyPath top;
  const bool one = root.contains("network"), several = root.contains("networks");
  if (one == several) {
    problems_.push_back({top, one ? top.key("networks") : top, one,
                         one ? "give network or networks, not both" : "missing required key 'network' (or networks)"});
    if (!one) {  // reported; a stand-in keeps the rest of the reader safe
      e.networks.emplace_back();
      return;
    }
  }
  if (one) {
    e.networks.emplace_back();
    read_network(root.at("network"), top.key("network"), e.networks.back());
  } else {
    for (const auto& [name, j] : root.at("networks").items()) {  // name order
      e.networks.emplace_back();
      e.networks.back().name = name;
      read_network(j, top.key("networks").key(name), e.networks.back());
      if (e.networks.back().layout != e.networks.front().layout)  // they share the dataset's samples
        problem(top.key("networks").key(name).key("layout"),
                fmt::format("expected {} like networks.{} (the networks share the dataset's samples)",
                            e.networks.front().layout, e.networks.front().name));
    }
  }
  e.network = e.networks.front();
}

Result<const NetworkSpec*> find_network(const Experiment& e, std::string_view name, std::string_view where) {
  for (const NetworkSpec& n : e.networks)
    if (n.name == name) return &n;
  return invalid_input("{}: no network '{}' in {} (it has: {})", where, name, e.source_path, network_names(e.networks));
}

Status select_network(Experiment& e, const std::optional<std::string>& name, std::string_view what) {
  if (!name) {
    if (e.networks.size() == 1) return {};
    return invalid_input("{}: {} names several networks ({}); choose one with --network NAME", what, e.source_path,
                         network_names(e.networks));
  }
  CP_ASSIGN_OR_RETURN(const NetworkSpec* n, find_network(e, *name, "--network"));
  e.network = *n;
  e.dataset.labels_path = n->labels_path ? n->labels_path : e.dataset_labels_path;
  return {};
}

std::vector<std::string> ExperimentReader::read_command(const json& j, const KeyPath& at, const char* what) {
  std::vector<std::string> command = j.get<std::vector<std::string>>();
  // The program: relative to this file's folder (not searched in PATH: an
  // experiment names what it runs), and executable now rather than at the
  // first run of a long job.
  fs::path program(command[0]);
  if (program.is_relative()) program = (base_dir_ / program).lexically_normal();
  command[0] = program.string();
  if (Status st = check_executable(command[0], what); !st.ok()) problem(at.index(0), st.message());
  return command;
}

void ExperimentReader::read_finetune(const json& j, const KeyPath& at, FinetuneSpec& out) {
  out.dir = base_dir_.string();
  out.command = read_command(j.at("command"), at.key("command"), "fine-tune command");
  // {word} that is not a placeholder is most likely a misspelt one.
  static const std::regex placeholder(R"(\{([A-Za-z_][A-Za-z0-9_]*)\})");
  for (size_t i = 1; i < out.command.size(); ++i) {
    for (std::sregex_iterator m(out.command[i].begin(), out.command[i].end(), placeholder), end; m != end; ++m) {
      const std::string name = (*m)[1];
      if (name != "plan" && name != "model" && name != "out")
        problem(at.key("command").index(i),
                fmt::format("unknown placeholder '{{{}}}' (the hook's arguments may hold {{plan}}, {{model}} and "
                            "{{out}})", name));
    }
  }
  out.timeout_s = j.value("timeout", out.timeout_s);
  if (j.contains("env")) out.env = j.at("env").get<std::map<std::string, std::string>>();
}

void ExperimentReader::read_application(const json& j, const KeyPath& at, AppSpec& out) {
  out.dir = base_dir_.string();
  out.command = read_command(j.at("command"), at.key("command"), "application command");
  out.timeout_s = j.value("timeout", out.timeout_s);
  if (j.contains("retries")) out.retries = static_cast<int>(integer(j.at("retries"), at.key("retries"), 1000));
  if (j.contains("repeats")) out.repeats = static_cast<int>(integer(j.at("repeats"), at.key("repeats"), 100000));
  if (j.contains("jobs")) out.jobs = static_cast<int>(integer(j.at("jobs"), at.key("jobs"), 4096));
  out.serve = j.value("serve", false);
  if (j.contains("env")) out.env = j.at("env").get<std::map<std::string, std::string>>();
  if (j.contains("record")) out.record = j.at("record").get<std::vector<std::string>>();
  if (j.contains("files"))
    for (size_t i = 0; i < j.at("files").size(); ++i)
      out.files.push_back(existing_file(j.at("files")[i], at.key("files").index(i)));
  const json& goal = j.at("goal");
  for (size_t i = 0; i < goal.size(); ++i) {
    const KeyPath here = at.key("goal").index(i);
    AppCondition c;
    c.metric = goal[i].at("metric").get<std::string>();
    if (goal[i].contains("min")) c.min = goal[i].at("min").get<double>();
    if (goal[i].contains("max")) c.max = goal[i].at("max").get<double>();
    if (!c.min && !c.max) problem(here, fmt::format("the condition on '{}' has neither min nor max", c.metric));
    if (c.min && c.max && *c.min > *c.max)
      problem(here, fmt::format("the condition on '{}' is empty: min {} > max {}", c.metric, *c.min, *c.max));
    for (const AppCondition& before : out.goal.conditions)
      if (before.metric == c.metric) problem(here.key("metric"), fmt::format("'{}' has a condition already", c.metric));
    if (std::find(out.record.begin(), out.record.end(), c.metric) != out.record.end())
      problem(here.key("metric"), fmt::format("'{}' is both judged and in application.record", c.metric));
    out.goal.conditions.push_back(std::move(c));
  }
  if (j.contains("pass_rate")) {
    out.goal.rule = RepeatRule::pass_rate;
    out.goal.pass_rate = j.at("pass_rate").get<double>();
  }
  out.goal.confidence = j.value("confidence", out.goal.confidence);
}

void ExperimentReader::read_calibrate(const json& j, const KeyPath& at, const std::vector<NetworkSpec>& networks,
                                      CalibrateSpec& out) {
  const std::string kind = j.value("error_model", std::string("gaussian"));
  const std::vector<std::string> kinds = {"gaussian", "relative_gaussian", "label_flip", "hold_last"};
  out.kind = static_cast<ErrorKind>(std::find(kinds.begin(), kinds.end(), kind) - kinds.begin());
  const bool gaussian = out.kind == ErrorKind::gaussian || out.kind == ErrorKind::relative_gaussian;
  out.per = j.value("per", std::string("element")) == "sample" ? ErrorScope::sample : ErrorScope::element;
  if (j.contains("per") && !gaussian) problem(at.key("per"), fmt::format("only for gaussian kinds, not {}", kind));
  const json& axes = j.at("axes");
  for (size_t i = 0; i < axes.size(); ++i) {
    const KeyPath here = at.key("axes").index(i);
    CalibrateSpec::Axis a{networks.front().name, axes[i].at("param").get<std::string>(),
                          axes[i].at("lo").get<double>(), axes[i].at("hi").get<double>(), ""};
    if (axes[i].contains("network")) {
      a.network = axes[i].at("network").get<std::string>();
      if (std::none_of(networks.begin(), networks.end(), [&](const NetworkSpec& n) { return n.name == a.network; }))
        problem(here.key("network"), fmt::format("no network '{}' (the experiment's: {})", a.network,
                                                 network_names(networks)));
    } else if (networks.size() > 1) {
      problem(here, fmt::format("which network? the experiment has several ({}): add network: NAME",
                                network_names(networks)));
    }
    a.name = networks.size() > 1 ? a.network + "." + a.param : a.param;
    if ((a.param == "rate") == gaussian)
      problem(here.key("param"), fmt::format("{} is not a parameter of {} (it has {})", a.param, kind,
                                             gaussian ? "bias and std" : "rate"));
    if (!(a.lo < a.hi))
      problem(here, fmt::format("the range [{}, {}] is empty or reversed (lo is the least severe value)", a.lo, a.hi));
    if ((a.param == "std" || a.param == "rate") && a.lo < 0)
      problem(here.key("lo"), fmt::format("{} cannot be negative", a.param));
    if (a.param == "rate" && a.hi > 1) problem(here.key("hi"), "a rate is at most 1");
    for (const auto& b : out.axes)
      if (b.name == a.name) problem(here.key("param"), fmt::format("'{}' has an axis already", a.name));
    out.axes.push_back(std::move(a));
  }
  if (j.contains("points")) out.points = integer(j.at("points"), at.key("points"));
  if (j.contains("batch")) out.batch = integer(j.at("batch"), at.key("batch"), 4096);
  out.time_limit_s = j.value("time_limit", out.time_limit_s);
  if (j.contains("seed")) out.seed = static_cast<uint64_t>(integer(j.at("seed"), at.key("seed")));
}

}  // namespace caliprox
