#pragma once
// The signal ops of opset 17 (HannWindow, HammingWindow, BlackmanWindow,
// MelWeightMatrix, DFT, STFT): their parameters resolved once, shared by
// shape inference (ir/ops/signal_ops.cc) and the reference kernels
// (backends/reference/signal_kernels.cc). Complex values are the last axis
// of size 2 (real, imaginary); real ones a last axis of size 1.
#include <cstdint>
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox::signal {

// The window ops' and MelWeightMatrix's 'output_datatype' (default float).
Result<DType> output_datatype(const Node& node);

// Window coefficients of `size` points, in double: a0 - a1 cos(2 pi n / N)
// + a2 cos(4 pi n / N), N = size when periodic, size - 1 when symmetric.
Result<std::vector<double>> window(const Node& node, int64_t size);

// MelWeightMatrix as [dft_length / 2 + 1, num_mel_bins], row-major: the
// triangular filters the ONNX test case defines (bin edges floored to FFT
// bins), in double.
Result<std::vector<double>> mel_weights(const Node& node, int64_t num_mel_bins, int64_t dft_length, int64_t sample_rate,
                                        double lower_hz, double upper_hz);

// DFT over one axis of x = [outer..., n, inner..., 1 or 2].
struct Dft {
  int64_t outer = 1, inner = 1;  // products of the axes before and after the signal axis
  int64_t n_axis = 0;            // the signal axis' size
  int64_t n_in = 0;              // signal points read (at most length)
  int64_t length = 0;            // transform length (dft_length, default the axis size)
  int64_t n_out = 0;             // bins written: length, or length / 2 + 1 when onesided
  bool complex_in = false, inverse = false;
  Shape output_shape;
};
// `dft_length`: the optional input's value, 0 when omitted.
Result<Dft> dft(const Node& node, const Shape& x, int64_t dft_length);

// STFT of signal = [batch, length, 1 or 2] in frames of frame_length points,
// frame_step apart; output [batch, frames, bins, 2].
struct Stft {
  int64_t batch = 0, signal_length = 0, frames = 0, frame_length = 0, step = 0, bins = 0;
  bool complex_in = false;
  Shape output_shape;
};
// `window`: the window input's shape when given (else null); `frame_length`
// 0 when omitted.
Result<Stft> stft(const Node& node, const Shape& signal, int64_t frame_step, const Shape* window, int64_t frame_length);

}  // namespace caliprox::signal
