#pragma once
// Helpers shared by the reference kernels of the index / data-movement
// family (index_*.cc in this folder): a gather through index maps for any
// dtype, reading index tensors of either index type, and the gather sub-family
// registration called by register_index_kernels() (index_kernels.cc).
#include <cstdint>
#include <span>
#include <vector>

#include "backends/reference/tensor_util.h"

namespace caliprox::reference::index {

using KernelResult = Result<std::unique_ptr<Kernel>>;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;

// y[o] = x[offset of o] for every output element, elements of `dtype` copied
// as unsigned integers of its size. `view_shape` is the output's shape, or a
// finer view of it with the same row-major order.
KernelResult mapped_copy(DType dtype, Shape view_shape, tensor::IndexMaps maps);

// Element i of an int32 or int64 tensor.
inline int64_t index_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::i64 ? tensor::in_data<int64_t>(t)[i] : tensor::in_data<int32_t>(t)[i];
}

// True when input #i exists and is int32 or int64.
bool index_input(const NodeContext& ctx, size_t i);

void register_gather_kernels(std::vector<KernelEntry>& table);  // index_gather.cc

}  // namespace caliprox::reference::index
