// The tuning library (src/tune): measurement statistics and hygiene, the
// records.jsonl store, Pareto logic and artifacts, and the predictors and
// cost models. The search strategies are in test_tune_search.cc.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/cluster.h"
#include "experiment/schema_validator.h"
#include "tune/measure.h"
#include "tune/pareto.h"
#include "tune/predict.h"
#include "tune/records.h"
#include "tune/rng.h"

using namespace caliprox;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / fmt::format("caliprox-test-tune-{}-{}", ::getpid(), counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<SchemaError> validate_with(const std::string& schema_file, const json& doc) {
  auto validator = SchemaValidator::create(json::parse(read_text(fs::path(CALIPROX_SOURCE_ROOT) / schema_file)));
  REQUIRE_MESSAGE(validator.ok(), validator.status().message());
  return validator->validate(doc);
}

std::string describe(const std::vector<SchemaError>& errors) {
  std::string s;
  for (const auto& e : errors) s += e.message + "\n";
  return s;
}

}  // namespace

// ------------------------------------------------------------------- measure

TEST_CASE("tune: order-statistic median interval ranks for n = 20 and 50") {
  auto r20 = median_ci_ranks(20, 0.95);
  REQUIRE(r20.has_value());
  CHECK(r20->lower == 6);
  CHECK(r20->upper == 15);
  CHECK(r20->coverage == doctest::Approx(0.958611).epsilon(1e-5));
  auto r50 = median_ci_ranks(50, 0.95);
  REQUIRE(r50.has_value());
  CHECK(r50->lower == 18);
  CHECK(r50->upper == 33);
  CHECK(r50->coverage == doctest::Approx(0.967161).epsilon(1e-5));
  CHECK(!median_ci_ranks(5, 0.95).has_value());  // even (min, max) covers only 93.75 %
  auto r6 = median_ci_ranks(6, 0.95);
  REQUIRE(r6.has_value());
  CHECK(r6->lower == 1);
  CHECK(r6->upper == 6);
  // Large n must not underflow 2^-n.
  auto r5000 = median_ci_ranks(5000, 0.95);
  REQUIRE(r5000.has_value());
  CHECK(r5000->coverage >= 0.95);
  CHECK(r5000->lower > 2400);

  MedianCi few = median_ci_order_statistics({3, 1, 2}, 0.95);
  CHECK(!few.has_interval);
  CHECK(few.median == 2);
  CHECK(few.lo == 1);
  CHECK(few.hi == 3);
}

TEST_CASE("tune: median confidence intervals cover the true median about 95 % of the time") {
  const uint64_t seed = 20240611;
  MESSAGE("seed " << seed);
  Rng rng(seed);
  // Exponential(1) samples: skewed, true median ln 2.
  auto sample = [&](size_t n) {
    std::vector<double> v(n);
    for (double& x : v) x = -std::log(1.0 - rng.uniform());
    return v;
  };
  const double truth = std::log(2.0);
  int os_hits = 0, boot_hits = 0;
  const int trials = 2000, boot_trials = 300;
  for (int t = 0; t < trials; ++t) {
    MedianCi ci = median_ci_order_statistics(sample(20));
    REQUIRE(ci.has_interval);
    os_hits += ci.lo <= truth && truth <= ci.hi;
  }
  for (int t = 0; t < boot_trials; ++t) {
    MedianCi ci = median_ci_bootstrap(sample(50), 0.95, 400, static_cast<uint64_t>(t));
    boot_hits += ci.lo <= truth && truth <= ci.hi;
  }
  // Exact coverage is 0.9586 for n = 20: +-3.5 binomial standard deviations.
  const double os_rate = os_hits / static_cast<double>(trials);
  CHECK(os_rate > 0.943);
  CHECK(os_rate < 0.974);
  // The percentile bootstrap of a median is only approximately 95 %.
  CHECK(boot_hits / static_cast<double>(boot_trials) > 0.85);

  const std::vector<double> v = sample(30);
  MedianCi a = median_ci_bootstrap(v, 0.95, 500, 7), b = median_ci_bootstrap(v, 0.95, 500, 7);
  CHECK(a.lo == b.lo);
  CHECK(a.hi == b.hi);
  CHECK(a.lo <= a.median);
  CHECK(a.median <= a.hi);
}

TEST_CASE("tune: interleaved measurement runs A B A B until the count and the time are reached") {
  double t = 0;
  std::string log;
  auto fn = [&](char name, double seconds) -> MeasuredFn {
    return [&, name, seconds] {
      log += name;
      t += seconds;
      return Status();
    };
  };
  RepeatPolicy policy;
  policy.warmup_rounds = 1;
  policy.min_rounds = 3;
  policy.min_seconds = 1.0;
  auto r = measure_interleaved({fn('A', 0.125), fn('B', 0.25)}, policy, nullptr, [&] { return t; });
  REQUIRE(r.ok());
  // A needs 8 runs of 0.125 s to reach 1 s; B already has 1 s after 4.
  CHECK(r->rounds == 8);
  CHECK(!r->hit_cap);
  CHECK(log == "AB" + std::string("ABABABABABABABAB"));
  REQUIRE(r->seconds.size() == 2);
  CHECK(r->seconds[0] == std::vector<double>(8, 0.125));
  CHECK(r->seconds[1] == std::vector<double>(8, 0.25));
  CHECK(r->joules.empty());

  policy.max_rounds = 5;
  auto capped = measure_interleaved({fn('A', 0.125)}, policy, nullptr, [&] { return t; });
  REQUIRE(capped.ok());
  CHECK(capped->rounds == 5);
  CHECK(capped->hit_cap);

  auto failing = measure_interleaved({[] { return runtime_error("backend exploded"); }}, policy, nullptr,
                                     [&] { return t; });
  REQUIRE(!failing.ok());
  CHECK(contains(failing.status().message(), "backend exploded"));
  CHECK(!measure_interleaved({}, policy).ok());

  // Set-ups run untimed before every run of their callable.
  log.clear();
  policy.min_rounds = policy.max_rounds = 2;
  auto setup = [&](char name) -> MeasuredFn {
    return [&, name] {
      log += name;
      t += 100;  // never counted
      return Status();
    };
  };
  auto with_setup = measure_interleaved({fn('A', 0.125), fn('B', 0.25)}, policy, nullptr, [&] { return t; },
                                        {setup('a'), setup('b')});
  REQUIRE(with_setup.ok());
  CHECK(log == "aAbB" + std::string("aAbBaAbB"));
  CHECK(with_setup->seconds[0] == std::vector<double>(2, 0.125));
  CHECK(with_setup->seconds[1] == std::vector<double>(2, 0.25));
  CHECK(!measure_interleaved({fn('A', 0.125)}, policy, nullptr, [&] { return t; }, {setup('a'), setup('b')}).ok());
}

TEST_CASE("tune: RAPL energy from a powercap tree, with wrap-around and reasons") {
  TempDir dir;
  auto domain = [&](const std::string& name, const std::string& label, uint64_t energy, uint64_t range) {
    fs::create_directories(dir.path / name);
    write_text(dir.file(name + "/energy_uj"), fmt::format("{}\n", energy));
    write_text(dir.file(name + "/max_energy_range_uj"), fmt::format("{}\n", range));
    write_text(dir.file(name + "/name"), label + "\n");
  };
  domain("intel-rapl:0", "package-0", 4900, 5000);
  domain("intel-rapl:0:0", "core", 100, 5000);  // part of package 0: not added again
  domain("intel-rapl:1", "package-1", 10, 1000000);
  EnergyMeter meter(dir.path.string());
  REQUIRE_MESSAGE(meter.available(), meter.unavailable_reason());
  CHECK(meter.source() == "rapl:package-0+package-1");
  auto before = meter.read();
  REQUIRE(before.ok());
  CHECK(*before == std::vector<uint64_t>{4900, 10});
  write_text(dir.file("intel-rapl:0/energy_uj"), "100\n");  // wrapped at 5000
  write_text(dir.file("intel-rapl:1/energy_uj"), "1010\n");
  auto after = meter.read();
  REQUIRE(after.ok());
  CHECK(meter.joules_between(*before, *after) == doctest::Approx((200 + 1000) * 1e-6));
  CHECK(counter_delta(10, 30, 100) == 20);
  CHECK(counter_delta(90, 5, 100) == 15);
  CHECK(counter_delta(90, 5, 0) == 0);

  // Energy per run when measuring: each run of A "spends" 2000 uJ on package 1.
  uint64_t counter = 1010;
  MeasuredFn spend = [&] {
    counter += 2000;
    write_text(dir.file("intel-rapl:1/energy_uj"), fmt::format("{}\n", counter));
    return Status();
  };
  RepeatPolicy policy;
  policy.warmup_rounds = 0;
  policy.min_rounds = 3;
  policy.min_seconds = 0;
  auto m = measure_interleaved({spend}, policy, &meter);
  REQUIRE(m.ok());
  REQUIRE(m->joules.size() == 1);
  CHECK(m->joules[0] == std::vector<double>(3, 2000 * 1e-6));
  CHECK(m->total_joules[0] == doctest::Approx(6000 * 1e-6));

  EnergyMeter missing((dir.path / "nope").string());
  CHECK(!missing.available());
  CHECK(contains(missing.unavailable_reason(), "no powercap directory"));
  TempDir empty;
  fs::create_directories(empty.path / "intel-rapl-mmio:0");
  EnergyMeter none(empty.path.string());
  CHECK(!none.available());
  CHECK(contains(none.unavailable_reason(), "no RAPL package domain"));
  write_text(dir.file("intel-rapl:1/energy_uj"), "garbage\n");
  EnergyMeter bad(dir.path.string());
  CHECK(!bad.available());
  CHECK(contains(bad.unavailable_reason(), "intel-rapl:1/energy_uj"));
  if (::geteuid() != 0) {  // root reads mode-000 files anyway
    write_text(dir.file("intel-rapl:1/energy_uj"), "5\n");
    fs::permissions(dir.path / "intel-rapl:1/energy_uj", fs::perms::none);
    EnergyMeter denied(dir.path.string());
    CHECK(!denied.available());
    CHECK(contains(denied.unavailable_reason(), "permission denied"));
  }
}

TEST_CASE("tune: measurement context records threads, affinity and OMP_WAIT_POLICY") {
  CHECK(format_cpu_list({5, 0, 1, 2, 8, 7}) == "0-2,5,7-8");
  CHECK(format_cpu_list({}) == "");
  const char* old = std::getenv("OMP_WAIT_POLICY");
  const std::string saved = old ? old : "";
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  MeasurementContext ctx = current_measurement_context(2);
  if (old) ::setenv("OMP_WAIT_POLICY", saved.c_str(), 1); else ::unsetenv("OMP_WAIT_POLICY");
  CHECK(ctx.threads == 2);
  CHECK(!ctx.cpu_affinity.empty());
  REQUIRE(ctx.omp_wait_policy.has_value());
  CHECK(*ctx.omp_wait_policy == "passive");
  json j = context_json(ctx);
  CHECK(j["omp_wait_policy"] == "passive");
  CHECK(j["cpu_list"] == format_cpu_list(ctx.cpu_affinity));
  CHECK(peak_rss_bytes() > 0);
}

// ------------------------------------------------------------------- records

namespace {

EvalRecord sample_record(int64_t iteration) {
  EvalRecord r;
  r.iteration = iteration;
  r.knobs = {{"conv1", "perf-row-2-0"}, {"conv2", "fp16"}};
  r.qos = {{"tune", 90.125 - 0.1 * static_cast<double>(iteration)}};
  r.qos_predicted = 90.0;
  r.qos_loss = 0.3 + 0.01 * static_cast<double>(iteration);
  r.cost = 1.0 / 3.0;
  r.speedup_predicted = 1.0 + 1.0 / 7.0;
  r.seconds = 0.002;
  r.origin = "mutation";
  r.host = "worker-7";  // as a record from another rank comes
  return r;
}

}  // namespace

TEST_CASE("tune: records append, reload and keep doubles exact") {
  TempDir dir;
  const std::string path = dir.file("records.jsonl");
  {
    auto store = RecordStore::open(path, "abc123", R"({"strategy": "evolutionary"})");
    REQUIRE_MESSAGE(store.ok(), store.status().message());
    CHECK(store->records().empty());
    for (int64_t i = 0; i < 3; ++i) REQUIRE(store->append(sample_record(i)).ok());
    EvalRecord failed = sample_record(3);
    failed.qos["tune"] = std::numeric_limits<double>::quiet_NaN();
    failed.host.clear();  // one of this process: named after this host
    REQUIRE(store->append_all({failed}).ok());
  }
  auto store = RecordStore::open(path, "abc123");
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(store->warnings().empty());
  REQUIRE(store->records().size() == 4);
  const EvalRecord& r1 = store->records()[1];
  const EvalRecord want = sample_record(1);
  CHECK(r1.knobs == want.knobs);
  CHECK(r1.qos == want.qos);
  CHECK(*r1.qos_loss == *want.qos_loss);  // bit-exact: replay feeds these to the search
  CHECK(*r1.cost == *want.cost);
  CHECK(*r1.speedup_predicted == *want.speedup_predicted);
  CHECK(!r1.speedup_measured.has_value());
  CHECK(r1.origin == "mutation");
  CHECK(r1.host == "worker-7");
  CHECK(store->records()[3].host == this_host_name());
  CHECK_FALSE(this_host_name().empty());
  CHECK(std::isnan(store->records()[3].qos.at("tune")));
  REQUIRE(store->find("search", 2) != nullptr);
  CHECK(store->find("search", 2)->iteration == 2);
  CHECK(store->find("validate", 2) == nullptr);
  CHECK(store->next_iteration("search") == 4);
  CHECK(store->next_iteration("single") == 0);
  const std::string first_line = read_text(path).substr(0, read_text(path).find('\n'));
  json header = json::parse(first_line);
  CHECK(header["fingerprint"] == "abc123");
  CHECK(header["info"]["strategy"] == "evolutionary");
}

TEST_CASE("tune: a truncated last record is ignored and cut before the next append") {
  TempDir dir;
  const std::string path = dir.file("records.jsonl");
  {
    auto store = RecordStore::open(path, "fp");
    REQUIRE(store.ok());
    REQUIRE(store->append(sample_record(0)).ok());
    REQUIRE(store->append(sample_record(1)).ok());
  }
  const std::string good = read_text(path);
  const std::string partial = record_to_json_line(sample_record(2)).substr(0, 40);  // kill -9 mid-write
  write_text(path, good + partial);
  auto store = RecordStore::open(path, "fp");
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(store->records().size() == 2);
  REQUIRE(store->warnings().size() == 1);
  CHECK(contains(store->warnings()[0], path + ":4"));
  CHECK(contains(store->warnings()[0], "truncated"));
  CHECK(read_text(path) == good + partial);  // opening alone changes nothing
  REQUIRE(store->append(sample_record(2)).ok());
  CHECK(read_text(path) == good + record_to_json_line(sample_record(2)) + "\n");
  auto again = RecordStore::open(path, "fp");
  REQUIRE(again.ok());
  CHECK(again->warnings().empty());
  CHECK(again->records().size() == 3);

  // A file holding only part of its header starts over.
  write_text(path, "{\"format\": \"caliprox-rec");
  auto fresh = RecordStore::open(path, "fp");
  REQUIRE_MESSAGE(fresh.ok(), fresh.status().message());
  CHECK(fresh->records().empty());
  CHECK(contains(read_text(path), "\"fingerprint\":\"fp\""));
}

TEST_CASE("tune: corrupt records and foreign fingerprints are errors that leave the file alone") {
  TempDir dir;
  const std::string path = dir.file("records.jsonl");
  {
    auto store = RecordStore::open(path, "fp-one");
    REQUIRE(store.ok());
    REQUIRE(store->append(sample_record(0)).ok());
    REQUIRE(store->append(sample_record(1)).ok());
  }
  const std::string good = read_text(path);
  auto other = RecordStore::open(path, "fp-two");
  REQUIRE(!other.ok());
  CHECK(other.status().code() == Errc::invalid_input);
  CHECK(contains(other.status().message(), path + ":1"));
  CHECK(contains(other.status().message(), "fp-one"));
  CHECK(contains(other.status().message(), "fp-two"));
  CHECK(read_text(path) == good);

  // Line 2 damaged, line 3 fine: not a crash artefact but a corrupt file.
  const size_t second = good.find('\n') + 1;
  std::string damaged = good;
  damaged.replace(second, 10, "#garbage#!");
  write_text(path, damaged);
  auto corrupt = RecordStore::open(path, "fp-one");
  REQUIRE(!corrupt.ok());
  CHECK(corrupt.status().code() == Errc::invalid_input);
  CHECK(contains(corrupt.status().message(), path + ":2"));
  CHECK(read_text(path) == damaged);

  // A record line with a wrong field type names the field.
  write_text(path, good.substr(0, second) + R"({"phase":"search","iteration":"seven","knobs":{}})" + "\n" +
                       good.substr(second));
  auto typed = RecordStore::open(path, "fp-one");
  REQUIRE(!typed.ok());
  CHECK(contains(typed.status().message(), "iteration"));

  write_text(path, "{\"hello\": 1}\n");
  auto foreign = RecordStore::open(path, "fp-one");
  REQUIRE(!foreign.ok());
  CHECK(contains(foreign.status().message(), "not a caliprox records file"));
  CHECK(fingerprint_of("a") != fingerprint_of("b"));
  CHECK(fingerprint_of("same") == fingerprint_of("same"));
}

// ------------------------------------------------------------------- pareto

TEST_CASE("tune: Pareto frontier on hand-made points") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<LossSpeedup> pts = {
      {0.0, 1.0},   // 0 exact
      {0.5, 1.5},   // 1
      {0.4, 1.2},   // 2
      {0.5, 1.4},   // 3 dominated by 1
      {1.0, 1.5},   // 4 dominated by 1 (same speedup, more loss)
      {0.5, 1.5},   // 5 duplicate of 1: the first one stays
      {nan, 9.0},   // 6 failed run
      {-0.1, 0.9},  // 7 more accurate than exact but slower: on the frontier
      {2.0, 3.0},   // 8
      {0.0, 0.95},  // 9 dominated by exact
  };
  CHECK(pareto_frontier(pts) == std::vector<size_t>{7, 0, 2, 1, 8});
  CHECK(pareto_frontier({}).empty());
}

TEST_CASE("tune: thinning keeps levels separated by both steps") {
  // Binary fractions, so the >= comparisons are exact.
  std::vector<LossSpeedup> pts = {
      {0.0, 1.0},     // 0 exact
      {0.125, 1.375}, // 1 loss step too small (0.125 < 0.25)
      {0.25, 1.5},    // 2 exactly both steps from exact -> level 1
      {0.5, 1.625},   // 3 speedup step too small (0.125 < 0.25)
      {0.625, 1.75},  // 4 both steps from level 1 -> level 2
      {0.75, 2.0},    // 5 loss step too small from level 2
      {2.0, 4.0},     // 6 -> level 3
  };
  const ThinningRule rule{0.25, 0.25};
  const std::vector<size_t> frontier = pareto_frontier(pts);
  CHECK(frontier == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6});
  CHECK(thin_levels(pts, frontier, 0, rule) == std::vector<size_t>{0, 2, 4, 6});
  CHECK(thin_levels(pts, frontier, 0, ThinningRule{0, 0}) == frontier);
  CHECK(thin_levels(pts, {}, 0, rule) == std::vector<size_t>{0});

  // A configuration more accurate than exact and faster dominates it: it
  // becomes level 1 without a loss gap.
  std::vector<LossSpeedup> better = {{0.0, 1.0}, {-0.125, 1.25}, {0.25, 1.5}, {0.0625, 1.375}};
  const std::vector<size_t> f2 = pareto_frontier(better);
  CHECK(f2 == std::vector<size_t>{1, 3, 2});
  CHECK(thin_levels(better, f2, 0, rule) == std::vector<size_t>{0, 1, 2});
}

namespace {

ParetoDocument sample_pareto() {
  ParetoDocument doc;
  doc.experiment = "fashion";
  doc.fingerprint = "0123abcd";
  doc.metric = Metric::top1;
  doc.goal = {GoalKind::absolute, 3.0};
  doc.baseline_qos_tune = 90;
  doc.baseline_qos_test = 89.5;
  doc.baseline_latency_ms = 12.5;
  ParetoConfiguration exact;
  exact.id = "exact";
  exact.qos_tune = 90;
  exact.qos_test = 89.5;
  exact.speedup_predicted = 1;
  exact.speedup_measured = 1;
  ParetoConfiguration c1;
  c1.id = "c1";
  c1.level = 1;
  c1.knobs = {{"conv1", "perf-row-2-0-fp16"}, {"conv2", "samp-2-1"}};
  c1.qos_tune = 89.5;
  c1.qos_test = 89.0;
  c1.loss_tune = 0.5;
  c1.loss_test = 0.5;
  c1.qos_predicted = 89.25;
  c1.speedup_predicted = 1.75;
  c1.speedup_measured = 1.5;
  ParetoConfiguration c2 = c1;
  c2.id = "c2";
  c2.level = 2;
  c2.knobs = {{"conv1", "int8"}};
  c2.speedup_measured.reset();
  c2.qos_test = std::numeric_limits<double>::quiet_NaN();
  doc.configurations = {exact, c1, c2};
  return doc;
}

}  // namespace

TEST_CASE("tune: pareto.json round trip, schema and errors") {
  TempDir dir;
  const ParetoDocument doc = sample_pareto();
  REQUIRE(write_pareto_json(dir.file("pareto.json"), doc).ok());
  const std::string text = read_text(dir.file("pareto.json"));
  json j = json::parse(text);
  auto errors = validate_with("schemas/pareto.schema.json", j);
  CHECK_MESSAGE(errors.empty(), describe(errors));
  CHECK(j["configurations"][1]["knobs"]["conv1"] == "perf-row-2-0-fp16");
  CHECK(j["configurations"][2]["qos"]["test"].is_null());
  CHECK(j["goal"]["unit"] == "pp");
  CHECK(j["baseline"]["latency_ms"] == 12.5);

  auto back = parse_pareto_json(text, "pareto.json");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->experiment == doc.experiment);
  CHECK(back->goal.max_loss == 3.0);
  REQUIRE(back->configurations.size() == 3);
  CHECK(back->configurations[1].knobs == doc.configurations[1].knobs);
  CHECK(*back->configurations[1].speedup_measured == 1.5);
  CHECK(!back->configurations[2].speedup_measured.has_value());
  CHECK(std::isnan(back->configurations[2].qos_test));

  j["configurations"][1]["knobs"]["conv1"] = "perf-row-9-0";
  auto bad = parse_pareto_json(j.dump(), "pareto.json");
  REQUIRE(!bad.ok());
  CHECK(contains(bad.status().message(), "configurations[1].knobs.conv1"));
  j.erase("baseline");
  CHECK(!validate_with("schemas/pareto.schema.json", j).empty());
}

TEST_CASE("tune: ApproxTuner confs.txt export") {
  REQUIRE(find_knob("perf-row-2-0-fp16") != nullptr);
  CHECK(find_knob("perf-row-2-0-fp16")->hpvm_id == 153);  // HPVM: perf_fp16 153 = rows, rate 2, offset 0
  CHECK(find_knob("samp-2-1")->hpvm_id == 232);
  const std::vector<HpvmLayer> layers = {{"conv1", {"add", "relu"}}, {"conv2", {}}};
  auto out = format_hpvm_confs(sample_pareto(), layers);
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  CHECK(out->text ==
        "12.5\n"
        "+++++\nconf1 1 1 89.5 0\n1 gpu conv fp32 11 add fp32 1 relu fp32 1\n2 gpu conv fp32 11\n-----\n"
        "+++++\nconf2 1.5 1.5 89 0.5\n1 gpu conv perf_fp16 153 add fp16 1 relu fp16 1\n2 gpu conv samp 232\n-----\n");
  REQUIRE(out->skipped.size() == 1);  // c2 uses int8
  CHECK(contains(out->skipped[0], "int8"));
  auto cpu = format_hpvm_confs(sample_pareto(), layers, "cpu");
  REQUIRE(cpu.ok());
  CHECK(cpu->skipped.size() == 2);  // the CPU runtime has no fp16
  auto unknown = format_hpvm_confs(sample_pareto(), {{"conv1", {}}});
  REQUIRE(!unknown.ok());
  CHECK(contains(unknown.status().message(), "conv2"));
  ParetoDocument no_time = sample_pareto();
  no_time.baseline_latency_ms.reset();
  CHECK(!format_hpvm_confs(no_time, layers).ok());
}

// ------------------------------------------------------------------- predict

namespace {

SearchSpace toy_space(size_t layers) {
  SearchSpace space;
  for (size_t l = 0; l < layers; ++l)
    space.layers.push_back({fmt::format("conv{}", l), {"fp32", "perf-row-4-0", "perf-row-3-0", "perf-row-2-0"}});
  return space;
}

ConvGeometry geometry(int64_t c_in, int64_t c_out, int64_t hw) {
  ConvGeometry g;
  g.n = 1;
  g.c_in = c_in;
  g.c_out = c_out;
  g.in_spatial = {hw, hw};
  g.out_spatial = {hw, hw};
  g.kernel = {3, 3};
  g.strides = {1, 1};
  g.dilations = {1, 1};
  g.pads_begin = {1, 1};
  g.pads_end = {1, 1};
  g.output_padding = {0, 0};
  return g;
}

}  // namespace

TEST_CASE("tune: p2 is exact on an additive QoS model") {
  const uint64_t seed = 99;
  MESSAGE("seed " << seed);
  Rng rng(seed);
  const SearchSpace space = toy_space(5);
  std::vector<std::vector<double>> cost(5, std::vector<double>(4, 0.0));
  for (auto& l : cost)
    for (size_t k = 1; k < l.size(); ++k) l[k] = 2.0 * rng.uniform();
  auto truth = [&](const Candidate& c) {
    double q = 91.5;
    for (size_t l = 0; l < c.size(); ++l) q -= cost[l][static_cast<size_t>(c[l])];
    return q;
  };
  QosDeltaPredictor p2(space, 91.5);
  CHECK(!p2.complete());
  CHECK(!p2.predict({1, 0, 0, 0, 0}).ok());
  for (size_t l = 0; l < 5; ++l)
    for (size_t k = 1; k < 4; ++k) {
      Candidate single = space.exact();
      single[l] = static_cast<int>(k);
      REQUIRE(p2.set_single(l, k, truth(single)).ok());
    }
  CHECK(p2.complete());
  for (int t = 0; t < 50; ++t) {
    Candidate c(5);
    for (int& k : c) k = static_cast<int>(rng.index(4));
    auto q = p2.predict(c);
    REQUIRE(q.ok());
    CHECK(*q == doctest::Approx(truth(c)).epsilon(1e-12));
  }
  CHECK(!p2.predict({0, 0, 0}).ok());
  CHECK(!p2.set_single(9, 1, 0).ok());
}

TEST_CASE("tune: p1 sums output deltas, subsamples deterministically and reports its memory") {
  const uint64_t seed = 5;
  MESSAGE("seed " << seed);
  Rng rng(seed);
  const SearchSpace space = toy_space(3);
  const int64_t n = 50, width = 4;
  std::vector<float> exact(static_cast<size_t>(n * width));
  for (float& x : exact) x = static_cast<float>(rng.uniform());
  // single[l][k] = exact + a per-(layer, knob) offset pattern
  auto offset = [](size_t l, size_t k, int64_t i) { return 0.01f * static_cast<float>((l + 1) * k) * static_cast<float>(i % 3); };
  OutputDeltaPredictor::Options opt;
  opt.max_samples = 10;
  opt.seed = 17;
  auto p1 = OutputDeltaPredictor::create(space, exact, n, width, opt);
  REQUIRE(p1.ok());
  CHECK(p1->kept_samples().size() == 10);
  CHECK(std::is_sorted(p1->kept_samples().begin(), p1->kept_samples().end()));
  auto again = OutputDeltaPredictor::create(space, exact, n, width, opt);
  CHECK(again->kept_samples() == p1->kept_samples());
  for (size_t l = 0; l < 3; ++l)
    for (size_t k = 1; k < 4; ++k) {
      std::vector<float> out = exact;
      for (int64_t i = 0; i < n * width; ++i) out[static_cast<size_t>(i)] += offset(l, k, i);
      REQUIRE(p1->set_single(l, k, out.data(), n, width).ok());
    }
  CHECK(p1->complete());
  const Candidate c = {2, 0, 3};
  std::vector<float> predicted;
  REQUIRE(p1->predict_outputs(c, predicted).ok());
  REQUIRE(predicted.size() == 10 * static_cast<size_t>(width));
  for (size_t j = 0; j < 10; ++j)
    for (int64_t w = 0; w < width; ++w) {
      const int64_t i = p1->kept_samples()[j] * width + w;
      const float want = exact[static_cast<size_t>(i)] + offset(0, 2, i) + offset(2, 3, i);
      CHECK(predicted[j * static_cast<size_t>(width) + static_cast<size_t>(w)] == doctest::Approx(want).epsilon(1e-6));
    }
  auto sum = p1->predict(c, [](const std::vector<float>& v) -> Result<double> {
    double s = 0;
    for (float x : v) s += x;
    return s;
  });
  REQUIRE(sum.ok());
  // 9 (layer, knob) deltas + the exact outputs, 10 x 4 floats each, + 10 sample indices.
  CHECK(p1->memory_bytes() == (9 + 1) * 40 * sizeof(float) + 10 * sizeof(int64_t));
  CHECK(!p1->set_single(0, 1, exact.data(), n - 1, width).ok());
  CHECK(!OutputDeltaPredictor::create(space, exact, n, width + 1, {}).ok());
  auto full = OutputDeltaPredictor::create(space, exact, n, width, {});
  REQUIRE(full.ok());
  CHECK(full->kept_samples().size() == static_cast<size_t>(n));
  std::vector<float> tmp;
  CHECK(!full->predict_outputs({1, 0, 0}, tmp).ok());  // that delta was never set
}

TEST_CASE("tune: nominal and measured cost models") {
  const SearchSpace space = toy_space(2);
  const std::vector<ConvGeometry> geos = {geometry(8, 16, 12), geometry(16, 16, 12)};
  auto nominal = nominal_cost_model(space, geos, 0.2);
  REQUIRE_MESSAGE(nominal.ok(), nominal.status().message());
  const double f0 = conv_layer_flops(geos[0]) * 1e-9, f1 = conv_layer_flops(geos[1]) * 1e-9;
  const double rest = (f0 + f1) * 0.25;  // 20 % of the exact time
  CHECK(nominal->exact_cost() == doctest::Approx(f0 + f1 + rest));
  CHECK(nominal->speedup(space.exact()) == doctest::Approx(1.0));
  const double s = layer_nominal_speedup(*find_knob("perf-row-2-0"), geos[1]);
  CHECK(s == doctest::Approx(2.0));  // 12 rows: 6 computed
  CHECK(nominal->speedup({0, 3}) == doctest::Approx((f0 + f1 + rest) / (f0 + f1 / s + rest)));
  CHECK(nominal->single_speedups()[1][3] == doctest::Approx(nominal->speedup({0, 3})));
  CHECK(!nominal_cost_model(space, geos, 1.0).ok());
  CHECK(!nominal_cost_model(space, {geos[0]}, 0.2).ok());

  json stat = {{"median", 10.0}, {"ci_low", 9.0}, {"ci_high", 11.0}, {"coverage", 0.96}, {"method", "order-statistics"},
               {"count", 20},    {"min", 8.5},    {"max", 12.0},     {"mad", 0.5}};
  auto with_median = [&](double m) {
    json s2 = stat;
    s2["median"] = m;
    return json{{"latency_ms", s2}, {"energy_j", nullptr}};
  };
  json profile = {
      {"experiment", "fashion"},
      {"fingerprint", "beef"},
      {"target", "local"},
      {"backend", "reference"},
      {"batch_size", 64},
      {"context", context_json(current_measurement_context(2))},
      {"method", {{"warmup_rounds", 2}, {"min_rounds", 10}, {"min_seconds", 1.0}, {"order", "interleaved"},
                  {"ci", "order-statistics"}, {"confidence", 0.95}}},
      {"energy", {{"available", false}, {"source", nullptr}, {"reason", "no powercap directory"}}},
      {"baseline", {{"latency_ms", stat}, {"energy_j", nullptr}}},
      {"rest_ms", 2.0},
      {"layers", json::array()},
      {"reshape", json::object()},
      {"configurations", json::array()}};
  for (size_t l = 0; l < 2; ++l) {
    json knobs = json::object();
    for (size_t k = 0; k < 4; ++k) knobs[space.layers[l].knobs[k]] = with_median(4.0 / static_cast<double>(k + 1));
    profile["layers"].push_back({{"node", space.layers[l].node}, {"flops", 1e6}, {"knobs", knobs}});
  }
  profile["layers"][0]["knobs"]["fp32"]["latency_ms"] = stat_json({0.004, 0.0041, 0.0039, 0.004, 0.0042, 0.004}, 1000);
  auto errors = validate_with("schemas/profile.schema.json", profile);
  CHECK_MESSAGE(errors.empty(), describe(errors));

  auto costs = parse_profile_costs(profile.dump(), "profile.json", "beef");
  REQUIRE_MESSAGE(costs.ok(), costs.status().message());
  CHECK(costs->layer_ms.at("conv1").at("perf-row-2-0") == 1.0);
  auto measured = measured_cost_model(space, *costs, "profile.json");
  REQUIRE(measured.ok());
  CHECK(measured->unit() == "ms");
  CHECK(measured->exact_cost() == doctest::Approx(4.0 + 4.0 + 2.0));
  CHECK(measured->cost({3, 1}) == doctest::Approx(1.0 + 2.0 + 2.0));

  auto foreign = parse_profile_costs(profile.dump(), "profile.json", "cafe");
  REQUIRE(!foreign.ok());
  CHECK(contains(foreign.status().message(), "fingerprint beef"));
  profile["layers"][1]["knobs"].erase("perf-row-3-0");
  auto partial = parse_profile_costs(profile.dump(), "profile.json", "");
  REQUIRE(partial.ok());
  auto missing = measured_cost_model(space, *partial, "profile.json");
  REQUIRE(!missing.ok());
  CHECK(contains(missing.status().message(), "conv1"));
  CHECK(contains(missing.status().message(), "perf-row-3-0"));
}
