// Experiment files: YAML -> JSON with positions, the schema validator, the
// shipped schema, and load_experiment() on the fixtures in
// tests/data/experiments/. Fixtures are copied into a temporary folder next to
// empty stand-ins for the files they reference, so relative path resolution is
// exercised and nothing outside the tree is needed.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiment/experiment.h"
#include "experiment/schema_validator.h"
#include "experiment/yaml_json.h"
#include "experiment_sandbox.h"

using namespace caliprox;
using namespace caliprox::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Result<SchemaValidator> validator_for(const char* schema_text) {
  return SchemaValidator::create(json::parse(schema_text));
}

std::vector<std::string> messages(const std::vector<SchemaError>& errors) {
  std::vector<std::string> out;
  for (const SchemaError& e : errors) out.push_back(e.path.dotted() + ": " + e.message);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("yaml_json: scalars resolve like YAML 1.2, quoted stay strings") {
  Result<YamlDocument> doc = parse_yaml(
      "i: 64\nq: \"64\"\nf: 0.5\ne: 1e3\nb: true\ny: yes\nn: ~\nempty:\ns: '1.0'\n"
      "h: 0x10\nt: !!str 12\nl: [1, two]\nblock: |\n  text\n",
      "inline.yaml");
  REQUIRE(doc.ok());
  const json& j = doc->root;
  CHECK(j["i"] == 64);
  CHECK(j["i"].is_number_integer());
  CHECK(j["q"] == "64");
  CHECK(j["f"] == 0.5);
  CHECK(j["e"] == 1000.0);
  CHECK(j["b"] == true);
  CHECK(j["y"] == "yes");  // YAML 1.2: only true/false are booleans
  CHECK(j["n"].is_null());
  CHECK(j["empty"].is_null());
  CHECK(j["s"] == "1.0");
  CHECK(j["h"] == 16);
  CHECK(j["t"] == "12");
  CHECK(j["l"] == json::array({1, "two"}));
  CHECK(j["block"] == "text\n");
}

TEST_CASE("yaml_json: positions are 1-based and kept for keys and values") {
  Result<YamlDocument> doc = parse_yaml("a:\n  b: [10, 20]\n  c:\nd: x\n", "pos.yaml");
  REQUIRE(doc.ok());
  KeyPath b = KeyPath().key("a").key("b");
  CHECK(doc->mark(b, true) == SourceMark{2, 3});
  CHECK(doc->mark(b) == SourceMark{2, 6});
  CHECK(doc->mark(b.index(1)) == SourceMark{2, 11});
  // An empty value points at its key, not at the next line.
  CHECK(doc->mark(KeyPath().key("a").key("c")) == SourceMark{3, 3});
  // Unknown paths fall back to the nearest known ancestor.
  CHECK(doc->mark(KeyPath().key("d").key("nope")) == SourceMark{4, 4});
  CHECK(doc->message_at(b.index(1), "bad") == "pos.yaml:2:11: a.b[1]: bad");
  CHECK(KeyPath().key("targets").index(0).key("name").pointer() == "/targets/0/name");
  CHECK(KeyPath().key("a/b").key("c.d").dotted() == "[\"a/b\"][\"c.d\"]");
  CHECK(KeyPath().dotted() == "top level");
}

TEST_CASE("yaml_json: malformed YAML, duplicates, several documents, tags") {
  Result<YamlDocument> bad = parse_yaml("a: [1, 2\nb: 3\n", "m.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Errc::invalid_input);
  CHECK(bad.status().message().starts_with("m.yaml:2:"));
  CHECK(bad.status().message().find("malformed YAML: end of sequence flow not found") != std::string::npos);

  Result<YamlDocument> dup = parse_yaml("top:\n  k: 1\n  j: 2\n  k: 3\n", "d.yaml");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().message() == "d.yaml:4:3: top: duplicate key 'k' (first defined at line 2, column 3)");

  Result<YamlDocument> two = parse_yaml("a: 1\n---\nb: 2\n", "two.yaml");
  REQUIRE_FALSE(two.ok());
  CHECK(two.status().message() == "two.yaml:3:1: malformed YAML: expected one document, found 2");

  Result<YamlDocument> tag = parse_yaml("a: !custom x\n", "t.yaml");
  REQUIRE_FALSE(tag.ok());
  CHECK(tag.status().message() == "t.yaml:1:4: a: unsupported YAML tag '!custom'");

  Result<YamlDocument> empty = parse_yaml("", "e.yaml");
  REQUIRE(empty.ok());
  CHECK(empty->root.is_null());
}

TEST_CASE("schema validator: types, bounds, enums, patterns") {
  Result<SchemaValidator> v = validator_for(R"({
    "type": "object",
    "additionalProperties": false,
    "required": ["n"],
    "properties": {
      "n": {"type": "integer", "minimum": 1, "maximum": 8},
      "x": {"type": "number", "exclusiveMinimum": 0},
      "mode": {"type": "string", "enum": ["fast", "exact"]},
      "id": {"type": "string", "pattern": "^[a-z]+$", "x-expected": "lower-case letters"},
      "s": {"type": "string", "minLength": 1},
      "c": {"const": 3},
      "list": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}},
      "set": {"type": "array", "uniqueItems": true},
      "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}
    }})");
  REQUIRE(v.ok());
  CHECK(v->validate(json::parse(R"({"n": 4})")).empty());
  CHECK(v->validate(json::parse(R"({"n": 4.0})")).empty());  // a whole number is an integer
  CHECK(messages(v->validate(json::parse(R"({"n": 4.5})"))) ==
        std::vector<std::string>{"n: expected an integer, found 4.5"});
  CHECK(messages(v->validate(json::parse(R"({"n": 9})"))) ==
        std::vector<std::string>{"n: expected an integer >= 1 and <= 8, found 9"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "x": 0})"))) ==
        std::vector<std::string>{"x: expected a number > 0, found 0"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "mode": "fats"})"))) ==
        std::vector<std::string>{"mode: expected one of 'fast', 'exact', found a string 'fats' (did you mean 'fast'?)"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "id": "A1"})"))) ==
        std::vector<std::string>{"id: expected lower-case letters, found a string 'A1'"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "s": ""})"))) ==
        std::vector<std::string>{"s: expected a non-empty string, found a string ''"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "c": 4})"))) ==
        std::vector<std::string>{"c: expected 3, found 4"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "list": [1, 2, 3]})"))) ==
        std::vector<std::string>{"list: expected a list of exactly 2 items, found a list of 3 items"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "list": [1, "2"]})"))) ==
        std::vector<std::string>{"list[1]: expected an integer, found a string '2'"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "set": [1, 2, 1]})"))) ==
        std::vector<std::string>{"set[2]: expected distinct values, found 1 again (also item 0)"});
  CHECK(messages(v->validate(json::parse(R"({"n": 1, "pair": ["a", 1]})"))) ==
        std::vector<std::string>{"pair[1]: expected a boolean (true or false), found 1"});
  CHECK(messages(v->validate(json::parse(R"([])"))) ==
        std::vector<std::string>{"top level: expected a mapping, found a list"});
}

TEST_CASE("schema validator: keys, $ref, propertyNames, alternatives") {
  Result<SchemaValidator> v = validator_for(R"({
    "type": "object",
    "additionalProperties": false,
    "properties": {
      "labels": {"$ref": "#/$defs/path"},
      "samples": {"$ref": "#/$defs/path"},
      "splits": {"type": "object", "minProperties": 1,
                 "propertyNames": {"pattern": "^[a-z]+$", "x-expected": "a lower-case name"},
                 "additionalProperties": {"type": "integer"}},
      "mean": {"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}
    },
    "$defs": {"path": {"type": "string", "minLength": 1}}})");
  REQUIRE(v.ok());
  std::vector<SchemaError> unknown = v->validate(json::parse(R"({"lables": "x"})"));
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0].message == "unknown key 'lables' (did you mean 'labels'?)");
  CHECK(unknown[0].path.is_root());
  CHECK(unknown[0].where == KeyPath().key("lables"));
  CHECK(unknown[0].at_key);
  CHECK(messages(v->validate(json::parse(R"({"zzz": 1})"))) ==
        std::vector<std::string>{"top level: unknown key 'zzz' (allowed: labels, mean, samples, splits)"});
  CHECK(messages(v->validate(json::parse(R"({"samples": 3})"))) ==
        std::vector<std::string>{"samples: expected a string, found 3"});
  CHECK(messages(v->validate(json::parse(R"({"splits": {"Tune": 1, "test": "x"}})"))) ==
        std::vector<std::string>{"splits.test: expected an integer, found a string 'x'",
                                 "splits: invalid key 'Tune': expected a lower-case name, found a string 'Tune'"});
  CHECK(messages(v->validate(json::parse(R"({"splits": {}})"))) ==
        std::vector<std::string>{"splits: expected at least 1 entry, found 0 entries"});
  CHECK(v->validate(json::parse(R"({"mean": 0.5})")).empty());
  CHECK(v->validate(json::parse(R"({"mean": [0.5, 1]})")).empty());
  // Only the list alternative has the right shape: its own complaint is reported.
  CHECK(messages(v->validate(json::parse(R"({"mean": [0.5, "a"]})"))) ==
        std::vector<std::string>{"mean[1]: expected a number, found a string 'a'"});
  CHECK(messages(v->validate(json::parse(R"({"mean": "a"})"))) ==
        std::vector<std::string>{"mean: expected a number or a list of numbers, found a string 'a'"});
}

TEST_CASE("schema validator: rejects schemas it cannot honour") {
  CHECK(unimplemented_schema_keywords(json::parse(R"({"properties": {"a": {"not": {}}}})")) ==
        std::vector<std::string>{"/properties/a: not"});
  CHECK_FALSE(validator_for(R"({"if": {}, "then": {}})").ok());
  CHECK_FALSE(validator_for(R"({"$ref": "#/$defs/missing"})").ok());
  CHECK_FALSE(validator_for(R"({"type": "text"})").ok());
  CHECK_FALSE(validator_for(R"({"pattern": "(unclosed"})").ok());
  CHECK(edit_distance("lables", "labels") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(closest_match("modle", {"input", "layout", "model", "output"}) == "model");
  CHECK(closest_match("xyz", {"input", "layout", "model", "output"}).empty());
}

TEST_CASE("experiment schema: only implemented keywords, every key described") {
  json schema = json::parse(read_text(fs::path(CALIPROX_SOURCE_ROOT) / "schemas/experiment.schema.json"));
  CHECK(unimplemented_schema_keywords(schema).empty());
  CHECK(SchemaValidator::create(schema).ok());
  // Every key a user can write carries a description (the man page mirrors them).
  std::vector<std::string> undescribed;
  std::function<void(const json&, const std::string&)> walk = [&](const json& s, const std::string& at) {
    if (!s.is_object()) return;
    for (const auto& [key, value] : s.items()) {
      if (key == "properties") {
        for (const auto& [name, sub] : value.items()) {
          if (!sub.contains("description")) undescribed.push_back(at + "/properties/" + name);
        }
      }
      if (value.is_object() || value.is_array()) {
        if (value.is_array()) {
          for (size_t i = 0; i < value.size(); ++i) walk(value[i], at + "/" + key + "/" + std::to_string(i));
        } else {
          walk(value, at + "/" + key);
        }
      }
    }
  };
  walk(schema, "");
  CHECK(undescribed == std::vector<std::string>{});
}

TEST_CASE("experiment schema: metric names are exactly the ones the QoS module knows") {
  json schema = json::parse(read_text(fs::path(CALIPROX_SOURCE_ROOT) / "schemas/experiment.schema.json"));
  const json& names = schema["$defs"]["qos"]["properties"]["metric"]["enum"];
  REQUIRE(names.size() == 8);
  for (const auto& n : names) {
    auto m = metric_from_name(n.get<std::string>());
    REQUIRE_MESSAGE(m.has_value(), n);
    CHECK(metric_name(*m) == n.get<std::string>());
  }
}

TEST_CASE("load_experiment: a complete file loads with the right values") {
  ExperimentSandbox box;
  Result<Experiment> r = load_experiment(box.stage("good.yaml"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const Experiment& e = *r;
  CHECK(e.name == "fashion-lenet");
  CHECK(e.source_path == (box.dir / "good.yaml").string());
  CHECK(e.network.model_path == (box.dir / "models/net.onnx").string());
  CHECK(e.network.input == "input");
  CHECK(e.network.output == "logits");
  CHECK(e.network.layout == "NCHW");
  CHECK(e.dataset.format == DataFormat::idx);
  CHECK(e.dataset.samples_path == (box.dir / "data/images.idx").string());
  CHECK(e.dataset.labels_path == (box.dir / "data/labels.idx").string());
  CHECK(e.dataset.preprocess.scale == doctest::Approx(1.0 / 255).epsilon(1e-15));
  CHECK(e.dataset.preprocess.mean == std::vector<double>{0.2860});
  CHECK(e.dataset.preprocess.std == std::vector<double>{0.3530});
  CHECK(e.dataset.preprocess.layout == "NCHW");
  CHECK(e.dataset.preprocess.source_layout == "NHW");
  REQUIRE(e.dataset.splits.size() == 4);
  CHECK(e.dataset.splits.at("calibrate").begin == 0);
  CHECK(e.dataset.splits.at("calibrate").end == 1000);
  CHECK(e.dataset.splits.at("tune").begin == 1000);
  CHECK(e.dataset.splits.at("test").end == 10000);
  CHECK(e.dataset.splits.at("all").end == 10000);
  CHECK(e.dataset.batch == 32);
  CHECK(e.qos.metric == Metric::top1);
  CHECK(e.qos.goal.max_loss == 1.5);
  CHECK(e.qos.goal.kind == GoalKind::absolute);
  REQUIRE(e.targets.size() == 2);
  CHECK(e.default_target().name == "host");
  CHECK(e.targets[0].backend == "onednn");
  CHECK(e.targets[0].threads == 2);
  CHECK(e.targets[0].batch_sizes == std::vector<int64_t>{1, 64});
  CHECK(e.targets[1].name == "oracle");
  CHECK(e.targets[1].backend == "reference");
}

TEST_CASE("load_experiment: defaults fill what a minimal file leaves out") {
  ExperimentSandbox box;
  Result<Experiment> r = load_experiment(box.stage("minimal.yaml"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const Experiment& e = *r;
  CHECK(e.network.layout == "NCHW");
  CHECK_FALSE(e.network.input.has_value());
  CHECK_FALSE(e.network.output.has_value());
  CHECK(e.dataset.format == DataFormat::npy);
  CHECK_FALSE(e.dataset.labels_path.has_value());
  CHECK(e.dataset.batch == 64);
  CHECK(e.dataset.preprocess.scale == 1.0);
  CHECK(e.dataset.preprocess.mean.empty());
  CHECK(e.dataset.preprocess.std.empty());
  CHECK(e.dataset.preprocess.layout == "NCHW");
  CHECK(e.dataset.preprocess.source_layout.empty());
  CHECK(e.qos.metric == Metric::mse);
  CHECK(e.qos.reference == MetricReference::exact);
  CHECK(e.qos.goal.kind == GoalKind::absolute);
  CHECK(e.qos.goal.max_loss == 0.05);
  REQUIRE(e.targets.size() == 1);
  CHECK(e.targets[0].backend == "onednn");
  CHECK(e.targets[0].threads == 1);
  CHECK(e.targets[0].batch_sizes.empty());
}

TEST_CASE("load_experiment: raw format, scalar mean, topk, relative goal") {
  ExperimentSandbox box;
  Result<Experiment> r = load_experiment(box.stage("raw.yaml"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const Experiment& e = *r;
  CHECK(e.name == "raw.images_v2");
  CHECK(e.network.layout == "NHWC");
  CHECK(e.dataset.format == DataFormat::raw);
  CHECK(e.dataset.raw.dtype == DType::f32);
  CHECK(e.dataset.raw.shape == Shape{500, 32, 32, 3});
  CHECK(e.dataset.raw.header_bytes == 16);
  CHECK(e.dataset.preprocess.mean == std::vector<double>{0.5});
  CHECK(e.dataset.preprocess.std == std::vector<double>{0.25, 0.5, 1.0});
  CHECK(e.dataset.preprocess.layout == "NHWC");  // taken from network.layout
  CHECK(e.dataset.splits.at("test").begin == 300);  // overlaps tune: allowed
  CHECK(e.qos.metric == Metric::topk);
  CHECK(e.qos.k == 3);
  CHECK(e.qos.goal.kind == GoalKind::relative);
  CHECK(e.qos.goal.max_loss == 0.02);
  CHECK(e.targets[0].backend == "reference");
}

TEST_CASE("load_experiment: absolute paths are kept, relative ones follow the file") {
  ExperimentSandbox box;
  fs::create_directories(box.dir / "exp");
  std::string text = read_text(kFixtures / "minimal.yaml");
  text.replace(text.find("models/net.onnx"), std::string("models/net.onnx").size(), "../models/net.onnx");
  text.replace(text.find("data/images.idx"), std::string("data/images.idx").size(),
               (box.dir / "data/images.idx").string());
  Result<Experiment> r = load_experiment(box.write("exp/paths.yaml", text));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->network.model_path == (box.dir / "models/net.onnx").string());
  CHECK(r->dataset.samples_path == (box.dir / "data/images.idx").string());
}

TEST_CASE("load_experiment: each error names file, line:column and key path") {
  ExperimentSandbox box;
  auto expect = [&](const std::string& fixture, const std::string& expected_tail) {
    std::string path = box.stage(fixture);
    std::string message = load_error(path);
    INFO("fixture: " << fixture);
    CHECK(message == path + ":" + expected_tail);
  };
  SUBCASE("malformed YAML") {
    expect("bad_malformed.yaml", "9:9: malformed YAML: end of sequence flow not found");
  }
  SUBCASE("misspelt key") {
    expect("bad_misspelt_key.yaml", "7:3: dataset: unknown key 'lables' (did you mean 'labels'?)");
  }
  SUBCASE("section a later version adds") {
    expect("bad_unknown_section.yaml",
           "14:1: top level: unknown key 'plugins' (allowed: adapt, application, calibrate, dataset, knobs, name, network, networks, qos, targets, tune)");
  }
  SUBCASE("quoted number is a string") {
    expect("bad_type.yaml", "9:10: dataset.batch: expected an integer, found a string '64'");
  }
  SUBCASE("missing model file") {
    std::string resolved = (box.dir / "missing/net.onnx").string();
    expect("bad_missing_model.yaml",
           fmt::format("3:10: network.model: file not found: {} ('missing/net.onnx' relative to {})", resolved,
                       box.dir.string()));
  }
  SUBCASE("raw format without raw spec") {
    expect("bad_raw_without_spec.yaml", "5:3: dataset: missing required key 'raw' (format is raw)");
  }
  SUBCASE("split out of order") {
    expect("bad_split_order.yaml",
           "10:11: dataset.splits.test: expected [begin, end] with begin < end, found [5000, 1000]");
  }
  SUBCASE("duplicate key") {
    expect("bad_duplicate_key.yaml", "10:3: dataset: duplicate key 'batch' (first defined at line 6, column 3)");
  }
}

TEST_CASE("load_experiment: several schema errors are reported in file order") {
  ExperimentSandbox box;
  std::string path = box.stage("bad_schema_values.yaml");
  std::string message = load_error(path);
  std::vector<std::string> lines;
  std::istringstream in(message);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] == path + ":2:7: name: expected a name made of letters, digits, '_', '.' and '-' "
                           "(not '.' or '..'), found a string 'my run'");
  CHECK(lines[1] == path + ":5:11: network.layout: expected one of 'NCHW', 'NHWC', found a string 'nchw' "
                           "(did you mean 'NCHW'?)");
  CHECK(lines[2] == path + ":10:28: dataset.preprocess.mean[1]: expected a number, found a string 'x'");
  CHECK(lines[3] == path + ":10:37: dataset.preprocess.std: expected a number > 0, found 0");
  CHECK(lines[4] == path + ":11:12: dataset.splits: invalid key 'Tune': expected a lower-case name "
                           "([a-z][a-z0-9_-]*), found a string 'Tune'");
  CHECK(lines[5] == "(4 more errors not shown)");

  // The errors past the first five, from the validator itself.
  Result<YamlDocument> doc = read_yaml_file(path);
  REQUIRE(doc.ok());
  json schema = json::parse(read_text(fs::path(CALIPROX_SOURCE_ROOT) / "schemas/experiment.schema.json"));
  Result<SchemaValidator> v = SchemaValidator::create(schema);
  REQUIRE(v.ok());
  Status all = report_errors(*doc, v->validate(doc->root), 100);
  CHECK(all.message().find(path + ":11:34: dataset.splits.test: expected a list [begin, end] of two sample "
                                  "indices, found a list of 3 items") != std::string::npos);
  CHECK(all.message().find(path + ":13:11: qos.metric: expected one of") != std::string::npos);
  CHECK(all.message().find("found a string 'top-1' (did you mean 'top1'?)") != std::string::npos);
  CHECK(all.message().find(path + ":14:3: qos.goal: missing required key 'max_loss'") != std::string::npos);
  CHECK(all.message().find(path + ":15:10: targets: expected a list of at least 1 item, found a list of 0 items") !=
        std::string::npos);
}

TEST_CASE("load_experiment: checks the schema cannot express") {
  ExperimentSandbox box;
  std::string path = box.stage("bad_semantics.yaml");
  Result<Experiment> r = load_experiment(path);
  REQUIRE_FALSE(r.ok());
  const std::string& m = r.status().message();
  CHECK(m.starts_with(path + ":8:3: dataset.raw: only allowed with format raw, found format idx\n"));
  CHECK(m.find(path + ":9:44: dataset.preprocess.std: expected 3 values like mean (or one for all channels), "
                      "found 2") != std::string::npos);
  CHECK(m.find(path + ":9:64: dataset.preprocess.layout: expected NCHW like network.layout") != std::string::npos);
  CHECK(m.find(path + ":12:11: qos.metric: metric top1 needs class labels, but dataset.labels is not set") !=
        std::string::npos);
  CHECK(m.find(path + ":13:3: qos.k: only used with metric topk, found metric top1") != std::string::npos);
  CHECK(m.find("(2 more errors not shown)") != std::string::npos);
}

TEST_CASE("load_experiment: relative goal above 1 and duplicate target names") {
  ExperimentSandbox box;
  std::string base = read_text(kFixtures / "minimal.yaml");
  std::string relative = base;
  relative.replace(relative.find("{max_loss: 0.05}"), 16, "{max_loss: 5, kind: relative}");
  std::string path = box.write("relative.yaml", relative);
  CHECK(load_error(path) == path + ":11:20: qos.goal.max_loss: expected a fraction of the baseline between 0 and 1 "
                                   "for kind relative (0.01 = 1 %), found 5");

  std::string twice = base + "  - name: cpu\n    backend: reference\n";
  path = box.write("twice.yaml", twice);
  CHECK(load_error(path) == path + ":14:11: targets[1].name: duplicate target name 'cpu' (also targets[0], line 13)");
}

TEST_CASE("load_experiment: unreadable file and directory as a file") {
  ExperimentSandbox box;
  std::string missing = (box.dir / "nope.yaml").string();
  CHECK(load_error(missing).starts_with(missing + ": cannot open file: "));
  std::string text = read_text(kFixtures / "minimal.yaml");
  text.replace(text.find("data/images.idx"), std::string("data/images.idx").size(), "data");
  std::string path = box.write("dir.yaml", text);
  CHECK(load_error(path) == fmt::format("{}:6:12: dataset.samples: expected a file, found a directory: {} "
                                        "('data' relative to {})",
                                        path, (box.dir / "data").string(), box.dir.string()));
}

TEST_CASE("load_experiment: the application section") {
  ExperimentSandbox box;
  const std::string minimal = read_text(kFixtures / "minimal.yaml");
  const std::string app = fs::path(CALIPROX_SOURCE_ROOT).string() + "/tests/data/apps/good.py";
  fs::create_directories(box.dir / "sim");
  fs::copy_file(app, box.dir / "sim/run.py");
  Result<Experiment> r = load_experiment(box.write("app.yaml", minimal + R"(application:
  command: [sim/run.py, --episodes, "3"]
  timeout: 30
  repeats: 5
  env: {FIELD: rows}
  record: [speed]
  goal:
    - {metric: collisions, max: 0}
    - {metric: mean_deviation, min: 0, max: 0.15}
  pass_rate: 0.9
)"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->application.has_value());
  const AppSpec& a = *r->application;
  CHECK(a.command == std::vector<std::string>{(box.dir / "sim/run.py").string(), "--episodes", "3"});
  CHECK(a.dir == box.dir.string());
  CHECK(a.timeout_s == 30);
  CHECK(a.retries == 1);
  CHECK(a.repeats == 5);
  CHECK(a.env.at("FIELD") == "rows");
  REQUIRE(a.goal.conditions.size() == 2);
  CHECK(a.goal.conditions[1].min == 0.0);
  CHECK(a.goal.conditions[1].max == 0.15);
  CHECK(a.goal.rule == RepeatRule::pass_rate);
  CHECK(a.goal.pass_rate == 0.9);
  CHECK(a.goal.confidence == 0.95);
  CHECK_FALSE(load_experiment(box.stage("minimal.yaml"))->application.has_value());

  // A program that is missing or not executable, and goals that cannot hold.
  std::ofstream(box.dir / "sim/plain.py") << "print()\n";
  const std::string bad = box.write("bad.yaml", minimal + R"(application:
  command: [sim/plain.py]
  goal:
    - {metric: collisions}
    - {metric: deviation, min: 1, max: 0}
    - {metric: collisions, max: 0}
)");
  const std::string m = load_error(bad);
  CHECK(m.find("application.command[0]: application command '" + (box.dir / "sim/plain.py").string() +
               "' is not executable") != std::string::npos);
  CHECK(m.find("application.goal[0]: the condition on 'collisions' has neither min nor max") != std::string::npos);
  CHECK(m.find("application.goal[1]: the condition on 'deviation' is empty: min 1 > max 0") != std::string::npos);
  CHECK(m.find("application.goal[2].metric: 'collisions' has a condition already") != std::string::npos);
  const std::string missing = box.write("missing.yaml", minimal + "application: {command: [nope.py], goal: [{metric: x, max: 1}]}\n");
  CHECK(load_error(missing).find("application command '" + (box.dir / "nope.py").string() + "' does not exist") !=
        std::string::npos);
}
