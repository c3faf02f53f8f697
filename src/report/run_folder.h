#pragma once
// What `caliprox report` finds in a run folder: the artifacts of the other
// subcommands (DESIGN data flow), read and recognised, in the folder itself
// and in its network subfolders (runs/<experiment>/<network>/). Knows JSON
// files, not networks or search engines.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace caliprox::report {

enum class ArtifactKind {
  pareto,        // pareto.json (tune)
  tune_records,  // records.jsonl of a tune (the search's evaluations)
  profile,       // profile.json, profile-b<N>.json (profile)
  budgets,       // budgets.json (calibrate)
  errors,        // errors.json (inject)
  joint,         // joint.json (tune --guide / --joint)
  adaptation,    // adaptation.json (adapt-sim)
  adapt_sim,     // adapt-sim.json (adapt-sim's report)
  adapt_traces,  // adapt-traces.json (adapt-sim's per-input levels)
};

struct Artifact {
  ArtifactKind kind;
  std::string path;     // relative to the run folder ("heading/pareto.json")
  std::string network;  // the subfolder it was found in; empty at the top
  nlohmann::json doc;   // records.jsonl: {"header": ..., "records": [...]}
};

// An artifact that could not be used, and why; the others are still drawn.
struct Problem {
  std::string path;
  std::string what;
};

struct RunFolder {
  std::string root;
  std::string experiment;  // the one experiment every artifact belongs to
  std::vector<Artifact> artifacts;
  std::vector<Problem> problems;

  // The artifacts of a kind, in path order.
  std::vector<const Artifact*> all(ArtifactKind kind) const;
  // The one of a kind in the same folder as `beside` (by network), or null.
  const Artifact* next_to(const Artifact& beside, ArtifactKind kind) const;
};

// Reads every artifact in `dir` and its subfolders (one level). A file that
// is not valid JSON (with its line, column and byte), or is JSON of another
// kind, becomes a Problem. invalid_input when `dir` is not a folder, when it
// holds no readable artifact (naming what was expected, and the problems), or
// when its artifacts belong to different experiments (naming them).
Result<RunFolder> read_run_folder(const std::string& dir);

// The file name an artifact kind is found under ("pareto.json").
std::string artifact_kind_name(ArtifactKind kind);

}  // namespace caliprox::report
