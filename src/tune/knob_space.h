#pragma once
// The knob space of an experiment (its `knobs` section applied to the
// network's knob sites), and the fingerprints that tie records, profiles and
// frontiers to one network on one target.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/session.h"
#include "experiment/experiment.h"
#include "tune/search.h"

namespace caliprox {

// Knobs the experiment selects that a command leaves out on this target,
// by kind, with the backend's reason (Backend::knob_support).
struct LeftOutKnobs {
  KnobKind kind = KnobKind::exact;
  KnobSupport support;
  std::vector<std::string> knobs;
};

struct KnobSpace {
  SearchSpace space;               // per layer: exact first, then by nominal speedup
  std::vector<ConvGeometry> geometries;  // per layer
  std::vector<std::string> fused;        // per layer: what the executor fused into it
  // Per layer, for reshape entries: knob -> FLOPs its rewrite removes from
  // the network (KnobSite::flops_saved); empty for kernel entries.
  std::vector<std::map<std::string, double>> flops_saved;
  std::vector<LeftOutKnobs> left_out;
};

// Whether a command searches emulated knobs (Backend::knob_support): their
// accuracy effect is the knob's, their speed is fp32's, so a speed search
// leaves them out; a measurement (profile) keeps and labels them.
enum class EmulatedKnobs { keep, leave_out };

// The experiment's knob space on `backend`. Reshape knobs (prune-*,
// lowrank-*) enter it only where a `knobs.include` pattern names them (an
// empty include list means every kernel knob); a layer that takes them gets
// a reshape entry besides its kernel entry (SearchSpace). Knobs it cannot run here
// (unavailable), under EmulatedKnobs::leave_out the emulated ones, and the
// (layer, knob) pairs `session` would run on the reference backend's plain
// loops (a fallback is never timed as the fast path) are left out and
// listed in `left_out`. invalid_input naming `knobs.layers` entries that
// are not knob sites, and an empty space.
Result<KnobSpace> make_knob_space(const Experiment& exp, const std::vector<KnobSite>& sites, const Backend& backend,
                                  EmulatedKnobs emulated, const Session* session);
// {kind: {run, how}} for every knob kind on `backend` (profile.json, `caliprox knobs --json`).
nlohmann::json knob_support_json(const Backend& backend);
nlohmann::json left_out_json(const KnobSpace& ks);

// Identifies the model file's bytes, the input shape, the backend and thread
// count: profile.json and tune agree on it.
Result<std::string> network_fingerprint(const Experiment& exp, const std::string& backend, int threads,
                                        int64_t batch);

}  // namespace caliprox
