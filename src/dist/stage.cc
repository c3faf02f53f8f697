#include "dist/stage.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "util/atomic_file.h"
#include "util/sha256.h"

namespace caliprox {

namespace fs = std::filesystem;

namespace {

constexpr size_t kChunk = size_t{4} << 20;

// Whether the cache holds `f` intact (its hash is checked on every use).
bool cached(const std::string& object, const StagedFile& f) {
  std::error_code ec;
  if (fs::file_size(object, ec) != f.size || ec) return false;
  Result<std::string> h = sha256_file(object);
  return h.ok() && *h == f.sha256;
}

// A worker: receives `f` into the cache, checks it, renames it into place.
// Every chunk rank 0 sends is received even after a write fails, so that
// rank 0 is never left waiting on a send.
Status receive_object(Cluster& c, const StagedFile& f, const std::string& object) {
  const std::string part = fmt::format("{}.part-{}", object, ::getpid());
  std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(part.c_str(), "wb"), &std::fclose);
  Status st = out ? Status() : runtime_error("cannot write {}: {}", part, std::strerror(errno));
  Sha256 h;
  uint64_t got = 0;
  do {
    CP_ASSIGN_OR_RETURN(std::string chunk, c.from_root(Cluster::kStageData));
    h.update(chunk);
    if (st.ok() && std::fwrite(chunk.data(), 1, chunk.size(), out.get()) != chunk.size())
      st = runtime_error("cannot write {}: {}", part, std::strerror(errno));
    got += chunk.size();
  } while (got < f.size);
  if (out && std::fclose(out.release()) != 0 && st.ok())
    st = runtime_error("cannot write {}: {}", part, std::strerror(errno));
  if (const std::string digest = h.hex_digest(); st.ok() && digest != f.sha256)
    st = runtime_error("{}: received {} bytes with SHA-256 {}, expected {}", f.path, got, digest, f.sha256);
  if (st.ok() && ::chmod(part.c_str(), f.executable ? 0755 : 0644) != 0)
    st = runtime_error("cannot set the mode of {}: {}", part, std::strerror(errno));
  if (st.ok() && std::rename(part.c_str(), object.c_str()) != 0)
    st = runtime_error("cannot rename {} to {}: {}", part, object, std::strerror(errno));
  if (!st.ok()) std::remove(part.c_str());
  return st;
}

// A worker: the file's place in the mirror, a hard link to its object (a
// copy where links cannot be made), replaced atomically.
Status place(const std::string& object, const std::string& at) {
  std::error_code same;
  if (fs::equivalent(object, at, same)) return {};  // already this object's link
  CP_TRY(ensure_directory(fs::path(at).parent_path().string()));
  const std::string tmp = fmt::format("{}.link-{}", at, ::getpid());
  std::remove(tmp.c_str());
  if (::link(object.c_str(), tmp.c_str()) != 0) {
    std::error_code ec;
    fs::copy_file(object, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) return runtime_error("cannot place {} at {}: {}", object, at, ec.message());
  }
  if (std::rename(tmp.c_str(), at.c_str()) != 0) {
    std::remove(tmp.c_str());
    return runtime_error("cannot place {}: {}", at, std::strerror(errno));
  }
  return {};
}

// Sends exactly the manifest's f.size bytes (one empty chunk for an empty
// file), as the worker counts them; a file changed since it was hashed is
// then caught by the worker's hash check, never by a hang.
Status send_file(Cluster& c, int to, const StagedFile& f, uint64_t& sent) {
  std::ifstream in(f.path, std::ios::binary);
  if (!in) return runtime_error("{}: cannot read it to stage it", f.path);
  std::string chunk;
  uint64_t left = f.size;
  do {
    chunk.assign(static_cast<size_t>(std::min<uint64_t>(left, kChunk)), '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    CP_TRY(c.send(to, Cluster::kStageData, chunk));
    sent += chunk.size();
    left -= chunk.size();
  } while (left > 0);
  return {};
}

// A worker's part; its outcome goes to rank 0 either way.
Result<std::vector<size_t>> missing(const StageManifest& m, const std::string& dir) {
  CP_TRY(ensure_directory(dir + "/objects"));
  if (::access((dir + "/objects").c_str(), W_OK) != 0)
    return runtime_error("the stage folder {}/objects is not writable: {}", dir, std::strerror(errno));
  std::vector<size_t> need;
  for (size_t i = 0; i < m.files.size(); ++i)
    if (!cached(dir + "/objects/" + m.files[i].sha256, m.files[i])) need.push_back(i);
  return need;
}

nlohmann::json outcome_json(const Status& st) {
  return st.ok() ? nlohmann::json{{"ok", true}} : nlohmann::json{{"error", st.message()}};
}

// Rank 0: every worker's report, or an error naming each one that failed.
Result<std::vector<nlohmann::json>> reports(Cluster& c) {
  CP_ASSIGN_OR_RETURN(std::vector<std::string> texts, c.collect(Cluster::kStage));
  std::vector<nlohmann::json> out(texts.size());
  std::string errors;
  for (int r = 1; r < c.size(); ++r) {
    out[static_cast<size_t>(r)] = nlohmann::json::parse(texts[static_cast<size_t>(r)], nullptr, false);
    const nlohmann::json& j = out[static_cast<size_t>(r)];
    if (!j.is_object()) errors += fmt::format("\n  rank {} ({}): unreadable staging report", r, c.host(r));
    else if (j.contains("error"))
      errors += fmt::format("\n  rank {} ({}): {}", r, c.host(r), j["error"].get<std::string>());
  }
  if (!errors.empty()) return runtime_error("staging the experiment's files to the workers failed:{}", errors);
  return out;
}

Result<StageOutcome> stage_as_root(Cluster& c, const StageManifest& m) {
  StageOutcome out;
  CP_TRY(c.broadcast(m.to_json().dump()));
  CP_ASSIGN_OR_RETURN(std::vector<nlohmann::json> need, reports(c));
  for (int r = 1; r < c.size(); ++r) {
    CP_TRY(c.send(r, Cluster::kStage, "go"));
    const std::vector<size_t> files = need[static_cast<size_t>(r)].value("need", std::vector<size_t>{});
    out.cached_files += m.files.size() - files.size();
    for (size_t i : files) {
      CP_TRY(send_file(c, r, m.files.at(i), out.sent_bytes));
      ++out.sent_files;
    }
  }
  CP_TRY(reports(c).status());
  // Every worker placed its files: release them (a failure above ends the
  // job instead, so that no worker exits before rank 0 has said why).
  for (int r = 1; r < c.size(); ++r) CP_TRY(c.send(r, Cluster::kStage, "ready"));
  return out;
}

Result<StageOutcome> stage_as_worker(Cluster& c, const std::string& dir) {
  CP_ASSIGN_OR_RETURN(std::string text, c.from_root(Cluster::kHello));
  CP_ASSIGN_OR_RETURN(StageManifest m, StageManifest::from_json(nlohmann::json::parse(text, nullptr, false)));
  Result<std::vector<size_t>> need = missing(m, dir);
  CP_TRY(c.send(0, Cluster::kStage,
                need.ok() ? nlohmann::json{{"need", *need}}.dump() : outcome_json(need.status()).dump()));
  CP_TRY(c.from_root(Cluster::kStage).status());  // rank 0's go; its end when another rank failed
  Status st;
  for (size_t i : *need) {
    const StagedFile& f = m.files[i];
    Status one = receive_object(c, f, dir + "/objects/" + f.sha256);
    if (c.ended()) return one;
    if (st.ok()) st = std::move(one);
  }
  StageOutcome out;
  out.mirror = dir + "/trees/" + m.id;
  out.primary = m.primary;
  for (size_t i = 0; st.ok() && i < m.files.size(); ++i)
    st = place(dir + "/objects/" + m.files[i].sha256, out.mirror + m.files[i].path);
  CP_TRY(c.send(0, Cluster::kStage, outcome_json(st).dump()));
  CP_TRY(c.from_root(Cluster::kStage).status());  // ready; rank 0's end when any rank failed
  CP_TRY(st);
  return out;
}

}  // namespace

nlohmann::json StageManifest::to_json() const {
  nlohmann::json files_j = nlohmann::json::array();
  for (const StagedFile& f : files) files_j.push_back({f.path, f.sha256, f.size, f.executable});
  return {{"id", id}, {"primary", primary}, {"files", files_j}};
}

Result<StageManifest> StageManifest::from_json(const nlohmann::json& j) {
  StageManifest m;
  try {
    m.id = j.at("id").get<std::string>();
    m.primary = j.at("primary").get<std::string>();
    for (const auto& f : j.at("files")) m.files.push_back({f.at(0), f.at(1), f.at(2), f.at(3)});
  } catch (const nlohmann::json::exception& e) {
    return runtime_error("unreadable staging manifest from rank 0: {}", e.what());
  }
  return m;
}

Result<StageManifest> make_manifest(std::vector<std::string> paths) {
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  StageManifest m;
  Sha256 listing;
  for (const std::string& p : paths) {
    if (!fs::path(p).is_absolute()) return runtime_error("staging: {} is not an absolute path", p);
    std::error_code ec;
    const uint64_t size = fs::file_size(p, ec);
    if (ec) return invalid_input("{}: cannot stage it: {}", p, ec.message());
    CP_ASSIGN_OR_RETURN(std::string sha, sha256_file(p));
    const bool exec = ::access(p.c_str(), X_OK) == 0;
    listing.update(fmt::format("{}\n{}\n{}\n{}\n", p, sha, size, exec));
    m.files.push_back({p, std::move(sha), size, exec});
  }
  m.id = listing.hex_digest();
  return m;
}

std::string default_stage_dir() {
  if (const char* d = std::getenv("CALIPROX_STAGE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/caliprox/stage";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/caliprox/stage";
}

Result<StageOutcome> stage_files(Cluster& cluster, const StageManifest* manifest, const std::string& stage_dir) {
  if (cluster.rank() == 0) {
    if (!manifest) return runtime_error("stage_files: rank 0 needs the manifest");
    return stage_as_root(cluster, *manifest);
  }
  return stage_as_worker(cluster, stage_dir);
}

}  // namespace caliprox
