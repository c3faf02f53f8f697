// util/: Result<T> never reports success without a value (status.h), and the
// process policy's rules for OMP_WAIT_POLICY / GOMP_SPINCOUNT and the
// re-execution guard (process_policy.h).
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "util/process_policy.h"
#include "util/status.h"

using namespace caliprox;

namespace {

Result<int> half(int x) {
  if (x % 2 != 0) return invalid_input("{} is odd", x);
  return x / 2;
}

// The bug the check guards against: a function that means "no error" but
// returns a Status where a value belongs.
Result<int> forgets_its_value() { return Status(); }

Result<int> quarter(int x) {
  CP_ASSIGN_OR_RETURN(int h, half(x));
  CP_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

}  // namespace

TEST_CASE("status: a Result holds its value or the error it was given") {
  Result<int> ok = half(8);
  REQUIRE(ok.ok());
  CHECK(ok.status().ok());
  CHECK(*ok == 4);

  Result<int> odd = quarter(6);
  REQUIRE_FALSE(odd.ok());
  CHECK(odd.status().code() == Errc::invalid_input);
  CHECK(odd.status().message() == "3 is odd");
}

TEST_CASE("status: a Result made from a success status is an internal error in every build type") {
  // Before, only an assert (compiled out of release builds) caught this:
  // the Result said !ok() while its status() said success.
  Result<int> r = forgets_its_value();
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.status().ok());
  CHECK(r.status().code() == Errc::runtime);
  CHECK(exit_code_for(r.status().code()) == 1);
  const std::string& message = r.status().message();
  CHECK(message.find("internal error") != std::string::npos);
  // It names where the Result was made, so the bug can be found from a log.
  CHECK(message.find("test_util.cc:") != std::string::npos);
  MESSAGE(message);

  // Propagated like any other error, keeping its code.
  Result<std::string> direct = Status::ok_status();
  CHECK_FALSE(direct.ok());
  CHECK(direct.status().with_context("while testing").code() == Errc::runtime);
}

namespace {

std::map<std::string, std::string> fake_env;

const char* fake_lookup(const char* name) {
  auto it = fake_env.find(name);
  return it == fake_env.end() ? nullptr : it->second.c_str();
}

std::map<std::string, std::string> changes_for(std::map<std::string, std::string> env) {
  fake_env = std::move(env);
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : process_policy_changes(fake_lookup)) out[name] = value;
  return out;
}

}  // namespace

TEST_CASE("process policy: passive waiting with a short spin when the user chose no wait policy") {
  const auto changes = changes_for({});
  CHECK(changes.size() == 3);
  CHECK(changes.at("OMP_WAIT_POLICY") == "passive");
  CHECK(changes.at("GOMP_SPINCOUNT") == "30000");
  CHECK(changes.at("CALIPROX_REEXEC") == "1");
}

TEST_CASE("process policy: the user's choices are kept, and the re-executed process does not loop") {
  CHECK(changes_for({{"OMP_WAIT_POLICY", "active"}}).empty());
  CHECK(changes_for({{"OMP_WAIT_POLICY", "passive"}}).empty());
  CHECK(changes_for({{"CALIPROX_REEXEC", "1"}}).empty());

  const auto spin = changes_for({{"GOMP_SPINCOUNT", "0"}});
  CHECK(spin.count("GOMP_SPINCOUNT") == 0);
  CHECK(spin.at("OMP_WAIT_POLICY") == "passive");
}
