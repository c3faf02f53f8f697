#pragma once
// Low-rank factorisation of a fully connected layer (a graph rewrite,
// rewrite.h): a Gemm Y = X W^T + b (W: [out, in]) becomes two thinner
// products through rank r, Y = (X V_r) (U_r S_r)^T + b, from the truncated
// singular value decomposition W ~ U_r S_r V_r^T, with r = ceil(ratio *
// min(out, in)). It pays when r (out + in) < out * in. The first product is
// a new node "<node>/lowrank" (rule of rewrite.h); the second keeps the
// node's name. This answers Mobiprox's open question of approximating fully
// connected layers; convolutions (spatial SVD) are a later step.
//
// Refused, with an error naming the node: not a Gemm, a weight computed
// rather than stored, alpha != 1 or transA, a ratio outside (0, 1), or a
// rank that would not be below the full rank.
#include <string>
#include <vector>

#include "knobs/rewrite.h"

namespace caliprox {

class GemmLowRank final : public GraphRewrite {
 public:
  GemmLowRank(std::string node, double ratio) : node_(std::move(node)), ratio_(ratio) {}
  std::string key() const override;
  Result<Graph> apply(const Graph& graph) const override;

 private:
  std::string node_;
  double ratio_;
};

// Truncated SVD of a row-major m x n matrix: the r largest singular values
// (decreasing) with their left (m x r, row-major) and right (n x r,
// row-major) singular vectors, by Jacobi rotations on the smaller Gram
// matrix. Plain reference code: deterministic, double precision.
struct TruncatedSvd {
  std::vector<double> s;
  std::vector<double> u;  // [m, r]
  std::vector<double> v;  // [n, r]
};
TruncatedSvd truncated_svd(const std::vector<double>& a, int64_t m, int64_t n, int64_t r);

}  // namespace caliprox
