#pragma once
// The reference backend: plain, readable, single-threaded C++ for every op.
// It is the oracle for every other backend and the per-node fallback.
#include <memory>
#include <string_view>
#include <vector>

#include "backends/backend.h"

namespace caliprox::reference {

struct KernelEntry {
  std::string_view op_type;
  // False when this node's dtypes/attributes are outside what the kernel does.
  bool (*supports)(const NodeContext& ctx);
  Result<std::unique_ptr<Kernel>> (*make)(const NodeContext& ctx);
};

// One registration function per kernel family file in this folder.
void register_tensor_kernels(std::vector<KernelEntry>& table);  // tensor_*.cc
void register_nn_kernels(std::vector<KernelEntry>& table);      // nn_*.cc
void register_elementwise_unary_kernels(std::vector<KernelEntry>& table);   // elementwise_unary.cc
void register_elementwise_binary_kernels(std::vector<KernelEntry>& table);  // elementwise_binary.cc
void register_index_kernels(std::vector<KernelEntry>& table);   // index_*.cc
void register_quant_kernels(std::vector<KernelEntry>& table);   // quant_*.cc
void register_rnn_kernels(std::vector<KernelEntry>& table);     // rnn_kernels.cc
void register_reduce_kernels(std::vector<KernelEntry>& table);              // reduce_*.cc
void register_linalg_kernels(std::vector<KernelEntry>& table);              // linalg_kernels.cc
void register_sample_kernels(std::vector<KernelEntry>& table);              // sample_kernels.cc
void register_tfidf_kernels(std::vector<KernelEntry>& table);               // tfidf_kernel.cc
void register_signal_kernels(std::vector<KernelEntry>& table);              // signal_kernels.cc

// Conv with an approximation knob (ctx.knob non-null and not exact), every
// knob of the catalogue: nn_knob_conv.cc. The readable definition of each
// knob's semantics, the oracle of the fast kernels.
bool supports_knob_conv(const NodeContext& ctx);
Result<std::unique_ptr<Kernel>> make_knob_conv(const NodeContext& ctx);

}  // namespace caliprox::reference
