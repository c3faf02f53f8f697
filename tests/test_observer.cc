// The node observer (engine/observer.h): it sees the nodes it asks for,
// what it writes into an output is what later nodes read, a split session
// reports every chunk once with its samples, errors name the node, and a
// session without observers computes what it did before.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>

#include "engine/session.h"
#include "eval/injector.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

// Watches one node: copies input #0 before it runs and its output #0 after,
// and optionally overwrites that output (row i of a chunk gets the value
// first_sample + i, or zeros).
class Probe final : public NodeObserver {
 public:
  enum class Write { nothing, zeros, sample_index };
  Probe(std::string node, Write write) : node_(std::move(node)), write_(write) {}

  ObserveWhat wants(const std::string& node, const std::string& /*op_type*/) const override {
    return {node == node_, node == node_};
  }
  Status before(const NodeEvent& e, std::span<const Tensor* const> inputs) override {
    std::lock_guard lock(mutex_);
    if (inputs[0]) seen_in = inputs[0]->clone();
    windows_in.emplace_back(e.first_sample, e.samples);
    return {};
  }
  Status after(const NodeEvent& e, std::span<Tensor* const> outputs) override {
    Tensor& out = *outputs[0];
    {
      std::lock_guard lock(mutex_);
      seen_out = out.clone();
      windows_out.emplace_back(e.first_sample, e.samples);
    }
    if (write_ == Write::nothing) return {};
    if (fail) return runtime_error("probe refuses");
    const int64_t row = out.numel() / out.shape()[0];
    float* p = out.data<float>();
    for (int64_t i = 0; i < out.numel(); ++i)
      p[i] = write_ == Write::zeros ? 0.0f : static_cast<float>(e.first_sample + i / row);
    return {};
  }

  Tensor seen_in, seen_out;
  std::vector<std::pair<int64_t, int64_t>> windows_in, windows_out;
  bool fail = false;

 private:
  std::string node_;
  Write write_;
  std::mutex mutex_;
};

struct ScopedBudget {
  ScopedBudget() { setenv("CALIPROX_BATCH_BUDGET_KB", "5", 1); }
  ~ScopedBudget() { unsetenv("CALIPROX_BATCH_BUDGET_KB"); }
};


// The residual graph at 5 samples on the reference backend, as a session
// split over two threads (chunks of the small budget) and one run whole.
struct SplitAndWhole {
  std::mt19937 rng;
  Graph g;
  std::unique_ptr<Backend> backend = make_reference_backend({});
  ScopedBudget budget;
  Tensor x;
  std::unique_ptr<Session> split, whole;
  SplitAndWhole(unsigned seed, float lo, float hi) : rng(seed), g(residual_graph(rng)) {
    x = random_tensor({5, 4, 6, 6}, rng, lo, hi);
    SessionOptions split_opt, whole_opt;
    split_opt.threads = 2;
    whole_opt.batch_split = false;
    split = make_session(g, *backend, x.shape(), split_opt);
    whole = make_session(g, *backend, x.shape(), whole_opt);
    REQUIRE(split->batch_split().chunk > 0);
  }
};

}  // namespace

TEST_CASE("observer: sees its node's inputs and outputs; what it writes is what later nodes read") {
  std::mt19937 rng(5);
  const Graph g = residual_graph(rng);
  auto backend = make_reference_backend({});
  const Tensor x = random_tensor({3, 4, 6, 6}, rng);
  SessionOptions opt;
  opt.optimize = false;  // every ONNX node on its own
  auto s = make_session(g, *backend, x.shape(), opt);
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  const Tensor plain = s->output(0).clone();

  // Watching only: the relu's input is the add's output, same values.
  Probe add("add", Probe::Write::nothing), relu("relu", Probe::Write::nothing);
  s->add_observer(add);
  s->add_observer(relu);
  s->add_observer(relu);  // twice: still once
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  CHECK(std::memcmp(s->output(0).raw(), plain.raw(), plain.nbytes()) == 0);
  REQUIRE(add.seen_out.type() == relu.seen_in.type());
  CHECK(std::memcmp(add.seen_out.raw(), relu.seen_in.raw(), add.seen_out.nbytes()) == 0);
  CHECK(relu.windows_in == std::vector<std::pair<int64_t, int64_t>>{{0, 3}});

  // Zeroing the relu's output: the pooled result is all zeros.
  Probe zero("relu", Probe::Write::zeros);
  s->add_observer(zero);
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  for (float v : s->output(0).span<float>()) CHECK(v == 0.0f);

  // An error names the node; removed observers are gone.
  zero.fail = true;
  Status st = s->run(std::span<const Tensor>(&x, 1));
  CHECK_FALSE(st.ok());
  CHECK(st.message().find("relu") != std::string::npos);
  CHECK(st.message().find("probe refuses") != std::string::npos);
  for (Probe* p : {&add, &relu, &zero}) s->remove_observer(*p);
  s->remove_observer(zero);  // not added: nothing happens
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  CHECK(std::memcmp(s->output(0).raw(), plain.raw(), plain.nbytes()) == 0);
}

TEST_CASE("observer: a split session reports each chunk once, from its threads, with its samples") {
  std::mt19937 rng(6);
  const Graph g = residual_graph(rng);
  auto backend = make_reference_backend({});
  ScopedBudget budget;  // chunks of 2 (see test_batch_split.cc)
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const Tensor x = random_tensor({5, 4, 6, 6}, rng);
    SessionOptions opt;
    opt.threads = threads;
    auto s = make_session(g, *backend, x.shape(), opt);
    REQUIRE(s->batch_split().chunk > 0);
    REQUIRE(s->batch_split().chunk < 5);
    // The pooled values of each sample become its index in the batch.
    Probe probe("gap", Probe::Write::sample_index);
    s->add_observer(probe);
    REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
    std::sort(probe.windows_out.begin(), probe.windows_out.end());
    REQUIRE(probe.windows_out.size() == static_cast<size_t>(s->batch_split().chunks));
    int64_t next = 0;  // the chunks tile [0, 5)
    for (const auto& [first, samples] : probe.windows_out) {
      CHECK(first == next);
      CHECK(samples >= 1);
      next = first + samples;
    }
    CHECK(next == 5);
    const Tensor& out = s->output(0);  // [5, 8]
    REQUIRE(out.shape() == Shape{5, 8});
    for (int64_t i = 0; i < out.numel(); ++i) CHECK(out.data<float>()[i] == static_cast<float>(i / 8));
  }
}

TEST_CASE("observer: int8 ranges tracked through it are the same split and whole") {
  SplitAndWhole f(7, -2.f, 3.f);
  std::unique_ptr<Session>& split = f.split;
  std::unique_ptr<Session>& whole = f.whole;
  const Tensor& x = f.x;
  for (Session* s : {split.get(), whole.get()}) {
    s->track_input_ranges(true);
    REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
    s->track_input_ranges(false);
  }
  const auto& a = split->input_ranges();
  const auto& b = whole->input_ranges();
  REQUIRE(a.size() == 2);  // the two Convs
  REQUIRE(a.size() == b.size());
  for (const auto& [node, r] : b) {
    CAPTURE(node);
    REQUIRE(a.count(node));
    CHECK(a.at(node).min == r.min);
    CHECK(a.at(node).max == r.max);
  }
  // Both Convs read x directly: its range.
  const auto [lo, hi] = std::minmax_element(x.span<float>().begin(), x.span<float>().end());
  CHECK(b.begin()->second.min == *lo);
  CHECK(b.begin()->second.max == *hi);
}

TEST_CASE("observer: error injection perturbs a node's output the same way split or whole") {
  SplitAndWhole f(8, -1.f, 1.f);
  std::unique_ptr<Session>& split = f.split;
  std::unique_ptr<Session>& whole = f.whole;
  const Tensor& x = f.x;
  REQUIRE(whole->run(std::span<const Tensor>(&x, 1)).ok());
  const Tensor exact = whole->output(0).clone();  // [5, 8]: the pooled values, reshaped

  auto model = parse_error_model(nlohmann::json::parse(R"({"kind": "gaussian", "bias": 0.5, "std": 0.2})"), "test");
  REQUIRE(model.ok());
  ErrorInjector inject({{"gap", *model}}, 42, 100);
  for (Session* s : {split.get(), whole.get()}) {
    s->add_observer(inject);
    REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  }
  // What applying the model to the exact outputs of samples 100..104 gives.
  Tensor expected = exact.clone();
  REQUIRE(apply_error_model(*model, expected, 42, 100).ok());
  CHECK(std::memcmp(split->output(0).raw(), expected.raw(), expected.nbytes()) == 0);
  CHECK(std::memcmp(whole->output(0).raw(), expected.raw(), expected.nbytes()) == 0);
  CHECK(std::memcmp(exact.raw(), expected.raw(), expected.nbytes()) != 0);
}
