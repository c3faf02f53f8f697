#include "engine/split_session.h"

#include <algorithm>
#include <cstring>

#include "util/log.h"

namespace caliprox {

namespace {

// Adds `part` (the node timings of one run) to `sum` node by node; `sum`
// takes `part` as it is when empty.
void add_timings(std::vector<NodeTiming>& sum, const std::vector<NodeTiming>& part) {
  if (sum.empty()) {
    sum = part;
    return;
  }
  for (size_t k = 0; k < sum.size() && k < part.size(); ++k) sum[k].ms += part[k].ms;
}

}  // namespace

Result<std::unique_ptr<SplitSession>> SplitSession::try_create(const Graph& graph, Backend& backend,
                                                               const std::map<std::string, Shape>& input_shapes,
                                                               const SessionOptions& options,
                                                               const FoldedGraph& folded) {
  if (folded.input_names.empty()) return std::unique_ptr<SplitSession>();
  if (!folded.batch_dependent_control.empty()) {
    log_debug("batch split: no ({} follows a value computed from the batch length)",
              folded.batch_dependent_control.front());
    return std::unique_ptr<SplitSession>();
  }
  const int64_t n = folded.input_types[0].shape.empty() ? 0 : folded.input_types[0].shape[0];
  const BatchGraphView view{folded.nodes,       folded.types,       folded.constants, folded.batch_derived,
                            folded.input_names, folded.output_names};
  if (Status st = check_batch_separable(view, n); !st.ok()) {
    log_debug("batch split: no ({})", st.message());
    return std::unique_ptr<SplitSession>();
  }
  const double sample_bytes = sample_working_set(view, n);
  const BatchSplit plan = plan_batch_split(n, options.threads, sample_bytes, batch_split_budget());
  if (plan.chunk == 0) return std::unique_ptr<SplitSession>();

  std::unique_ptr<SplitSession> s(new SplitSession());
  s->plan_ = plan;
  s->n_ = n;
  s->collect_timings_ = options.collect_timings;
  s->input_names_ = folded.input_names;
  s->input_types_ = folded.input_types;
  std::map<std::string, Shape> chunk_shapes = input_shapes;
  for (auto& [name, shape] : chunk_shapes) shape[0] = plan.chunk;
  SessionOptions inner = options;
  inner.threads = 1;
  inner.batch_split = false;
  // A model may declare a fixed batch length; its chunks have another one.
  Graph chunk_graph = graph;
  for (ValueInfo& info : chunk_graph.inputs)
    if (chunk_shapes.count(info.name) && info.dims && !info.dims->empty()) (*info.dims)[0] = Dim{};
  for (int w = 0; w < plan.workers; ++w) {
    auto chunk = fold_graph(chunk_graph, chunk_shapes, inner);
    auto worker = chunk.ok() ? PlainSession::build(std::move(*chunk), backend, inner)
                             : Result<std::unique_ptr<PlainSession>>(chunk.status());
    if (!worker.ok()) {
      // E.g. a Reshape to a literal batch length: run the batch as one piece.
      log_debug("batch split: no (a session at {} samples fails: {})", plan.chunk, worker.status().message());
      return std::unique_ptr<SplitSession>();
    }
    s->workers_.push_back(std::move(*worker));
    if (w == 0 && !s->take_outputs(folded.output_names, folded.types)) return std::unique_ptr<SplitSession>();
  }
  for (KnobSite site : s->workers_[0]->knob_sites()) {
    site.flops *= static_cast<double>(n) / static_cast<double>(plan.chunk);
    site.geometry.n = n;
    s->sites_.push_back(std::move(site));
  }
  s->padded_.resize(static_cast<size_t>(plan.workers));
  s->worker_timings_.resize(static_cast<size_t>(plan.workers));
  log_debug("batch split: {} samples as {} chunks of {} on {} worker(s) ({:.0f} KiB per sample at most)", n,
            plan.chunks, plan.chunk, plan.workers, sample_bytes / 1024);
  return s;
}

// The outputs are the first worker's at this session's batch. Belt and
// braces: each must be this session's output cut to the chunk (the copy in
// run_worker relies on it).
bool SplitSession::take_outputs(const std::vector<std::string>& graph_outputs,
                                const std::map<std::string, TensorType>& types) {
  const PlainSession& first = *workers_[0];
  for (size_t i = 0; i < first.output_types().size(); ++i) {
    const TensorType& part = first.output_types()[i];
    const auto it = std::find(graph_outputs.begin(), graph_outputs.end(), first.output_names()[i]);
    TensorType whole = part;
    if (!whole.shape.empty()) whole.shape[0] = n_;
    if (part.shape.empty() || part.shape[0] != plan_.chunk || it == graph_outputs.end() || types.at(*it) != whole) {
      log_debug("batch split: no (output '{}' is {} at {} samples)", first.output_names()[i], shape_str(part.shape),
                plan_.chunk);
      return false;
    }
  }
  for (size_t i = 0; i < first.output_names().size(); ++i) {
    TensorType t = first.output_types()[i];
    t.shape[0] = n_;
    output_names_.push_back(first.output_names()[i]);
    output_types_.push_back(t);
    outputs_.emplace_back(t.dtype, t.shape);
  }
  return true;
}

// Worker w runs chunks w, w + workers, ... and copies their outputs into
// this session's outputs (disjoint rows per chunk).
Status SplitSession::run_worker(size_t w, std::span<const Tensor> inputs) {
  PlainSession& worker = *workers_[w];
  std::vector<NodeTiming>& times = worker_timings_[w];
  times.clear();
  const int64_t b = plan_.chunk;
  std::vector<Tensor> chunk_inputs(inputs.size());
  for (auto c = static_cast<int64_t>(w); c < plan_.chunks; c += plan_.workers) {
    const int64_t begin = c * b;
    const int64_t count = std::min(b, n_ - begin);
    for (size_t i = 0; i < inputs.size(); ++i) {
      Shape shape = inputs[i].shape();
      shape[0] = b;
      const size_t sample = inputs[i].nbytes() / static_cast<size_t>(n_);
      const auto* from = static_cast<const char*>(inputs[i].raw()) + static_cast<size_t>(begin) * sample;
      if (count == b) {
        // The worker session only reads its inputs.
        chunk_inputs[i] = Tensor::view(inputs[i].dtype(), shape, const_cast<char*>(from));
        continue;
      }
      // A partial last chunk: pad with copies of its last sample (they are
      // computed and dropped; repeating a real sample keeps calibrated
      // ranges unchanged).
      auto& padded = padded_[w];
      if (padded.size() != inputs.size()) padded.resize(inputs.size());
      if (padded[i].shape() != shape || padded[i].dtype() != inputs[i].dtype())
        padded[i] = Tensor(inputs[i].dtype(), shape);
      auto* to = static_cast<char*>(padded[i].raw());
      std::memcpy(to, from, static_cast<size_t>(count) * sample);
      for (int64_t k = count; k < b; ++k)
        std::memcpy(to + static_cast<size_t>(k) * sample, from + static_cast<size_t>(count - 1) * sample, sample);
      chunk_inputs[i] = padded[i];
    }
    worker.set_sample_window(begin, count);
    CP_TRY(worker.run(chunk_inputs));
    for (size_t o = 0; o < outputs_.size(); ++o) {
      const Tensor& part = worker.output(o);
      const size_t sample = part.nbytes() / static_cast<size_t>(b);
      std::memcpy(static_cast<char*>(outputs_[o].raw()) + static_cast<size_t>(begin) * sample, part.raw(),
                  static_cast<size_t>(count) * sample);
    }
    if (collect_timings_) add_timings(times, worker.timings());
  }
  return {};
}

Status SplitSession::execute(std::span<const Tensor> inputs) {
  const auto workers = static_cast<int>(workers_.size());
  std::vector<Status> status(workers_.size());
  // One thread per worker, each running its chunks through the whole network
  // on one core. Nested kernels see they are inside a parallel region (and
  // were prepared for one thread) and do not start teams of their own.
#pragma omp parallel for num_threads(workers) schedule(static, 1)
  for (int w = 0; w < workers; ++w) status[static_cast<size_t>(w)] = run_worker(static_cast<size_t>(w), inputs);
  for (const Status& st : status)
    if (!st.ok()) return st;
  if (collect_timings_) {
    // Per node: the threads' time summed over all chunks, divided by the
    // number of threads (the node's share of the run's wall time).
    timings_.clear();
    for (const auto& t : worker_timings_) add_timings(timings_, t);
    for (NodeTiming& t : timings_) t.ms /= static_cast<double>(workers);
  }
  return {};
}

Status SplitSession::configure(const KnobConfig& config) {
  // All workers or none: one that fails puts the others back.
  for (size_t w = 0; w < workers_.size(); ++w) {
    if (Status st = workers_[w]->configure(config); !st.ok()) {
      for (size_t v = 0; v < w; ++v) (void)workers_[v]->configure(config_);
      return st;
    }
  }
  config_ = workers_[0]->configuration();
  return {};
}

size_t SplitSession::release_idle_kernels() {
  size_t freed = 0;
  for (auto& worker : workers_) freed += worker->release_idle_kernels();
  return freed;
}

void SplitSession::set_calibrated_ranges(std::map<std::string, ValueRange> ranges) {
  for (auto& worker : workers_) worker->set_calibrated_ranges(ranges);
}

void SplitSession::observers_changed() {
  for (auto& worker : workers_) {
    for (NodeObserver* o : forwarded_) worker->remove_observer(*o);
    for (NodeObserver* o : observers_) worker->add_observer(*o);
  }
  forwarded_ = observers_;
}

}  // namespace caliprox
