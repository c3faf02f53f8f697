#pragma once
// Reshape knobs (prune-*, lowrank-*) as the evaluator applies them: a
// configuration is split into the graph rewrites it asks for and the kernel
// knobs the session then runs on the rewritten graph, and the knob sites a
// session reports gain the reshape knobs each layer takes.
//
// The rewrites of one configuration run in a fixed order, so equal
// configurations give equal graphs: prunes first, in graph order of their
// groups' first convolutions, then factorisations in graph order. A prune
// names a residual group through any of its members and removes the same
// channels from all of them; members given different prune knobs are an
// error naming both.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ir/graph.h"
#include "knobs/knobs.h"
#include "knobs/rewrite.h"

namespace caliprox {

struct ReshapeStep {
  std::string node;     // the node rewritten (for a prune: its group's first member)
  std::string op_type;  // "Conv" or "Gemm"
  const Knob* knob = nullptr;
};

struct SplitConfig {
  std::vector<ReshapeStep> reshapes;  // in the order they apply
  KnobConfig kernels;                 // node -> kernel knob, for the session on the rewritten graph
};

// invalid_input naming the node for unknown knobs, a reshape knob on a node
// that does not take it (with the reason: plan_prune's or the factorisation's),
// and residual groups whose members disagree.
Result<SplitConfig> split_configuration(const Graph& base, const KnobConfig& config);

// Calibration inputs for the repair of pruned layers: a batch for the
// graph's single input (called once, on the first prune).
using RepairInputs = std::function<Result<Tensor>()>;

// The rewrites of `split`, with pruned layers repaired (eval/prune_repair.h)
// on the inputs `inputs` gives, through sessions of `backend`.
RewriteChain reshape_chain(const SplitConfig& split, Backend& backend, RepairInputs inputs);

// Adds to `sites` (a session's knob sites on `base` at batch `batch`) the
// reshape knobs of the catalogue each layer takes, with the FLOPs each
// removes from the network (KnobSite::flops_saved), and a site for every
// Gemm with a stored 2-D weight that a lowrank knob factorises. A prune knob
// is offered on the first member of its residual group only.
void add_reshape_sites(const Graph& base, int64_t batch, std::vector<KnobSite>& sites);

// FLOPs (multiply-adds times two) of `graph`'s 2-D convolutions as a
// session on it executes them (`sites`: its knob sites) and of its Gemms
// with stored 2-D weights, at batch `batch`: what reshape knobs change
// (kernel knobs are not counted).
double network_flops(const Graph& graph, const std::vector<KnobSite>& sites, int64_t batch);

// network_flops with each Conv site's FLOPs divided by the nominal speedup
// (layer_nominal_speedup) of its kernel knob in `kernels`: the nominal cost
// of a configured network, reshaped or not, counted on the graph it runs
// (so rewrites that narrow one layer from both sides are not counted twice).
double configured_flops(const Graph& graph, const std::vector<KnobSite>& sites, const KnobConfig& kernels,
                        int64_t batch);

// The stored parameters of `graph` (its initializers) and their bytes when
// each node's weight (input 1) is kept at its kernel knob's width in
// `kernels` (fp16, bf16: 2 bytes; int8: 1; otherwise the tensor's own):
// what a reshaped, reduced-precision network needs to ship.
struct WeightSize {
  int64_t parameters = 0;
  int64_t bytes = 0;
};
WeightSize weight_size(const Graph& graph, const KnobConfig& kernels);

}  // namespace caliprox
