#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "eval/interrupt.h"
#include "eval/reshape.h"
#include "ir/onnx_import.h"

namespace caliprox {

Evaluator::Evaluator(const Experiment& exp) : exp_(exp) {}
Evaluator::~Evaluator() = default;

Result<std::unique_ptr<Evaluator>> Evaluator::create(const Experiment& exp, const std::string& backend, int threads,
                                                     bool collect_timings, Notice notice) {
  std::unique_ptr<Evaluator> ev(new Evaluator(exp));
  CP_ASSIGN_OR_RETURN(Graph graph, load_onnx(exp.network.model_path));
  ev->variants_ = std::make_unique<RewriteCache>(std::move(graph));
  CP_ASSIGN_OR_RETURN(ev->io_, model_io(ev->graph(), exp.network, exp.source_path));
  CP_ASSIGN_OR_RETURN(ev->data_, load_dataset(exp.dataset));
  if (ev->data_.size() == 0) return invalid_input("{}: the dataset has no samples", exp.dataset.samples_path);
  CP_TRY(check_input_fits(*ev->io_.input, ev->data_.sample_batch(0, 1).shape(), exp.dataset.samples_path));
  CP_ASSIGN_OR_RETURN(ev->backend_,
                      make_backend(backend, threads,
                                   exp.targets.empty() ? DeviceSelector{} : device_selector(exp.targets.front())));
  ev->threads_ = threads;
  ev->collect_timings_ = collect_timings;
  ev->notice_ = std::move(notice);
  return ev;
}

Result<std::unique_ptr<Session>> Evaluator::new_session(const Graph& graph, const std::string& variant, int64_t n,
                                                        const KnobConfig& kernels) {
  SessionOptions opt;
  opt.threads = threads_;
  opt.collect_timings = collect_timings_;
  if (auto r = ranges_.find(variant); r != ranges_.end()) opt.input_ranges = r->second;
  Shape shape = data_.sample_batch(0, 1).shape();
  shape[0] = n;
  CP_ASSIGN_OR_RETURN(auto s, Session::create(graph, *backend_, {{io_.input->name, shape}}, opt));
  CP_TRY(s->configure(kernels));
  return s;
}

Result<Session*> Evaluator::session(int64_t n) {
  auto it = sessions_.find(n);
  if (it == sessions_.end()) {
    CP_ASSIGN_OR_RETURN(auto s, new_session(current_graph(), variant_, n, kernels_));
    it = sessions_.emplace(n, std::move(s)).first;
  }
  return it->second.get();
}

Result<std::unique_ptr<Session>> Evaluator::detached_session(const KnobConfig& config, int64_t n) {
  CP_ASSIGN_OR_RETURN(SplitConfig split, split_configuration(graph(), config));
  const RewriteChain chain = reshape_chain(split, *backend_, [this] { return repair_inputs(); });
  const std::string key = rewrite_chain_key(chain);
  const bool int8 = std::any_of(split.kernels.begin(), split.kernels.end(),
                                [](const auto& k) { return k.second == "int8"; });
  if (key != variant_ && int8 && !ranges_.count(key)) {
    // The variant's ranges need a calibration pass on its sessions: through
    // configure(), which drops the current sessions.
    const KnobConfig saved = config_;
    CP_TRY(configure(config));
    auto s = new_session(current_graph(), variant_, n, kernels_);
    CP_TRY(configure(saved));
    return s;
  }
  CP_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> g, variants_->graph(chain));
  return new_session(*g, key, n, split.kernels);
}

Result<const std::vector<KnobSite>*> Evaluator::knob_sites() {
  if (sites_) return &*sites_;
  const int64_t batch = exp_.dataset.batch;
  std::vector<KnobSite> sites;
  if (current_ == nullptr) {
    CP_ASSIGN_OR_RETURN(Session * s, session(batch));
    sites = s->knob_sites();
  } else {  // the sessions run a variant: the sites are the loaded network's
    CP_ASSIGN_OR_RETURN(auto s, new_session(graph(), "", batch, {}));
    sites = s->knob_sites();
  }
  add_reshape_sites(graph(), batch, sites);
  sites_ = std::move(sites);
  return &*sites_;
}

SplitRange Evaluator::calibration_range() {
  for (const char* name : {"calibrate", "tune"}) {
    if (data_.splits.count(name)) {
      calibration_split_ = name;
      return data_.splits.at(name);
    }
  }
  calibration_split_ = "(all samples)";
  return {0, data_.size()};
}

Result<Tensor> Evaluator::repair_inputs() {
  if (!repair_inputs_) {
    const SplitRange range = calibration_range();
    const int64_t n = std::min<int64_t>(range.end - range.begin, 128);
    if (notice_)
      notice_(fmt::format("repairing pruned layers by least squares on the first {} samples of split '{}'", n,
                          calibration_split_));
    repair_inputs_ = data_.sample_batch(range.begin, range.begin + n);
  }
  return *repair_inputs_;
}

Status Evaluator::use_variant(const RewriteChain& chain) {
  const std::string key = rewrite_chain_key(chain);
  if (key == variant_) return {};
  CP_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> g, variants_->graph(chain));
  sessions_.clear();
  kernels_.clear();  // the sessions that ran them are gone
  current_ = chain.empty() ? nullptr : std::move(g);
  variant_ = key;
  return {};
}

Result<std::vector<Evaluator::AppliedReshape>> Evaluator::applied_reshapes() {
  CP_ASSIGN_OR_RETURN(SplitConfig split, split_configuration(graph(), config_));
  const RewriteChain chain = reshape_chain(split, *backend_, [this] { return repair_inputs(); });
  std::vector<AppliedReshape> steps;
  for (size_t k = 0; k < chain.size(); ++k) {
    CP_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> before,
                        variants_->graph(RewriteChain(chain.begin(), chain.begin() + static_cast<ptrdiff_t>(k))));
    steps.push_back({split.reshapes[k], std::move(before)});
  }
  return steps;
}

Status Evaluator::replace_current_graph(Graph graph) {
  auto replacement = std::make_shared<const Graph>(std::move(graph));
  const KnobConfig kernels = kernels_;
  // The sessions are rebuilt on `g` (ranges calibrated first when int8 needs them).
  auto switch_to = [&](std::shared_ptr<const Graph> g, const std::string& variant) -> Status {
    sessions_.clear();
    kernels_.clear();
    current_ = std::move(g);
    variant_ = variant;
    if (std::any_of(kernels.begin(), kernels.end(), [](const auto& k) { return k.second == "int8"; }))
      CP_TRY(calibrated_ranges().status());
    CP_TRY(session(exp_.dataset.batch).status());
    return configure_sessions(kernels);
  };
  std::shared_ptr<const Graph> previous = current_;
  const std::string previous_variant = variant_;
  const std::string variant = previous_variant + (previous_variant.empty() ? "" : " | ") + "replaced";
  ranges_.erase(variant);  // of an earlier replacement
  if (Status st = switch_to(std::move(replacement), variant); !st.ok()) {
    ranges_.erase(variant);
    (void)switch_to(std::move(previous), previous_variant);
    return st;
  }
  return {};
}

Result<const std::map<std::string, ValueRange>*> Evaluator::calibrated_ranges() {
  if (auto it = ranges_.find(variant_); it != ranges_.end()) return &it->second;
  const SplitRange range = calibration_range();
  if (notice_)
    notice_(fmt::format("calibrating int8 input ranges on split '{}' ({} samples){}", calibration_split_,
                        range.end - range.begin, variant_.empty() ? "" : " for the reshaped network"));
  // No kernel knob, ranges of every knob site's input.
  const KnobConfig saved = kernels_;
  CP_TRY(configure_sessions({}));
  std::map<std::string, ValueRange> ranges;
  const int64_t batch = exp_.dataset.batch;
  for (int64_t b = range.begin; b < range.end; b += batch) {
    if (interrupt_requested()) return interrupted_status("calibration");
    const int64_t e = std::min(b + batch, range.end);
    CP_ASSIGN_OR_RETURN(Session * s, session(e - b));
    s->track_input_ranges(true);
    Tensor x = data_.sample_batch(b, e);
    CP_TRY(s->run(std::span<const Tensor>(&x, 1)));
    merge_ranges(ranges, s->input_ranges());
    s->track_input_ranges(false);
  }
  const auto& stored = ranges_[variant_] = std::move(ranges);
  for (auto& [n, s] : sessions_) s->set_calibrated_ranges(stored);
  CP_TRY(configure_sessions(saved));
  return &stored;
}

Status Evaluator::configure_sessions(const KnobConfig& kernels) {
  // All or nothing: on failure, sessions already switched go back.
  std::vector<Session*> done;
  for (auto& [n, s] : sessions_) {
    Status st = s->configure(kernels);
    if (!st.ok()) {
      for (Session* d : done) (void)d->configure(kernels_);
      return st;
    }
    done.push_back(s.get());
  }
  kernels_ = kernels;
  return {};
}

Status Evaluator::configure(const KnobConfig& config) {
  CP_ASSIGN_OR_RETURN(SplitConfig split, split_configuration(graph(), config));
  CP_ASSIGN_OR_RETURN(SplitConfig before, split_configuration(graph(), config_));
  auto inputs = [this] { return repair_inputs(); };
  CP_TRY(use_variant(reshape_chain(split, *backend_, inputs)));
  Status st = [&]() -> Status {
    bool int8 = false;
    for (const auto& [node, knob] : split.kernels) int8 = int8 || knob == "int8";
    if (int8) CP_TRY(calibrated_ranges().status());
    if (sessions_.empty()) CP_TRY(session(exp_.dataset.batch).status());
    return configure_sessions(split.kernels);
  }();
  if (!st.ok()) {  // back to the previous configuration's variant
    if (use_variant(reshape_chain(before, *backend_, inputs)).ok()) (void)configure_sessions(before.kernels);
    return st;
  }
  config_ = config;
  return {};
}

Result<std::vector<Tensor>*> Evaluator::exact_outputs(int64_t begin, int64_t end) {
  if (auto it = exact_cache_.find({begin, end}); it != exact_cache_.end()) return &it->second;
  // Sessions of their own on the network as loaded: the current variant
  // (or a replaced graph) and its sessions stay as they are.
  std::map<int64_t, std::unique_ptr<Session>> exact;  // by batch size
  std::vector<Tensor> outs;
  const int64_t batch = exp_.dataset.batch;
  for (int64_t b = begin; b < end; b += batch) {
    if (interrupt_requested()) return interrupted_status("exact outputs");
    const int64_t e = std::min(b + batch, end);
    std::unique_ptr<Session>& s = exact[e - b];
    if (!s) {
      CP_ASSIGN_OR_RETURN(s, new_session(graph(), "", e - b, {}));
    }
    Tensor x = data_.sample_batch(b, e);
    CP_TRY(s->run(std::span<const Tensor>(&x, 1)));
    for (size_t i = 0; i < s->output_names().size(); ++i)
      if (s->output_names()[i] == io_.output) outs.push_back(s->output(i).clone());
  }
  return &exact_cache_.emplace(std::make_pair(begin, end), std::move(outs)).first->second;
}

Result<SplitResult> Evaluator::run_split(const std::string& split, std::vector<float>* outputs,
                                         const std::function<void(int64_t, int64_t)>& on_batch) {
  CP_ASSIGN_OR_RETURN(SplitRange range, data_.split(split));
  return run_range(range.begin, range.end, outputs, on_batch);
}

Result<SplitResult> Evaluator::run_range(int64_t begin, int64_t end, std::vector<float>* outputs,
                                         const std::function<void(int64_t, int64_t)>& on_batch) {
  if (begin < 0 || end > data_.size() || begin >= end)
    return invalid_input("sample range [{}, {}) is empty or outside the dataset's {} samples", begin, end,
                         data_.size());
  const SplitRange range{begin, end};
  const bool needs_exact = exp_.qos.metric == Metric::agreement_top1 || exp_.qos.metric == Metric::max_abs_error ||
                           exp_.qos.metric == Metric::mean_abs_error ||
                           exp_.qos.reference == MetricReference::exact;
  std::vector<Tensor>* exact = nullptr;
  if (needs_exact && !config_.empty()) {
    CP_ASSIGN_OR_RETURN(exact, exact_outputs(begin, end));
  }
  MetricAccumulator main_metric(exp_.qos);
  std::vector<std::pair<std::string, MetricAccumulator>> extra;
  const bool class_labels = data_.labels && data_.labels->dtype() == DType::i64;
  if (class_labels) {
    QosSpec top1 = exp_.qos, top5 = exp_.qos;
    top1.metric = Metric::top1;
    top5.metric = Metric::topk;
    top5.k = 5;
    extra.emplace_back("top1", MetricAccumulator(top1));
    extra.emplace_back("top5", MetricAccumulator(top5));
  }
  SplitResult result;
  const int64_t batch = exp_.dataset.batch;
  size_t index = 0;
  for (int64_t b = range.begin; b < range.end; b += batch, ++index) {
    if (interrupt_requested()) return interrupted_status("evaluation");
    const int64_t e = std::min(b + batch, range.end);
    CP_ASSIGN_OR_RETURN(Session * s, session(e - b));
    Tensor x = data_.sample_batch(b, e);
    auto t0 = std::chrono::steady_clock::now();
    CP_TRY(s->run(std::span<const Tensor>(&x, 1)));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (e - b == batch && b != range.begin) result.batch_ms.push_back(ms);
    const Tensor* y = nullptr;
    for (size_t i = 0; i < s->output_names().size(); ++i)
      if (s->output_names()[i] == io_.output) y = &s->output(i);
    if (!y) return runtime_error("output '{}' missing from the session", io_.output);
    const Tensor* ref = exact ? &(*exact)[index] : y;
    std::optional<Tensor> labels = data_.label_batch(b, e);
    CP_TRY(main_metric.add(*y, labels ? &*labels : nullptr, ref));
    for (auto& [name, acc] : extra) CP_TRY(acc.add(*y, &*labels, ref));
    if (outputs) {
      const float* p = y->data<float>();
      outputs->insert(outputs->end(), p, p + y->numel());
    }
    if (on_batch) on_batch(e - range.begin, range.end - range.begin);
  }
  result.samples = range.end - range.begin;
  result.qos = main_metric.value();
  result.metrics[std::string(metric_name(exp_.qos.metric))] = result.qos;
  for (auto& [name, acc] : extra) result.metrics[name] = acc.value();
  return result;
}

}  // namespace caliprox
