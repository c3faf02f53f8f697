// TfIdfVectorizer: the n-gram pool (ir/ops/tfidf_params.h) and shape
// inference.
#include <algorithm>

#include <fmt/format.h>

#include "ir/ops/infer_checks.h"
#include "ir/ops/tensor_ops_util.h"
#include "ir/ops/tfidf_params.h"

namespace caliprox::tfidf {

Result<Params> resolve(const Node& node) {
  if (node.has("pool_strings"))
    return unsupported("{}: string n-grams (pool_strings) are not supported; strings are out of scope",
                       node.describe());
  Params p;
  p.min_n = node.attr_int("min_gram_length", 0);
  p.max_n = node.attr_int("max_gram_length", 0);
  p.max_skip = node.attr_int("max_skip_count", 0);
  if (p.min_n < 1 || p.max_n < p.min_n || p.max_skip < 0)
    return invalid_input("{}: min_gram_length {}, max_gram_length {} and max_skip_count {} do not describe n-grams",
                         node.describe(), p.min_n, p.max_n, p.max_skip);
  const std::string mode = node.attr_string("mode", "");
  if (mode == "TF") p.mode = Mode::tf;
  else if (mode == "IDF") p.mode = Mode::idf;
  else if (mode == "TFIDF") p.mode = Mode::tfidf;
  else return invalid_input("{}: mode '{}' (expected TF, IDF or TFIDF)", node.describe(), mode);
  const std::vector<int64_t> pool = node.attr_ints("pool_int64s");
  const std::vector<int64_t> counts = node.attr_ints("ngram_counts");
  const std::vector<int64_t> indexes = node.attr_ints("ngram_indexes");
  // ngram_counts[k]: where the (k + 1)-grams start in the pool.
  size_t ordinal = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const int64_t begin = counts[k], end = k + 1 < counts.size() ? counts[k + 1] : static_cast<int64_t>(pool.size());
    const auto n = static_cast<int64_t>(k + 1);
    if (begin < 0 || end < begin || end > static_cast<int64_t>(pool.size()) || (end - begin) % n != 0)
      return invalid_input("{}: ngram_counts[{}] = {} does not start a whole number of {}-grams in a pool of {}",
                           node.describe(), k, begin, n, pool.size());
    for (int64_t at = begin; at < end; at += n, ++ordinal) {
      if (ordinal >= indexes.size())
        return invalid_input("{}: ngram_indexes has {} entries, fewer than the pool's n-grams", node.describe(),
                             indexes.size());
      p.grams[std::vector<int64_t>(pool.begin() + at, pool.begin() + at + n)] = indexes[ordinal];
      p.outputs = std::max(p.outputs, indexes[ordinal] + 1);
    }
  }
  p.weights = node.attr_floats("weights");
  if (!p.weights.empty() && static_cast<int64_t>(p.weights.size()) < p.outputs)
    return invalid_input("{}: 'weights' has {} entries for {} outputs", node.describe(), p.weights.size(), p.outputs);
  return p;
}

Result<Shape> output_shape(const Node& node, const Params& p, const Shape& x) {
  if (x.size() == 1) return Shape{p.outputs};
  if (x.size() == 2) return Shape{x[0], p.outputs};
  return invalid_input("{}: the input has shape {}, expected [C] or [N, C]", node.describe(), shape_str(x));
}

namespace {

Result<std::vector<TensorType>> infer_tfidf(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(tensor_ops::check_inputs(node, inputs, 1, 1));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  const DType t = inputs[0].type.dtype;
  if (t != DType::i32 && t != DType::i64)
    return unsupported("{}: tokens of type {} (caliprox counts int32 and int64 tokens)", node.describe(),
                       dtype_name(t));
  CP_ASSIGN_OR_RETURN(Params p, resolve(node));
  CP_ASSIGN_OR_RETURN(Shape out, output_shape(node, p, inputs[0].type.shape));
  return std::vector<TensorType>{{DType::f32, out}};
}

}  // namespace

}  // namespace caliprox::tfidf

namespace caliprox {

void register_tfidf_ops(std::vector<OpDef>& table) { table.push_back({"TfIdfVectorizer", tfidf::infer_tfidf}); }

}  // namespace caliprox
