// TfIdfVectorizer's reference kernel (ir/ops/tfidf_params.h): per row, the
// count of each pool n-gram for every n in [min, max] and gap in [0,
// max_skip_count] (unigrams counted once), as ONNX Runtime counts them, then
// the mode's weighting: TF the counts, IDF the weight where the count is
// non-zero, TFIDF their product.
#include <algorithm>
#include <vector>

#include "backends/reference/reference.h"
#include "backends/reference/tensor_util.h"
#include "ir/ops/tfidf_params.h"

namespace caliprox::reference {

namespace {

void vectorize(const tfidf::Params& p, const int64_t* tokens, int64_t count, float* y) {
  std::fill(y, y + p.outputs, 0.0f);
  std::vector<int64_t> gram;
  for (int64_t n = p.min_n; n <= p.max_n; ++n)
    for (int64_t skip = 0; skip <= (n == 1 ? 0 : p.max_skip); ++skip)
      for (int64_t start = 0; start + (n - 1) * (skip + 1) < count; ++start) {
        gram.clear();
        for (int64_t i = 0; i < n; ++i) gram.push_back(tokens[start + i * (skip + 1)]);
        if (auto it = p.grams.find(gram); it != p.grams.end()) y[it->second] += 1;
      }
  for (int64_t o = 0; o < p.outputs; ++o) {
    const float w = p.weights.empty() ? 1.0f : p.weights[static_cast<size_t>(o)];
    if (p.mode == tfidf::Mode::idf) y[o] = y[o] > 0 ? w : 0.0f;
    else if (p.mode == tfidf::Mode::tfidf) y[o] *= w;
  }
}

bool supports_tfidf(const NodeContext& ctx) {
  const DType t = tensor::in_type(ctx);
  return t == DType::i32 || t == DType::i64;
}

Result<std::unique_ptr<Kernel>> make_tfidf(const NodeContext& ctx) {
  CP_ASSIGN_OR_RETURN(tfidf::Params p, tfidf::resolve(ctx.node));
  const Shape x = ctx.input_types[0].shape;
  return tensor::make_fn_kernel([p, x](std::span<const Tensor* const> in, std::span<Tensor* const> out) -> Status {
    const std::vector<int64_t> tokens = in[0]->to_int64_vector();
    const int64_t rows = x.size() == 2 ? x[0] : 1, row = x.back();
    float* y = out[0]->data<float>();
    for (int64_t r = 0; r < rows; ++r) vectorize(p, tokens.data() + r * row, row, y + r * p.outputs);
    return {};
  });
}

}  // namespace

void register_tfidf_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"TfIdfVectorizer", supports_tfidf, make_tfidf});
}

}  // namespace caliprox::reference
