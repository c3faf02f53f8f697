#pragma once
// Graph rewrites a session applies before it prepares kernels (the engine's
// PlainSession::build). They change how a graph is computed, never what it
// computes (up to float rounding) -- except under a knob, whose semantics
// follow the fused node (a half knob rounds after the fused residual and
// activation). They live in ir, not in the engine, so that code which must
// reproduce a knob outside the engine (knobs/plain_ops.h) sees the same
// fusion the executor makes.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace caliprox {

struct PassStats {
  int batchnorms_folded = 0;
  int activations_fused = 0;
  int residuals_fused = 0;
  int hardswish_formed = 0;
  int affines_folded = 0;
};

// Rewrites Mul(x, HardSigmoid(x)) with alpha 1/6 and beta 0.5 (how PyTorch
// exports HardSwish below opset 14), and x * Clip(x + 3, 0, 6) / 6 (how
// PaddlePaddle and TensorFlow export it), into one HardSwish node, which the
// conv fusion can then absorb. Same arguments as fuse_conv_chains.
int form_hardswish(std::vector<Node>& nodes, const std::map<std::string, Tensor>& constants,
                   const std::set<std::string>& keep);

// Forms HardSwish nodes (form_hardswish), then folds a BatchNormalization that directly follows a Conv with constant
// weights into the Conv's weights and bias, then the per-channel or scalar
// constant Mul and Add nodes that follow (affine blocks, a separate
// BiasAdd), then fuses a following residual
// Add and activation into the Conv (attributes in op_registry.h). A value is
// only fused away when nothing else reads it and it is not a graph output.
// `nodes` is the list still to execute (constant-folded nodes removed), in
// topological order; `constants` holds every constant value (folded weights
// are added under new names); `types` the inferred type of every value.
// `keep` names values that must stay materialised (graph outputs).
PassStats fuse_conv_chains(std::vector<Node>& nodes, std::map<std::string, Tensor>& constants,
                           const std::map<std::string, TensorType>& types, const std::set<std::string>& keep);

}  // namespace caliprox
