#pragma once
// Checks every op family's shape inference repeats: input and output counts,
// element types, and the shapes of all inputs for broadcasting. Errors name
// the node and say what was expected.
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::tensor_ops {

enum class Accepts { any, numeric, floating, signed_numeric, boolean };

// Input `index`'s element type is one `accepts` allows.
Status check_dtype(const Node& node, const InferInput& in, size_t index, Accepts accepts);
// Inputs [first, last) that are present all have input `first`'s type.
Status check_same_dtype(const Node& node, std::span<const InferInput> inputs, size_t first, size_t last);
// Between 1 and max_count outputs.
Status check_output_count(const Node& node, size_t max_count);
// Every input present (none omitted): variadic ops.
Status check_all_present(const Node& node, std::span<const InferInput> inputs);
std::vector<Shape> input_shapes(std::span<const InferInput> inputs);
// Binary ops of opsets < 7 broadcast only with broadcast=1, aligning B with
// A from 'axis' (A's trailing dims by default). The alignments numpy
// broadcasting also gives are accepted; others are unsupported, and
// broadcast=0 requires equal shapes. No-op from opset 7.
Status check_legacy_broadcast(const Node& node, std::span<const InferInput> inputs);

}  // namespace caliprox::tensor_ops
