#pragma once
// The approximation-knob catalogue (DESIGN: "knobs are data, kernels are
// code"): every knob a layer can take, with its stable name, the ApproxHPVM
// numeric ID where that line of work has one, and the exact semantics that
// every backend implements (man/caliprox-knobs.7 states them for users).
//
// Knobs apply to 2-D convolutions (ONNX Conv with a rank-4 input). A knob
// assignment ("configuration") maps node names to knob names; nodes that are
// not named run exact fp32.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/ops/conv_geometry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

enum class KnobKind {
  exact,        // fp32, the network as exported
  perforation,  // skip output rows or columns, fill them by interpolation
  sampling,     // drop filter elements, rescale the kept ones
  fp16,         // IEEE half at the layer boundary (emulated on CPUs without half arithmetic)
  bf16,         // bfloat16 inputs and weights, fp32 accumulation and output
  int8,         // 8-bit inputs (calibrated scale) and weights (per output channel), int32 accumulation
  // Reshape knobs: graph rewrites (rewrite.h) applied before a session is
  // built; a layer takes one of them besides its kernel knob.
  prune,        // structured channel pruning of a Conv's outputs (knobs/prune.h), repaired
  lowrank,      // low-rank factorisation of a Conv (spatial SVD) or Gemm (knobs/lowrank.h)
};
std::string_view knob_kind_name(KnobKind kind);

struct Knob {
  std::string name;  // stable: fp32, fp16, bf16, int8, perf-row-2-0, perf-col-3-1-fp16, samp-4-3, ...
  int hpvm_id = 0;   // ApproxHPVM / ApproxTuner knob ID; 0 when it has none
  KnobKind kind = KnobKind::exact;
  bool rows = true;  // perforation: rows (true) or columns (false)
  int rate = 0;      // perforation r or sampling s, in {2, 3, 4}
  int offset = 0;    // in [0, rate)
  bool half = false; // rounds to IEEE half at the layer boundary (fp16, and the 151-168 / 261-269 IDs)
  // Catalogue-level nominal speedup: for perforation and sampling the FLOP
  // ratio r/(r-1) (resp. s/(s-1)) of a large layer; for precision knobs the
  // element-width ratio (32 / bits), since the FLOP count is unchanged. A
  // half-precision variant multiplies by 2. Per layer: layer_nominal_speedup.
  double nominal_speedup = 1;
  std::string summary;  // one line for `caliprox knobs`
  // prune: the fraction of output channels removed; lowrank: the fraction of
  // the layer's multiply-adds the factorised layer keeps at most.
  double fraction = 0;
};

// All knobs, exact fp32 first, in a stable order.
const std::vector<Knob>& knob_catalogue();
const Knob* find_knob(std::string_view name);
const Knob* find_knob_by_hpvm_id(int id);
const Knob& exact_knob();
// Op types a knob applies to (kernel knobs and prune: {"Conv"}; lowrank:
// {"Conv", "Gemm"}; exact applies to all).
std::vector<std::string> knob_op_types(const Knob& knob);
// A reshape knob (prune, lowrank) rewrites the graph; the others swap a kernel.
inline bool reshapes(const Knob& knob) { return knob.kind == KnobKind::prune || knob.kind == KnobKind::lowrank; }

// What a configuration gives one layer: at most one reshape knob and one
// kernel knob, written "<reshape>+<kernel>" ("prune-0.5+perf-row-2-0"), or
// either alone ("prune-0.5", "int8"); the kernel knob then runs on the
// reshaped layer.
struct KnobChoice {
  const Knob* reshape = nullptr;  // null: the layer keeps its shape
  const Knob* kernel = nullptr;   // never null (exact when the text names a reshape knob only)
};
// invalid_input naming the unknown part (with a suggestion) or the wrong
// order ("int8+prune-0.5"), two knobs of one family, or an exact part.
Result<KnobChoice> parse_knob_choice(std::string_view text);
std::string knob_choice_name(const KnobChoice& choice);
// The closest known knob names, for "did you mean" in errors.
std::string suggest_knob(std::string_view name);

// Output rows (perforation.rows) or columns (otherwise) that are computed,
// in increasing order, for an output extent `extent`: positions before
// `offset`, and from `offset` on those with (p - offset) mod rate != 0.
std::vector<int64_t> perforation_kept(const Knob& knob, int64_t extent);

// Sampling mask over one filter, flattened as [C_in/group][KH][KW]: true for
// the elements that are kept. Elements offset + k*rate are dropped; when
// KH*KW is divisible by rate the offset rotates per input channel c, i.e.
// in channel c the in-channel elements (offset + c) mod rate + k*rate are
// dropped.
std::vector<bool> sampling_mask(const Knob& knob, int64_t c_in_per_group, int64_t kh, int64_t kw);
// Factor applied to the kept weights: rate / (rate - 1). With a half
// variant the weights the layer multiplies with are half(w * scale).
inline float sampling_scale(const Knob& knob) {
  return static_cast<float>(knob.rate) / static_cast<float>(knob.rate - 1);
}

// Checks that `knob` can run on this node with these input shapes: the op is
// a 2-D Conv, perforation leaves something to compute, sampling keeps at
// least one element. Errc::invalid_input naming the node and the knob; also
// for reshape knobs, which no kernel runs (the graph is rewritten instead).
Status knob_applies(const Knob& knob, const Node& node, const Shape& x, const Shape& w);

// Multiply-adds times two of a Conv layer run exactly.
double conv_layer_flops(const ConvGeometry& g);
// Nominal speedup of `knob` on this layer: exact FLOPs / knob FLOPs (counted
// from the real kept rows / elements), times the element-width ratio for
// precision knobs (and for the half variants).
double layer_nominal_speedup(const Knob& knob, const ConvGeometry& g);

// int8 knobs quantise a layer's input with a scale calibrated on the
// experiment's calibrate split: the range of input #0 seen there.
struct ValueRange {
  float min = 0;
  float max = 0;
};
// The int8 knob's quantisation, shared by every backend. Input #0: unsigned
// codes [0, 255] with scale max / 255 when the calibrated range has no
// negative values, else signed codes [-128, 127] with scale
// max(|min|, |max|) / 127 (scale 1 for an all-zero range).
struct Int8Input {
  float scale = 1;
  int32_t lo = 0, hi = 255;
};
Int8Input int8_input_quantisation(const ValueRange& range);
// Weights: symmetric per output channel, scale max|w| / 127 over the
// filter's n (kept) elements (1 when all are zero), codes in [-127, 127].
float int8_weight_scale(const float* w, int64_t n);
// rne(v / scale) clamped to [lo, hi] (round half to even); a NaN has no
// code and becomes 0.
inline int32_t int8_code(float v, float scale, int32_t lo, int32_t hi) {
  const float q = std::nearbyint(v / scale);
  if (std::isnan(q)) return 0;
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(lo), static_cast<float>(hi)));
}

// Widens each node's range in `into` by the one in `seen` (adds the nodes
// `into` does not have yet).
void merge_ranges(std::map<std::string, ValueRange>& into, const std::map<std::string, ValueRange>& seen);

// Knob-name patterns of an experiment's knob space: '*' matches any run of
// characters ("perf-row-2-*", "*-fp16"); anything else matches literally.
bool knob_pattern_matches(std::string_view pattern, std::string_view name);
bool knob_pattern_matches_any(std::string_view pattern);

// A configuration: node name -> knob choice (parse_knob_choice; absent:
// exact fp32).
using KnobConfig = std::map<std::string, std::string>;

// Reads a configuration JSON object (schemas/config.schema.json): member
// `knobs` maps node names to knob choices (or ApproxHPVM numeric IDs);
// other members are free. `source` names the file in errors.
Result<KnobConfig> parse_knob_config(std::string_view json_text, std::string_view source);
Result<KnobConfig> load_knob_config(const std::string& path);

// A node of the executed graph (after fusion) that takes knobs.
struct KnobSite {
  std::string node;     // ONNX node name (or its stable generated name)
  std::string op_type;  // "Conv"
  ConvGeometry geometry;
  double flops = 0;     // exact multiply-adds times two, for the session's batch
  std::string fused;    // what the executor fused into it ("BatchNormalization+Relu", or "")
  std::vector<const Knob*> knobs;  // applicable knobs, exact first
  // Per reshape knob in `knobs`: the FLOPs (multiply-adds times two, at the
  // session's batch) its rewrite removes from the whole network (this layer
  // and the ones whose inputs it narrows).
  std::map<std::string, double> flops_saved;
};

}  // namespace caliprox
