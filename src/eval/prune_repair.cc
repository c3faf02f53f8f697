#include "eval/prune_repair.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "engine/observer.h"
#include "engine/session.h"

namespace caliprox {

namespace {

// A copy in NCHW memory order of an activation the session hands over in
// `layout` (shapes are logical NCHW either way).
Tensor nchw_copy(const Tensor& t, Layout layout) {
  if (layout == Layout::nchw || t.shape().size() != 4) return t.clone();
  Tensor out(DType::f32, t.shape());
  const int64_t n = t.dim(0), c = t.dim(1), h = t.dim(2), w = t.dim(3);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k)
          out.data<float>()[((b * c + k) * h + y) * w + x] = t.data<float>()[((b * h + y) * w + x) * c + k];
  return out;
}

// Keeps copies of the inputs and outputs of the convolutions to re-fit.
class Capture final : public NodeObserver {
 public:
  explicit Capture(const std::vector<std::string>& nodes) : nodes_(nodes.begin(), nodes.end()) {}
  ObserveWhat wants(const std::string& node, const std::string&) const override {
    const bool want = nodes_.count(node) != 0;
    return {want, want};
  }
  Status before(const NodeEvent& e, std::span<const Tensor* const> inputs) override {
    std::lock_guard lock(mu_);
    x_[e.node] = nchw_copy(*inputs[0], e.layout);
    return {};
  }
  Status after(const NodeEvent& e, std::span<Tensor* const> outputs) override {
    std::lock_guard lock(mu_);
    y_[e.node] = nchw_copy(*outputs[0], e.layout);
    return {};
  }
  std::map<std::string, Tensor> x_, y_;

 private:
  std::set<std::string> nodes_;
  std::mutex mu_;
};

// Solves (A) x = b in place for a symmetric positive definite A (n x n, row
// major) by Cholesky; false when A is not positive definite.
bool cholesky_solve(std::vector<double>& a, int64_t n, std::vector<double>& b, int64_t columns) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[static_cast<size_t>(j * n + j)];
    for (int64_t k = 0; k < j; ++k) d -= a[static_cast<size_t>(j * n + k)] * a[static_cast<size_t>(j * n + k)];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    a[static_cast<size_t>(j * n + j)] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[static_cast<size_t>(i * n + j)];
      for (int64_t k = 0; k < j; ++k) s -= a[static_cast<size_t>(i * n + k)] * a[static_cast<size_t>(j * n + k)];
      a[static_cast<size_t>(i * n + j)] = s / d;
    }
  }
  for (int64_t c = 0; c < columns; ++c) {  // L y = b, then L^T x = y; b is [n, columns]
    for (int64_t i = 0; i < n; ++i) {
      double s = b[static_cast<size_t>(i * columns + c)];
      for (int64_t k = 0; k < i; ++k) s -= a[static_cast<size_t>(i * n + k)] * b[static_cast<size_t>(k * columns + c)];
      b[static_cast<size_t>(i * columns + c)] = s / a[static_cast<size_t>(i * n + i)];
    }
    for (int64_t i = n - 1; i >= 0; --i) {
      double s = b[static_cast<size_t>(i * columns + c)];
      for (int64_t k = i + 1; k < n; ++k) s -= a[static_cast<size_t>(k * n + i)] * b[static_cast<size_t>(k * columns + c)];
      b[static_cast<size_t>(i * columns + c)] = s / a[static_cast<size_t>(i * n + i)];
    }
  }
  return true;
}

// The regression of one convolution: rows are sampled output positions,
// columns the kept input channels' taps.
struct Regression {
  std::vector<double> p;  // [rows, d]
  std::vector<double> t;  // [rows, o]: original output minus bias
  int64_t rows = 0, d = 0, o = 0;
};

Result<Regression> regression(const Node& c, const Tensor& x, const Tensor& y, const Tensor& w, const Tensor* bias,
                              const std::vector<int64_t>& keep, const RepairOptions& opt) {
  if (c.attr_string("auto_pad", "NOTSET") != "NOTSET")
    return invalid_input("prune repair: {} uses auto_pad; give explicit pads", c.describe());
  const auto strides = c.attr_ints("strides", {1, 1}), dil = c.attr_ints("dilations", {1, 1});
  const auto pads = c.attr_ints("pads", {0, 0, 0, 0});
  const int64_t n = x.dim(0), ch = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t o = y.dim(1), oh = y.dim(2), ow = y.dim(3), kh = w.dim(2), kw = w.dim(3);
  const int64_t total = n * oh * ow, k = static_cast<int64_t>(keep.size());
  Regression r;
  r.rows = std::min(total, opt.max_rows);
  r.d = k * kh * kw;
  r.o = o;
  r.p.assign(static_cast<size_t>(r.rows * r.d), 0.0);
  r.t.assign(static_cast<size_t>(r.rows * o), 0.0);
  uint64_t state = opt.seed;
  for (int64_t row = 0; row < r.rows; ++row) {
    int64_t pos = row;
    if (total > opt.max_rows) {  // a seeded sample of positions (splitmix64)
      uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      pos = static_cast<int64_t>((z ^ (z >> 31)) % static_cast<uint64_t>(total));
    }
    const int64_t b = pos / (oh * ow), yy = (pos / ow) % oh, xx = pos % ow;
    for (int64_t q = 0; q < k; ++q)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t iy = yy * strides[0] - pads[0] + i * dil[0], ix = xx * strides[1] - pads[1] + j * dil[1];
          if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
          r.p[static_cast<size_t>(row * r.d + (q * kh + i) * kw + j)] =
              x.data<float>()[((b * ch + keep[static_cast<size_t>(q)]) * h + iy) * wd + ix];
        }
    for (int64_t c2 = 0; c2 < o; ++c2)
      r.t[static_cast<size_t>(row * o + c2)] = y.data<float>()[((b * o + c2) * oh + yy) * ow + xx] -
                                               (bias ? bias->data<float>()[c2] : 0.f);
  }
  return r;
}

// Mean squared error of P w (w: [o, d] row major, float) against T.
double mse(const Regression& r, const float* w) {
  double sum = 0;
  for (int64_t row = 0; row < r.rows; ++row)
    for (int64_t c = 0; c < r.o; ++c) {
      double pred = 0;
      for (int64_t q = 0; q < r.d; ++q) pred += r.p[static_cast<size_t>(row * r.d + q)] * w[c * r.d + q];
      const double e = pred - r.t[static_cast<size_t>(row * r.o + c)];
      sum += e * e;
    }
  return r.rows ? sum / static_cast<double>(r.rows * r.o) : 0;
}

}  // namespace

Result<Graph> repair_pruned(const Graph& original, const Graph& pruned, const PrunePlan& plan, const Tensor& inputs,
                            Backend& backend, const RepairOptions& options, RepairReport* report) {
  if (original.inputs.size() != 1) return invalid_input("prune repair: the network has {} inputs, not one",
                                                        original.inputs.size());
  SessionOptions so;
  so.optimize = false;  // every node on its own: the convolution's output before any fused activation
  CP_ASSIGN_OR_RETURN(auto session, Session::create(original, backend, {{original.inputs[0].name, inputs.shape()}}, so));
  Capture capture(plan.conv_ends);
  session->add_observer(capture);
  CP_TRY(session->run(std::span<const Tensor>(&inputs, 1)));
  session->remove_observer(capture);
  Graph out = pruned;
  for (const std::string& name : plan.conv_ends) {
    const Node* c = pruned.find_node(name);
    if (!capture.x_.count(name) || !capture.y_.count(name))
      return runtime_error("prune repair: {} did not run as a node of its own", name);
    const Tensor& w = pruned.initializers.at(c->inputs[1]);
    const Tensor* bias = c->inputs.size() > 2 && !c->inputs[2].empty() ? &pruned.initializers.at(c->inputs[2]) : nullptr;
    CP_ASSIGN_OR_RETURN(Regression r, regression(*c, capture.x_.at(name), capture.y_.at(name), w, bias, plan.keep,
                                                 options));
    // Normal equations with a small ridge, scaled to the data.
    std::vector<double> a(static_cast<size_t>(r.d * r.d), 0.0), b(static_cast<size_t>(r.d * r.o), 0.0);
    for (int64_t row = 0; row < r.rows; ++row) {
      const double* pr = &r.p[static_cast<size_t>(row * r.d)];
      for (int64_t i = 0; i < r.d; ++i) {
        if (pr[i] == 0) continue;
        for (int64_t j = 0; j <= i; ++j) a[static_cast<size_t>(i * r.d + j)] += pr[i] * pr[j];
        for (int64_t c2 = 0; c2 < r.o; ++c2) b[static_cast<size_t>(i * r.o + c2)] += pr[i] * r.t[static_cast<size_t>(row * r.o + c2)];
      }
    }
    // The ridge scales with each tap's own energy (scale-free), with a
    // floor for taps that are always zero (padding-only positions).
    double diag = 0;
    for (int64_t i = 0; i < r.d; ++i) diag += a[static_cast<size_t>(i * r.d + i)];
    const double floor = 1e-12 * std::max(diag / static_cast<double>(r.d), 1e-30);
    for (int64_t i = 0; i < r.d; ++i) {
      a[static_cast<size_t>(i * r.d + i)] += options.ridge * a[static_cast<size_t>(i * r.d + i)] + floor;
      for (int64_t j = i + 1; j < r.d; ++j) a[static_cast<size_t>(i * r.d + j)] = a[static_cast<size_t>(j * r.d + i)];
    }
    if (!cholesky_solve(a, r.d, b, r.o)) return runtime_error("prune repair: {}: the normal equations are singular", name);
    Tensor refit(DType::f32, w.shape());  // [o, k, kh, kw] = [o, d]
    for (int64_t c2 = 0; c2 < r.o; ++c2)
      for (int64_t q = 0; q < r.d; ++q)
        refit.data<float>()[c2 * r.d + q] = static_cast<float>(b[static_cast<size_t>(q * r.o + c2)]);
    if (report) report->layers.push_back({name, mse(r, w.data<float>()), mse(r, refit.data<float>())});
    out.initializers[c->inputs[1]] = std::move(refit);
  }
  return out;
}

}  // namespace caliprox
