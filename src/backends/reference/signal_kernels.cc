// Reference kernels of the signal ops (ir/ops/signal_params.h): windows and
// mel filters generated in double; DFT and STFT as direct sums in double,
// O(n^2) per transform, the readable definition rather than an FFT.
#include <cmath>
#include <numbers>
#include <vector>

#include "backends/reference/reference.h"
#include "backends/reference/tensor_util.h"
#include "ir/ops/signal_params.h"

namespace caliprox::reference {

namespace {

using Inputs = std::span<const Tensor* const>;
using Outputs = std::span<Tensor* const>;
using SignalTypes = tensor::TypeSet<float, double, tensor::Half>;

// y[k] = sum_t x[t] e^(-+2 pi i k t / length), divided by length when
// inverse, for k < n_out; x holds n_in points `stride` doubles apart (a
// (re, im) pair each when complex, else one real value); y gets n_out
// (re, im) pairs `y_stride` doubles apart.
void transform(const double* x, int64_t stride, bool complex_in, int64_t n_in, int64_t length, bool inverse,
               int64_t n_out, double* y, int64_t y_stride) {
  const double sign = inverse ? 1.0 : -1.0;
  for (int64_t k = 0; k < n_out; ++k) {
    double re = 0, im = 0;
    for (int64_t t = 0; t < n_in; ++t) {
      // (k * t) mod length keeps the angle small, so cos/sin stay exact-ish.
      const double angle =
          sign * 2 * std::numbers::pi * static_cast<double>((k * t) % length) / static_cast<double>(length);
      const double c = std::cos(angle), s = std::sin(angle);
      const double xr = x[t * stride], xi = complex_in ? x[t * stride + 1] : 0.0;
      re += xr * c - xi * s;
      im += xr * s + xi * c;
    }
    if (inverse) {
      re /= static_cast<double>(length);
      im /= static_cast<double>(length);
    }
    y[k * y_stride] = re;
    y[k * y_stride + 1] = im;
  }
}

bool supports_generator(const NodeContext& ctx) {
  return !ctx.output_types.empty() && tensor::AllTypes::contains(ctx.output_types[0].dtype);
}

Result<std::unique_ptr<Kernel>> make_window(const NodeContext& ctx) {
  const Node node = ctx.node;
  return tensor::make_fn_kernel([node](Inputs in, Outputs out) -> Status {
    CP_ASSIGN_OR_RETURN(std::vector<double> w, signal::window(node, in[0]->to_int64_vector().at(0)));
    tensor::encode_doubles(w, *out[0]);
    return {};
  });
}

Result<std::unique_ptr<Kernel>> make_mel(const NodeContext& ctx) {
  const Node node = ctx.node;
  return tensor::make_fn_kernel([node](Inputs in, Outputs out) -> Status {
    auto scalar = [&](size_t i) { return in[i]->at_double(0); };
    CP_ASSIGN_OR_RETURN(std::vector<double> w,
                        signal::mel_weights(node, in[0]->to_int64_vector().at(0), in[1]->to_int64_vector().at(0),
                                            in[2]->to_int64_vector().at(0), scalar(3), scalar(4)));
    tensor::encode_doubles(w, *out[0]);
    return {};
  });
}

bool supports_signal(const NodeContext& ctx) { return SignalTypes::contains(tensor::in_type(ctx)); }

Result<std::unique_ptr<Kernel>> make_dft(const NodeContext& ctx) {
  const TensorType* length_type =
      ctx.input_types.size() > 1 && ctx.input_types[1].dtype != DType::undefined ? &ctx.input_types[1] : nullptr;
  const Tensor* length_value = length_type && ctx.constants.size() > 1 ? ctx.constants[1] : nullptr;
  if (length_type && !length_value)
    return unsupported("{}: dft_length must be a constant (it sets the output shape)", ctx.node.describe());
  const int64_t length = length_value ? length_value->to_int64_vector().at(0) : 0;
  CP_ASSIGN_OR_RETURN(signal::Dft d, signal::dft(ctx.node, ctx.input_types[0].shape, length));
  return tensor::make_fn_kernel([d](Inputs in, Outputs out) -> Status {
    const std::vector<double> x = in[0]->to_double_vector();
    const int64_t c = d.complex_in ? 2 : 1;
    std::vector<double> y(static_cast<size_t>(d.outer * d.n_out * d.inner * 2));
    for (int64_t o = 0; o < d.outer; ++o)
      for (int64_t i = 0; i < d.inner; ++i)
        transform(x.data() + (o * d.n_axis * d.inner + i) * c, d.inner * c, d.complex_in, d.n_in, d.length, d.inverse,
                  d.n_out, y.data() + (o * d.n_out * d.inner + i) * 2, d.inner * 2);
    tensor::encode_doubles(y, *out[0]);
    return {};
  });
}

Result<std::unique_ptr<Kernel>> make_stft(const NodeContext& ctx) {
  auto constant = [&](size_t i) -> const Tensor* { return i < ctx.constants.size() ? ctx.constants[i] : nullptr; };
  auto present = [&](size_t i) { return i < ctx.input_types.size() && ctx.input_types[i].dtype != DType::undefined; };
  if (!constant(1) || (present(3) && !constant(3)))
    return unsupported("{}: frame_step and frame_length must be constants (they set the output shape)",
                       ctx.node.describe());
  const int64_t step = constant(1)->to_int64_vector().at(0);
  const int64_t length = present(3) ? constant(3)->to_int64_vector().at(0) : 0;
  CP_ASSIGN_OR_RETURN(signal::Stft s, signal::stft(ctx.node, ctx.input_types[0].shape, step,
                                                   present(2) ? &ctx.input_types[2].shape : nullptr, length));
  const bool windowed = present(2);
  return tensor::make_fn_kernel([s, windowed](Inputs in, Outputs out) -> Status {
    const std::vector<double> x = in[0]->to_double_vector();
    const std::vector<double> w = windowed ? in[2]->to_double_vector() : std::vector<double>(s.frame_length, 1.0);
    const int64_t c = s.complex_in ? 2 : 1;
    std::vector<double> frame(static_cast<size_t>(s.frame_length * c));
    std::vector<double> y(static_cast<size_t>(s.batch * s.frames * s.bins * 2));
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t f = 0; f < s.frames; ++f) {
        const double* start = x.data() + (b * s.signal_length + f * s.step) * c;
        for (int64_t t = 0; t < s.frame_length; ++t)
          for (int64_t k = 0; k < c; ++k)
            frame[static_cast<size_t>(t * c + k)] = start[t * c + k] * w[static_cast<size_t>(t)];
        transform(frame.data(), c, s.complex_in, s.frame_length, s.frame_length, false, s.bins,
                  y.data() + (b * s.frames + f) * s.bins * 2, 2);
      }
    tensor::encode_doubles(y, *out[0]);
    return {};
  });
}

}  // namespace

void register_signal_kernels(std::vector<KernelEntry>& table) {
  table.push_back({"HannWindow", supports_generator, make_window});
  table.push_back({"HammingWindow", supports_generator, make_window});
  table.push_back({"BlackmanWindow", supports_generator, make_window});
  table.push_back({"MelWeightMatrix", supports_generator, make_mel});
  table.push_back({"DFT", supports_signal, make_dft});
  table.push_back({"STFT", supports_signal, make_stft});
}

}  // namespace caliprox::reference
