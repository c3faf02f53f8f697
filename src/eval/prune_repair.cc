#include "eval/prune_repair.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
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

// Keeps copies of the inputs and outputs of the layers to re-fit, for the
// whole batch: a session that splits its batch into chunks reports each
// chunk's samples separately (NodeEvent::first_sample, samples).
class Capture final : public NodeObserver {
 public:
  Capture(const std::vector<std::string>& nodes, int64_t batch) : nodes_(nodes.begin(), nodes.end()), batch_(batch) {}
  ObserveWhat wants(const std::string& node, const std::string&) const override {
    const bool want = nodes_.count(node) != 0;
    return {want, want};
  }
  Status before(const NodeEvent& e, std::span<const Tensor* const> inputs) override {
    return keep(x_, e, nchw_copy(*inputs[0], e.layout));
  }
  Status after(const NodeEvent& e, std::span<Tensor* const> outputs) override {
    return keep(y_, e, nchw_copy(*outputs[0], e.layout));
  }
  std::map<std::string, Tensor> x_, y_;

 private:
  Status keep(std::map<std::string, Tensor>& into, const NodeEvent& e, const Tensor& chunk) {
    std::lock_guard lock(mu_);
    if (chunk.shape().empty() || chunk.dim(0) < 1 || e.first_sample + e.samples > batch_ ||
        chunk.dim(0) < e.samples)
      return runtime_error("prune repair: {}: a chunk of samples [{}, {}) outside the batch of {}", e.node,
                           e.first_sample, e.first_sample + e.samples, batch_);
    auto it = into.find(e.node);
    if (it == into.end()) {
      Shape shape = chunk.shape();
      shape[0] = batch_;
      it = into.emplace(e.node, Tensor(DType::f32, shape)).first;
    }
    const int64_t row = chunk.numel() / chunk.dim(0);
    if (it->second.numel() / batch_ != row)
      return runtime_error("prune repair: {}: chunks of different shapes", e.node);
    std::copy_n(chunk.data<float>(), e.samples * row, it->second.data<float>() + e.first_sample * row);
    return {};
  }

  std::set<std::string> nodes_;
  int64_t batch_;
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

// A Gemm where pruned channels end (after Flatten): Y = X W' + b with the
// kept feature columns of X. Rows are the calibration samples, often fewer
// than the kept features, so a plain least-squares fit reproduces them
// exactly and generalises badly. The fit is therefore pulled towards the
// pruned weights W0 (ridge: min |X W' - T|^2 + lambda |W - W0|^2), with
// lambda picked on every fourth sample held out, and W0 kept when no lambda
// beats it there.
struct GemmFit {
  std::vector<double> x;  // [rows, d] kept features
  std::vector<double> t;  // [rows, o] original output minus bias
  std::vector<double> w0; // [d, o] pruned weights
  int64_t rows = 0, d = 0, o = 0;
};

// Weights [d, o] minimising the ridge objective over every row, or (holdout)
// over the rows not held out. In its dual form, W = W0 + X'(X X' + lambda
// I)^-1 (T - X W0), the system is rows x rows: small, however many
// features the Gemm keeps.
std::optional<std::vector<double>> ridge_fit(const GemmFit& f, double lambda, bool holdout) {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < f.rows; ++r)
    if (!holdout || r % 4 != 3) rows.push_back(r);
  const int64_t m = static_cast<int64_t>(rows.size());
  auto x = [&](int64_t i, int64_t q) { return f.x[static_cast<size_t>(rows[static_cast<size_t>(i)] * f.d + q)]; };
  std::vector<double> k(static_cast<size_t>(m * m), 0.0), e(static_cast<size_t>(m * f.o), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      double dot = 0;
      for (int64_t q = 0; q < f.d; ++q) dot += x(i, q) * x(j, q);
      k[static_cast<size_t>(i * m + j)] = k[static_cast<size_t>(j * m + i)] = dot;
    }
    k[static_cast<size_t>(i * m + i)] += lambda;
    for (int64_t c = 0; c < f.o; ++c) {
      double pred = 0;
      for (int64_t q = 0; q < f.d; ++q) pred += x(i, q) * f.w0[static_cast<size_t>(q * f.o + c)];
      e[static_cast<size_t>(i * f.o + c)] = f.t[static_cast<size_t>(rows[static_cast<size_t>(i)] * f.o + c)] - pred;
    }
  }
  if (!cholesky_solve(k, m, e, f.o)) return std::nullopt;
  std::vector<double> w = f.w0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t q = 0; q < f.d; ++q) {
      const double xi = x(i, q);
      if (xi == 0) continue;
      for (int64_t c = 0; c < f.o; ++c) w[static_cast<size_t>(q * f.o + c)] += xi * e[static_cast<size_t>(i * f.o + c)];
    }
  return w;
}

// Mean squared error of X w against T on the held-out rows (or all).
double gemm_mse(const GemmFit& f, const std::vector<double>& w, bool held_out_only) {
  double sum = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < f.rows; ++r) {
    if (held_out_only && r % 4 != 3) continue;
    for (int64_t c = 0; c < f.o; ++c) {
      double pred = 0;
      for (int64_t i = 0; i < f.d; ++i)
        pred += f.x[static_cast<size_t>(r * f.d + i)] * w[static_cast<size_t>(i * f.o + c)];
      const double e = pred - f.t[static_cast<size_t>(r * f.o + c)];
      sum += e * e;
    }
    ++n;
  }
  return n ? sum / static_cast<double>(n * f.o) : 0;
}

Status refit_gemm(const Node& g, const Tensor& x, const Tensor& y, const PrunePlan& plan, Graph& out,
                  RepairReport* report) {
  if (g.attr_int("transA", 0) != 0 || g.attr_float("alpha", 1.f) != 1.f || g.attr_float("beta", 1.f) != 1.f)
    return {};  // left as pruned (the report says so by its absence)
  const bool trans_b = g.attr_int("transB", 0) != 0;
  Tensor& w = out.initializers.at(g.inputs[1]);
  const Tensor* bias = g.inputs.size() > 2 && !g.inputs[2].empty() ? &out.initializers.at(g.inputs[2]) : nullptr;
  GemmFit f;
  f.rows = x.dim(0);
  f.o = y.dim(1);
  const int64_t block = x.dim(1) / plan.channels;
  f.d = static_cast<int64_t>(plan.keep.size()) * block;
  if (w.numel() != f.d * f.o || (bias && bias->numel() != f.o && bias->numel() != 1))
    return runtime_error("prune repair: {}: weights do not match the kept features", g.describe());
  f.x.resize(static_cast<size_t>(f.rows * f.d));
  f.t.resize(static_cast<size_t>(f.rows * f.o));
  f.w0.resize(static_cast<size_t>(f.d * f.o));
  for (int64_t r = 0; r < f.rows; ++r) {
    for (size_t q = 0; q < plan.keep.size(); ++q)
      for (int64_t j = 0; j < block; ++j)
        f.x[static_cast<size_t>(r * f.d + static_cast<int64_t>(q) * block + j)] =
            x.data<float>()[r * x.dim(1) + plan.keep[q] * block + j];
    for (int64_t c = 0; c < f.o; ++c)
      f.t[static_cast<size_t>(r * f.o + c)] =
          y.data<float>()[r * f.o + c] - (bias ? bias->data<float>()[bias->numel() == 1 ? 0 : c] : 0.f);
  }
  for (int64_t i = 0; i < f.d; ++i)
    for (int64_t c = 0; c < f.o; ++c)
      f.w0[static_cast<size_t>(i * f.o + c)] = w.data<float>()[trans_b ? c * f.d + i : i * f.o + c];
  double scale = 0;  // mean feature energy: lambda is relative to it
  for (double v : f.x) scale += v * v;
  scale = std::max(scale / static_cast<double>(f.d), 1e-30);
  double best = gemm_mse(f, f.w0, true), best_lambda = -1;
  for (double rel : {1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0}) {
    const auto fit = ridge_fit(f, rel * scale, true);
    if (!fit) continue;
    const double e = gemm_mse(f, *fit, true);
    if (e < best) best = e, best_lambda = rel * scale;
  }
  const double before = gemm_mse(f, f.w0, false);
  if (best_lambda < 0) {  // nothing beat the pruned weights on held-out samples
    if (report) report->layers.push_back({g.name, before, before, f.rows});
    return {};
  }
  const auto fit = ridge_fit(f, best_lambda, false);
  if (!fit) return {};
  for (int64_t i = 0; i < f.d; ++i)
    for (int64_t c = 0; c < f.o; ++c)
      w.data<float>()[trans_b ? c * f.d + i : i * f.o + c] =
          static_cast<float>((*fit)[static_cast<size_t>(i * f.o + c)]);
  if (report) report->layers.push_back({g.name, before, gemm_mse(f, *fit, false), f.rows});
  return {};
}

}  // namespace

Result<Graph> repair_pruned(const Graph& original, const Graph& pruned, const PrunePlan& plan, const Tensor& inputs,
                            Backend& backend, const RepairOptions& options, RepairReport* report) {
  if (original.inputs.size() != 1) return invalid_input("prune repair: the network has {} inputs, not one",
                                                        original.inputs.size());
  SessionOptions so;
  so.optimize = false;  // every node on its own: the convolution's output before any fused activation
  CP_ASSIGN_OR_RETURN(auto session, Session::create(original, backend, {{original.inputs[0].name, inputs.shape()}}, so));
  std::vector<std::string> ends = plan.conv_ends;
  ends.insert(ends.end(), plan.gemm_ends.begin(), plan.gemm_ends.end());
  Capture capture(ends, inputs.dim(0));
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
    if (report) report->layers.push_back({name, mse(r, w.data<float>()), mse(r, refit.data<float>()), r.rows});
    out.initializers[c->inputs[1]] = std::move(refit);
  }
  for (const std::string& name : plan.gemm_ends) {
    if (!capture.x_.count(name) || !capture.y_.count(name))
      return runtime_error("prune repair: {} did not run as a node of its own", name);
    const Node& gemm = *pruned.find_node(name);
    out.initializers[gemm.inputs[1]] = out.initializers.at(gemm.inputs[1]).clone();  // copies share buffers
    CP_TRY(refit_gemm(gemm, capture.x_.at(name), capture.y_.at(name), plan, out, report));
  }
  return out;
}

}  // namespace caliprox
