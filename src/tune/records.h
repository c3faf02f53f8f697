#pragma once
// records.jsonl: the append-only log of every finished evaluation of a long
// job (`caliprox tune`), from which a re-run with the same experiment resumes
// (DESIGN: "Long jobs append one JSON line per finished evaluation").
//
// Layout: line 1 is a header object
//   {"format": "caliprox-records", "version": 1, "fingerprint": "<hex>", "info": {...}}
// where the fingerprint identifies the experiment and search settings that
// produced the file (fingerprint_of()), and "info" is free-form (the driver
// puts a readable copy of the settings there). Every further line is one
// evaluation (EvalRecord), written with a single write() of the whole line,
// then fsync, so a kill -9 loses at most the evaluation being written: its
// line is then missing its newline ("truncated").
//
// Loading rules: a truncated or unparsable LAST line is ignored with a
// warning (logged, and kept in warnings()) and cut off before the next
// append; an unparsable line anywhere else, a header that is not one, or a
// fingerprint that differs from the expected one is Errc::invalid_input
// naming the file and the line, and the file is left untouched.
//
// Parallel workers may finish out of order, so records are not sorted by
// iteration; find() looks one up. A resumed search asks for each iteration
// before evaluating it (SearchHooks::recorded in tune/search.h).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "knobs/knobs.h"
#include "util/status.h"

namespace caliprox {

struct EvalRecord {
  // Which loop produced it: "single" (one (layer, knob) run building the
  // predictors), "search" (a strategy's candidate) or "validate" (final
  // empirical re-runs). Iterations count separately per phase, from 0.
  std::string phase = "search";
  int64_t iteration = 0;
  KnobConfig knobs;                      // node -> knob (exact nodes omitted)
  std::map<std::string, double> qos;     // per split ("tune", "test"); NaN is stored as null
  std::optional<double> qos_predicted;   // the predictor's value, when one was used
  std::optional<double> qos_loss;        // loss used by the search (metric unit)
  std::optional<double> cost;            // cost-model value (unit of the cost model)
  std::optional<double> speedup_predicted;
  std::optional<double> speedup_measured;
  double seconds = 0;                    // wall time of this evaluation
  std::string origin;                    // strategy operator that proposed it ("mutation", ...)
  // The host it ran on (speedups: the target host); append() fills in this
  // one when empty, so every record names one. "" in records written before.
  std::string host;
  // Free-form payload of phases that are not knob searches (calibrate: one
  // application run: request, reply, exit status, stderr tail); null when none.
  nlohmann::json data;
};

// Hex digest (16 digits, FNV-1a 64) of a canonical text, e.g. a JSON dump of
// the settings with sorted keys. Identity check, not a security measure.
std::string fingerprint_of(std::string_view canonical_text);
// A seed derived from a canonical text (its fingerprint), below 2^63 so that
// JSON readers hold it exactly: the seed of an application run from what
// identifies the run, so a resumed job asks exactly what the first asked.
uint64_t seed_of(std::string_view canonical_text);

class RecordStore {
 public:
  // Opens `path`, creating it with a header line when it does not exist (or
  // holds nothing but a truncated header). `info_json` is a JSON object text
  // stored in a new header ("{}" when empty). Existing records are loaded and
  // checked as described above; warnings() lists what was ignored.
  static Result<RecordStore> open(const std::string& path, const std::string& fingerprint,
                                  const std::string& info_json = "{}");
  // Reads a records file without creating, repairing or checking the
  // fingerprint (for reports); the fingerprint found is fingerprint().
  static Result<RecordStore> load(const std::string& path);

  RecordStore(RecordStore&& other) noexcept;
  RecordStore& operator=(RecordStore&& other) noexcept;
  RecordStore(const RecordStore&) = delete;
  RecordStore& operator=(const RecordStore&) = delete;
  ~RecordStore();

  const std::string& path() const { return path_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::vector<EvalRecord>& records() const { return records_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The first record of `phase` with this iteration, or null.
  const EvalRecord* find(std::string_view phase, int64_t iteration) const;
  // 1 + the highest iteration recorded for `phase` (0 when none).
  int64_t next_iteration(std::string_view phase) const;

  // Appends one line (write + fsync). Thread-compatible, not thread-safe:
  // parallel workers must serialise their calls.
  Status append(const EvalRecord& record);
  // Appends several lines with one write and one fsync (cheaper for fast
  // predicted evaluations; a kill then loses the whole unwritten batch).
  Status append_all(const std::vector<EvalRecord>& records);

 private:
  RecordStore() = default;
  Status ensure_writable();

  std::string path_;
  std::string fingerprint_;
  std::vector<EvalRecord> records_;
  std::vector<std::string> warnings_;
  std::map<std::pair<std::string, int64_t>, size_t> index_;
  uint64_t valid_bytes_ = 0;  // length of the well-formed prefix; the rest is cut before appending
  bool needs_truncate_ = false;
  bool read_only_ = false;
  int fd_ = -1;
};

// One record as its JSON line (no newline), and back. `where` names the
// file and line in errors.
std::string record_to_json_line(const EvalRecord& record);
Result<EvalRecord> record_from_json_line(std::string_view line, std::string_view where);

}  // namespace caliprox
