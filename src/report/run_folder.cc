#include "report/run_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace caliprox::report {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// How each artifact is recognised: its file name, and what its content must
// hold (a "format" value, or the keys its schema requires).
struct Recogniser {
  ArtifactKind kind;
  const char* file;    // exact name; "profile-b*.json" is matched apart
  const char* format;  // the "format" value, or null for files without one
  std::vector<const char*> keys;
  const char* what;  // for messages: "a Pareto frontier written by caliprox tune"
};

const std::vector<Recogniser>& recognisers() {
  static const std::vector<Recogniser> table = {
      {ArtifactKind::pareto,
       "pareto.json",
       nullptr,
       {"experiment", "goal", "baseline", "configurations"},
       "a Pareto frontier written by caliprox tune"},
      {ArtifactKind::tune_records, "records.jsonl", "caliprox-records", {}, "the records of caliprox tune"},
      {ArtifactKind::profile,
       "profile.json",
       nullptr,
       {"experiment", "target", "baseline", "layers"},
       "a profile written by caliprox profile"},
      {ArtifactKind::budgets,
       "budgets.json",
       "caliprox-budgets",
       {"experiment", "axes", "points", "region"},
       "error budgets written by caliprox calibrate"},
      {ArtifactKind::errors,
       "errors.json",
       "caliprox-errors",
       {"experiment", "network", "candidates"},
       "error statistics written by caliprox inject"},
      {ArtifactKind::joint,
       "joint.json",
       "caliprox-joint-tune",
       {"experiment", "finalists"},
       "a guided tune written by caliprox tune --guide / --joint"},
      {ArtifactKind::adaptation,
       "adaptation.json",
       "caliprox-adaptation",
       {"experiment", "levels"},
       "an adaptation table written by caliprox adapt-sim"},
      {ArtifactKind::adapt_sim,
       "adapt-sim.json",
       "caliprox-adapt-sim",
       {"experiment", "streams"},
       "a simulation report written by caliprox adapt-sim"},
      {ArtifactKind::adapt_traces, "adapt-traces.json", nullptr, {}, "adaptation traces written by caliprox adapt-sim"},
  };
  return table;
}

const Recogniser* recogniser_for(const std::string& name) {
  const bool per_batch_profile = name.starts_with("profile-b") && name.ends_with(".json");
  for (const Recogniser& r : recognisers())
    if (name == r.file || (per_batch_profile && r.kind == ArtifactKind::profile)) return &r;
  return nullptr;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The parse error of `text`, or the document.
Result<json> parse(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 3, column 16: syntax error ..."
    const std::string what = e.what();
    std::string where = fmt::format("byte {}", e.byte), why = what;
    if (auto at = what.find(" at line "); at != std::string::npos) {
      const auto colon = what.find(": ", at);
      where = fmt::format("{} (byte {})", what.substr(at + 4, colon - at - 4), e.byte);
      why = colon == std::string::npos ? what : what.substr(colon + 2);
    }
    return invalid_input("not valid JSON at {}: {}", where, why);
  }
}

// records.jsonl: the header line and the evaluations after it. A line that
// does not parse (a run killed mid-write leaves one at the end) is a
// problem of its own; the lines before it are kept.
Result<json> parse_records(const std::string& text, std::string& warning) {
  json doc = {{"header", nullptr}, {"records", json::array()}};
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    json v = json::parse(line, nullptr, false);
    if (v.is_discarded() || !v.is_object()) {
      if (n == 1) return invalid_input("line 1 is not a JSON object (expected the records header)");
      warning = fmt::format("line {} is not a JSON object (a run cut short?): the {} evaluations before it are drawn",
                            n, doc["records"].size());
      break;
    }
    if (n == 1) doc["header"] = std::move(v);
    else doc["records"].push_back(std::move(v));
  }
  if (doc["header"].is_null()) return invalid_input("empty (expected a header line and one line per evaluation)");
  return doc;
}

// Why `doc` is not what `r` expects, or empty when it is.
std::string mismatch(const Recogniser& r, const json& doc) {
  if (!doc.is_object()) return fmt::format("not {} (expected a JSON object, found {})", r.what, doc.type_name());
  if (r.format) {
    const json* f = doc.contains("format") ? &doc["format"] : nullptr;
    if (!f || !f->is_string() || f->get<std::string>() != r.format)
      return fmt::format("not {} (expected \"format\": \"{}\", found {})", r.what, r.format,
                         f ? f->dump() : std::string("no \"format\""));
  }
  for (const char* key : r.keys)
    if (!doc.contains(key)) return fmt::format("not {} (expected the key \"{}\", which it lacks)", r.what, key);
  return {};
}

// The experiment an artifact names (empty for adapt-traces.json).
std::string experiment_of(const Artifact& a) {
  if (a.kind == ArtifactKind::adapt_traces) return {};
  const json* d = &a.doc;
  if (a.kind == ArtifactKind::tune_records) {
    const json& h = a.doc.at("header");
    if (!h.contains("info") || !h.at("info").is_object()) return {};
    d = &h.at("info");
  }
  if (!d->contains("experiment") || !(*d)["experiment"].is_string()) return {};
  return (*d)["experiment"].get<std::string>();
}

// Reads one file into out.artifacts, or a Problem where it cannot be used.
// A records.jsonl that is not a tune's (calibrate writes one too) is skipped.
void read_one(const fs::path& file, const Recogniser& r, const std::string& rel, const std::string& network,
              RunFolder& out) {
  const std::string text = read_text(file);
  if (text.empty()) {
    out.problems.push_back({rel, fmt::format("empty (expected {})", r.what)});
    return;
  }
  std::string warning;
  Result<json> doc = r.kind == ArtifactKind::tune_records ? parse_records(text, warning) : parse(text);
  if (!doc.ok()) {
    out.problems.push_back({rel, doc.status().message()});
    return;
  }
  if (r.kind == ArtifactKind::tune_records) {
    const json& h = (*doc)["header"];
    if (h.value("format", "") != "caliprox-records") {
      out.problems.push_back(
          {rel, fmt::format("not {} (expected a header with \"format\": \"caliprox-records\")", r.what)});
      return;
    }
    // calibrate's records (no search settings) feed budgets.json, which is drawn instead.
    if (!h.contains("info") || !h["info"].is_object() || !h["info"].contains("search")) return;
  } else if (std::string why = mismatch(r, *doc); !why.empty()) {
    out.problems.push_back({rel, why});
    return;
  }
  if (!warning.empty()) out.problems.push_back({rel, warning});
  out.artifacts.push_back({r.kind, rel, network, std::move(*doc)});
}

void scan(const fs::path& dir, const std::string& prefix, const std::string& network, RunFolder& out, int depth) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e);
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
  for (const auto& e : entries) {
    const std::string name = e.path().filename().string();
    if (e.is_directory(ec)) {
      if (depth == 0 && name != "requests") scan(e.path(), prefix + name + "/", name, out, depth + 1);
      continue;
    }
    const Recogniser* r = recogniser_for(name);
    if (!r || !e.is_regular_file(ec)) continue;
    try {
      read_one(e.path(), *r, prefix + name, network, out);
    } catch (const json::exception& x) {  // a key of the wrong type, say ("format": 3)
      out.problems.push_back({prefix + name, fmt::format("not {} ({})", r->what, x.what())});
    }
  }
}

std::string expected_list() {
  return "pareto.json and records.jsonl (caliprox tune), profile.json (profile), budgets.json (calibrate), "
         "errors.json (inject), joint.json (tune --guide / --joint), adaptation.json, adapt-sim.json and "
         "adapt-traces.json (adapt-sim), in the folder or in its network subfolders";
}

}  // namespace

std::vector<const Artifact*> RunFolder::all(ArtifactKind kind) const {
  std::vector<const Artifact*> out;
  for (const Artifact& a : artifacts)
    if (a.kind == kind) out.push_back(&a);
  return out;
}

const Artifact* RunFolder::next_to(const Artifact& beside, ArtifactKind kind) const {
  for (const Artifact& a : artifacts)
    if (a.kind == kind && a.network == beside.network) return &a;
  return nullptr;
}

std::string artifact_kind_name(ArtifactKind kind) {
  for (const Recogniser& r : recognisers())
    if (r.kind == kind) return r.file;
  return "?";
}

Result<RunFolder> read_run_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return invalid_input(
        "{}: {} (expected a run folder: the -o folder of tune, profile, calibrate, inject or adapt-sim)", dir,
        fs::exists(dir, ec) ? "not a folder" : "no such folder");
  RunFolder out;
  out.root = dir;
  scan(dir, "", "", out, 0);
  if (out.artifacts.empty()) {
    std::string problems;
    for (const Problem& p : out.problems) problems += fmt::format("\n  {}: {}", p.path, p.what);
    return invalid_input("{}: no caliprox artifact to draw{}\nexpected {}", dir,
                         problems.empty() ? std::string(" (the folder holds none)") : ":" + problems, expected_list());
  }
  std::map<std::string, std::vector<std::string>> by_experiment;
  for (const Artifact& a : out.artifacts)
    if (std::string e = experiment_of(a); !e.empty()) by_experiment[e].push_back(a.path);
  if (by_experiment.size() > 1) {
    std::string which;
    for (const auto& [name, paths] : by_experiment)
      which += fmt::format("\n  experiment '{}': {}", name, fmt::join(paths, ", "));
    return invalid_input("{}: artifacts of {} different experiments in one folder:{}\n"
                         "report one experiment's run folder at a time",
                         dir, by_experiment.size(), which);
  }
  if (!by_experiment.empty()) out.experiment = by_experiment.begin()->first;
  return out;
}

}  // namespace caliprox::report
