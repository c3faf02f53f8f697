// The experiment's adapt section (the reader's class is in reader.h).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "experiment/reader.h"

namespace caliprox {

namespace {

// A file of dataset sample indices: a JSON list, or whitespace-separated integers.
Result<std::vector<int64_t>> read_indices(const std::string& path) {
  std::ifstream f(path);
  if (!f) return invalid_input("cannot read {}", path);
  std::stringstream text;
  text << f.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  std::vector<int64_t> out;
  if (!j.is_discarded()) {
    if (!j.is_array()) return invalid_input("{}: expected a JSON list of sample indices", path);
    for (const auto& v : j) {
      if (!v.is_number_integer()) return invalid_input("{}: {} is not a sample index", path, v.dump());
      out.push_back(v.get<int64_t>());
    }
    return out;
  }
  std::istringstream in(text.str());
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long long v = std::strtoll(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0') return invalid_input("{}: '{}' is not a sample index", path, word);
    out.push_back(v);
  }
  return out;
}

}  // namespace

void ExperimentReader::read_adapt(const json& j, const KeyPath& at, AdaptSpec& out) {
  if (j.contains("strategy")) out.strategy = *adapt_strategy_from_name(j.at("strategy").get<std::string>());
  out.params.factor = j.value("factor", out.params.factor);
  out.params.less_at = j.value("less_at", out.params.less_at);
  out.params.more_at = j.value("more_at", out.params.more_at);
  if (j.contains("votes")) out.params.votes = static_cast<int>(integer(j.at("votes"), at.key("votes"), 1000));
  if (j.contains("window")) out.params.window = static_cast<int>(integer(j.at("window"), at.key("window"), 1000));
  if (out.params.less_at > out.params.more_at)
    problem(at.key("more_at"), fmt::format("expected at least less_at ({}), found {}", out.params.less_at,
                                           out.params.more_at));
  out.split = j.value("split", out.split);
  if (!j.contains("streams")) {
    out.streams = {{"persistent-30", StreamKind::persistent, 30, 0, 1, {}}, {"shuffled", StreamKind::shuffled, 30, 0, 1, {}}};
    return;
  }
  const json& streams = j.at("streams");
  for (size_t i = 0; i < streams.size(); ++i) {
    const json& s = streams[i];
    const KeyPath here = at.key("streams").index(i);
    StreamSpec spec;
    const std::string kind = s.at("kind").get<std::string>();
    spec.kind = kind == "persistent" ? StreamKind::persistent : kind == "shuffled" ? StreamKind::shuffled
                                                                                   : StreamKind::file;
    spec.mean_run = s.value("mean_run", spec.mean_run);
    if (s.contains("length")) spec.length = integer(s.at("length"), here.key("length"));
    if (s.contains("seed")) spec.seed = static_cast<uint64_t>(integer(s.at("seed"), here.key("seed")));
    if (s.contains("mean_run") && spec.kind != StreamKind::persistent)
      problem(here.key("mean_run"), fmt::format("only for kind persistent, not {}", kind), true);
    if ((spec.kind == StreamKind::file) != s.contains("path"))
      problem(here, spec.kind == StreamKind::file ? "kind file needs a path" : "path is only for kind file");
    if (s.contains("path")) {
      const std::string path = existing_file(s.at("path"), here.key("path"));
      auto indices = read_indices(path);
      if (indices.ok()) spec.indices = std::move(*indices);
      else if (std::filesystem::exists(path)) problem(here.key("path"), indices.status().message());
    }
    spec.name = spec.kind == StreamKind::persistent ? fmt::format("persistent-{:g}", spec.mean_run)
                : spec.kind == StreamKind::shuffled || !s.contains("path")
                    ? std::string(kind)
                    : std::filesystem::path(s.at("path").get<std::string>()).stem().string();
    for (const StreamSpec& before : out.streams)
      if (before.name == spec.name && before.seed == spec.seed)
        spec.name += fmt::format("-{}", i);
    out.streams.push_back(std::move(spec));
  }
}

}  // namespace caliprox
