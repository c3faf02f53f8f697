// prune_bench: what structured channel pruning (knobs/prune.h) buys, measured
// against what its FLOP count promises, in one run (bench/README.md,
// "Channel pruning"). For the bundled ResNet-style network it prunes every
// block's first convolution at each fraction (the channels end at the
// block's second convolution; the residual groups are not pruned) and
// times the exact and the pruned networks at batch 64 on the onednn
// backend, interleaved round by round.
//
//   prune_bench [--model M.onnx] [--batch 64] [--threads 2] [--rounds 20]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backends/backend.h"
#include "model_bench.h"
#include "data/idx.h"
#include "engine/session.h"
#include "ir/onnx_import.h"
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
  return 0;
}

}  // namespace
}  // namespace caliprox::bench

int main(int argc, char** argv) {
  caliprox::apply_process_policy(argv);
  return caliprox::bench::run(argc, argv);
}
