// Reference Gemm, MatMul and BatchNormalization, and the registration of the
// whole nn kernel family (Conv* in nn_conv.cc, pooling in nn_pool.cc).
// Matrix products use the i-k-j loop order (the innermost loop walks a row of
// B and a row of the output) and accumulate in the tensor's type.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backends/reference/conv_util.h"

namespace caliprox::reference {
namespace {

// row[0..n) += a * b[0..n)
template <typename T> void axpy(T* row, T a, const T* b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) row[j] += a * b[j];
}

// Y = alpha * A' * B' + beta * C.
template <typename T>
class GemmKernel final : public Kernel {
 public:
  explicit GemmKernel(const NodeContext& ctx) {
    const Shape& a = ctx.input_types[0].shape;
    const Shape& b = ctx.input_types[1].shape;
    trans_a_ = ctx.node.attr_int("transA", 0) != 0;
    trans_b_ = ctx.node.attr_int("transB", 0) != 0;
    alpha_ = ctx.node.attr_float("alpha", 1.0f);
    beta_ = ctx.node.attr_float("beta", 1.0f);
    m_ = trans_a_ ? a[1] : a[0];
    k_ = trans_a_ ? a[0] : a[1];
    n_ = trans_b_ ? b[0] : b[1];
    if (ctx.input_types.size() > 2 && ctx.input_types[2].dtype != DType::undefined) {
      // Broadcast strides of C over [M, N] (0 along axes of size 1 or missing).
      const Shape& c = ctx.input_types[2].shape;
      if (c.size() == 2) {
        c_row_stride_ = c[0] == 1 ? 0 : c[1];
        c_col_stride_ = c[1] == 1 ? 0 : 1;
      } else if (c.size() == 1) {
        c_col_stride_ = c[0] == 1 ? 0 : 1;
      }
    }
    row_.resize(static_cast<size_t>(n_));
    if (trans_b_) b_transposed_.resize(static_cast<size_t>(k_ * n_));
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* a = inputs[0]->data<T>();
    const T* b = inputs[1]->data<T>();
    const Tensor* c_tensor = input_or_null(inputs, 2);
    const T* c = c_tensor != nullptr ? c_tensor->data<T>() : nullptr;
    T* y = outputs[0]->data<T>();
    if (trans_b_) {
      // B is [N, K]: make rows of B' contiguous for the inner loop.
      for (int64_t j = 0; j < n_; ++j)
        for (int64_t kk = 0; kk < k_; ++kk) b_transposed_[static_cast<size_t>(kk * n_ + j)] = b[j * k_ + kk];
      b = b_transposed_.data();
    }
    const T alpha = static_cast<T>(alpha_);
    const T beta = static_cast<T>(beta_);
    for (int64_t i = 0; i < m_; ++i) {
      std::fill(row_.begin(), row_.end(), T(0));
      for (int64_t kk = 0; kk < k_; ++kk) {
        const T av = trans_a_ ? a[kk * m_ + i] : a[i * k_ + kk];
        axpy(row_.data(), av, b + kk * n_, n_);
      }
      T* yrow = y + i * n_;
      for (int64_t j = 0; j < n_; ++j) {
        T v = alpha * row_[static_cast<size_t>(j)];
        if (c != nullptr) v += beta * c[i * c_row_stride_ + j * c_col_stride_];
        yrow[j] = v;
      }
    }
    return {};
  }

 private:
  bool trans_a_ = false, trans_b_ = false;
  float alpha_ = 1, beta_ = 1;
  int64_t m_ = 0, k_ = 0, n_ = 0;
  int64_t c_row_stride_ = 0, c_col_stride_ = 0;
  std::vector<T> row_;           // one output row before alpha/beta/C (C may alias Y)
  std::vector<T> b_transposed_;  // B' when transB
};

// numpy.matmul with broadcast batch axes; 1-D operands become a row (A) or
// a column (B) vector.
template <typename T>
class MatMulKernel final : public Kernel {
 public:
  explicit MatMulKernel(const NodeContext& ctx) {
    Shape a = ctx.input_types[0].shape;
    Shape b = ctx.input_types[1].shape;
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    m_ = a[a.size() - 2];
    k_ = a.back();
    n_ = b.back();
    const size_t batch_rank = std::max(a.size(), b.size()) - 2;
    // Right-align the batch axes of A and B against the output's.
    Shape a_batch(batch_rank, 1), b_batch(batch_rank, 1);
    std::copy(a.begin(), a.end() - 2, a_batch.end() - static_cast<std::ptrdiff_t>(a.size() - 2));
    std::copy(b.begin(), b.end() - 2, b_batch.end() - static_cast<std::ptrdiff_t>(b.size() - 2));
    out_batch_.resize(batch_rank);
    a_strides_.assign(batch_rank, 0);
    b_strides_.assign(batch_rank, 0);
    int64_t a_step = m_ * k_, b_step = k_ * n_;
    for (size_t i = batch_rank; i-- > 0;) {
      out_batch_[i] = std::max(a_batch[i], b_batch[i]);
      a_strides_[i] = a_batch[i] == 1 ? 0 : a_step;
      b_strides_[i] = b_batch[i] == 1 ? 0 : b_step;
      a_step *= a_batch[i];
      b_step *= b_batch[i];
    }
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* a = inputs[0]->data<T>();
    const T* b = inputs[1]->data<T>();
    T* y = outputs[0]->data<T>();
    const int64_t batches = shape_numel(out_batch_);
    for (int64_t bi = 0; bi < batches; ++bi) {
      int64_t a_off = 0, b_off = 0, rest = bi;
      for (size_t i = out_batch_.size(); i-- > 0;) {
        const int64_t idx = rest % out_batch_[i];
        rest /= out_batch_[i];
        a_off += idx * a_strides_[i];
        b_off += idx * b_strides_[i];
      }
      const T* ab = a + a_off;
      const T* bb = b + b_off;
      T* yb = y + bi * m_ * n_;
      for (int64_t i = 0; i < m_; ++i) {
        T* yrow = yb + i * n_;
        std::fill(yrow, yrow + n_, T(0));
        for (int64_t kk = 0; kk < k_; ++kk) axpy(yrow, ab[i * k_ + kk], bb + kk * n_, n_);
      }
    }
    return {};
  }

 private:
  int64_t m_ = 0, k_ = 0, n_ = 0;
  Shape out_batch_;
  std::vector<int64_t> a_strides_, b_strides_;  // per batch axis, in elements
};

// Y = scale * (X - mean) / sqrt(var + epsilon) + B, per channel, in double.
template <typename T>
class BatchNormKernel final : public Kernel {
 public:
  explicit BatchNormKernel(const NodeContext& ctx) : epsilon_(ctx.node.attr_float("epsilon", 1e-5f)) {
    const Shape& x = ctx.input_types[0].shape;
    n_ = x[0];
    c_ = x[1];
    for (size_t d = 2; d < x.size(); ++d) plane_ *= x[d];
  }

  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const T* x = inputs[0]->data<T>();
    const T* scale = inputs[1]->data<T>();
    const T* bias = inputs[2]->data<T>();
    const T* mean = inputs[3]->data<T>();
    const T* var = inputs[4]->data<T>();
    T* y = outputs[0]->data<T>();
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t c = 0; c < c_; ++c) {
        const double factor = static_cast<double>(scale[c]) / std::sqrt(static_cast<double>(var[c]) + epsilon_);
        const double mu = static_cast<double>(mean[c]);
        const double shift = static_cast<double>(bias[c]);
        const int64_t off = (n * c_ + c) * plane_;
        for (int64_t i = 0; i < plane_; ++i)
          y[off + i] = static_cast<T>((static_cast<double>(x[off + i]) - mu) * factor + shift);
      }
    }
    return {};
  }

 private:
  double epsilon_;
  int64_t n_ = 0, c_ = 0, plane_ = 1;
};

template <template <typename> class K>
Result<std::unique_ptr<Kernel>> make_typed(const NodeContext& ctx) {
  if (is_f64(ctx)) return std::unique_ptr<Kernel>(std::make_unique<K<double>>(ctx));
  return std::unique_ptr<Kernel>(std::make_unique<K<float>>(ctx));
}

bool supports_gemm(const NodeContext& ctx) {
  return ctx.input_types.size() >= 2 && uniform_float_dtype(ctx) && ctx.input_types[0].shape.size() == 2 &&
         ctx.input_types[1].shape.size() == 2;
}

bool supports_matmul(const NodeContext& ctx) {
  return ctx.input_types.size() == 2 && uniform_float_dtype(ctx) && !ctx.input_types[0].shape.empty() &&
         !ctx.input_types[1].shape.empty();
}

bool supports_batch_norm(const NodeContext& ctx) {
  if (ctx.input_types.size() != 5 || !uniform_float_dtype(ctx) || ctx.input_types[0].shape.size() < 2) return false;
  if (ctx.node.attr_int("training_mode", 0) != 0) return false;
  // Only Y: the other outputs hold training statistics.
  for (size_t i = 1; i < ctx.node.outputs.size(); ++i)
    if (!ctx.node.outputs[i].empty()) return false;
  return true;
}

}  // namespace

void register_nn_kernels(std::vector<KernelEntry>& table) {
  add_conv_kernels(table);
  add_pool_kernels(table);
  table.push_back({"Gemm", supports_gemm, make_typed<GemmKernel>});
  table.push_back({"MatMul", supports_matmul, make_typed<MatMulKernel>});
  table.push_back({"BatchNormalization", supports_batch_norm, make_typed<BatchNormKernel>});
}

}  // namespace caliprox::reference
