#pragma once
// Staging: the files of an experiment (YAML, models, datasets, the
// application's own files) go from rank 0 to every worker, so an MPI job
// needs no shared filesystem. Each worker keeps a content-addressed cache
//   <stage dir>/objects/<sha256>
// and lays the job's files out under a mirror of their paths on rank 0:
//   <stage dir>/trees/<manifest id>/<absolute path on rank 0>
// so that relative paths in the experiment, and the application's working
// folder, resolve there as they do on rank 0. A cached object is used only
// when its SHA-256 still matches; a received one is checked before it is
// renamed into place, so a cut transfer leaves nothing behind.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/cluster.h"
#include "util/status.h"

namespace caliprox {

struct StagedFile {
  std::string path;  // absolute, on rank 0
  std::string sha256;
  uint64_t size = 0;
  bool executable = false;  // kept executable on the workers (a program to run)
};

struct StageManifest {
  std::vector<StagedFile> files;  // sorted by path, no duplicates
  std::string id;                 // SHA-256 of the listing: names the mirror tree
  std::string primary;            // the file the job starts from (the experiment)
  nlohmann::json to_json() const;
  static Result<StageManifest> from_json(const nlohmann::json& j);
};

// Hashes `paths` (absolute; duplicates and order do not matter). Errors name
// a file that cannot be read.
Result<StageManifest> make_manifest(std::vector<std::string> paths);

// The cache folder: $CALIPROX_STAGE_DIR, else $XDG_CACHE_HOME/caliprox/stage,
// else $HOME/.cache/caliprox/stage.
std::string default_stage_dir();

struct StageOutcome {
  std::string mirror;         // a worker's mirror root ("" on rank 0)
  std::string primary;        // the manifest's primary file (rank 0's path)
  uint64_t sent_bytes = 0;    // rank 0: bytes sent to all workers
  uint64_t cached_files = 0;  // rank 0: files the workers already had
  uint64_t sent_files = 0;
};

// Collective over the cluster (rank 0 passes the manifest, workers null).
// Workers report what they lack, rank 0 sends it, workers check and lay
// out the tree. Any worker's failure (a cache folder that cannot be
// written, a file whose hash does not match after transfer) fails the
// whole staging on every rank; rank 0's error names the rank, its host and
// the cause.
Result<StageOutcome> stage_files(Cluster& cluster, const StageManifest* manifest, const std::string& stage_dir);

}  // namespace caliprox
