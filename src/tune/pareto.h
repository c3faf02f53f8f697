#pragma once
// The QoS-loss / speedup Pareto frontier, its Mobiprox-style thinning into
// approximation levels, and the artifacts built from it: pareto.json
// (schemas/pareto.schema.json, a stable format for jq pipelines) and
// ApproxTuner's confs.txt layout (`caliprox tune --export-hpvm FILE`).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "knobs/knobs.h"
#include "qos/metrics.h"
#include "util/status.h"

namespace caliprox {

// One evaluated configuration as the frontier sees it.
struct LossSpeedup {
  double loss = 0;     // QoS loss, to minimise (metric unit; may be negative)
  double speedup = 1;  // to maximise
};

// Indices of the points no other point dominates (a dominates b when
// a.loss <= b.loss and a.speedup >= b.speedup, one of them strictly), in
// increasing loss (hence increasing speedup). Of several identical points the
// lowest index is kept. Points with a NaN coordinate are never on it.
std::vector<size_t> pareto_frontier(const std::vector<LossSpeedup>& points);

// Mobiprox keeps a few well-separated configurations so that stepping one
// approximation level up or down makes a noticeable difference.
struct ThinningRule {
  double min_speedup_step = 0.1;  // absolute, in x (1.5x -> at least 1.6x)
  double min_loss_step = 0.1;     // absolute, in the metric's loss unit (pp for accuracies)
};

// Approximation levels from a frontier (indices into `points`, in increasing
// loss as pareto_frontier returns them): level 0 is `exact_index`; each next
// level is the first frontier point, in loss order, whose speedup is at least
// the previous level's speedup + min_speedup_step AND whose loss is at least
// the previous level's loss + min_loss_step (or not above the previous
// level's loss at all: same quality, more speed). Returns the indices per level.
std::vector<size_t> thin_levels(const std::vector<LossSpeedup>& points, const std::vector<size_t>& frontier,
                                size_t exact_index, const ThinningRule& rule);

// ----------------------------------------------------------------- pareto.json

struct ParetoConfiguration {
  std::string id;  // stable within the file ("exact", "c1", ...)
  int level = 0;   // approximation level (0 = exact)
  KnobConfig knobs;
  double qos_tune = 0;
  double qos_test = 0;
  double loss_tune = 0;  // in the metric's loss unit (pp for accuracies)
  double loss_test = 0;
  std::optional<double> qos_predicted;      // on the tune split, when a predictor was used
  std::optional<double> speedup_predicted;  // cost model
  std::optional<double> speedup_measured;   // measured end to end on the experiment's target
};

struct ParetoDocument {
  std::string experiment;
  std::string fingerprint;
  Metric metric = Metric::top1;
  QosGoal goal;
  double baseline_qos_tune = 0;
  double baseline_qos_test = 0;
  std::optional<double> baseline_latency_ms;  // exact fp32 network on the target, per batch
  std::vector<ParetoConfiguration> configurations;  // by level; level 0 is the exact network
};

// "pp" for percent metrics, "absolute" otherwise: the unit of every loss.
std::string_view loss_unit(Metric m);

// The document as pretty JSON with a trailing newline; NaN values become null.
std::string pareto_json_text(const ParetoDocument& doc);
// Written atomically (temp file + rename).
Status write_pareto_json(const std::string& path, const ParetoDocument& doc);
// Reads a pareto.json (e.g. `caliprox profile --configs`); `source` names the
// file in errors, which give the key path.
Result<ParetoDocument> parse_pareto_json(std::string_view text, std::string_view source);
// The same from a file; `option` names where the path came from in errors
// ("--pareto").
Result<ParetoDocument> load_pareto_json(const std::string& path, std::string_view option);

// -------------------------------------------------------------- confs.txt export
//
// ApproxTuner / HPVM tensor runtime configuration file ("tuner_confs.txt",
// read by the runtime controller's readConfigurationFile):
//
//   <baseline time>                        first line: a number
//   +++++                                  start of a configuration
//   conf<k> <speedup> <energy> <accuracy> <accuracy loss>
//   <node id> <gpu|cpu> <op> <approx> <knob id> [<op> <approx> <param>]...
//   ...                                    one line per HPVM node, ids from 1
//   -----                                  end of the configuration
//
// e.g. "6 gpu conv perf_fp16 153 add fp16 1 relu fp16 1". The approximation
// names are fp32 (knob 11), fp16 (12), perf (121-138), perf_fp16 (151-168),
// samp (231-239), samp_fp16 (261-269); the ops fused into a node after its
// convolution (add, relu, pool_max, ...) follow with the node's precision and
// parameter 1. conf1 is the baseline ("conf1 1 1 <accuracy> 0.0"), and the
// runtime builds its own Pareto curve from the speedup / accuracy-loss
// columns.
//
// caliprox writes: baseline time = baseline_latency_ms; one node per layer
// in `layers` order; speedup = measured (else predicted) speedup; accuracy /
// loss = the test split's QoS and loss. caliprox has no energy model per
// configuration, so the energy column repeats the speedup (the runtime's
// default speedup mode does not read it). Configurations using a knob that
// has no ApproxHPVM ID (bf16, int8) cannot be written and are listed in
// `skipped`.
struct HpvmLayer {
  std::string node;                    // the Conv node's name in the ONNX graph
  std::vector<std::string> fused_ops;  // HPVM ops fused after the conv: "add", "relu", "pool_max", ...
};

struct HpvmExport {
  std::string text;
  std::vector<std::string> skipped;  // "c3: node conv2 uses int8, which has no ApproxHPVM knob ID"
};

Result<HpvmExport> format_hpvm_confs(const ParetoDocument& doc, const std::vector<HpvmLayer>& layers,
                                     std::string_view device = "gpu");

}  // namespace caliprox
