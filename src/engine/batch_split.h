#pragma once
// Splitting a batch into chunks. A session at batch N whose graph handles
// every sample on its own (no op mixes samples along axis 0) can run as
// chunks of B samples instead: each chunk's activations stay in the core's
// caches, and with several threads each thread runs whole chunks through the
// whole network (no synchronisation between layers). Session::create decides
// with the functions below; Session::run does the rest.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

// The graph as shape inference left it at batch N, before graph passes.
struct BatchGraphView {
  const std::vector<Node>& nodes;                   // nodes that run on data, in order
  const std::map<std::string, TensorType>& types;   // every value at batch N
  const std::map<std::string, Tensor>& constants;   // initializers and folded values
  const std::set<std::string>& batch_derived;       // constants computed from a fed value's shape
  const std::vector<std::string>& inputs;           // fed graph inputs
  const std::vector<std::string>& outputs;          // graph outputs
};

// Ok when axis 0 of every fed input and of every graph output is the batch
// and every node keeps the samples apart (its outputs' sample i depends only
// on its inputs' sample i), so that running the graph on consecutive slices
// of the batch and stacking the outputs gives the same result. Otherwise
// Errc::unsupported naming the first node (or value) that prevents it. The
// rules are conservative: an op or attribute they do not know prevents it.
Status check_batch_separable(const BatchGraphView& g, int64_t n);

// Bytes per sample one layer keeps in flight: twice the largest activation
// (a fused layer reads one and writes one). The chunk size comes from it.
double sample_working_set(const BatchGraphView& g, int64_t n);

struct BatchSplit {
  int workers = 1;      // threads, each running whole chunks on one core
  int64_t chunk = 0;    // samples per chunk (0: no split)
  int64_t chunks = 1;   // ceil(n / chunk)
};

// How to split a batch of n samples for `threads` threads: chunks of at most
// the largest power of two of samples whose working set fits budget_bytes
// (at least 1), their number rounded up to a multiple of the workers
// (min(threads, n)), then evened out (all chunks the same size but the
// last). No split (chunk 0) when one chunk on one thread would hold the
// whole batch.
BatchSplit plan_batch_split(int64_t n, int threads, double sample_bytes, double budget_bytes);

// The per-worker working-set budget (bytes): CALIPROX_BATCH_BUDGET_KB when
// set, else one core's L2 cache as probed (cpu::Features::l2_bytes), else
// 1 MiB (man caliprox, ENVIRONMENT).
double batch_split_budget();

}  // namespace caliprox
