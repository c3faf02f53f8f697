#pragma once
// The knob space of an experiment (its `knobs` section applied to the
// network's knob sites), and the fingerprints that tie records, profiles and
// frontiers to one network on one target.
#include <string>
#include <vector>

#include "engine/session.h"
#include "experiment/experiment.h"
#include "tune/search.h"

namespace caliprox {

struct KnobSpace {
  SearchSpace space;               // per layer: exact first, then by nominal speedup
  std::vector<ConvGeometry> geometries;  // per layer
  std::vector<std::string> fused;        // per layer: what the executor fused into it
};

// invalid_input naming `knobs.layers` entries that are not knob sites, and
// an empty space.
Result<KnobSpace> make_knob_space(const Experiment& exp, const std::vector<KnobSite>& sites);

// Identifies the model file's bytes, the input shape, the backend and thread
// count: profile.json and tune agree on it.
Result<std::string> network_fingerprint(const Experiment& exp, const std::string& backend, int threads,
                                        int64_t batch);

}  // namespace caliprox
