#include "knobs/lowrank.h"

#include <algorithm>
#include <cmath>
#include <list>
#include <memory>
#include <mutex>
#include <numeric>

#include <fmt/format.h>

namespace caliprox {

namespace {

// Eigen-decomposition of a symmetric n x n matrix (row-major) by cyclic
// Jacobi rotations: eigenvalues in `w`, eigenvectors in the columns of `v`.
// (The rotations update V's columns p and q as rows of V^T, which are
// contiguous: the same arithmetic, read from cache lines it uses whole.)
void jacobi_eigen(std::vector<double> a, int64_t n, std::vector<double>& w, std::vector<double>& v) {
  auto at = [n](std::vector<double>& m, int64_t i, int64_t j) -> double& { return m[static_cast<size_t>(i * n + j)]; };
  std::vector<double> vt(static_cast<size_t>(n * n), 0.0);  // V^T
  for (int64_t i = 0; i < n; ++i) at(vt, i, i) = 1;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, total = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) (i == j ? total : off) += at(a, i, j) * at(a, i, j);
    if (off <= 1e-30 * (total + off) || off == 0) break;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        const double apq = at(a, p, q);
        if (std::fabs(apq) < 1e-300) continue;
        const double theta = (at(a, q, q) - at(a, p, p)) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < n; ++k) {  // A <- A J
          const double akp = at(a, k, p), akq = at(a, k, q);
          at(a, k, p) = c * akp - s * akq;
          at(a, k, q) = s * akp + c * akq;
        }
        for (int64_t k = 0; k < n; ++k) {  // A <- J^T A
          const double apk = at(a, p, k), aqk = at(a, q, k);
          at(a, p, k) = c * apk - s * aqk;
          at(a, q, k) = s * apk + c * aqk;
        }
        for (int64_t k = 0; k < n; ++k) {  // V <- V J
          const double vkp = at(vt, p, k), vkq = at(vt, q, k);
          at(vt, p, k) = c * vkp - s * vkq;
          at(vt, q, k) = s * vkp + c * vkq;
        }
      }
  }
  w.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) w[static_cast<size_t>(i)] = at(a, i, i);
  v.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) at(v, i, j) = at(vt, j, i);
}

// The eigen-decomposition of a matrix's Gram matrix (A^T A when right,
// else A A^T), as jacobi_eigen gives it.
struct GramEigen {
  std::vector<double> w, e;
};

// gram_eigen's memory: the matrices whose Gram matrix it decomposed, most
// recently used first, within a byte budget.
class GramEigenCache {
 public:
  std::shared_ptr<const GramEigen> find(const std::vector<double>& a, int64_t m, int64_t n) {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->m == m && it->n == n && it->a == a) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().eigen;
      }
    return nullptr;
  }

  void add(const std::vector<double>& a, int64_t m, int64_t n, std::shared_ptr<const GramEigen> eigen) {
    const size_t bytes = (a.size() + eigen->w.size() + eigen->e.size()) * sizeof(double);
    if (bytes > kBudget / 4) return;  // (one layer would crowd out the rest)
    const std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_front({m, n, a, std::move(eigen), bytes});
    used_ += bytes;
    while (used_ > kBudget) {
      used_ -= entries_.back().bytes;
      entries_.pop_back();
    }
  }

 private:
  static constexpr size_t kBudget = size_t{128} << 20;
  struct Entry {
    int64_t m, n;
    std::vector<double> a;
    std::shared_ptr<const GramEigen> eigen;
    size_t bytes;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
  size_t used_ = 0;
};

// The eigen-decomposition of row-major m x n `a`'s smaller Gram matrix.
// Remembered for the process: every rank a layer is factorised at (tune's
// and calibrate's candidates, export, the tests) starts from the same
// decomposition, the O(k^3) part of truncated_svd.
std::shared_ptr<const GramEigen> gram_eigen(const std::vector<double>& a, int64_t m, int64_t n) {
  static GramEigenCache cache;
  if (auto known = cache.find(a, m, n)) return known;
  const bool right = n <= m;
  const int64_t k = right ? n : m;
  std::vector<double> g(static_cast<size_t>(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      double sum = 0;
      if (right)
        for (int64_t t = 0; t < m; ++t) sum += a[static_cast<size_t>(t * n + i)] * a[static_cast<size_t>(t * n + j)];
      else
        for (int64_t t = 0; t < n; ++t) sum += a[static_cast<size_t>(i * n + t)] * a[static_cast<size_t>(j * n + t)];
      g[static_cast<size_t>(i * k + j)] = g[static_cast<size_t>(j * k + i)] = sum;
    }
  auto eigen = std::make_shared<GramEigen>();
  jacobi_eigen(std::move(g), k, eigen->w, eigen->e);
  cache.add(a, m, n, eigen);
  return eigen;
}

// Drops initializer `name` when no node reads it any more.
void erase_if_unused(Graph& g, const std::string& name) {
  if (std::none_of(g.nodes.begin(), g.nodes.end(), [&](const Node& n) {
        return std::find(n.inputs.begin(), n.inputs.end(), name) != n.inputs.end();
      }))
    g.initializers.erase(name);
}

}  // namespace

std::vector<double> spatial_svd_matrix(const Tensor& w) {
  const int64_t o = w.dim(0), c = w.dim(1), k = w.dim(2), cols = k * o;
  std::vector<double> m(static_cast<size_t>(c * k * cols));
  for (int64_t oo = 0; oo < o; ++oo)
    for (int64_t cc = 0; cc < c; ++cc)
      for (int64_t kh = 0; kh < k; ++kh)
        for (int64_t kw = 0; kw < k; ++kw)
          m[static_cast<size_t>((cc * k + kh) * cols + kw * o + oo)] = w.data<float>()[((oo * c + cc) * k + kh) * k + kw];
  return m;
}

TruncatedSvd truncated_svd(const std::vector<double>& a, int64_t m, int64_t n, int64_t r) {
  // Work on the smaller Gram matrix: A^T A (n x n) when n <= m, else A A^T.
  const bool right = n <= m;
  const int64_t k = right ? n : m;
  const std::shared_ptr<const GramEigen> eigen = gram_eigen(a, m, n);
  const std::vector<double>& w = eigen->w;
  const std::vector<double>& e = eigen->e;
  std::vector<int64_t> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return w[static_cast<size_t>(x)] > w[static_cast<size_t>(y)]; });
  TruncatedSvd out;
  out.u.assign(static_cast<size_t>(m * r), 0.0);
  out.v.assign(static_cast<size_t>(n * r), 0.0);
  for (int64_t c = 0; c < r; ++c) {
    const int64_t src = order[static_cast<size_t>(c)];
    const double s = std::sqrt(std::max(w[static_cast<size_t>(src)], 0.0));
    out.s.push_back(s);
    // The Gram side's vector, and the other side's as A v / s (or A^T u / s).
    std::vector<double>& known = right ? out.v : out.u;
    std::vector<double>& other = right ? out.u : out.v;
    const int64_t kn = right ? n : m, on = right ? m : n;
    for (int64_t i = 0; i < kn; ++i) known[static_cast<size_t>(i * r + c)] = e[static_cast<size_t>(i * k + src)];
    if (s <= 0) continue;
    for (int64_t i = 0; i < on; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < kn; ++j)
        sum += (right ? a[static_cast<size_t>(i * n + j)] : a[static_cast<size_t>(j * n + i)]) *
               known[static_cast<size_t>(j * r + c)];
      other[static_cast<size_t>(i * r + c)] = sum / s;
    }
  }
  return out;
}

Result<int64_t> gemm_lowrank_rank(int64_t out, int64_t in, double ratio, LowRankBy by, const std::string& node) {
  if (!(ratio > 0 && ratio < 1)) return invalid_input("low-rank {}: ratio {} is outside (0, 1)", node, ratio);
  const int64_t full = std::min(out, in);
  const double r = by == LowRankBy::rank ? std::ceil(ratio * static_cast<double>(full))
                                         : std::floor(ratio * static_cast<double>(out * in) / static_cast<double>(out + in));
  const auto rank = static_cast<int64_t>(r);
  if (rank < 1) return invalid_input("low-rank {}: a ratio of {} leaves no rank for a [{}, {}] weight", node, ratio, out, in);
  if (rank >= full) return invalid_input("low-rank {}: rank {} is not below the full rank {}", node, rank, full);
  return rank;
}

Result<int64_t> spatial_svd_rank(int64_t o, int64_t c, int64_t k, double ratio, LowRankBy by, const std::string& node) {
  if (!(ratio > 0 && ratio < 1)) return invalid_input("spatial SVD {}: ratio {} is outside (0, 1)", node, ratio);
  const int64_t full = std::min(c * k, k * o);
  const double r = by == LowRankBy::rank
                       ? std::ceil(ratio * static_cast<double>(full))
                       : std::floor(ratio * static_cast<double>(o * c * k) / static_cast<double>(c + o));
  const auto rank = static_cast<int64_t>(r);
  if (rank < 1)
    return invalid_input("spatial SVD {}: a ratio of {} leaves no rank for a {}x{} kernel over {} -> {} channels", node,
                         ratio, k, k, c, o);
  if (rank >= full) return invalid_input("spatial SVD {}: rank {} is not below the full rank {}", node, rank, full);
  return rank;
}

double spatial_svd_flops(const ConvGeometry& g, int64_t r) {
  const double n = static_cast<double>(g.n), k = static_cast<double>(g.kernel[0]);
  const double ho = static_cast<double>(g.out_spatial[0]), wo = static_cast<double>(g.out_spatial[1]);
  const double wi = static_cast<double>(g.in_spatial[1]), rr = static_cast<double>(r);
  return 2.0 * n * (rr * ho * wi * static_cast<double>(g.c_in) * k + static_cast<double>(g.c_out) * ho * wo * rr * k);
}

std::string LowRankRewrite::key() const {
  return fmt::format("{}:{}:{}{}", kind_, node_, ratio_, by_ == LowRankBy::cost ? ":cost" : "");
}

Result<Graph> GemmLowRank::apply(const Graph& graph) const {
  Graph g = graph;
  auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == node_; });
  if (it == g.nodes.end()) return invalid_input("low-rank: no node '{}'", node_);
  if (it->op_type != "Gemm") return invalid_input("low-rank: {} is not a Gemm", it->describe());
  if (it->attr_float("alpha", 1.f) != 1.f || it->attr_int("transA", 0) != 0)
    return invalid_input("low-rank: {} has alpha != 1 or transA; only Y = X W^T + b is factorised", it->describe());
  const auto wi = g.initializers.find(it->inputs[1]);
  if (wi == g.initializers.end() || wi->second.dtype() != DType::f32 || wi->second.shape().size() != 2)
    return invalid_input("low-rank: {} needs a float32 2-D weight stored in the model", it->describe());
  const bool trans_b = it->attr_int("transB", 0) != 0;
  const Tensor& b = wi->second;
  // W as [out, in]: B itself with transB, else its transpose.
  const int64_t out = trans_b ? b.dim(0) : b.dim(1), in = trans_b ? b.dim(1) : b.dim(0);
  CP_ASSIGN_OR_RETURN(const int64_t r, gemm_lowrank_rank(out, in, ratio_, by_, node_));
  std::vector<double> w(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i)
      w[static_cast<size_t>(o * in + i)] = b.data<float>()[trans_b ? o * in + i : i * out + o];
  const TruncatedSvd svd = truncated_svd(w, out, in, r);
  // First product: X [N, in] . V_r [in, r]; second: Z [N, r] . (U_r S_r)^T [r, out] + C.
  Tensor v(DType::f32, {in, r}), us(DType::f32, {r, out});
  for (int64_t i = 0; i < in; ++i)
    for (int64_t c = 0; c < r; ++c) v.data<float>()[i * r + c] = static_cast<float>(svd.v[static_cast<size_t>(i * r + c)]);
  for (int64_t c = 0; c < r; ++c)
    for (int64_t o = 0; o < out; ++o)
      us.data<float>()[c * out + o] =
          static_cast<float>(svd.u[static_cast<size_t>(o * r + c)] * svd.s[static_cast<size_t>(c)]);
  const std::string old_weight = it->inputs[1];
  const std::string base = node_ + "/lowrank";
  g.initializers[base + "/v"] = std::move(v);
  g.initializers[base + "/us"] = std::move(us);
  Node first;
  first.name = base;
  first.op_type = "Gemm";
  first.inputs = {it->inputs[0], base + "/v"};
  first.outputs = {base + "/z"};
  first.index = it->index;
  first.opset = it->opset;
  it->inputs[0] = base + "/z";
  it->inputs[1] = base + "/us";
  it->attrs.erase("transB");
  g.nodes.insert(it, std::move(first));
  erase_if_unused(g, old_weight);  // the full weight, unless another node still reads it
  return g;
}

Result<Graph> ConvSpatialSvd::apply(const Graph& graph) const {
  Graph g = graph;
  auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == node_; });
  if (it == g.nodes.end()) return invalid_input("spatial SVD: no node '{}'", node_);
  if (it->op_type != "Conv") return invalid_input("spatial SVD: {} is not a Conv", it->describe());
  const auto dil = it->attr_ints("dilations", {1, 1});
  if (it->attr_int("group", 1) != 1 || dil != std::vector<int64_t>{1, 1} ||
      it->attr_string("auto_pad", "NOTSET") != "NOTSET")
    return invalid_input("spatial SVD: {} is grouped, dilated or uses auto_pad", it->describe());
  const auto wi = g.initializers.find(it->inputs[1]);
  if (wi == g.initializers.end() || wi->second.dtype() != DType::f32 || wi->second.shape().size() != 4)
    return invalid_input("spatial SVD: {} needs a float32 weight [O, C, K, K] stored in the model", it->describe());
  const Tensor& w = wi->second;
  const int64_t o = w.dim(0), c = w.dim(1), k = w.dim(2);
  if (w.dim(3) != k || k < 2)
    return invalid_input("spatial SVD: {} has a {}x{} kernel; a square one of at least 2x2 is factorised",
                         it->describe(), w.dim(2), w.dim(3));
  const int64_t rows = c * k, cols = k * o;
  CP_ASSIGN_OR_RETURN(const int64_t r, spatial_svd_rank(o, c, k, ratio_, by_, node_));
  const TruncatedSvd svd = truncated_svd(spatial_svd_matrix(w), rows, cols, r);
  // The singular values split evenly between the two factors.
  Tensor vert(DType::f32, {r, c, k, 1}), horiz(DType::f32, {o, r, 1, k});
  for (int64_t q = 0; q < r; ++q) {
    const double root = std::sqrt(svd.s[static_cast<size_t>(q)]);
    for (int64_t cc = 0; cc < c; ++cc)
      for (int64_t kh = 0; kh < k; ++kh)
        vert.data<float>()[(q * c + cc) * k + kh] =
            static_cast<float>(svd.u[static_cast<size_t>((cc * k + kh) * r + q)] * root);
    for (int64_t oo = 0; oo < o; ++oo)
      for (int64_t kw = 0; kw < k; ++kw)
        horiz.data<float>()[(oo * r + q) * k + kw] =
            static_cast<float>(svd.v[static_cast<size_t>((kw * o + oo) * r + q)] * root);
  }
  const auto strides = it->attr_ints("strides", {1, 1}), pads = it->attr_ints("pads", {0, 0, 0, 0});
  const std::string old_weight = it->inputs[1], base = node_ + "/spatial";
  g.initializers[base + "/w"] = std::move(vert);
  g.initializers[node_ + "/spatial_h/w"] = std::move(horiz);
  auto ints = [](std::vector<int64_t> v) {
    Attribute a;
    a.kind = Attribute::Kind::ints;
    a.ints = std::move(v);
    return a;
  };
  Node first;
  first.name = base;
  first.op_type = "Conv";
  first.inputs = {it->inputs[0], base + "/w"};
  first.outputs = {base + "/z"};
  first.attrs["kernel_shape"] = ints({k, 1});
  first.attrs["strides"] = ints({strides[0], 1});
  first.attrs["pads"] = ints({pads[0], 0, pads[2], 0});
  first.index = it->index;
  first.opset = it->opset;
  it->inputs[0] = base + "/z";
  it->inputs[1] = node_ + "/spatial_h/w";
  it->attrs["kernel_shape"] = ints({1, k});
  it->attrs["strides"] = ints({1, strides[1]});
  it->attrs["pads"] = ints({0, pads[1], 0, pads[3]});
  g.nodes.insert(it, std::move(first));
  erase_if_unused(g, old_weight);
  return g;
}

}  // namespace caliprox
