#pragma once
// TfIdfVectorizer over integer tokens: the n-gram pool resolved once, for
// shape inference (ir/ops/tfidf_ops.cc) and the reference kernel
// (backends/reference/tfidf_kernel.cc), which counts them. String tokens are out of scope.
#include <cstdint>
#include <map>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::tfidf {

enum class Mode { tf, idf, tfidf };

struct Params {
  int64_t min_n = 1, max_n = 1, max_skip = 0;
  Mode mode = Mode::tf;
  std::map<std::vector<int64_t>, int64_t> grams;  // n-gram -> output position
  std::vector<float> weights;                     // per output position (IDF, TFIDF); empty: all 1
  int64_t outputs = 0;                            // max(ngram_indexes) + 1
};
Result<Params> resolve(const Node& node);

// [C] -> [outputs], [N, C] -> [N, outputs].
Result<Shape> output_shape(const Node& node, const Params& p, const Shape& x);

}  // namespace caliprox::tfidf
