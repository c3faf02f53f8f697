#pragma once
// Input streams with the temporal dependence a device sees, drawn from a
// labelled split (man caliprox-adapt-sim, STREAMS):
//   persistent: the class persists for runs of geometrically distributed
//     length (mean `mean_run`); each step draws a fresh sample of the current
//     class, without repetition until the class's samples are used up;
//   shuffled: a random permutation of the split (no dependence);
//   file: an explicit list of sample indices (a recorded sequence).
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace caliprox {

enum class StreamKind { persistent, shuffled, file };

struct StreamSpec {
  std::string name;                 // for reports ("persistent-30", ...)
  StreamKind kind = StreamKind::persistent;
  double mean_run = 30;             // persistent: mean run length (>= 1)
  int64_t length = 0;               // inputs; 0: the split's size
  uint64_t seed = 1;
  std::vector<int64_t> indices;     // file: dataset sample indices
};

struct Stream {
  std::vector<int64_t> samples;  // dataset sample indices, in stream order
  int64_t repeated = 0;          // draws that reused a sample (a class ran out); 0 for shuffled
};

// `labels[i]` is the class of dataset sample begin + i; the split is
// [begin, begin + labels.size()). Errors (invalid_input): a shuffled stream
// longer than the split (it would repeat samples: say so), a file index
// outside the split, mean_run < 1, an empty split.
Result<Stream> make_stream(const StreamSpec& spec, int64_t begin, const std::vector<int64_t>& labels);

}  // namespace caliprox
