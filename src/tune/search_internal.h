#pragma once
// Pieces shared by the strategy implementations (search.cc,
// search_greedy.cc, search_evolutionary.cc); not part of the public API.
#include <memory>
#include <set>
#include <vector>

#include "tune/search.h"

namespace caliprox::search_detail {

// Layers that have at least one knob besides exact.
std::vector<size_t> approximable_layers(const SearchSpace& space);

// A random candidate: k ~ U{1..A} of the A approximable layers, chosen
// uniformly, each given a uniformly drawn non-exact knob. Drawing k first
// covers mildly and heavily approximated networks alike (drawing each layer
// independently would almost never leave most layers exact).
Candidate random_candidate(const SearchSpace& space, const std::vector<size_t>& approximable, Rng& rng);

// Number of distinct candidates, saturating at 2^62.
uint64_t space_size(const SearchSpace& space);

// Feasible, mutually non-dominated evaluations (min loss, max speedup) in
// insertion order.
class FeasibleArchive {
 public:
  struct Entry {
    Candidate candidate;
    Evaluation evaluation;
  };
  explicit FeasibleArchive(double max_loss) : max_loss_(max_loss) {}
  // True when the evaluation is feasible and no member is at least as good
  // in both coordinates; dominated members are then dropped.
  bool insert(const Candidate& c, const Evaluation& e);
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  double max_loss_;
  std::vector<Entry> entries_;
};

// Threshold objective (ApproxTuner / OpenTuner ThresholdAccuracyMinimizeTime):
// feasible beats infeasible; among feasible higher speedup wins; among
// infeasible lower loss wins.
bool better(const Evaluation& a, const Evaluation& b, double max_loss);

std::unique_ptr<SearchStrategy> make_random(const SearchSpace& space, const SearchSettings& settings);
Result<std::unique_ptr<SearchStrategy>> make_greedy(const SearchSpace& space, const SearchSettings& settings);
std::unique_ptr<SearchStrategy> make_evolutionary(const SearchSpace& space, const SearchSettings& settings);

}  // namespace caliprox::search_detail
