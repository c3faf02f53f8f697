// Approximated convolutions on oneDNN. Until the fast kernels land, every
// knob is refused here, so the executor runs it on the reference backend.
#include "backends/onednn/common.h"

namespace caliprox::onednn {

Status check_knob_conv(const NodeContext& ctx, const Runtime&) {
  return unsupported("{}: knob '{}' has no oneDNN kernel", ctx.node.describe(), ctx.knob->name);
}

Result<std::unique_ptr<Kernel>> make_knob_conv(const NodeContext& ctx, std::shared_ptr<const Runtime>, int) {
  return unsupported("{}: knob '{}' has no oneDNN kernel", ctx.node.describe(), ctx.knob->name);
}

bool knob_conv_nhwc(const NodeContext&, const Runtime&) { return false; }

}  // namespace caliprox::onednn
