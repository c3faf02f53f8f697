// The unit tests' main: doctest's, plus a listener that prints every test
// case skipped for want of a CPU feature with its reason (cpu_needs.h), and
// the CPU the run saw, so a log says what was and was not tested.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "util/cpu.h"
#include "util/process_policy.h"

namespace {

struct SkipListener : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  // Skips by filters have no description; CPU skips always carry one.
  void test_case_skipped(const doctest::TestCaseData& tc) override {
    if (tc.m_skip && tc.m_description != nullptr && std::strlen(tc.m_description) > 0)
      std::printf("[skipped] %s: %s\n", tc.m_name, tc.m_description);
  }
};

}  // namespace

REGISTER_LISTENER("cpu-skips", 1, SkipListener);

int main(int argc, char** argv) {
  caliprox::apply_process_policy(argv);  // the OpenMP settings the caliprox binary runs with
  const caliprox::cpu::Features& f = caliprox::cpu::features();
  if (!f.cap_error.empty()) {
    std::fprintf(stderr, "caliprox_tests: %s\n", f.cap_error.c_str());
    return 2;
  }
  std::printf("cpu: %s\n", caliprox::cpu::describe(f).c_str());
  doctest::Context context(argc, argv);
  return context.run();
}
