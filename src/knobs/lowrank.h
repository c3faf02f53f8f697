#pragma once
// Low-rank factorisation of a fully connected layer (a graph rewrite,
// rewrite.h): a Gemm Y = X W^T + b (W: [out, in]) becomes two thinner
// products through rank r, Y = (X V_r) (U_r S_r)^T + b, from the truncated
// singular value decomposition W ~ U_r S_r V_r^T, with r = ceil(ratio *
// min(out, in)). It pays when r (out + in) < out * in. The first product is
// a new node "<node>/lowrank" (rule of rewrite.h); the second keeps the
// node's name. This answers Mobiprox's open question of approximating fully
// connected layers; ConvSpatialSvd below does the same for convolutions.
//
// Refused, with an error naming the node: not a Gemm, a weight computed
// rather than stored, alpha != 1 or transA, a ratio outside (0, 1), or a
// rank that would not be below the full rank.
#include <string>
#include <vector>

#include "ir/ops/conv_geometry.h"
#include "knobs/rewrite.h"

namespace caliprox {

// What the ratio of a factorisation measures: the rank, r = ceil(ratio *
// full rank); or the cost, r = the largest rank whose product(s) keep at
// most `ratio` of the layer's multiply-adds (the catalogue's lowrank-*
// knobs: lowrank-0.5 halves the layer's work).
enum class LowRankBy { rank, cost };

// The rank of a factorisation, for a Gemm [out, in] and a K x K Conv [O, C]:
// invalid_input naming the node for a ratio outside (0, 1), a rank of 0, or
// one not below the full rank.
Result<int64_t> gemm_lowrank_rank(int64_t out, int64_t in, double ratio, LowRankBy by, const std::string& node);
Result<int64_t> spatial_svd_rank(int64_t o, int64_t c, int64_t k, double ratio, LowRankBy by, const std::string& node);
// Multiply-adds times two of the factorised Conv of geometry `g` at rank r
// (the K x 1 convolution at full input width, then the 1 x K one).
double spatial_svd_flops(const ConvGeometry& g, int64_t r);

// What both factorisations hold: the node, the ratio and what it measures;
// key() is "<kind>:<node>:<ratio>" (":cost" appended for LowRankBy::cost).
class LowRankRewrite : public GraphRewrite {
 public:
  std::string key() const override;

 protected:
  LowRankRewrite(const char* kind, std::string node, double ratio, LowRankBy by)
      : kind_(kind), node_(std::move(node)), ratio_(ratio), by_(by) {}
  const char* kind_;
  std::string node_;
  double ratio_;
  LowRankBy by_;
};

class GemmLowRank final : public LowRankRewrite {
 public:
  GemmLowRank(std::string node, double ratio, LowRankBy by = LowRankBy::rank)
      : LowRankRewrite("lowrank", std::move(node), ratio, by) {}
  Result<Graph> apply(const Graph& graph) const override;
};

// Spatial SVD of a K x K convolution (Tai et al. 2016; AIMET's "spatial
// SVD"): W [O, C, K, K] seen as the matrix M[(c, kh), (kw, o)] is truncated
// to rank r = ceil(ratio * min(C K, K O)) and split into a K x 1 convolution
// with r output channels (node "<node>/spatial", the height's stride and
// pads) followed by a 1 x K one (keeping the node's name, the width's
// stride and pads, and the bias). Pays when r (C + O) K < O C K^2.
// Refused: not a Conv, grouped, dilated, auto_pad, a non-square or 1 x 1
// kernel, a ratio outside (0, 1), a rank not below the full rank.
class ConvSpatialSvd final : public LowRankRewrite {
 public:
  ConvSpatialSvd(std::string node, double ratio, LowRankBy by = LowRankBy::rank)
      : LowRankRewrite("spatial-svd", std::move(node), ratio, by) {}
  Result<Graph> apply(const Graph& graph) const override;
};

// Truncated SVD of a row-major m x n matrix: the r largest singular values
// (decreasing) with their left (m x r, row-major) and right (n x r,
// row-major) singular vectors, by Jacobi rotations on the smaller Gram
// matrix. Plain reference code: deterministic, double precision. The Gram
// matrix's decomposition is remembered per matrix for the process (at most
// 128 MiB, least recently used out), so every rank a layer is factorised at
// starts from it.
struct TruncatedSvd {
  std::vector<double> s;
  std::vector<double> u;  // [m, r]
  std::vector<double> v;  // [n, r]
};
TruncatedSvd truncated_svd(const std::vector<double>& a, int64_t m, int64_t n, int64_t r);

// A convolution weight [O, C, K, K] as the matrix spatial SVD truncates:
// M[(c, kh), (kw, o)], row-major [C K, K O].
std::vector<double> spatial_svd_matrix(const Tensor& w);

}  // namespace caliprox
