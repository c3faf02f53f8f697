#include "experiment/experiment.h"

#include <array>
#include <filesystem>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiment/reader.h"
#include "knobs/knobs.h"
#include "qos/process.h"

namespace caliprox {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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

}  // namespace

Result<Experiment> ExperimentReader::read() {
  Experiment e;
  e.source_path = source_.string();
  const json& root = doc_.root;
  KeyPath top;
  e.name = root.at("name").get<std::string>();
  read_networks(root, e);
  read_dataset(root.at("dataset"), top.key("dataset"), e.network, e.dataset);
  read_qos(root.at("qos"), top.key("qos"), e.qos);
  check_labels(e, top.key("qos"));
  read_targets(root.at("targets"), top.key("targets"), e.targets);
  if (root.contains("knobs")) read_knobs(root.at("knobs"), top.key("knobs"), e.knobs);
  if (root.contains("tune")) read_tune(root.at("tune"), top.key("tune"), e.tune);
  if (root.contains("application")) {
    e.application.emplace();
    read_application(root.at("application"), top.key("application"), *e.application);
  }
  read_adapt(root.value("adapt", json::object()), top.key("adapt"), e.adapt);
  if (root.contains("calibrate")) {
    e.calibrate.emplace();
    read_calibrate(root.at("calibrate"), top.key("calibrate"), e.networks, *e.calibrate);
  }
  CP_TRY(report_errors(doc_, problems_));
  // The first network is the one single-network subcommands use until
  // select_network() picks another; its labels stand in for the dataset's.
  e.dataset_labels_path = e.dataset.labels_path;
  if (e.network.labels_path) e.dataset.labels_path = e.network.labels_path;
  return e;
}

void ExperimentReader::problem(const KeyPath& path, std::string message, bool at_key) {
  problems_.push_back({path, path, at_key, std::move(message)});
}

int64_t ExperimentReader::integer(const json& j, const KeyPath& path, int64_t max) {
  // The schema says "integer" without a C++ range; large values must not wrap.
  if (j.is_number_unsigned() ? j.get<uint64_t>() > static_cast<uint64_t>(max)
                             : j.get<double>() > static_cast<double>(max)) {
    problem(path, fmt::format("expected an integer <= {}, found {}", max, describe_json_value(j)));
    return 0;
  }
  return j.get<int64_t>();
}

// Resolves against the experiment file's folder and checks the file exists.
std::string ExperimentReader::existing_file(const json& j, const KeyPath& path) {
  const std::string given = j.get<std::string>();
  fs::path p(given);
  if (p.is_relative()) p = base_dir_ / p;
  else if (!mirror_.empty()) p = mirror_ / p.relative_path();
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

std::vector<double> ExperimentReader::channel_values(const json& j) {
  if (j.is_number()) return {j.get<double>()};
  return j.get<std::vector<double>>();
}

void ExperimentReader::read_network(const json& j, const KeyPath& at, NetworkSpec& out) {
  out.model_path = existing_file(j.at("model"), at.key("model"));
  if (j.contains("input")) out.input = j.at("input").get<std::string>();
  if (j.contains("output")) out.output = j.at("output").get<std::string>();
  out.layout = j.value("layout", std::string("NCHW"));
  if (j.contains("labels")) out.labels_path = existing_file(j.at("labels"), at.key("labels"));
  if (j.contains("finetune")) read_finetune(j.at("finetune"), at.key("finetune"), out.finetune.emplace());
}

void ExperimentReader::read_dataset(const json& j, const KeyPath& at, const NetworkSpec& network, DatasetSpec& out) {
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

void ExperimentReader::read_raw(const json& j, const KeyPath& at, RawSpec& out) {
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

void ExperimentReader::read_preprocess(const json& j, const KeyPath& at, const NetworkSpec& network, Preprocess& out) {
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

void ExperimentReader::read_qos(const json& j, const KeyPath& at, QosSpec& out) {
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
  const json& goal = j.at("goal");
  out.goal.max_loss = goal.at("max_loss").get<double>();
  out.goal.kind = goal.value("kind", std::string("absolute")) == "relative" ? GoalKind::relative : GoalKind::absolute;
  if (out.goal.kind == GoalKind::relative && out.goal.max_loss > 1.0) {
    problem(at.key("goal").key("max_loss"),
            fmt::format("expected a fraction of the baseline between 0 and 1 for kind relative "
                        "(0.01 = 1 %), found {}", describe_json_value(goal.at("max_loss"))));
  }
}

void ExperimentReader::check_labels(const Experiment& e, const KeyPath& at) {
  const std::string metric(metric_name(e.qos.metric));
  for (const NetworkSpec& n : e.networks) {
    if (n.labels_path || e.dataset.labels_path) continue;
    const std::string whose = e.networks.size() > 1 ? fmt::format(" (network {})", n.name) : "";
    if (e.qos.metric == Metric::top1 || e.qos.metric == Metric::topk) {
      problem(at.key("metric"), fmt::format("metric {} needs class labels, but dataset.labels is not set{}", metric,
                                            whose));
    } else if (compares_with_targets(e.qos.metric) && e.qos.reference == MetricReference::labels) {
      problem(at.key("metric"),
              fmt::format("metric {} compares with targets from dataset.labels, which is not set{} "
                          "(set qos.reference: exact to compare with the exact network)", metric, whose));
    }
  }
}

void ExperimentReader::read_targets(const json& j, const KeyPath& at, std::vector<TargetSpec>& out) {
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
    const auto selector = [&](const char* key) {
      if (!t.contains(key)) return std::string();
      const json& v = t.at(key);
      return v.is_string() ? v.get<std::string>() : std::to_string(integer(v, here.key(key)));
    };
    target.platform = selector("platform");
    target.device = selector("device");
    if (t.contains("device_memory_mib"))
      target.device_memory_mib = integer(t.at("device_memory_mib"), here.key("device_memory_mib"));
    read_remote(t, here, target.remote);
    if (t.contains("batch_sizes")) {
      const json& sizes = t.at("batch_sizes");
      for (size_t b = 0; b < sizes.size(); ++b) {
        target.batch_sizes.push_back(integer(sizes[b], here.key("batch_sizes").index(b)));
      }
    }
    out.push_back(std::move(target));
  }
}

// A remote device (`caliprox deploy`); the schema checked the keys' types.
void ExperimentReader::read_remote(const json& t, const KeyPath& at, TargetSpec::Remote& out) {
  const auto text = [&](const char* key) { return t.contains(key) ? t.at(key).get<std::string>() : std::string(); };
  const auto texts = [&](const char* key) {
    return t.contains(key) ? t.at(key).get<std::vector<std::string>>() : std::vector<std::string>{};
  };
  out.transport = text("transport");
  out.host = text("host");
  if (t.contains("port")) out.port = static_cast<int>(integer(t.at("port"), at.key("port")));
  if (t.contains("identity")) out.identity = existing_file(t.at("identity"), at.key("identity"));
  out.ssh_options = texts("ssh_options");
  out.serial = text("serial");
  out.workdir = text("workdir");
  if (t.contains("abi")) out.abi = text("abi");
  out.cpus = text("cpus");
  out.prefix = texts("prefix");
  if (t.contains("binary")) out.binary = existing_file(t.at("binary"), at.key("binary"));
  for (size_t i = 0; t.contains("libraries") && i < t.at("libraries").size(); ++i)
    out.libraries.push_back(existing_file(t.at("libraries")[i], at.key("libraries").index(i)));
  if (out.transport == "ssh" && out.host.empty()) problem(at.key("host"), "transport ssh needs host ([user@]name)");
  if (!out.transport.empty() && out.workdir.empty())
    problem(at.key("workdir"), fmt::format("transport {} needs workdir (the remote working folder)", out.transport));
  if (!out.workdir.empty() && out.workdir.front() != '/')
    problem(at.key("workdir"), fmt::format("expected an absolute remote path, found '{}'", out.workdir));
}

void ExperimentReader::read_knobs(const json& j, const KeyPath& at, KnobSpaceSpec& out) {
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

void ExperimentReader::read_tune(const json& j, const KeyPath& at, TuneSpec& out) {
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

Result<Experiment> load_experiment(const std::string& path) { return load_experiment(path, ""); }

Result<Experiment> load_experiment(const std::string& path, const std::string& mirror) {
  CP_ASSIGN_OR_RETURN(YamlDocument doc, read_yaml_file(path));
  const Result<SchemaValidator>& validator = experiment_validator();
  if (!validator.ok()) return validator.status();
  CP_TRY(validate_document(validator.value(), doc));
  std::error_code ec;
  fs::path source = fs::absolute(path, ec).lexically_normal();
  if (ec) return invalid_input("{}: cannot make the path absolute: {}", path, ec.message());
  try {
    return ExperimentReader(doc, source, mirror).read();
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
