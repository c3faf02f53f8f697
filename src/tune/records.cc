#include "tune/records.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

#include <nlohmann/json.hpp>

#include "dist/cluster.h"
#include "util/log.h"

namespace caliprox {

namespace {

using json = nlohmann::json;

constexpr const char* kFormat = "caliprox-records";
constexpr int kVersion = 1;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// nlohmann writes NaN as null; make that explicit both ways.
json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
json optional_number(const std::optional<double>& v) { return v ? number_or_null(*v) : json(nullptr); }

Result<double> read_number(const json& j, std::string_view key, std::string_view where) {
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!j.is_number()) return invalid_input("{}: \"{}\" must be a number or null, found {}", where, key, j.type_name());
  return j.get<double>();
}

Result<std::optional<double>> read_optional(const json& obj, std::string_view key, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<double>();
  CP_ASSIGN_OR_RETURN(double v, read_number(*it, key, where));
  return std::optional<double>(v);
}

Status write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return runtime_error("cannot append to {}: {}", path, errno_text(errno));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) return runtime_error("cannot flush {} to disk: {}", path, errno_text(errno));
  return {};
}

std::string header_line(const std::string& fingerprint, const std::string& info_json) {
  json info = json::object();
  if (!info_json.empty()) info = json::parse(info_json, nullptr, false);
  if (info.is_discarded() || !info.is_object()) info = json::object();
  json h = {{"format", kFormat}, {"version", kVersion}, {"fingerprint", fingerprint}, {"info", info}};
  return h.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string fingerprint_of(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return fmt::format("{:016x}", h);
}

uint64_t seed_of(std::string_view canonical_text) {
  return std::stoull(fingerprint_of(canonical_text), nullptr, 16) >> 1;
}

std::string record_to_json_line(const EvalRecord& r) {
  json knobs = json::object();
  for (const auto& [node, knob] : r.knobs) knobs[node] = knob;
  json qos = json::object();
  for (const auto& [split, v] : r.qos) qos[split] = number_or_null(v);
  json j = {{"phase", r.phase},
            {"iteration", r.iteration},
            {"knobs", knobs},
            {"qos", qos},
            {"qos_predicted", optional_number(r.qos_predicted)},
            {"qos_loss", optional_number(r.qos_loss)},
            {"cost", optional_number(r.cost)},
            {"speedup",
             {{"predicted", optional_number(r.speedup_predicted)}, {"measured", optional_number(r.speedup_measured)}}},
            {"seconds", number_or_null(r.seconds)},
            {"origin", r.origin},
            {"host", r.host}};
  if (!r.data.is_null()) j["data"] = r.data;
  // Node names come from the ONNX file: replace invalid UTF-8 rather than throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<EvalRecord> record_from_json_line(std::string_view line, std::string_view where) {
  json j = json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded()) return invalid_input("{}: not a JSON object (corrupt line)", where);
  if (!j.is_object()) return invalid_input("{}: expected a JSON object, found {}", where, j.type_name());
  EvalRecord r;
  auto phase = j.find("phase");
  auto iteration = j.find("iteration");
  auto knobs = j.find("knobs");
  if (phase == j.end() || !phase->is_string())
    return invalid_input("{}: expected a string \"phase\" in the record", where);
  if (iteration == j.end() || !iteration->is_number_integer() || iteration->get<int64_t>() < 0)
    return invalid_input("{}: expected a non-negative integer \"iteration\" in the record", where);
  if (knobs == j.end() || !knobs->is_object())
    return invalid_input("{}: expected an object \"knobs\" (node -> knob name) in the record", where);
  r.phase = phase->get<std::string>();
  r.iteration = iteration->get<int64_t>();
  for (const auto& [node, knob] : knobs->items()) {
    if (!knob.is_string()) return invalid_input("{}: knobs.{} must be a knob name, found {}", where, node, knob.type_name());
    r.knobs[node] = knob.get<std::string>();
  }
  if (auto q = j.find("qos"); q != j.end() && !q->is_null()) {
    if (!q->is_object()) return invalid_input("{}: \"qos\" must be an object (split -> value)", where);
    for (const auto& [split, v] : q->items()) {
      CP_ASSIGN_OR_RETURN(r.qos[split], read_number(v, "qos." + split, where));
    }
  }
  CP_ASSIGN_OR_RETURN(r.qos_predicted, read_optional(j, "qos_predicted", where));
  CP_ASSIGN_OR_RETURN(r.qos_loss, read_optional(j, "qos_loss", where));
  CP_ASSIGN_OR_RETURN(r.cost, read_optional(j, "cost", where));
  if (auto s = j.find("speedup"); s != j.end() && !s->is_null()) {
    if (!s->is_object()) return invalid_input("{}: \"speedup\" must be an object {{predicted, measured}}", where);
    CP_ASSIGN_OR_RETURN(r.speedup_predicted, read_optional(*s, "predicted", where));
    CP_ASSIGN_OR_RETURN(r.speedup_measured, read_optional(*s, "measured", where));
  }
  CP_ASSIGN_OR_RETURN(auto seconds, read_optional(j, "seconds", where));
  r.seconds = seconds.value_or(0.0);
  if (auto o = j.find("origin"); o != j.end() && o->is_string()) r.origin = o->get<std::string>();
  if (auto h = j.find("host"); h != j.end() && h->is_string()) r.host = h->get<std::string>();
  if (auto d = j.find("data"); d != j.end()) r.data = *d;
  return r;
}

// ------------------------------------------------------------------- store

RecordStore::RecordStore(RecordStore&& o) noexcept { *this = std::move(o); }

RecordStore& RecordStore::operator=(RecordStore&& o) noexcept {
  if (this == &o) return *this;
  if (fd_ >= 0) ::close(fd_);
  path_ = std::move(o.path_);
  fingerprint_ = std::move(o.fingerprint_);
  records_ = std::move(o.records_);
  warnings_ = std::move(o.warnings_);
  index_ = std::move(o.index_);
  valid_bytes_ = o.valid_bytes_;
  needs_truncate_ = o.needs_truncate_;
  read_only_ = o.read_only_;
  fd_ = o.fd_;
  o.fd_ = -1;
  return *this;
}

RecordStore::~RecordStore() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

struct Parsed {
  std::string fingerprint;
  bool has_header = false;
  std::vector<EvalRecord> records;
  std::vector<std::string> warnings;
  uint64_t valid_bytes = 0;
  bool truncated_tail = false;
};

// Splits the file into lines and applies the loading rules (header above).
Result<Parsed> parse_records_file(const std::string& path, const std::string& text) {
  Parsed p;
  size_t pos = 0;
  size_t line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    const size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    const std::string_view line(text.data() + pos, (complete ? nl : text.size()) - pos);
    const size_t next = complete ? nl + 1 : text.size();
    const bool last = next >= text.size();
    const std::string where = fmt::format("{}:{}", path, line_no);
    auto drop_tail = [&](std::string_view why) {
      p.warnings.push_back(fmt::format("{}: ignoring the last line ({}); the evaluation it held will be redone",
                                       where, why));
      p.truncated_tail = true;
    };
    if (!complete) {  // every append ends in '\n': a line without one was cut short
      drop_tail("truncated: no newline at the end of the file");
      break;
    }
    if (line_no == 1) {
      json h = json::parse(line.begin(), line.end(), nullptr, false);
      if (h.is_discarded() && last) {
        drop_tail("unreadable header");
        break;
      }
      const bool is_header = !h.is_discarded() && h.is_object() && h.contains("format") &&
                             h["format"].is_string() && h["format"].get<std::string>() == kFormat;
      if (!is_header)
        return invalid_input("{}: not a caliprox records file (expected a header line with \"format\": \"{}\")",
                             where, kFormat);
      const json version = h.contains("version") ? h["version"] : json(nullptr);
      if (!version.is_number_integer() || version.get<int64_t>() != kVersion)
        return invalid_input("{}: records format version {} is not supported (expected {})", where, version.dump(),
                             kVersion);
      auto fp = h.find("fingerprint");
      if (fp == h.end() || !fp->is_string())
        return invalid_input("{}: the header has no string \"fingerprint\"", where);
      p.fingerprint = fp->get<std::string>();
      p.has_header = true;
    } else {
      auto rec = record_from_json_line(line, where);
      if (!rec.ok()) {
        if (last) {
          drop_tail("corrupt");
          break;
        }
        return rec.status().with_context("corrupt records file (a line before the last one cannot be read)");
      }
      p.records.push_back(std::move(rec).value());
    }
    p.valid_bytes = next;
    pos = next;
  }
  return p;
}

Result<std::string> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return runtime_error("cannot read {}: {}", path, errno_text(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<RecordStore> RecordStore::load(const std::string& path) {
  CP_ASSIGN_OR_RETURN(std::string text, read_whole(path));
  CP_ASSIGN_OR_RETURN(Parsed p, parse_records_file(path, text));
  RecordStore s;
  s.path_ = path;
  s.fingerprint_ = p.fingerprint;
  s.records_ = std::move(p.records);
  s.warnings_ = std::move(p.warnings);
  s.valid_bytes_ = p.valid_bytes;
  s.read_only_ = true;
  for (size_t i = 0; i < s.records_.size(); ++i) s.index_.emplace(std::make_pair(s.records_[i].phase, s.records_[i].iteration), i);
  return s;
}

Result<RecordStore> RecordStore::open(const std::string& path, const std::string& fingerprint,
                                      const std::string& info_json) {
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  RecordStore s;
  s.path_ = path;
  s.fingerprint_ = fingerprint;
  bool write_header = !exists || st.st_size == 0;
  if (!write_header) {
    CP_ASSIGN_OR_RETURN(std::string text, read_whole(path));
    CP_ASSIGN_OR_RETURN(Parsed p, parse_records_file(path, text));
    if (p.has_header && p.fingerprint != fingerprint)
      return invalid_input("{}:1: these records were made with other experiment or search settings "
                           "(fingerprint {}, expected {}); use another output folder or delete the file to "
                           "start over",
                           path, p.fingerprint, fingerprint);
    for (const auto& w : p.warnings) log_warn("{}", w);
    s.records_ = std::move(p.records);
    s.warnings_ = std::move(p.warnings);
    s.valid_bytes_ = p.valid_bytes;
    s.needs_truncate_ = p.truncated_tail;
    write_header = !p.has_header;  // the header itself was cut short: start the file again
  }
  for (size_t i = 0; i < s.records_.size(); ++i)
    s.index_.emplace(std::make_pair(s.records_[i].phase, s.records_[i].iteration), i);
  // Opened now so that an unwritable file fails here rather than after the
  // first (possibly long) evaluation; a truncated tail is cut only when the
  // first record is appended.
  s.fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (s.fd_ < 0) return runtime_error("cannot open {} for appending: {}", path, errno_text(errno));
  if (write_header) {
    if (::ftruncate(s.fd_, 0) != 0) return runtime_error("cannot truncate {}: {}", path, errno_text(errno));
    s.needs_truncate_ = false;
    CP_TRY(write_all(s.fd_, header_line(fingerprint, info_json) + "\n", path));
  }
  return s;
}

Status RecordStore::ensure_writable() {
  if (read_only_) return runtime_error("{} was loaded read-only; open it with RecordStore::open to append", path_);
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd_ < 0) return runtime_error("cannot open {} for appending: {}", path_, errno_text(errno));
  }
  if (needs_truncate_) {
    // Cut the half-written last line so the next record starts on a line of its own.
    if (::ftruncate(fd_, static_cast<off_t>(valid_bytes_)) != 0)
      return runtime_error("cannot cut the truncated last line of {}: {}", path_, errno_text(errno));
    needs_truncate_ = false;
  }
  return {};
}

const EvalRecord* RecordStore::find(std::string_view phase, int64_t iteration) const {
  auto it = index_.find(std::make_pair(std::string(phase), iteration));
  return it == index_.end() ? nullptr : &records_[it->second];
}

int64_t RecordStore::next_iteration(std::string_view phase) const {
  int64_t next = 0;
  for (const auto& r : records_)
    if (r.phase == phase) next = std::max(next, r.iteration + 1);
  return next;
}

Status RecordStore::append(const EvalRecord& record) { return append_all({record}); }

Status RecordStore::append_all(const std::vector<EvalRecord>& batch) {
  if (batch.empty()) return {};
  CP_TRY(ensure_writable());
  // Every record names the host that produced it: this one, unless the
  // evaluation ran on another rank (which filled it in).
  std::vector<EvalRecord> named(batch);
  for (auto& r : named)
    if (r.host.empty()) r.host = this_host_name();
  std::string bytes;
  for (const auto& r : named) bytes += record_to_json_line(r) + "\n";
  CP_TRY(write_all(fd_, bytes, path_));
  for (const auto& r : named) {
    records_.push_back(r);
    index_.emplace(std::make_pair(r.phase, r.iteration), records_.size() - 1);
  }
  return {};
}

}  // namespace caliprox
