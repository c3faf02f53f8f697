// caliprox_export_cases: the caliprox side of tests/ort_export_test.py.
// For one network of an experiment, writes each exportable knob kind on
// every layer that takes it and on one layer alone as a lowered ONNX file
// (knobs/standard_ops.h, ir/onnx_export.h), with what caliprox's reference
// backend computes under the same configuration for the first samples of
// the test split, and a manifest the ONNX Runtime side reads.
//
//   caliprox_export_cases EXPERIMENT.yaml OUTDIR [--network NAME] [--samples N]
//
// int8 ranges are calibrated as `caliprox export` would: Evaluator's
// calibration pass (on the onednn backend, for speed; the ranges are the
// same values the reference would see up to float rounding, and both sides
// of the comparison use these ones).
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"
#include "ir/onnx_export.h"
#include "knobs/standard_ops.h"

using namespace caliprox;
using nlohmann::json;

namespace {

struct Args {
  std::string experiment, out;
  std::optional<std::string> network;
  int64_t samples = 16;
};

Result<Args> parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--network" && i + 1 < argc) {
      a.network = argv[++i];
    } else if (arg == "--samples" && i + 1 < argc) {
      const std::string v = argv[++i];
      if (std::from_chars(v.data(), v.data() + v.size(), a.samples).ec != std::errc()) a.samples = 0;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2 || a.samples < 1)
    return invalid_input("usage: caliprox_export_cases EXPERIMENT.yaml OUTDIR [--network NAME] [--samples N]");
  a.experiment = positional[0];
  a.out = positional[1];
  return a;
}

Status write_floats(const std::string& path, const float* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(float)));
  return f ? Status() : runtime_error("cannot write {}", path);
}

// What caliprox computes under `config`: the reference backend, the
// calibrated ranges, output `output` of the graph.
Result<Tensor> caliprox_output(const Graph& g, const Tensor& x, const std::string& input, const std::string& output,
                               const KnobConfig& config, const std::map<std::string, ValueRange>& ranges) {
  auto reference = make_reference_backend({1});
  SessionOptions opt;
  opt.input_ranges = ranges;
  CP_ASSIGN_OR_RETURN(auto session, Session::create(g, *reference, {{input, x.shape()}}, opt));
  CP_TRY(session->configure(config));
  CP_TRY(session->run(std::span<const Tensor>(&x, 1)));
  for (size_t i = 0; i < session->output_names().size(); ++i)
    if (session->output_names()[i] == output) return session->output(i).clone();
  return invalid_input("the network has no output '{}'", output);
}

// The configurations: each kind on every site that takes it, and alone on
// the middle site (a layer with neighbours on both sides).
std::vector<std::pair<std::string, KnobConfig>> cases(const std::vector<KnobSite>& sites) {
  std::vector<std::pair<std::string, KnobConfig>> out = {{"exact", {}}};
  for (const char* knob : {"samp-3-1", "samp-4-3-fp16", "fp16", "bf16", "int8"}) {
    KnobConfig all, single;
    for (const KnobSite& s : sites)
      for (const Knob* k : s.knobs)
        if (k->name == knob) all[s.node] = knob;
    const std::string middle = sites[sites.size() / 2].node;
    if (all.count(middle)) single[middle] = knob;
    if (!all.empty()) out.emplace_back(fmt::format("{}-all", knob), all);
    if (!single.empty()) out.emplace_back(fmt::format("{}-single", knob), single);
  }
  // Reshape knobs (the graph rewritten, then lowered): each on every layer
  // that takes it, and one combined with int8 on the first layer that
  // takes both.
  for (const char* knob : {"prune-0.5", "lowrank-0.5"}) {
    KnobConfig all;
    for (const KnobSite& s : sites)
      for (const Knob* k : s.knobs)
        if (k->name == knob) all[s.node] = knob;
    if (!all.empty()) out.emplace_back(fmt::format("{}-all", knob), all);
  }
  for (const KnobSite& s : sites) {
    const bool prune = std::any_of(s.knobs.begin(), s.knobs.end(), [](const Knob* k) { return k->name == "prune-0.25"; });
    const bool int8 = std::any_of(s.knobs.begin(), s.knobs.end(), [](const Knob* k) { return k->name == "int8"; });
    if (prune && int8) {
      out.push_back({"prune-0.25+int8-single", {{s.node, "prune-0.25+int8"}}});
      break;
    }
  }
  return out;
}

Status run(const Args& a) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(a.experiment));
  CP_TRY(select_network(exp, a.network, "caliprox_export_cases"));
  const auto names = backend_names();
  const bool onednn = std::find(names.begin(), names.end(), "onednn") != names.end();
  CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(exp, onednn ? "onednn" : "reference", 2));
  CP_ASSIGN_OR_RETURN(const auto* ranges, ev->calibrated_ranges());
  CP_ASSIGN_OR_RETURN(const auto* sites, ev->knob_sites());
  if (sites->empty()) return invalid_input("{}: the network has no layer that takes knobs", a.experiment);
  CP_ASSIGN_OR_RETURN(SplitRange test, ev->dataset().split("test"));
  const int64_t n = std::min(a.samples, test.end - test.begin);
  const Tensor x = ev->dataset().sample_batch(test.begin, test.begin + n).clone();
  const std::string input = ev->io().input->name, output = ev->io().output;
  CP_TRY(write_floats(a.out + "/input.f32", x.data<float>(), static_cast<size_t>(x.numel())));

  json manifest = {{"input", {{"name", input}, {"file", "input.f32"}, {"shape", x.shape()}}}, {"output", output}};
  manifest["calibration_split"] = ev->calibration_split();
  const std::map<std::string, ValueRange> exact_ranges = *ranges;
  for (const auto& [name, config] : cases(*sites)) {
    // As `caliprox export` does: the evaluator's rewritten graph (pruned
    // layers repaired), its kernel knobs, its ranges.
    CP_TRY(ev->configure(config));
    const Graph& graph = ev->current_graph();
    const KnobConfig kernels = ev->kernel_configuration();
    std::map<std::string, ValueRange> variant_ranges = exact_ranges;
    if (&graph != &ev->graph()) {
      CP_ASSIGN_OR_RETURN(const auto* r, ev->calibrated_ranges());
      variant_ranges = *r;
    }
    CP_ASSIGN_OR_RETURN(Graph lowered, lower_to_standard_ops(graph, kernels, variant_ranges));
    CP_TRY(save_onnx(lowered, fmt::format("{}/{}.onnx", a.out, name)));
    CP_ASSIGN_OR_RETURN(Tensor want, caliprox_output(graph, x, input, output, kernels, variant_ranges));
    CP_TRY(write_floats(fmt::format("{}/{}.expected.f32", a.out, name), want.data<float>(),
                        static_cast<size_t>(want.numel())));
    json nodes = json::array();
    for (const auto& [node, knob] : config) nodes.push_back(node);
    const std::string knob = config.empty() ? "fp32" : config.begin()->second;
    manifest["cases"].push_back({{"name", name},
                                 {"knob", knob},
                                 {"nodes", nodes},
                                 {"model", name + ".onnx"},
                                 {"expected", name + ".expected.f32"},
                                 {"shape", want.shape()}});
  }
  std::ofstream(a.out + "/manifest.json") << manifest.dump(1) << "\n";
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  auto args = parse(argc, argv);
  Status st = args.ok() ? run(*args) : args.status();
  if (st.ok()) return 0;
  std::fprintf(stderr, "caliprox_export_cases: %s\n", st.message().c_str());
  return exit_code_for(st.code());
}
