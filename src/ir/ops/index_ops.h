#pragma once
// Semantics shared by the index / data-movement family's shape inference
// (ir/ops/index_ops*.cc) and its reference kernels
// (backends/reference/index_*.cc): Split, Tile, Expand, GatherElements,
// GatherND, ScatterElements, Scatter, ScatterND, DepthToSpace, SpaceToDepth,
// Trilu, OneHot, EyeLike, ReverseSequence, Compress. Parameters both sides
// read through the same resolver, so they cannot disagree about an op.
#include <cstdint>
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "util/status.h"

namespace caliprox::index_ops {

// ScatterElements / ScatterND 'reduction' (opset 16+; 'none' before, and
// always for Scatter). max/min (opset 18) are past the newest opset we read.
enum class ScatterReduction { none, add, mul };
Result<ScatterReduction> resolve_scatter_reduction(const Node& node);

// DepthToSpace 'mode' (opset 11+; DCR before) and SpaceToDepth, which has
// only the DCR order.
enum class DepthMode { dcr, crd };
struct DepthToSpaceParams {
  int64_t blocksize = 1;
  DepthMode mode = DepthMode::dcr;
};
Result<DepthToSpaceParams> resolve_depth_to_space(const Node& node);

// OneHot: the axis of the output (rank of indices + 1) that holds the depth.
Result<int64_t> resolve_one_hot_axis(const Node& node, int64_t out_rank);

// Compress: the axis (-1 when absent: the input is flattened) and, per
// index along it, whether the slice is kept. The condition must be a
// constant, because the output's length is its count of true values.
struct CompressParams {
  int64_t axis = -1;
  std::vector<bool> keep;  // one per index along the axis (or element)
};
Result<CompressParams> resolve_compress(const Node& node, std::span<const InferInput> inputs);

// Registers the gather / scatter / selection ops (index_ops_gather.cc);
// called by register_index_ops().
void register_gather_ops(std::vector<OpDef>& table);

}  // namespace caliprox::index_ops
