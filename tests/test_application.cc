// Application evaluators (qos/application.h, qos/process.h) against real
// child processes (tests/data/apps/): the request and the environment they
// get, replies read or refused, crashes, garbage, NaN, floods and hangs
// (the whole process group is gone afterwards), retries, the goal, and how
// repeats combine.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "qos/application.h"
#include "qos/process.h"

using namespace caliprox;

namespace {

const std::string kApps = std::string(CALIPROX_SOURCE_ROOT) + "/tests/data/apps/";

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/caliprox-app-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

AppSpec spec_for(const std::string& script, double timeout_s = 20) {
  AppSpec s;
  s.command = {kApps + script};
  s.dir = kApps;
  s.timeout_s = timeout_s;
  s.retries = 0;
  s.goal.conditions = {{"collisions", std::nullopt, 0.0}, {"deviation", std::nullopt, 0.15}};
  s.record = {"foo", "leaked"};
  return s;
}

// A process is gone when it no longer exists, or is a zombie its new parent
// has not reaped yet.
bool gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = all.rfind(')');
  return paren != std::string::npos && paren + 2 < all.size() && all[paren + 2] == 'Z';
}

}  // namespace

TEST_CASE("application: a run gets its request and the allowed environment, and its reply is judged") {
  TempDir tmp;
  setenv("CALIPROX_TEST_SECRET", "1", 1);
  AppSpec s = spec_for("good.py");
  s.env["FOO"] = "42";
  for (int seed : {2, 3}) {
    auto run = run_application(s, {{"mode", "inject"}, {"seed", seed}}, tmp.path.string(), fmt::format("s{}", seed));
    REQUIRE_MESSAGE(run.ok(), run.status().message());
    CHECK(run->ok);
    CHECK(run->attempts == 1);
    CHECK(run->reply.metrics.at("foo") == 42);
    CHECK(run->reply.metrics.at("leaked") == 0);  // not on the allow-list
    CHECK(run->passed == (seed % 2 == 0));        // collisions = seed % 2
    if (seed == 3) CHECK(run->failure.find("collisions = 1 is above its maximum 0") != std::string::npos);
    CHECK(std::filesystem::exists(tmp.path / fmt::format("request-s{}.json", seed)));
  }
  unsetenv("CALIPROX_TEST_SECRET");
  // The application's own verdict counts too.
  auto run = run_application(s, {{"seed", 2}, {"valid", false}}, tmp.path.string(), "v");
  REQUIRE(run.ok());
  CHECK(run->ok);
  CHECK_FALSE(run->passed);
  CHECK(run->failure.find("\"valid\": false") != std::string::npos);
}

TEST_CASE("application: crashes, garbage, NaN and floods are failed runs with their reason, never a pass") {
  TempDir tmp;
  struct Case {
    const char* script;
    const char* reason;
  };
  for (const Case& c : {Case{"crash.sh", "exit status 3"}, Case{"garbage.sh", "the reply is not JSON"},
                        Case{"nan.sh", "the reply is not JSON"}, Case{"flood.sh", "more than 1048576 bytes"}}) {
    CAPTURE(c.script);
    AppSpec s = spec_for(c.script);
    s.retries = 1;
    auto run = run_application(s, {{"seed", 0}}, tmp.path.string(), "x");
    REQUIRE_MESSAGE(run.ok(), run.status().message());
    CHECK_FALSE(run->ok);
    CHECK_FALSE(run->passed);
    CHECK(run->attempts == 2);  // retried once
    CHECK(run->failure.find(c.reason) != std::string::npos);
    if (std::string(c.script) == "crash.sh") CHECK(run->stderr_tail.find("boom") != std::string::npos);
  }
}

TEST_CASE("application: a hang is killed at its timeout with everything it started") {
  TempDir tmp;
  const std::string pids = (tmp.path / "pids").string();
  AppSpec s = spec_for("hang.sh", 1.0);
  s.env["PIDS"] = pids;
  const auto t0 = std::chrono::steady_clock::now();
  auto run = run_application(s, {{"seed", 0}}, tmp.path.string(), "h");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(run.ok());
  CHECK_FALSE(run->ok);
  CHECK(run->failure.find("timed out after") != std::string::npos);
  CHECK(seconds < 10);
  std::ifstream f(pids);
  pid_t shell = 0, child = 0;
  f >> shell >> child;
  REQUIRE(shell > 0);
  REQUIRE(child > 0);
  bool both_gone = false;
  for (int i = 0; i < 100 && !both_gone; ++i) {  // the orphan's new parent reaps it
    both_gone = gone(shell) && gone(child);
    if (!both_gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(both_gone);
}

TEST_CASE("application: retries after a crash; programs that cannot run are named") {
  TempDir tmp;
  AppSpec s = spec_for("flaky.sh");
  s.env["COUNTER"] = (tmp.path / "counter").string();
  s.retries = 2;
  auto run = run_application(s, {{"seed", 0}}, tmp.path.string(), "f");
  REQUIRE(run.ok());
  CHECK(run->ok);
  CHECK(run->passed);
  CHECK(run->attempts == 2);

  Status st = check_executable(kApps + "not_executable.sh", "application command");
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message().find("is not executable") != std::string::npos);
  st = check_executable(kApps + "missing.sh", "application command");
  CHECK(st.message().find("does not exist") != std::string::npos);
  auto none = run_application(spec_for("missing.sh"), {}, tmp.path.string(), "m");
  CHECK_FALSE(none.ok());
}

TEST_CASE("application: replies that break the contract are refused with what is wrong") {
  const AppSpec s = spec_for("good.py");
  auto refused = [&](const char* text, const char* why) {
    CAPTURE(text);
    auto r = parse_app_reply(text, s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(why) != std::string::npos);
  };
  refused("", "not JSON (it starts: '<nothing>')");
  refused("[1, 2]", "not a JSON object");
  refused(R"({"collisions": 0})", "no \"metrics\" object");
  refused(R"({"metrics": {"collisions": "0", "deviation": 0}})", "metric 'collisions' is \"0\"");
  refused(R"({"metrics": {"collisions": 0}})", "lacks metric 'deviation'");
  refused(R"({"metrics": {"collisions": 0, "deviation": 0, "speed": 3}})", "metric 'speed' is neither");
  refused(R"({"metrics": {"collisions": 0, "deviation": 0}, "valid": 1})", "\"valid\" is 1");
  auto ok = parse_app_reply(R"({"metrics": {"collisions": 0, "deviation": 0.15, "foo": 1e3}})", s);
  REQUIRE(ok.ok());
  CHECK(app_goal_met(s.goal, *ok));  // max is inclusive
}

TEST_CASE("application: repeats combine into valid, invalid or uncertain") {
  AppGoal all;
  CHECK(combine_repeats(all, 5, 5) == Verdict::valid);
  CHECK(combine_repeats(all, 4, 5) == Verdict::invalid);
  CHECK(combine_repeats(all, 0, 0) == Verdict::uncertain);
  AppGoal rate;
  rate.rule = RepeatRule::pass_rate;
  rate.pass_rate = 0.8;
  rate.confidence = 0.95;
  // Wilson bounds at z = 1.645: 20/20 -> lower 0.88; 10/20 -> upper 0.67; 17/20 -> [0.66, 0.94].
  CHECK(combine_repeats(rate, 20, 20) == Verdict::valid);
  CHECK(combine_repeats(rate, 10, 20) == Verdict::invalid);
  CHECK(combine_repeats(rate, 17, 20) == Verdict::uncertain);
  CHECK(combine_repeats(rate, 3, 3) == Verdict::uncertain);  // too few runs to tell
  CHECK(verdict_name(Verdict::uncertain) == "uncertain");
}
