#pragma once
// The experiment reader (private to src/experiment/): converts a document
// the schema has accepted (so types and enums are known to be right) into
// the typed struct, applying defaults and collecting the problems the
// schema cannot express. experiment.cc reads the network, data, QoS,
// targets and tuning sections; experiment_app.cc the networks, their
// fine-tune hooks, the application and calibrate sections.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiment/experiment.h"
#include "experiment/schema_validator.h"
#include "experiment/yaml_json.h"

namespace caliprox {

class ExperimentReader {
 public:
  using json = nlohmann::json;
  ExperimentReader(const YamlDocument& doc, const std::filesystem::path& source, std::filesystem::path mirror = {})
      : doc_(doc), source_(source), base_dir_(source.parent_path()), mirror_(std::move(mirror)) {}

  Result<Experiment> read();

 private:
  void problem(const KeyPath& path, std::string message, bool at_key = false);
  int64_t integer(const json& j, const KeyPath& path, int64_t max = std::numeric_limits<int64_t>::max());
  // Resolves against the experiment file's folder and checks the file exists.
  std::string existing_file(const json& j, const KeyPath& path);
  static std::vector<double> channel_values(const json& j);

  void read_network(const json& j, const KeyPath& at, NetworkSpec& out);
  // `network:` or `networks:` (exactly one of them), into e.networks.
  void read_networks(const json& root, Experiment& e);
  void read_dataset(const json& j, const KeyPath& at, const NetworkSpec& network, DatasetSpec& out);
  void read_raw(const json& j, const KeyPath& at, RawSpec& out);
  void read_preprocess(const json& j, const KeyPath& at, const NetworkSpec& network, Preprocess& out);
  void read_qos(const json& j, const KeyPath& at, QosSpec& out);
  // What the QoS metric needs from each network's labels.
  void check_labels(const Experiment& e, const KeyPath& at);
  void read_targets(const json& j, const KeyPath& at, std::vector<TargetSpec>& out);
  void read_remote(const json& t, const KeyPath& at, TargetSpec::Remote& out);
  void read_knobs(const json& j, const KeyPath& at, KnobSpaceSpec& out);
  void read_tune(const json& j, const KeyPath& at, TuneSpec& out);
  void read_application(const json& j, const KeyPath& at, AppSpec& out);
  void read_finetune(const json& j, const KeyPath& at, FinetuneSpec& out);
  // An external command's argv: the program resolved against this file's
  // folder and checked to be executable now (`what` names it in errors).
  std::vector<std::string> read_command(const json& j, const KeyPath& at, const char* what);
  void read_adapt(const json& j, const KeyPath& at, AdaptSpec& out);
  void read_calibrate(const json& j, const KeyPath& at, const std::vector<NetworkSpec>& networks,
                      CalibrateSpec& out);

  template <typename E>
  void mode(const json& j, const KeyPath& at, const char* key, std::optional<E> (*from_name)(std::string_view),
            E& out) {
    if (!j.contains(key)) return;
    const std::string name = j.at(key).get<std::string>();
    if (auto e = from_name(name)) out = *e;
    else problem(at.key(key), fmt::format("unknown {} '{}'", key, name));
  }

  const YamlDocument& doc_;
  std::filesystem::path source_;
  std::filesystem::path base_dir_;
  // An MPI worker's mirror of rank 0's files (dist/stage.h): absolute paths
  // in the file resolve under it. Empty: none.
  std::filesystem::path mirror_;
  std::vector<SchemaError> problems_;
};

}  // namespace caliprox
