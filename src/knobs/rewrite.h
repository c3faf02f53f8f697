#pragma once
// The graph-rewrite seam. Knobs in knobs.h swap a layer's kernel and leave
// the graph alone; approximations that change what the graph holds (the
// weights, the shapes: pruning, low-rank factorisation) are Graph -> Graph
// rewrites instead, applied before a session is built. A variant (a chain of
// rewrites) is built once and cached; sessions are then created on the
// rewritten graph, and a knob configuration applies to it as to any graph.
//
// What a rewrite must keep (RewriteCache checks the first two):
//   - the graph's inputs and outputs (names, element types);
//   - the name of every node it keeps or replaces one for one, so that knob
//     configurations, profiles and error budgets keyed by node name still
//     name the same layers; nodes it adds get names derived from the
//     node they come from ("<node>/<part>");
//   - determinism: the same graph and parameters give the same graph.
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "util/status.h"

namespace caliprox {

class GraphRewrite {
 public:
  virtual ~GraphRewrite() = default;
  // Stable text naming the rewrite and its parameters (the cache key, and
  // what errors and reports call it), e.g. "prune:conv1:0.5".
  virtual std::string key() const = 0;
  virtual Result<Graph> apply(const Graph& graph) const = 0;
};

// Rewrites applied in order.
using RewriteChain = std::vector<std::shared_ptr<const GraphRewrite>>;
// The chain's cache key: its rewrites' keys joined by " | " ("" when empty).
std::string rewrite_chain_key(const RewriteChain& chain);

// The rewritten graphs of one base graph, one per variant, built on first
// request (every prefix of a chain is cached too, so variants sharing a
// prefix share its work). At most `capacity` variants are kept, the least
// recently used dropped first (a search meets many: each is a whole copy of
// the weights it changes); a returned graph lives as long as someone holds
// it. Thread-safe.
class RewriteCache {
 public:
  explicit RewriteCache(Graph base, size_t capacity = 32);
  const Graph& base() const { return *base_; }
  // The base graph for an empty chain. Errors name the rewrite that failed
  // or broke a rule above (Errc of the rewrite's error, or invalid_input).
  Result<std::shared_ptr<const Graph>> graph(const RewriteChain& chain);
  size_t variants() const;

 private:
  void touch(const std::string& key);  // most recently used; drops the oldest beyond capacity

  std::shared_ptr<const Graph> base_;
  size_t capacity_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Graph>> graphs_;  // by chain key
  std::list<std::string> order_;                                // keys, least recently used first
};

}  // namespace caliprox
