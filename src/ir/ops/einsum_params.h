#pragma once
// Einsum's equation resolved against its inputs' shapes, shared by its
// shape inference (ir/ops/einsum_ops.cc) and its reference kernel
// (backends/reference/einsum_kernel.cc), so the two cannot disagree.
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::einsum {

// Every distinct index of the equation (a letter, or one axis the ellipsis
// stands for) gets a label number; the kernel loops over all labels' sizes.
struct Plan {
  std::vector<int64_t> label_size;         // per label
  std::vector<std::vector<int>> operands;  // per input: the label of each axis
  std::vector<int> output;                 // the label of each output axis
  Shape output_shape;
};

// Parses the node's 'equation' (explicit "ij,jk->ik" or implicit "ij,jk"
// form, "..." for broadcast axes, repeated letters for diagonals) against the
// input shapes. Errors name the node and the offending term.
Result<Plan> make_plan(const Node& node, std::span<const Shape> shapes);

}  // namespace caliprox::einsum
