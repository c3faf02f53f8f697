#pragma once
// Shared between fold.cc and fold_control.cc, which inlines If, Loop and
// Scan while a graph is folded. Engine-internal.
#include <string>

#include "backends/backend.h"
#include "engine/plain_session.h"
#include "ir/graph.h"
#include "ir/op_registry.h"
#include "util/status.h"

namespace caliprox {

struct FoldState {
  FoldedGraph& f;
  Backend& reference;  // evaluates the nodes whose inputs are all constant
  std::string source_path;
  int64_t unrolled_iterations = 0;  // Loop and Scan iterations inlined so far
  std::string node_prefix;          // while a Loop or Scan body is inlined: its iteration's prefix
};

// What inference sees of the value `name`: its type and, when folded, its
// constant; an absent input (type undefined) when no one produced it.
InferInput input_of(const std::string& name, const FoldState& s);

// Types `node`'s outputs and either evaluates it (all inputs constant) or
// appends it to f.nodes; control-flow nodes are inlined instead.
Status fold_node(const Node& node, FoldState& s);

// If, Loop and Scan of the default domain.
bool is_control_flow(const Node& node);

// Folds the nodes the control-flow `node` stands for: the selected branch,
// or every iteration of the body, with values renamed under the node's name.
Status inline_control_flow(const Node& node, FoldState& s);

}  // namespace caliprox
