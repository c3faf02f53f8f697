// caliprox report's module (src/report): recognising artifacts in a run
// folder, the problems it names (parse positions, foreign files, mixed
// experiments), the frontier's rows and mark counts, and a page that no
// artifact's text can break out of. The page in a browser: cli_report_test.py.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "report/figure.h"
#include "report/page.h"
#include "report/run_folder.h"
#include "temp_dir.h"

using namespace caliprox;
using namespace caliprox::report;
using nlohmann::json;

namespace {

void put(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

json pareto_doc(const std::string& experiment) {
  auto level = [](int n, json measured, double loss) {
    return json{{"id", n == 0 ? "exact" : "c" + std::to_string(n)},
                {"level", n},
                {"knobs", json::object()},
                {"qos", {{"tune", 90 - loss}, {"test", 90 - loss}}},
                {"qos_loss", {{"tune", loss}, {"test", loss}}},
                {"qos_predicted", 90 - loss / 2},
                {"speedup", {{"measured", measured}, {"predicted", 1.0 + n}}}};
  };
  return {{"experiment", experiment},
          {"fingerprint", "0"},
          {"metric", "top1"},
          {"loss_unit", "pp"},
          {"goal", {{"kind", "absolute"}, {"max_loss", 1.0}, {"unit", "pp"}}},
          {"baseline", {{"qos", {{"tune", 90.0}, {"test", 90.0}}}, {"latency_ms", 1.0}}},
          {"configurations", {level(0, 1.0, 0), level(1, 1.5, 0.4), level(2, nullptr, 0.8)}}};
}

}  // namespace

TEST_CASE("report: a run folder's artifacts are recognised, in the folder and its network subfolders") {
  testing::ScratchDir dir("report_folder");
  put(dir.path / "pareto.json", pareto_doc("exp").dump());
  put(dir.path / "heading" / "pareto.json", pareto_doc("exp").dump());
  put(dir.path / "notes.json", "{}");  // not an artifact name: ignored
  auto run = read_run_folder(dir.path.string());
  REQUIRE_MESSAGE(run.ok(), run.status().message());
  CHECK(run->experiment == "exp");
  REQUIRE(run->all(ArtifactKind::pareto).size() == 2);
  CHECK(run->all(ArtifactKind::pareto)[0]->path == "heading/pareto.json");
  CHECK(run->all(ArtifactKind::pareto)[0]->network == "heading");
  CHECK(run->problems.empty());
}

TEST_CASE("report: a truncated artifact is named with its line, column and byte; the others are kept") {
  testing::ScratchDir dir("report_truncated");
  put(dir.path / "pareto.json", pareto_doc("exp").dump());
  put(dir.path / "adaptation.json", "{\n  \"format\": \"caliprox-adaptation\",\n  \"levels\": [1,");
  put(dir.path / "budgets.json", R"({"format": "something-else", "experiment": "exp"})");
  auto run = read_run_folder(dir.path.string());
  REQUIRE_MESSAGE(run.ok(), run.status().message());
  REQUIRE(run->problems.size() == 2);
  CHECK(run->problems[0].path == "adaptation.json");
  CHECK_MESSAGE(run->problems[0].what.starts_with("not valid JSON at line 3, column 16 (byte 53)"),
                run->problems[0].what);
  CHECK(run->problems[1].path == "budgets.json");
  CHECK(run->problems[1].what.find("found \"something-else\"") != std::string::npos);
  CHECK(run->artifacts.size() == 1);
  // A header key of the wrong type is a problem too, not a crash.
  put(dir.path / "records.jsonl", R"({"format": 3})"
                                  "\n");
  auto again = read_run_folder(dir.path.string());
  REQUIRE(again.ok());
  CHECK(again->problems.size() == 3);
}

TEST_CASE("report: an empty folder, a folder of unusable files and mixed experiments are refused, naming why") {
  testing::ScratchDir dir("report_refused");
  auto empty = read_run_folder(dir.path.string());
  REQUIRE(!empty.ok());
  CHECK(empty.status().code() == Errc::invalid_input);
  CHECK(empty.status().message().find("the folder holds none") != std::string::npos);
  CHECK(empty.status().message().find("budgets.json (calibrate)") != std::string::npos);

  put(dir.path / "profile.json", "[]");
  auto foreign = read_run_folder(dir.path.string());
  REQUIRE(!foreign.ok());
  CHECK_MESSAGE(foreign.status().message().find("profile.json: not a profile written by caliprox profile (expected a "
                                                "JSON object, found array)") != std::string::npos,
                foreign.status().message());

  std::filesystem::remove(dir.path / "profile.json");
  put(dir.path / "pareto.json", pareto_doc("a").dump());
  put(dir.path / "net" / "pareto.json", pareto_doc("b").dump());
  auto mixed = read_run_folder(dir.path.string());
  REQUIRE(!mixed.ok());
  CHECK(mixed.status().message().find("artifacts of 2 different experiments") != std::string::npos);
  CHECK(mixed.status().message().find("experiment 'b': net/pareto.json") != std::string::npos);

  auto missing = read_run_folder((dir.path / "nope").string());
  REQUIRE(!missing.ok());
  CHECK(missing.status().message().find("no such folder") != std::string::npos);
}

TEST_CASE("report: a cut records.jsonl keeps the evaluations before the cut and says so") {
  testing::ScratchDir dir("report_records");
  const json header = {{"format", "caliprox-records"},
                       {"info", {{"experiment", "exp"}, {"search", json::object()}, {"qos", {{"max_loss", 1.0}}}}}};
  put(dir.path / "records.jsonl", header.dump() + "\n{\"phase\": \"search\"}\n{\"phase\": \"sea");
  auto run = read_run_folder(dir.path.string());
  REQUIRE_MESSAGE(run.ok(), run.status().message());
  REQUIRE(run->all(ArtifactKind::tune_records).size() == 1);
  CHECK(run->all(ArtifactKind::tune_records)[0]->doc["records"].size() == 1);
  REQUIRE(run->problems.size() == 1);
  CHECK(run->problems[0].what.find("line 3 is not a JSON object") != std::string::npos);
  // calibrate's records (no search settings) are not the search's progress: skipped without a problem.
  put(dir.path / "cal" / "records.jsonl",
      json{{"format", "caliprox-records"}, {"info", {{"experiment", "exp"}}}}.dump());
  auto again = read_run_folder(dir.path.string());
  REQUIRE(again.ok());
  CHECK(again->all(ArtifactKind::tune_records).size() == 1);
}

TEST_CASE("report: the frontier's rows, and marks only for the points that have both coordinates") {
  testing::ScratchDir dir("report_frontier");
  put(dir.path / "pareto.json", pareto_doc("exp").dump());
  auto run = read_run_folder(dir.path.string());
  REQUIRE(run.ok());
  Figures figs;
  tune_figures(*run, figs);
  REQUIRE(figs.figures.size() == 1);
  const Figure& f = figs.figures[0];
  CHECK(figs.problems.empty());
  // Levels 0 and 1 have measured points on both splits; level 2's speedup is null.
  CHECK(f.marks["symbol"] == 2 + 2 + 3);
  CHECK(f.marks["text"] == 2);
  CHECK(f.marks["rule"] == 1 + 1);  // the goal, and level 1's predicted-to-measured link
  // Predicted loss: the exact network's tune QoS minus the predicted QoS (higher is better for top1).
  bool seen = false;
  for (const json& r : f.data)
    if (r.value("kind", "") == "predicted" && r["level"] == 1) {
      CHECK(r["loss"].get<double>() == doctest::Approx(0.2));
      seen = true;
    }
  CHECK(seen);
}

TEST_CASE("report: no artifact text can end the page's elements or scripts") {
  RunFolder run;
  run.root = "/tmp/<b>run</b>";
  run.experiment = "exp</script><script>alert(1)</script>";
  Figures figs;
  Figure f;
  f.id = "x";
  f.section = "S";
  f.title = "<img src=x>";
  f.caption = "a & b";
  f.sources = {"pareto.json"};
  f.data = json::array({{{"name", "</script><script>alert(2)</script>"}}});
  f.spec = json::object();
  figs.figures.push_back(f);
  const std::string page = render_page(run, figs, {true, "caliprox test"}, "no plots in this test");
  CHECK(page.find("<img src=x>") == std::string::npos);
  CHECK(page.find("&lt;img src=x&gt;") != std::string::npos);
  CHECK(page.find("alert(1)</script>") == std::string::npos);
  CHECK(page.find("alert(2)</script>") == std::string::npos);
  CHECK(page.find("\\u003c/script>\\u003cscript>alert(2)") != std::string::npos);  // in the embedded data
  CHECK(page.find("Plot not drawn: no plots in this test") != std::string::npos);
  CHECK(escape_html("\"'&") == "&quot;&#39;&amp;");
}
