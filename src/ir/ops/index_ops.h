#pragma once
// Semantics shared by the index / data-movement family's shape inference
// (ir/ops/index_ops*.cc) and its reference kernels
// (backends/reference/index_*.cc): Split, Tile, Expand, DepthToSpace,
// SpaceToDepth, Trilu, EyeLike. Parameters both sides
// read through the same resolver, so they cannot disagree about an op.
#include <cstdint>
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "util/status.h"

namespace caliprox::index_ops {

// DepthToSpace 'mode' (opset 11+; DCR before) and SpaceToDepth, which has
// only the DCR order.
enum class DepthMode { dcr, crd };
struct DepthToSpaceParams {
  int64_t blocksize = 1;
  DepthMode mode = DepthMode::dcr;
};
Result<DepthToSpaceParams> resolve_depth_to_space(const Node& node);

}  // namespace caliprox::index_ops
