// The graph-rewrite seam (knobs/rewrite.h): variants are built once per
// chain (prefixes shared), sessions on a rewritten graph compute the
// rewritten network, knob configurations apply to it by node name, and a
// rewrite that breaks the rules is named in the error.
#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "engine/session.h"
#include "knobs/rewrite.h"
#include "session_fixtures.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

// Multiplies one initializer by a factor (a stand-in for a rewrite that
// changes weights, such as pruning).
class ScaleInitializer final : public GraphRewrite {
 public:
  ScaleInitializer(std::string name, float factor) : name_(std::move(name)), factor_(factor) {}
  std::string key() const override { return fmt::format("scale:{}:{}", name_, factor_); }
  Result<Graph> apply(const Graph& graph) const override {
    ++applied;
    auto it = graph.initializers.find(name_);
    if (it == graph.initializers.end()) return invalid_input("no initializer '{}'", name_);
    Graph g = graph;
    Tensor t = it->second.clone();
    for (float& v : t.span<float>()) v *= factor_;
    g.initializers[name_] = t;
    return g;
  }
  mutable int applied = 0;

 private:
  std::string name_;
  float factor_;
};

// Breaks the rule: renames the graph's output.
class RenameOutput final : public GraphRewrite {
 public:
  std::string key() const override { return "rename-output"; }
  Result<Graph> apply(const Graph& graph) const override {
    Graph g = graph;
    g.outputs[0].name = "renamed";
    return g;
  }
};

std::vector<float> run(const Graph& g, Backend& backend, const Tensor& x, const KnobConfig& config = {}) {
  auto s = make_session(g, backend, x.shape());
  REQUIRE(s->configure(config).ok());
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  auto v = s->output(0).span<float>();
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("rewrite: variants are cached per chain, sessions run the rewritten graph, knobs apply by name") {
  std::mt19937 rng(3);
  const Graph base = residual_graph(rng);
  auto backend = make_reference_backend({});
  const Tensor x = random_tensor({2, 4, 6, 6}, rng);
  RewriteCache cache(base);

  auto half = std::make_shared<ScaleInitializer>("w1", 0.5f);
  auto zero_sc = std::make_shared<ScaleInitializer>("w_sc", 0.0f);
  auto empty = cache.graph({});
  REQUIRE(empty.ok());
  CHECK(empty->get() == &cache.base());
  auto a = cache.graph({half, zero_sc});
  REQUIRE(a.ok());
  CHECK(cache.variants() == 2);  // the prefix {half} too
  auto again = cache.graph({half, zero_sc});
  REQUIRE(again.ok());
  CHECK(*again == *a);
  auto prefix = cache.graph({half});
  REQUIRE(prefix.ok());
  CHECK(half->applied == 1);  // built once, shared by both chains
  CHECK(zero_sc->applied == 1);
  CHECK(rewrite_chain_key({half, zero_sc}) == "scale:w1:0.5 | scale:w_sc:0");

  // The same network as rewriting by hand.
  Graph by_hand = base;  // tensors share buffers when copied: clone the ones changed
  for (const char* w : {"w1", "w_sc"}) by_hand.initializers[w] = base.initializers.at(w).clone();
  for (float& v : by_hand.initializers["w1"].span<float>()) v *= 0.5f;
  for (float& v : by_hand.initializers["w_sc"].span<float>()) v = 0.0f;
  const auto rewritten = run(**a, *backend, x);
  CHECK(rewritten == run(by_hand, *backend, x));
  CHECK(rewritten != run(base, *backend, x));
  // A knob configuration names the same layers on the rewritten graph.
  const KnobConfig config{{"conv1", "perf-row-2-0"}};
  CHECK(run(**a, *backend, x, config) == run(by_hand, *backend, x, config));
}

TEST_CASE("rewrite: errors name the rewrite") {
  std::mt19937 rng(4);
  RewriteCache cache(residual_graph(rng));
  auto missing = cache.graph({std::make_shared<ScaleInitializer>("nope", 2.0f)});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("scale:nope:2") != std::string::npos);
  CHECK(missing.status().message().find("no initializer 'nope'") != std::string::npos);
  auto renamed = cache.graph({std::make_shared<RenameOutput>()});
  REQUIRE_FALSE(renamed.ok());
  CHECK(renamed.status().code() == Errc::invalid_input);
  CHECK(renamed.status().message().find("'rename-output' changed the model's outputs (out became renamed)") !=
        std::string::npos);
  CHECK(cache.variants() == 0);
}

TEST_CASE("rewrite: the cache keeps the most recently used variants, and a held graph outlives its eviction") {
  std::mt19937 rng(5);
  RewriteCache cache(residual_graph(rng), 2);
  auto a = std::make_shared<ScaleInitializer>("w1", 0.5f);
  auto b = std::make_shared<ScaleInitializer>("w1", 0.25f);
  auto c = std::make_shared<ScaleInitializer>("w1", 2.0f);
  auto held = cache.graph({a});
  REQUIRE(held.ok());
  const std::shared_ptr<const Graph> kept = *held;
  const float w = kept->initializers.at("w1").data<float>()[0];
  REQUIRE(cache.graph({b}).ok());
  REQUIRE(cache.graph({a}).ok());  // a used again: b is now the oldest
  REQUIRE(cache.graph({c}).ok());  // evicts b
  CHECK(cache.variants() == 2);
  CHECK(a->applied == 1);
  REQUIRE(cache.graph({b}).ok());  // built again; evicts a
  CHECK(b->applied == 2);
  CHECK(cache.variants() == 2);
  CHECK(kept->initializers.at("w1").data<float>()[0] == w);  // still whole
  REQUIRE(cache.graph({a}).ok());
  CHECK(a->applied == 2);
}
