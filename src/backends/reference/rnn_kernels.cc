// Reference RNN, GRU and LSTM: the ONNX equations step by step, one batch
// entry and one direction at a time, so sequence_lens (each entry's own
// length; a reverse pass starts at its own last step) needs no masking.
// Steps past an entry's length leave zeros in Y. Arithmetic runs in the
// tensor's type (float for float16).
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/reference/tensor_util.h"
#include "ir/ops/rnn_params.h"

namespace caliprox::reference {
namespace {

using namespace tensor;
using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;
using rnn::Cell;

template <typename T> class RecurrentKernel final : public Kernel {
  using C = compute_t<T>;

 public:
  RecurrentKernel(const rnn::Params& p, std::string node)
      : p_(p),
        node_(std::move(node)),
        gh_(static_cast<size_t>(p.gates() * p.hidden)),
        gx_(gh_.size()),
        h_(static_cast<size_t>(p.hidden)),
        c_(h_.size()),
        rh_(h_.size()),
        xv_(static_cast<size_t>(p.input_size)) {}

  Status run(Inputs in, Outputs out) override {
    const auto opt = [&](size_t i) -> const T* {
      return i < in.size() && in[i] != nullptr ? in_data<T>(*in[i]) : nullptr;
    };
    x_ = in_data<T>(*in[0]);
    w_ = in_data<T>(*in[1]);
    r_ = in_data<T>(*in[2]);
    b_ = opt(3);
    const int32_t* lens = in.size() > 4 && in[4] != nullptr ? in[4]->data<int32_t>() : nullptr;
    const T* h0 = opt(5);
    const T* c0 = opt(6);
    peep_ = opt(7);
    T* y = !out.empty() && out[0] != nullptr ? out_data<T>(*out[0]) : nullptr;
    T* y_h = out.size() > 1 && out[1] != nullptr ? out_data<T>(*out[1]) : nullptr;
    T* y_c = out.size() > 2 && out[2] != nullptr ? out_data<T>(*out[2]) : nullptr;
    if (y != nullptr) std::fill(y, y + shape_numel(p_.y_shape()), store<T>(C(0)));
    const int64_t hidden = p_.hidden;
    for (int64_t d = 0; d < p_.num_directions; ++d) {
      const bool reverse = p_.direction == rnn::Direction::reverse || d == 1;
      for (int64_t b = 0; b < p_.batch; ++b) {
        const int64_t len = lens != nullptr ? lens[b] : p_.seq_length;
        if (len < 0 || len > p_.seq_length)
          return invalid_input("{}: sequence_lens[{}] = {} is outside [0, {}]", node_, b, len, p_.seq_length);
        const int64_t state = state_offset(d, b);
        for (int64_t j = 0; j < hidden; ++j) {
          h_[static_cast<size_t>(j)] = h0 != nullptr ? load(h0[state + j]) : C(0);
          c_[static_cast<size_t>(j)] = c0 != nullptr ? load(c0[state + j]) : C(0);
        }
        for (int64_t step = 0; step < len; ++step) {
          const int64_t t = reverse ? len - 1 - step : step;
          const int64_t xi = (p_.batch_major ? b * p_.seq_length + t : t * p_.batch + b) * p_.input_size;
          cell_step(d, x_ + xi);
          if (y != nullptr)
            for (int64_t j = 0; j < hidden; ++j) y[y_offset(t, d, b) + j] = store<T>(h_[static_cast<size_t>(j)]);
        }
        for (int64_t j = 0; j < hidden; ++j) {
          if (y_h != nullptr) y_h[state + j] = store<T>(h_[static_cast<size_t>(j)]);
          if (y_c != nullptr) y_c[state + j] = store<T>(c_[static_cast<size_t>(j)]);
        }
      }
    }
    return {};
  }

 private:
  int64_t state_offset(int64_t d, int64_t b) const {
    return (p_.batch_major ? b * p_.num_directions + d : d * p_.batch + b) * p_.hidden;
  }
  int64_t y_offset(int64_t t, int64_t d, int64_t b) const {
    const int64_t dirs = p_.num_directions;
    return (p_.batch_major ? (b * p_.seq_length + t) * dirs + d : (t * dirs + d) * p_.batch + b) * p_.hidden;
  }
  C clip(C v) const { return p_.has_clip ? std::clamp(v, C(-p_.clip), C(p_.clip)) : v; }

  // out[i] = sum_k m[row0 + i][k] * v[k] (+ bias[row0 + i]) for i < rows;
  // m has `cols` columns.
  void matvec(const T* m, const T* bias, int64_t row0, int64_t rows, int64_t cols, const C* v, C* out) const {
    for (int64_t i = 0; i < rows; ++i) {
      C sum = bias != nullptr ? load(bias[row0 + i]) : C(0);
      const T* row = m + (row0 + i) * cols;
      for (int64_t k = 0; k < cols; ++k) sum += load(row[k]) * v[k];
      out[i] = sum;
    }
  }

  // gx = W x + Wb and gh = R h + Rb for every gate of direction d, then the
  // cell's update of h_ (and c_).
  void cell_step(int64_t d, const T* x_row) {
    const int64_t hidden = p_.hidden, gh_rows = p_.gates() * hidden;
    for (int64_t k = 0; k < p_.input_size; ++k) xv_[static_cast<size_t>(k)] = load(x_row[k]);
    const T* w = w_ + d * gh_rows * p_.input_size;
    const T* r = r_ + d * gh_rows * hidden;
    const T* wb = b_ != nullptr ? b_ + d * 2 * gh_rows : nullptr;
    const T* rb = b_ != nullptr ? wb + gh_rows : nullptr;
    matvec(w, wb, 0, gh_rows, p_.input_size, xv_.data(), gx_.data());
    matvec(r, rb, 0, gh_rows, hidden, h_.data(), gh_.data());
    switch (p_.cell) {
      case Cell::rnn: rnn_update(d); break;
      case Cell::gru: gru_update(d, r, rb); break;
      case Cell::lstm: lstm_update(d); break;
    }
  }

  // Ht = f(Wi x + Ri h + Wbi + Rbi).
  void rnn_update(int64_t d) {
    const rnn::Activation& f = p_.activation(d, 0);
    for (size_t j = 0; j < h_.size(); ++j) h_[j] = f(clip(gx_[j] + gh_[j]));
  }

  // z, r = f(...); ht = g(Wh x + (r . h) Rh + Rbh + Wbh), or with
  // linear_before_reset g(Wh x + r . (Rh h + Rbh) + Wbh); Ht = (1 - z) ht + z h.
  void gru_update(int64_t d, const T* r, const T* rb) {
    const rnn::Activation& f = p_.activation(d, 0);
    const rnn::Activation& g = p_.activation(d, 1);
    const size_t hidden = h_.size();
    if (!p_.linear_before_reset) {
      for (size_t j = 0; j < hidden; ++j) rh_[j] = f(clip(gx_[hidden + j] + gh_[hidden + j])) * h_[j];
      matvec(r, rb, 2 * p_.hidden, p_.hidden, p_.hidden, rh_.data(), gh_.data() + 2 * hidden);
    }
    for (size_t j = 0; j < hidden; ++j) {
      const C z = f(clip(gx_[j] + gh_[j]));
      C pre = gx_[2 * hidden + j];
      if (p_.linear_before_reset) pre += f(clip(gx_[hidden + j] + gh_[hidden + j])) * gh_[2 * hidden + j];
      else pre += gh_[2 * hidden + j];
      const C ht = g(clip(pre));
      h_[j] = (C(1) - z) * ht + z * h_[j];
    }
  }

  // Gates i, o, f, c; peepholes P = [Pi, Po, Pf].
  // Ct = f . Ct-1 + i . g(c); Ht = o . h(Ct), o seeing Ct through Po.
  void lstm_update(int64_t d) {
    const rnn::Activation& f = p_.activation(d, 0);
    const rnn::Activation& g = p_.activation(d, 1);
    const rnn::Activation& h = p_.activation(d, 2);
    const size_t hidden = h_.size();
    const T* peep = peep_ != nullptr ? peep_ + d * 3 * p_.hidden : nullptr;
    const auto pre = [&](size_t gate, size_t j) { return gx_[gate * hidden + j] + gh_[gate * hidden + j]; };
    const auto pw = [&](size_t which, size_t j) { return peep != nullptr ? load(peep[which * hidden + j]) : C(0); };
    for (size_t j = 0; j < hidden; ++j) {
      const C c_prev = c_[j];
      const C i = f(clip(pre(0, j) + pw(0, j) * c_prev));
      const C fg = p_.input_forget ? C(1) - i : f(clip(pre(2, j) + pw(2, j) * c_prev));
      const C cand = g(clip(pre(3, j)));
      const C c = fg * c_prev + i * cand;
      const C o = f(clip(pre(1, j) + pw(1, j) * c));
      c_[j] = c;
      h_[j] = o * h(c);
    }
  }

  rnn::Params p_;
  std::string node_;        // node.describe(), for errors
  std::vector<C> gh_, gx_;  // per gate row: R h + Rb, W x + Wb
  std::vector<C> h_, c_;    // state of the current batch entry
  std::vector<C> rh_;       // GRU: r . h
  std::vector<C> xv_;       // the current input row
  const T *x_ = nullptr, *w_ = nullptr, *r_ = nullptr, *b_ = nullptr, *peep_ = nullptr;
};

template <Cell kCell> bool supports_recurrent(const NodeContext& ctx) {
  return !ctx.input_types.empty() && FloatTypes::contains(ctx.input_types[0].dtype);
}

template <Cell kCell> Result<std::unique_ptr<Kernel>> make_recurrent(const NodeContext& ctx) {
  const std::vector<InferInput> in = infer_inputs(ctx);
  CP_ASSIGN_OR_RETURN(rnn::Params p, rnn::resolve(ctx.node, in, kCell));
  std::unique_ptr<Kernel> kernel;
  FloatTypes::visit(ctx.input_types[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    kernel = std::make_unique<RecurrentKernel<T>>(p, ctx.node.describe());
  });
  return kernel;
}

}  // namespace

void register_rnn_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"RNN", supports_recurrent<Cell::rnn>, make_recurrent<Cell::rnn>});
  table.push_back({"GRU", supports_recurrent<Cell::gru>, make_recurrent<Cell::gru>});
  table.push_back({"LSTM", supports_recurrent<Cell::lstm>, make_recurrent<Cell::lstm>});
}

}  // namespace caliprox::reference
