// The oneDNN backend's const queries (supports, supports_nhwc) build
// primitive descriptors at the width the kernel would run with, and leave
// the calling thread's OpenMP width as they found it (DESIGN style rule 5:
// no const function changes global state).
#include <doctest/doctest.h>

#include <omp.h>

#include <random>

#include "backends/onednn/common.h"
#include "onednn_cases.h"

using namespace caliprox;
using namespace caliprox::onednn_test;

namespace {

// Sets the calling thread's width for the test and puts the old one back.
struct Width {
  explicit Width(int threads) : saved(omp_get_max_threads()) { omp_set_num_threads(threads); }
  ~Width() { omp_set_num_threads(saved); }
  int saved;
};

}  // namespace

TEST_CASE("onednn threads: supports() and supports_nhwc() leave the calling thread's OpenMP width alone") {
  const unsigned seed = test_seed("onednn threads");
  std::mt19937 rng(seed);
  Backend& backend = onednn_backend();  // made first: its constructor sets the width (not a const function)
  // A width neither the backend (kThreads) nor a small layer's team (1) uses.
  const Width width(kThreads + 3);
  for (int i = 0; i < 8; ++i) {
    NodeCase conv = random_conv(rng, 1);
    NodeCase add = make_case("Add", {random_tensor({1, 8, 16, 16}, rng), random_tensor({1, 8, 16, 16}, rng)});
    for (const NodeCase* c : {&conv, &add}) {
      CAPTURE(describe(*c));
      const NodeContext ctx = context_for(*c);
      (void)backend.supports(ctx);
      CHECK(omp_get_max_threads() == kThreads + 3);
      (void)backend.supports_nhwc(ctx);
      CHECK(omp_get_max_threads() == kThreads + 3);
    }
  }
}

TEST_CASE("onednn threads: teams grow with the work, not with the machine") {
  const double unit = onednn::single_thread_flops();
  for (int threads : {1, 2, 4, 16, 64}) {
    CAPTURE(threads);
    CHECK(onednn::team_for_flops(threads, 0) == 1);
    CHECK(onednn::team_for_flops(threads, unit * 0.99) == 1);
    int last = 1;
    for (double work = unit; work < unit * 100; work *= 1.3) {
      const int team = onednn::team_for_flops(threads, work);
      CHECK(team >= last);  // never fewer threads for more work
      CHECK(team <= threads);
      CHECK(team <= static_cast<int>(work / unit) + 1);  // each thread brings a unit of work
      last = team;
    }
    CHECK(onednn::team_for_flops(threads, unit * 1000) == threads);
    // Two threads: a layer that pays for one more thread gets both, as before.
    if (threads == 2) CHECK(onednn::team_for_flops(threads, unit) == 2);
    CHECK(onednn::team_for_elements(threads, 1000) == 1);
    CHECK(onednn::team_for_elements(threads, int64_t{1} << 30) == threads);
  }
  // 16 threads, a 2.5-unit layer: 3 threads, not 16.
  CHECK(onednn::team_for_flops(16, unit * 2.5) == 3);
}
