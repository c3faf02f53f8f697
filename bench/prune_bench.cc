// prune_bench: what structured channel pruning (knobs/prune.h) buys, measured
// against what its FLOP count promises, in one run (bench/README.md,
// "Channel pruning"). For the bundled ResNet-style network it prunes every
// block's first convolution at each fraction (the channels end at the
// block's second convolution; the residual groups are not pruned) and
// times the exact and the pruned networks at batch 64 on the onednn
// backend, interleaved round by round.
//
//   prune_bench [--model M.onnx] [--batch 64] [--threads 2] [--rounds 20]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backends/backend.h"
#include "model_bench.h"
#include "data/idx.h"
#include "engine/session.h"
#include "ir/onnx_import.h"
#include "eval/prune_repair.h"
#include "knobs/prune.h"
#include "tune/measure.h"
#include "util/process_policy.h"
#include "util/stats.h"

namespace caliprox::bench {
namespace {

struct Options {
  std::string model = std::string(CALIPROX_SOURCE_ROOT) + "/models/fashion_resnet.onnx";
  std::string images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  int64_t batch = 64;
  int threads = 2;
  int rounds = 20;
};

// Top-1 accuracy of `g` on images [begin, begin + count) of the IDX set.
Result<double> top1(const Graph& g, Backend& backend, const Tensor& images, const Tensor& labels, int64_t begin,
                    int64_t count, int64_t batch) {
  const int64_t plane = images.dim(1) * images.dim(2);
  auto s = Session::create(g, backend, {{g.inputs[0].name, {batch, 1, images.dim(1), images.dim(2)}}});
  if (!s.ok()) return s.status();
  int64_t right = 0, seen = 0;
  for (int64_t b = begin; b + batch <= begin + count; b += batch) {
    const Tensor view = Tensor::view(DType::u8, {batch, images.dim(1), images.dim(2)},
                                     const_cast<uint8_t*>(images.data<uint8_t>()) + b * plane);
    CP_ASSIGN_OR_RETURN(Tensor x, fashion_batch(view, batch));
    CP_TRY((*s)->run(std::span<const Tensor>(&x, 1)));
    const float* y = (*s)->output(0).data<float>();
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t arg = std::max_element(y + i * 10, y + i * 10 + 10) - (y + i * 10);
      right += arg == labels.data<uint8_t>()[b + i];
      ++seen;
    }
  }
  return seen ? static_cast<double>(right) / static_cast<double>(seen) : 0.0;
}

// Accuracy of each block's conv1 pruned, without and with the least-squares
// repair (calibration: the first 512 images; evaluation: 2048 of the last 5000).
int accuracy_table(const Options& o, const Graph& graph, Backend& backend, const Tensor& images, const Tensor& labels,
                   const std::vector<std::string>& firsts) {
  auto calib = fashion_batch(images, 512);
  if (!calib.ok()) return 1;
  auto exact = top1(graph, backend, images, labels, 5000, 2048, o.batch);
  if (!exact.ok()) return 1;
  std::printf("\ntop-1 on 2048 test images (exact %.2f %%); repair: least squares on 512 calibration images\n",
              100 * *exact);
  std::printf("%-9s %12s %12s\n", "fraction", "pruned", "repaired");
  for (double f : {0.25, 0.5}) {
    Graph pruned = graph, repaired = graph;
    for (const std::string& node : firsts) {
      auto plan = plan_prune(repaired, node, f);
      auto next = ChannelPrune(node, f).apply(pruned);
      auto cut = ChannelPrune(node, f).apply(repaired);
      if (!plan.ok() || !next.ok() || !cut.ok()) return 1;
      pruned = std::move(*next);
      RepairReport report;
      auto fixed = repair_pruned(repaired, *cut, *plan, *calib, backend, {}, &report);
      for (const auto& l : report.layers)
        std::printf("  repair %s: output MSE %.4g -> %.4g\n", l.node.c_str(), l.mse_before, l.mse_after);
      if (!fixed.ok()) {
        std::fprintf(stderr, "prune_bench: %s\n", fixed.status().message().c_str());
        return 1;
      }
      repaired = std::move(*fixed);
    }
    auto a = top1(pruned, backend, images, labels, 5000, 2048, o.batch);
    auto b = top1(repaired, backend, images, labels, 5000, 2048, o.batch);
    if (!a.ok() || !b.ok()) return 1;
    std::printf("%-9.2f %11.2f%% %11.2f%%\n", f, 100 * *a, 100 * *b);
  }
  return 0;
}

// Multiply-adds x 2 of every Conv and Gemm, from the weights and output sizes a session reports.
double graph_flops(const Session& s) {
  double total = 0;
  for (const KnobSite& site : s.knob_sites()) total += conv_layer_flops(site.geometry);
  return total;
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model") o.model = argv[i + 1];
    else if (a == "--batch") o.batch = std::atoll(argv[i + 1]);
    else if (a == "--threads") o.threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds") o.rounds = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: prune_bench [--model M.onnx] [--batch 64] [--threads 2] [--rounds 20]\n");
      return 2;
    }
  }
  auto fail = [](const Status& st) {
    std::fprintf(stderr, "prune_bench: %s\n", st.message().c_str());
    return 1;
  };
  auto graph = load_onnx(o.model);
  if (!graph.ok()) return fail(graph.status());
  auto images = read_idx(o.images);
  if (!images.ok()) return fail(images.status());
  auto x = fashion_batch(*images, o.batch);
  if (!x.ok()) return fail(x.status());
  auto backend = create_backend("onednn", BackendOptions{o.threads});
  if (!backend.ok()) return fail(backend.status());
  std::vector<std::string> firsts, seconds;
  for (const Node& n : graph->nodes) {
    if (n.op_type == "Conv" && n.name.find("/conv1/") != std::string::npos) firsts.push_back(n.name);
    if (n.op_type == "Conv" && n.name.find("/conv2/") != std::string::npos) seconds.push_back(n.name);
  }
  std::printf("%s, batch %lld, %d thread(s), onednn\n", o.model.c_str(), static_cast<long long>(o.batch), o.threads);
  std::printf("%-34s %9s %12s %12s %10s %10s\n", "pruned", "fraction", "exact ms", "pruned ms", "measured", "nominal");
  SessionOptions so;
  so.threads = o.threads;
  const std::map<std::string, Shape> shapes{{graph->inputs[0].name, x->shape()}};
  auto base = Session::create(*graph, **backend, shapes, so);
  if (!base.ok()) return fail(base.status());
  // Each block's first convolution (its channels end at the second), and
  // then also each second convolution with its residual group (the
  // shortcut, and upstream what the shortcut adds).
  for (const bool groups : {false, true})
  for (double f : {0.25, 0.5, 0.75}) {
    Graph pruned = *graph;
    std::vector<std::string> nodes = firsts;
    if (groups) nodes.insert(nodes.end(), seconds.begin(), seconds.end());
    for (const std::string& node : nodes) {
      auto next = ChannelPrune(node, f).apply(pruned);
      if (!next.ok()) return fail(next.status());
      pruned = std::move(*next);
    }
    auto s = Session::create(pruned, **backend, shapes, so);
    if (!s.ok()) return fail(s.status());
    RepeatPolicy policy;
    policy.min_rounds = o.rounds;
    policy.min_seconds = 1.0;
    auto m = measure_interleaved({[&]() { return (*base)->run(std::span<const Tensor>(&*x, 1)); },
                                  [&]() { return (*s)->run(std::span<const Tensor>(&*x, 1)); }},
                                 policy);
    if (!m.ok()) return fail(m.status());
    const double a = summarize(m->seconds[0]).median * 1000, b = summarize(m->seconds[1]).median * 1000;
    std::printf("%-34s %9.2f %12.3f %12.3f %9.2fx %9.2fx\n",
                groups ? "conv1s, conv2s and residual groups" : "each block's conv1", f, a, b, a / b,
                graph_flops(**base) / graph_flops(**s));
  }
  auto labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  if (!labels.ok()) return fail(labels.status());
  return accuracy_table(o, *graph, **backend, *images, *labels, firsts);
}

}  // namespace
}  // namespace caliprox::bench

int main(int argc, char** argv) {
  caliprox::apply_process_policy(argv);
  return caliprox::bench::run(argc, argv);
}
