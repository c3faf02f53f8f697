#include "experiment/experiment.h"

#include <array>
#include <filesystem>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiment/schema_validator.h"
#include "experiment/yaml_json.h"
#include "knobs/knobs.h"
#include "qos/process.h"

namespace caliprox {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// schemas/experiment.schema.json, embedded at build time by embed.py.
static const char* kSchema =
#include "experiment_schema.inc"
    ;

const Result<SchemaValidator>& experiment_validator() {
  static const Result<SchemaValidator> validator = []() -> Result<SchemaValidator> {
    json schema;
    try {
      schema = json::parse(kSchema);
    } catch (const json::exception& e) {
      return runtime_error("embedded experiment schema is not valid JSON: {}", e.what());
    }
    return SchemaValidator::create(std::move(schema));
  }();
  return validator;
}


constexpr std::array<DType, 7> kRawDTypes = {DType::u8,  DType::i8,  DType::i32, DType::i64,
                                             DType::f16, DType::f32, DType::f64};

bool compares_with_targets(Metric m) {
  return m == Metric::l1 || m == Metric::l2 || m == Metric::mse;
}

// Converts a document the schema has accepted (so types and enums are known
// to be right) into the typed struct, applying defaults and collecting the
// problems the schema cannot express.
class ExperimentReader {
 public:
  ExperimentReader(const YamlDocument& doc, const fs::path& source)
      : doc_(doc), source_(source), base_dir_(source.parent_path()) {}

  Result<Experiment> read() {
    Experiment e;
    e.source_path = source_.string();
    const json& root = doc_.root;
    KeyPath top;
    e.name = root.at("name").get<std::string>();
    read_network(root.at("network"), top.key("network"), e.network);
    read_dataset(root.at("dataset"), top.key("dataset"), e.network, e.dataset);
    read_qos(root.at("qos"), top.key("qos"), e.dataset, e.qos);
    read_targets(root.at("targets"), top.key("targets"), e.targets);
    if (root.contains("knobs")) read_knobs(root.at("knobs"), top.key("knobs"), e.knobs);
    if (root.contains("tune")) read_tune(root.at("tune"), top.key("tune"), e.tune);
    if (root.contains("application")) {
      e.application.emplace();
      read_application(root.at("application"), top.key("application"), *e.application);
    }
    if (root.contains("calibrate")) {
      e.calibrate.emplace();
      read_calibrate(root.at("calibrate"), top.key("calibrate"), *e.calibrate);
    }
    CP_TRY(report_errors(doc_, problems_));
    return e;
  }

 private:
  void problem(const KeyPath& path, std::string message, bool at_key = false) {
    problems_.push_back({path, path, at_key, std::move(message)});
  }

  int64_t integer(const json& j, const KeyPath& path, int64_t max = std::numeric_limits<int64_t>::max()) {
    // The schema says "integer" without a C++ range; large values must not wrap.
    if (j.is_number_unsigned() ? j.get<uint64_t>() > static_cast<uint64_t>(max)
                               : j.get<double>() > static_cast<double>(max)) {
      problem(path, fmt::format("expected an integer <= {}, found {}", max, describe_json_value(j)));
      return 0;
    }
    return j.get<int64_t>();
  }

  // Resolves against the experiment file's folder and checks the file exists.
  std::string existing_file(const json& j, const KeyPath& path) {
    const std::string given = j.get<std::string>();
    fs::path p(given);
    if (p.is_relative()) p = base_dir_ / p;
    p = p.lexically_normal();
    std::string origin = fs::path(given).is_relative()
                             ? fmt::format(" ('{}' relative to {})", given, base_dir_.string())
                             : "";
    std::error_code ec;
    fs::file_status st = fs::status(p, ec);
    if (!fs::exists(st)) {
      problem(path, fmt::format("file not found: {}{}", p.string(), origin));
    } else if (fs::is_directory(st)) {
      problem(path, fmt::format("expected a file, found a directory: {}{}", p.string(), origin));
    }
    return p.string();
  }

  static std::vector<double> channel_values(const json& j) {
    if (j.is_number()) return {j.get<double>()};
    return j.get<std::vector<double>>();
  }

  void read_network(const json& j, const KeyPath& at, NetworkSpec& out) {
    out.model_path = existing_file(j.at("model"), at.key("model"));
    if (j.contains("input")) out.input = j.at("input").get<std::string>();
    if (j.contains("output")) out.output = j.at("output").get<std::string>();
    out.layout = j.value("layout", std::string("NCHW"));
  }

  void read_dataset(const json& j, const KeyPath& at, const NetworkSpec& network, DatasetSpec& out) {
    const std::string format = j.at("format").get<std::string>();
    out.format = format == "idx" ? DataFormat::idx : format == "npy" ? DataFormat::npy : DataFormat::raw;
    out.samples_path = existing_file(j.at("samples"), at.key("samples"));
    if (j.contains("labels")) out.labels_path = existing_file(j.at("labels"), at.key("labels"));
    if (j.contains("raw") && out.format != DataFormat::raw) {
      problem(at.key("raw"), fmt::format("only allowed with format raw, found format {}", format), true);
    }
    if (!j.contains("raw") && out.format == DataFormat::raw) {
      problems_.push_back({at, at.key("format"), true, "missing required key 'raw' (format is raw)"});
    }
    if (j.contains("raw")) read_raw(j.at("raw"), at.key("raw"), out.raw);
    read_preprocess(j.value("preprocess", json::object()), at.key("preprocess"), network, out.preprocess);
    if (j.contains("raw") && !out.preprocess.source_layout.empty()) {
      size_t rank = out.preprocess.source_layout.size();
      if (out.raw.shape.size() != rank) {
        problem(at.key("raw").key("shape"),
                fmt::format("expected {} dimensions for source_layout {}, found {}", rank,
                            out.preprocess.source_layout, out.raw.shape.size()));
      }
    }
    for (const auto& [name, range] : j.at("splits").items()) {
      KeyPath split_at = at.key("splits").key(name);
      SplitRange r{integer(range.at(0), split_at.index(0)), integer(range.at(1), split_at.index(1))};
      if (r.begin >= r.end) {
        problem(split_at, fmt::format("expected [begin, end] with begin < end, found [{}, {}]", r.begin, r.end));
      }
      out.splits[name] = r;
    }
    out.batch = j.contains("batch") ? integer(j.at("batch"), at.key("batch")) : 64;
  }

  void read_raw(const json& j, const KeyPath& at, RawSpec& out) {
    const std::string dtype = j.at("dtype").get<std::string>();
    for (DType t : kRawDTypes) {
      if (dtype_name(t) == dtype) out.dtype = t;
    }
    out.shape.clear();
    const json& shape = j.at("shape");
    for (size_t i = 0; i < shape.size(); ++i) out.shape.push_back(integer(shape[i], at.key("shape").index(i)));
    // Catch an absurd shape here, with its position, rather than when allocating.
    int64_t numel = 1;
    for (int64_t d : out.shape) {
      if (d <= 0) break;  // already reported as out of range
      if (numel > kMaxTensorElements / d) {
        problem(at.key("shape"), fmt::format("expected at most {} elements in total, found shape {}",
                                             kMaxTensorElements, shape_str(out.shape)));
        break;
      }
      numel *= d;
    }
    out.header_bytes = j.contains("header_bytes") ? integer(j.at("header_bytes"), at.key("header_bytes")) : 0;
  }

  void read_preprocess(const json& j, const KeyPath& at, const NetworkSpec& network, Preprocess& out) {
    out.scale = j.value("scale", 1.0);
    if (j.contains("mean")) out.mean = channel_values(j.at("mean"));
    if (j.contains("std")) out.std = channel_values(j.at("std"));
    if (out.mean.size() > 1 && out.std.size() > 1 && out.mean.size() != out.std.size()) {
      problem(at.key("std"), fmt::format("expected {} values like mean (or one for all channels), found {}",
                                         out.mean.size(), out.std.size()));
    }
    out.layout = network.layout;
    if (j.contains("layout") && j.at("layout").get<std::string>() != network.layout) {
      problem(at.key("layout"), fmt::format("expected {} like network.layout (the layout the network wants), found {}",
                                            network.layout, j.at("layout").get<std::string>()));
    }
    out.source_layout = j.value("source_layout", std::string());
  }

  void read_qos(const json& j, const KeyPath& at, const DatasetSpec& dataset, QosSpec& out) {
    const std::string metric = j.at("metric").get<std::string>();
    // The schema's enum lists exactly the names metric_from_name() knows.
    out.metric = metric_from_name(metric).value_or(Metric::top1);
    if (j.contains("k")) {
      if (out.metric != Metric::topk) {
        problem(at.key("k"), fmt::format("only used with metric topk, found metric {}", metric), true);
      }
      out.k = static_cast<int>(integer(j.at("k"), at.key("k"), std::numeric_limits<int>::max()));
    }
    if (j.contains("reference")) {
      if (!compares_with_targets(out.metric)) {
        problem(at.key("reference"), fmt::format("only used with metrics l1, l2 and mse, found metric {}", metric), true);
      }
      out.reference = j.at("reference") == "exact" ? MetricReference::exact : MetricReference::labels;
    }
    if (!dataset.labels_path) {
      if (out.metric == Metric::top1 || out.metric == Metric::topk) {
        problem(at.key("metric"), fmt::format("metric {} needs class labels, but dataset.labels is not set", metric));
      } else if (compares_with_targets(out.metric) && out.reference == MetricReference::labels) {
        problem(at.key("metric"),
                fmt::format("metric {} compares with targets from dataset.labels, which is not set "
                            "(set qos.reference: exact to compare with the exact network)", metric));
      }
    }
    const json& goal = j.at("goal");
    out.goal.max_loss = goal.at("max_loss").get<double>();
    out.goal.kind = goal.value("kind", std::string("absolute")) == "relative" ? GoalKind::relative : GoalKind::absolute;
    if (out.goal.kind == GoalKind::relative && out.goal.max_loss > 1.0) {
      problem(at.key("goal").key("max_loss"),
              fmt::format("expected a fraction of the baseline between 0 and 1 for kind relative "
                          "(0.01 = 1 %), found {}", describe_json_value(goal.at("max_loss"))));
    }
  }

  void read_targets(const json& j, const KeyPath& at, std::vector<TargetSpec>& out) {
    for (size_t i = 0; i < j.size(); ++i) {
      const json& t = j[i];
      KeyPath here = at.index(i);
      TargetSpec target;
      target.name = t.at("name").get<std::string>();
      for (size_t prev = 0; prev < out.size(); ++prev) {
        if (out[prev].name == target.name) {
          SourceMark first = doc_.mark(at.index(prev).key("name"));
          problem(here.key("name"), fmt::format("duplicate target name '{}' (also targets[{}], line {})",
                                                target.name, prev, first.line));
        }
      }
      target.backend = t.value("backend", std::string("onednn"));
      target.threads = t.value("threads", 1);
      if (t.contains("batch_sizes")) {
        const json& sizes = t.at("batch_sizes");
        for (size_t b = 0; b < sizes.size(); ++b) {
          target.batch_sizes.push_back(integer(sizes[b], here.key("batch_sizes").index(b)));
        }
      }
      out.push_back(std::move(target));
    }
  }

  void read_knobs(const json& j, const KeyPath& at, KnobSpaceSpec& out) {
    auto strings = [&](const char* key, std::vector<std::string>& v) {
      if (!j.contains(key)) return;
      for (size_t i = 0; i < j.at(key).size(); ++i) {
        const std::string pattern = j.at(key)[i].get<std::string>();
        if (std::string(key) != "layers" && !knob_pattern_matches_any(pattern))
          problem(at.key(key).index(i), fmt::format("'{}' matches no knob{}", pattern, suggest_knob(pattern)));
        v.push_back(pattern);
      }
    };
    strings("include", out.include);
    strings("exclude", out.exclude);
    strings("layers", out.layers);
  }

  template <typename E>
  void mode(const json& j, const KeyPath& at, const char* key, std::optional<E> (*from_name)(std::string_view),
            E& out) {
    if (!j.contains(key)) return;
    const std::string name = j.at(key).get<std::string>();
    if (auto e = from_name(name)) out = *e;
    else problem(at.key(key), fmt::format("unknown {} '{}'", key, name));
  }

  void read_tune(const json& j, const KeyPath& at, TuneSpec& out) {
    // The schema lists the names, so these only fail if it and tune_modes.h disagree.
    mode(j, at, "strategy", strategy_from_name, out.strategy);
    mode(j, at, "qos_mode", qos_mode_from_name, out.qos_mode);
    mode(j, at, "cost_mode", cost_mode_from_name, out.cost_mode);
    if (j.contains("profile")) out.profile = existing_file(j.at("profile"), at.key("profile"));
    if (out.cost_mode == CostMode::measured && !out.profile)
      problem(at.key("cost_mode"), "cost_mode measured needs tune.profile (a profile.json written by caliprox profile)");
    if (j.contains("iterations")) out.iterations = integer(j.at("iterations"), at.key("iterations"));
    out.time_limit_s = j.value("time_limit", out.time_limit_s);
    if (j.contains("seed")) out.seed = static_cast<uint64_t>(integer(j.at("seed"), at.key("seed")));
    if (j.contains("finalists")) out.finalists = integer(j.at("finalists"), at.key("finalists"));
    if (j.contains("predictor_samples"))
      out.predictor_samples = integer(j.at("predictor_samples"), at.key("predictor_samples"));
    out.min_speedup_step = j.value("min_speedup_step", out.min_speedup_step);
    out.min_loss_step = j.value("min_loss_step", out.min_loss_step);
  }

  void read_application(const json& j, const KeyPath& at, AppSpec& out) {
    out.dir = base_dir_.string();
    out.command = j.at("command").get<std::vector<std::string>>();
    // The program: relative to this file's folder (not searched in PATH: an
    // experiment names what it runs), and executable now rather than at the
    // first run of a long job.
    fs::path program(out.command[0]);
    if (program.is_relative()) program = (base_dir_ / program).lexically_normal();
    out.command[0] = program.string();
    if (Status st = check_executable(out.command[0], "application command"); !st.ok())
      problem(at.key("command").index(0), st.message());
    out.timeout_s = j.value("timeout", out.timeout_s);
    if (j.contains("retries")) out.retries = static_cast<int>(integer(j.at("retries"), at.key("retries"), 1000));
    if (j.contains("repeats")) out.repeats = static_cast<int>(integer(j.at("repeats"), at.key("repeats"), 100000));
    if (j.contains("jobs")) out.jobs = static_cast<int>(integer(j.at("jobs"), at.key("jobs"), 4096));
    if (j.contains("env")) out.env = j.at("env").get<std::map<std::string, std::string>>();
    if (j.contains("record")) out.record = j.at("record").get<std::vector<std::string>>();
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

  void read_calibrate(const json& j, const KeyPath& at, CalibrateSpec& out) {
    const std::string kind = j.value("error_model", std::string("gaussian"));
    const std::vector<std::string> kinds = {"gaussian", "relative_gaussian", "label_flip", "hold_last"};
    out.kind = static_cast<ErrorKind>(std::find(kinds.begin(), kinds.end(), kind) - kinds.begin());
    const bool gaussian = out.kind == ErrorKind::gaussian || out.kind == ErrorKind::relative_gaussian;
    out.per = j.value("per", std::string("element")) == "sample" ? ErrorScope::sample : ErrorScope::element;
    if (j.contains("per") && !gaussian) problem(at.key("per"), fmt::format("only for gaussian kinds, not {}", kind));
    const json& axes = j.at("axes");
    for (size_t i = 0; i < axes.size(); ++i) {
      const KeyPath here = at.key("axes").index(i);
      CalibrateSpec::Axis a{axes[i].at("param").get<std::string>(), axes[i].at("lo").get<double>(),
                            axes[i].at("hi").get<double>()};
      if ((a.param == "rate") == gaussian)
        problem(here.key("param"), fmt::format("{} is not a parameter of {} (it has {})", a.param, kind,
                                               gaussian ? "bias and std" : "rate"));
      if (!(a.lo < a.hi))
        problem(here, fmt::format("the range [{}, {}] is empty or reversed (lo is the least severe value)", a.lo, a.hi));
      if ((a.param == "std" || a.param == "rate") && a.lo < 0)
        problem(here.key("lo"), fmt::format("{} cannot be negative", a.param));
      if (a.param == "rate" && a.hi > 1) problem(here.key("hi"), "a rate is at most 1");
      for (const auto& b : out.axes)
        if (b.param == a.param) problem(here.key("param"), fmt::format("'{}' has an axis already", a.param));
      out.axes.push_back(std::move(a));
    }
    if (j.contains("points")) out.points = integer(j.at("points"), at.key("points"));
    out.time_limit_s = j.value("time_limit", out.time_limit_s);
    if (j.contains("seed")) out.seed = static_cast<uint64_t>(integer(j.at("seed"), at.key("seed")));
  }

  const YamlDocument& doc_;
  fs::path source_;
  fs::path base_dir_;
  std::vector<SchemaError> problems_;
};

}  // namespace

Result<Experiment> load_experiment(const std::string& path) {
  CP_ASSIGN_OR_RETURN(YamlDocument doc, read_yaml_file(path));
  const Result<SchemaValidator>& validator = experiment_validator();
  if (!validator.ok()) return validator.status();
  CP_TRY(validate_document(validator.value(), doc));
  std::error_code ec;
  fs::path source = fs::absolute(path, ec).lexically_normal();
  if (ec) return invalid_input("{}: cannot make the path absolute: {}", path, ec.message());
  try {
    return ExperimentReader(doc, source).read();
  } catch (const nlohmann::json::exception& e) {
    // Only reachable if the schema and the reader disagree about a key's type.
    return runtime_error("{}: experiment schema and reader disagree: {}", path, e.what());
  }
}

Status apply_tune_overrides(TuneSpec& spec, const TuneOverrides& o) {
  if (o.iterations) spec.iterations = *o.iterations;
  if (o.time_s) spec.time_limit_s = *o.time_s;
  if (o.seed) spec.seed = *o.seed;
  if (o.strategy) {
    auto kind = strategy_from_name(*o.strategy);
    if (!kind) return invalid_input("--strategy {}: expected random, greedy or evolutionary", *o.strategy);
    spec.strategy = *kind;
  }
  if (o.qos_mode) {
    auto mode = qos_mode_from_name(*o.qos_mode);
    if (!mode) return invalid_input("--qos-mode {}: expected empirical, p1 or p2", *o.qos_mode);
    spec.qos_mode = *mode;
  }
  return {};
}

}  // namespace caliprox
