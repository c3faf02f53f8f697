#pragma once
// The phases of a joint tune (tune/joint.h) after the tuner is open:
//   run_joint_search: the strategy over the joint space, every candidate
//     judged by JointTuner::evaluate, every fresh evaluation recorded and
//     recorded ones replayed;
//   walk_finalists: the finalists' speedups measured, then walked from the
//     fastest down, the application run only where it must be.
// Guided: the finalists are the fastest accepted candidates and the
// uncertain ones predicted faster than any accepted; an uncertain one gets
// one application check, an accepted one a final validation, and the walk
// ends at the first the application passes. Unguided: the finalists are
// the fastest candidates within the networks' QoS goals, every one is
// checked (up to the checks allowed), and the fastest that passes is
// chosen. Records: phases "search", "speedup" and "check" of the joint
// tune's records.jsonl.
#include <optional>
#include <string>
#include <vector>

#include "eval/served_app.h"
#include "tune/app_check.h"
#include "tune/joint.h"

namespace caliprox {

struct JointSearch {
  SearchOutcome outcome;
  std::vector<JointEval> evals;  // per result of the outcome
  double seconds = 0;
  std::string summary;
};
Result<JointSearch> run_joint_search(JointTuner& t, RecordStore& records, const SearchBudget& budget,
                                     PipelineReporter& reporter);

// Distinct candidates the search evaluated, by placement.
struct PlacementCounts {
  int distinct = 0, accepted = 0, discarded = 0, uncertain = 0;
};
PlacementCounts count_placements(const JointTuner& t, const JointSearch& s);

struct JointFinalist {
  KnobConfig config;  // joint ("<network>:<node>")
  JointEval eval;
  Placement placement = Placement::uncertain;
  std::map<std::string, double> measured;  // per network (1 for an exact one)
  double speedup = 1;                      // measured, combined
  std::optional<AppCheck> check;           // when the application ran it
  std::string role;                        // "check" (uncertain), "validation" (accepted) or "" (not run)
};

struct JointOutcome {
  std::vector<JointFinalist> finalists;  // by measured speedup, fastest first
  std::optional<size_t> chosen;          // the fastest finalist the application passed
  int checks = 0;                        // application checks (each app.repeats runs)
  int runs = 0;                          // application runs
  int fresh_runs = 0;                    // of them, not replayed
};

// `finalists` at most of each kind; `seed` the checks' seed (the same
// fields for every candidate, as `eval --application --seed` gives).
Result<JointOutcome> walk_finalists(JointTuner& t, const JointSearch& s, RecordStore& records,
                                    ServedApplication& served, int64_t finalists, uint64_t seed,
                                    PipelineReporter& reporter);

}  // namespace caliprox
