// The signal ops' parameters (ir/ops/signal_params.h) and shape inference.
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "ir/ops/infer_checks.h"
#include "ir/ops/signal_params.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::signal {

using tensor_ops::attr_int;

Result<DType> output_datatype(const Node& node) {
  CP_ASSIGN_OR_RETURN(int64_t code, attr_int(node, "output_datatype", 1));
  if (code <= 0 || code > 64 || !dtype_known(static_cast<int>(code)))
    return unsupported("{}: output_datatype {} is not an element type caliprox handles", node.describe(), code);
  return static_cast<DType>(code);
}

Result<std::vector<double>> window(const Node& node, int64_t size) {
  if (size < 0) return invalid_input("{}: the window size is {}, expected at least 0", node.describe(), size);
  CP_ASSIGN_OR_RETURN(int64_t periodic, attr_int(node, "periodic", 1));
  double a0 = 0.5, a1 = 0.5, a2 = 0;  // HannWindow
  if (node.op_type == "HammingWindow") {
    a0 = 25.0 / 46.0;
    a1 = 1 - a0;
  } else if (node.op_type == "BlackmanWindow") {
    a0 = 0.42;
    a1 = 0.5;
    a2 = 0.08;
  }
  const auto n = static_cast<double>(periodic != 0 ? size : size - 1);
  std::vector<double> w(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    const double phase = 2 * std::numbers::pi * static_cast<double>(i) / n;
    w[static_cast<size_t>(i)] = a0 - a1 * std::cos(phase) + a2 * std::cos(2 * phase);
  }
  if (size == 1 && periodic == 0) w[0] = 1;  // N = 0: one point, the window's peak
  return w;
}

Result<std::vector<double>> mel_weights(const Node& node, int64_t num_mel_bins, int64_t dft_length, int64_t sample_rate,
                                        double lower_hz, double upper_hz) {
  if (num_mel_bins <= 0 || dft_length <= 0 || sample_rate <= 0)
    return invalid_input("{}: num_mel_bins {}, dft_length {} and sample_rate {} must be positive", node.describe(),
                         num_mel_bins, dft_length, sample_rate);
  if (!(lower_hz >= 0 && lower_hz < upper_hz))
    return invalid_input("{}: the edges {} Hz to {} Hz do not make a band", node.describe(), lower_hz, upper_hz);
  auto mel = [](double hz) { return 2595 * std::log10(1 + hz / 700); };
  const int64_t rows = dft_length / 2 + 1, points = num_mel_bins + 2;
  // num_mel_bins + 2 edges evenly spaced in mel, as FFT bin indices.
  const double low = mel(lower_hz), step = (mel(upper_hz) - low) / static_cast<double>(points);
  std::vector<int64_t> bin(static_cast<size_t>(points));
  for (int64_t i = 0; i < points; ++i) {
    const double hz = 700 * (std::pow(10.0, (static_cast<double>(i) * step + low) / 2595) - 1);
    bin[static_cast<size_t>(i)] =
        static_cast<int64_t>(std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
  }
  std::vector<double> w(static_cast<size_t>(rows * num_mel_bins), 0.0);
  auto at = [&](int64_t row, int64_t col) -> double* {
    return row >= 0 && row < rows ? &w[static_cast<size_t>(row * num_mel_bins + col)] : nullptr;
  };
  for (int64_t m = 0; m < num_mel_bins; ++m) {
    const int64_t left = bin[static_cast<size_t>(m)], center = bin[static_cast<size_t>(m) + 1],
                  right = bin[static_cast<size_t>(m) + 2];
    if (center == left) {
      if (double* v = at(center, m)) *v = 1;
    } else {
      for (int64_t j = left; j <= center; ++j)
        if (double* v = at(j, m)) *v = static_cast<double>(j - left) / static_cast<double>(center - left);
    }
    for (int64_t j = center; j < right; ++j)
      if (double* v = at(j, m)) *v = static_cast<double>(right - j) / static_cast<double>(right - center);
  }
  return w;
}

namespace {

// The last axis: 1 for real values, 2 for complex ones.
Result<bool> complex_axis(const Node& node, const Shape& x, const char* what) {
  if (x.empty() || (x.back() != 1 && x.back() != 2))
    return invalid_input("{}: {} has shape {}; its last axis must be 1 (real) or 2 (complex)", node.describe(), what,
                         shape_str(x));
  return x.back() == 2;
}

}  // namespace

Result<Dft> dft(const Node& node, const Shape& x, int64_t dft_length) {
  Dft d;
  CP_ASSIGN_OR_RETURN(d.complex_in, complex_axis(node, x, "the input"));
  const auto rank = static_cast<int64_t>(x.size());
  if (rank < 3)
    return invalid_input("{}: the input has rank {}; DFT needs [batch, n, 1 or 2] at least", node.describe(), rank);
  CP_ASSIGN_OR_RETURN(int64_t axis, attr_int(node, "axis", 1));
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank - 2)
    return invalid_input("{}: axis {} is not a signal axis of an input of rank {}", node.describe(),
                         node.attr_int("axis", 1), rank);
  CP_ASSIGN_OR_RETURN(int64_t inverse, attr_int(node, "inverse", 0));
  CP_ASSIGN_OR_RETURN(int64_t onesided, attr_int(node, "onesided", 0));
  d.inverse = inverse != 0;
  if (onesided != 0 && (d.complex_in || d.inverse))
    return invalid_input("{}: a onesided DFT needs a real input and the forward transform", node.describe());
  const int64_t n = x[static_cast<size_t>(axis)];
  d.length = dft_length > 0 ? dft_length : n;
  if (d.length <= 0) return invalid_input("{}: the transform length is {}", node.describe(), d.length);
  d.n_axis = n;
  d.n_in = std::min(n, d.length);
  d.n_out = onesided != 0 ? d.length / 2 + 1 : d.length;
  d.outer = tensor_ops::dims_product(x, 0, static_cast<size_t>(axis));
  d.inner = tensor_ops::dims_product(x, static_cast<size_t>(axis) + 1, x.size() - 1);
  d.output_shape = x;
  d.output_shape[static_cast<size_t>(axis)] = d.n_out;
  d.output_shape.back() = 2;
  return d;
}

Result<Stft> stft(const Node& node, const Shape& signal, int64_t frame_step, const Shape* window,
                  int64_t frame_length) {
  Stft s;
  CP_ASSIGN_OR_RETURN(s.complex_in, complex_axis(node, signal, "the signal"));
  if (signal.size() != 3)
    return invalid_input("{}: the signal has shape {}, expected [batch, length, 1 or 2]", node.describe(),
                         shape_str(signal));
  if (window && window->size() != 1)
    return invalid_input("{}: the window has shape {}, expected one axis", node.describe(), shape_str(*window));
  if (window && frame_length > 0 && (*window)[0] != frame_length)
    return invalid_input("{}: the window has {} points but frame_length is {}", node.describe(), (*window)[0],
                         frame_length);
  s.frame_length = window ? (*window)[0] : frame_length;
  if (s.frame_length <= 0) return invalid_input("{}: needs a window or a positive frame_length", node.describe());
  if (frame_step <= 0) return invalid_input("{}: frame_step is {}, expected at least 1", node.describe(), frame_step);
  CP_ASSIGN_OR_RETURN(int64_t onesided, attr_int(node, "onesided", 1));
  if (onesided != 0 && s.complex_in) return invalid_input("{}: a onesided STFT needs a real signal", node.describe());
  s.batch = signal[0];
  s.signal_length = signal[1];
  if (s.signal_length < s.frame_length)
    return invalid_input("{}: the signal has {} points, fewer than one frame of {}", node.describe(), s.signal_length,
                         s.frame_length);
  s.step = frame_step;
  s.frames = (s.signal_length - s.frame_length) / frame_step + 1;
  s.bins = onesided != 0 ? s.frame_length / 2 + 1 : s.frame_length;
  s.output_shape = {s.batch, s.frames, s.bins, 2};
  return s;
}

namespace {

using Types = Result<std::vector<TensorType>>;
using tensor_ops::check_inputs;
using tensor_ops::constant_ints;
using tensor_ops::optional_input;

Result<int64_t> constant_int(const Node& node, std::span<const InferInput> inputs, size_t i, std::string_view name,
                             std::string_view purpose) {
  CP_ASSIGN_OR_RETURN(auto v, constant_ints(node, inputs, i, name, purpose));
  if (v.size() != 1) return invalid_input("{}: '{}' must be a single value, found {}", node.describe(), name, v.size());
  return v[0];
}

Types infer_window(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 1));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_ASSIGN_OR_RETURN(int64_t size, constant_int(node, inputs, 0, "size", "the window's length"));
  CP_ASSIGN_OR_RETURN(DType dt, output_datatype(node));
  CP_TRY(window(node, size).status());
  return std::vector<TensorType>{{dt, {size}}};
}

Types infer_mel(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 5, 5));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_ASSIGN_OR_RETURN(int64_t bins, constant_int(node, inputs, 0, "num_mel_bins", "the output shape"));
  CP_ASSIGN_OR_RETURN(int64_t length, constant_int(node, inputs, 1, "dft_length", "the output shape"));
  CP_ASSIGN_OR_RETURN(DType dt, output_datatype(node));
  if (bins <= 0 || length <= 0)
    return invalid_input("{}: num_mel_bins {} and dft_length {} must be positive", node.describe(), bins, length);
  return std::vector<TensorType>{{dt, {length / 2 + 1, bins}}};
}

Types infer_dft(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 1, 2));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_TRY(tensor_ops::check_dtype(node, inputs[0], 0, tensor_ops::Accepts::floating));
  int64_t length = 0;
  if (optional_input(inputs, 1)) {
    CP_ASSIGN_OR_RETURN(length, constant_int(node, inputs, 1, "dft_length", "the output shape"));
  }
  CP_ASSIGN_OR_RETURN(Dft d, dft(node, inputs[0].type.shape, length));
  return std::vector<TensorType>{{inputs[0].type.dtype, d.output_shape}};
}

Types infer_stft(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(check_inputs(node, inputs, 2, 4));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_TRY(tensor_ops::check_dtype(node, inputs[0], 0, tensor_ops::Accepts::floating));
  CP_ASSIGN_OR_RETURN(int64_t step, constant_int(node, inputs, 1, "frame_step", "the number of frames"));
  const InferInput* win = optional_input(inputs, 2);
  int64_t length = 0;
  if (optional_input(inputs, 3)) {
    CP_ASSIGN_OR_RETURN(length, constant_int(node, inputs, 3, "frame_length", "the output shape"));
  }
  CP_ASSIGN_OR_RETURN(Stft s, stft(node, inputs[0].type.shape, step, win ? &win->type.shape : nullptr, length));
  return std::vector<TensorType>{{inputs[0].type.dtype, s.output_shape}};
}

}  // namespace

}  // namespace caliprox::signal

namespace caliprox {

void register_signal_ops(std::vector<OpDef>& table) {
  table.push_back({"HannWindow", signal::infer_window});
  table.push_back({"HammingWindow", signal::infer_window});
  table.push_back({"BlackmanWindow", signal::infer_window});
  table.push_back({"MelWeightMatrix", signal::infer_mel});
  table.push_back({"DFT", signal::infer_dft});
  table.push_back({"STFT", signal::infer_stft});
}

}  // namespace caliprox
