#include "eval/injector.h"

#include <cstring>

namespace caliprox {

Status ErrorInjector::after(const NodeEvent& event, std::span<Tensor* const> outputs) {
  if (outputs.empty() || outputs[0] == nullptr) return {};
  Tensor& out = *outputs[0];
  if (out.dtype() != DType::f32)
    return invalid_input("error injection on '{}': its output is {}, not float", event.node, dtype_name(out.dtype()));
  if (event.layout == Layout::nhwc && out.shape().size() == 4)
    return invalid_input("error injection on '{}': its output is stored channels-last inside the session; inject at "
                         "a network output, or build the session without channels-last layouts",
                         event.node);
  const ErrorModel& model = models_.at(event.node);
  if (out.shape().empty() || out.shape()[0] == event.samples) {
    return apply_error_model(model, out, seed_, first_sample_ + event.first_sample)
        .with_context(fmt::format("error injection on '{}'", event.node));
  }
  // A padded last chunk: perturb the real rows only, as a view of them.
  Shape real = out.shape();
  real[0] = event.samples;
  Tensor rows = Tensor::view(DType::f32, real, out.raw());
  return apply_error_model(model, rows, seed_, first_sample_ + event.first_sample)
      .with_context(fmt::format("error injection on '{}'", event.node));
}

}  // namespace caliprox
