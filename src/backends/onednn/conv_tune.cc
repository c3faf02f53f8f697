// Prepare-time tuning of Conv kernels: which layout / algorithm / thread
// count is fastest depends on the shape and on the machine's state (an
// OpenMP team costs ~1 us to wake when its threads spin, ~10 us with a
// passive wait policy, far more when other processes hold the cores), so the
// candidates are timed where they will run. Every candidate computes the same
// convolution (the tests check each variant against the reference backend);
// only rounding differs, by ~1e-6 relative.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "backends/onednn/conv.h"
#include "util/log.h"

namespace caliprox::onednn {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string tuning_key(const NodeContext& ctx, int threads) {
  std::string key = fmt::format("{}|t{}|{}{}", ctx.node.op_type, threads, ctx.layout == Layout::nhwc ? "nhwc" : "nchw",
                                ctx.residual_in_place ? "|in-place" : "");
  for (size_t i = 0; i < ctx.input_types.size(); ++i)
    key += fmt::format("|{}{}", shape_str(ctx.input_types[i].shape),
                       (i < ctx.constants.size() && ctx.constants[i] != nullptr) ? "c" : "");
  for (const auto& [name, a] : ctx.node.attrs) {
    key += "|" + name + "=";
    switch (a.kind) {
      case Attribute::Kind::i: key += std::to_string(a.i); break;
      case Attribute::Kind::f: key += fmt::format("{}", a.f); break;
      case Attribute::Kind::s: key += a.s; break;
      case Attribute::Kind::ints: key += fmt::format("{}", fmt::join(a.ints, ",")); break;
      case Attribute::Kind::floats: key += fmt::format("{}", fmt::join(a.floats, ",")); break;
      case Attribute::Kind::strings: key += fmt::format("{}", fmt::join(a.strings, ",")); break;
      case Attribute::Kind::t: key += "tensor"; break;
      case Attribute::Kind::graph: key += "graph"; break;
    }
  }
  return key;
}

namespace {

TuningCache<ConvVariant>& cache() {
  static TuningCache<ConvVariant> c;
  return c;
}

// pick_fastest's scratch tensors, its timing and its choice.
struct TuningScratch {
  std::vector<Tensor> owned;
  std::vector<const Tensor*> inputs;
  std::vector<Tensor*> outputs;
};

// Values in [-1, 1) rather than zeros: some implementations (oneDNN's
// GEMM-based post-ops) branch on the sign of each output.
void make_tuning_scratch(const NodeContext& ctx, bool residual_in_output, TuningScratch& s) {
  s.owned.reserve(ctx.input_types.size() + ctx.output_types.size());
  for (size_t i = 0; i < ctx.input_types.size(); ++i) {
    const Tensor* c = i < ctx.constants.size() ? ctx.constants[i] : nullptr;
    if (ctx.input_types[i].dtype == DType::undefined) {
      s.inputs.push_back(nullptr);
    } else if (c != nullptr) {
      s.inputs.push_back(c);
    } else {
      s.owned.emplace_back(ctx.input_types[i].dtype, ctx.input_types[i].shape);
      if (s.owned.back().dtype() == DType::f32) {
        uint32_t state = 12345u + static_cast<uint32_t>(i);
        for (float& v : s.owned.back().span<float>()) {
          state = state * 1664525u + 1013904223u;  // LCG: cheap, deterministic
          v = static_cast<float>(state >> 8) * (2.f / 16777216.f) - 1.f;
        }
      }
      s.inputs.push_back(&s.owned.back());
    }
  }
  for (size_t j = 0; j < ctx.output_types.size(); ++j) {
    // A kernel writing codes (NodeContext::output_codes) writes them as output #0.
    const TensorType& t = ctx.output_types[j];
    s.owned.emplace_back(j == 0 && ctx.output_codes ? ctx.output_codes->type : t.dtype, t.shape);
    s.outputs.push_back(&s.owned.back());
  }
  const bool residual_scratch = s.inputs.size() > 3 && s.inputs[3] != nullptr &&
                                (ctx.constants.size() <= 3 || ctx.constants[3] == nullptr);
  if (residual_in_output && residual_scratch && !s.outputs.empty() && s.inputs[3]->type() == s.outputs[0]->type())
    s.outputs[0] = const_cast<Tensor*>(s.inputs[3]);
}

Result<std::vector<double>> time_kernels(const std::vector<Kernel*>& kernels, const TuningScratch& s,
                                         double round_seconds, int min_reps) {
  // One warm-up run each (first-touch page faults, cold caches), then rounds
  // in turn so that a burst of load from elsewhere hits every kernel; the
  // minimum per-run time of each is what it can do.
  double slowest_warmup = 0;
  for (Kernel* k : kernels) {
    const double t0 = now_seconds();
    CP_TRY(k->run(s.inputs, s.outputs));
    slowest_warmup = std::max(slowest_warmup, now_seconds() - t0);
  }
  // Short kernels are repeated to rise above timer noise.
  const int reps = std::clamp(static_cast<int>(round_seconds / std::max(slowest_warmup, 1e-7)), min_reps,
                              std::max(min_reps, 50));
  std::vector<double> best(kernels.size(), 1e30);
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < kernels.size(); ++i) {
      const double t0 = now_seconds();
      for (int r = 0; r < reps; ++r) CP_TRY(kernels[i]->run(s.inputs, s.outputs));
      best[i] = std::min(best[i], (now_seconds() - t0) / reps);
    }
  return best;
}

size_t fastest_of(const std::vector<double>& seconds) {
  size_t winner = 0;
  for (size_t i = 1; i < seconds.size(); ++i)
    if (seconds[i] < 0.95 * seconds[winner]) winner = i;
  return winner;
}

}  // namespace

Result<size_t> pick_fastest(const NodeContext& ctx, const std::vector<Kernel*>& kernels,
                            const std::vector<std::string>& labels, bool residual_in_output, double round_seconds,
                            int min_reps) {
  TuningScratch scratch;
  make_tuning_scratch(ctx, residual_in_output, scratch);
  CP_ASSIGN_OR_RETURN(const std::vector<double> seconds, time_kernels(kernels, scratch, round_seconds, min_reps));
  const size_t winner = fastest_of(seconds);
  for (size_t i = 0; i < kernels.size(); ++i)
    log_debug("onednn: {} {}: {:.1f} us{}", ctx.node.describe(), labels[i], seconds[i] * 1e6,
              i == winner ? " <- picked" : "");
  return winner;
}

namespace {

struct Contender {
  ConvVariant variant;
  std::unique_ptr<Kernel> kernel;
};

}  // namespace

bool conv_tuning_enabled() {
  const char* v = std::getenv("CALIPROX_ONEDNN_TUNE");
  return v == nullptr || std::string(v) != "0";
}

Result<std::unique_ptr<Kernel>> fastest_conv_kernel(const NodeContext& ctx, std::shared_ptr<const Runtime> rt,
                                                    int threads, const std::vector<ConvVariant>& candidates) {
  const std::string key = tuning_key(ctx, threads);
  if (auto known = cache().find(key)) return make_conv_kernel(ctx, rt, threads, &*known);

  std::vector<Contender> field;
  Status first_error;
  for (const ConvVariant& v : candidates) {
    auto k = make_conv_kernel(ctx, rt, threads, &v);
    if (k.ok()) {
      field.push_back({v, std::move(k).value()});
    } else if (first_error.ok()) {
      first_error = k.status();
    }
  }
  if (field.empty()) return first_error;
  if (field.size() == 1) return std::move(field.front().kernel);

  // Timed as it will run: the residual already in the destination when the
  // executor lends it. About 2 ms of runs per contender and round; the
  // heuristic's pick (first) keeps its place unless another is clearly
  // faster.
  std::vector<Kernel*> kernels;
  std::vector<std::string> labels;
  for (size_t i = 0; i < field.size(); ++i) {
    const ConvVariant& v = field[i].variant;
    kernels.push_back(field[i].kernel.get());
    labels.push_back(fmt::format("variant {} ({} on {} host tensors, {} layout{}{}, {} thread(s))", i,
                                 conv_impl_name(*field[i].kernel), ctx.layout == Layout::nhwc ? "NHWC" : "NCHW",
                                 layout_name(v.layout), v.binary_residual ? ", binary residual" : "",
                                 v.jit ? ", past brgemm" : "", v.threads));
  }
  CP_ASSIGN_OR_RETURN(const size_t winner, pick_fastest(ctx, kernels, labels, ctx.residual_in_place, 2e-3, 1));
  cache().remember(key, field[winner].variant);
  return std::move(field[winner].kernel);
}

}  // namespace caliprox::onednn
