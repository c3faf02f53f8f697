#pragma once
// Models made under default-domain opsets 1-8 use forms of some ops that
// later opsets replaced. The importer rewrites each such node into the form
// the rest of caliprox understands (one meaning per op), or refuses it with
// an error naming the node and the opset:
//   Reshape < 5: 'shape' attribute -> a constant 'shape' input
//   Cast < 6: 'to' as a type name ("FLOAT") -> the type's number
//   Pad < 2: 'paddings' -> 'pads'
//   Concat < 4: 'axis' optional (default 1) -> explicit
//   Upsample 7-9 (removed in 10): -> Resize in its opset-10 form (X, scales),
//       the 'scales' attribute of opsets 7-8 becoming a constant input; the
//       op type is renamed when the node is read (legacy_op_type), so the
//       supported-op check sees Resize
//   BatchNormalization < 7: is_test=0 (training) refused
//   Tile < 6 (tiles, axis inputs): refused
//   every op < 7: 'consumed_inputs' (a memory hint) dropped
// Legacy broadcasting of binary ops (opset < 7 'broadcast'/'axis') is
// checked by their shape inference (ir/ops/infer_checks.h).
#include <cstdint>
#include <string>

#include "ir/graph.h"
#include "util/status.h"

namespace caliprox {

// The op type a node of `opset` is imported as (Upsample < 10 -> Resize).
std::string legacy_op_type(const std::string& op_type, int64_t opset);
// Rewrites every default-domain node of opset < 10 (attributes converted).
Status upgrade_legacy_nodes(Graph& graph);

}  // namespace caliprox
