#include "backends/layout.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace caliprox {

bool layout_neutral(const Shape& s) { return s.size() == 4 && (s[1] == 1 || s[2] * s[3] == 1); }

std::string_view layout_name(Layout l) { return l == Layout::nhwc ? "nhwc" : "nchw"; }

bool layout_transparent(const NodeContext& ctx) {
  static constexpr std::array<std::string_view, 17> kElementwise = {
      "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Sqrt", "Add",
      "Sub",  "Mul",       "Div",  "Pow",     "Max",         "Min",       "Identity", "Dropout"};
  if (std::find(kElementwise.begin(), kElementwise.end(), ctx.node.op_type) == kElementwise.end()) return false;
  if (ctx.output_types.empty() || ctx.output_types[0].shape.size() != 4) return false;
  // Dropout's optional mask output would be written in NCHW order.
  for (size_t i = 1; i < ctx.output_types.size(); ++i)
    if (ctx.output_types[i].dtype != DType::undefined) return false;
  const Shape& out = ctx.output_types[0].shape;
  for (size_t i = 0; i < ctx.input_types.size(); ++i) {
    if (ctx.input_types[i].dtype == DType::undefined) continue;
    if (ctx.constants[i] != nullptr) {
      // Clip's min/max and scalar operands are layout-free; any other
      // constant would be broadcast by NCHW position.
      if (ctx.constants[i]->numel() != 1) return false;
    } else if (ctx.input_types[i].shape != out) {
      return false;
    }
  }
  return true;
}

bool layout_following(const NodeContext& ctx) { return ctx.node.op_type == "Concat" || ctx.node.op_type == "Resize"; }

namespace {

// [rows, cols] -> [cols, rows] in square tiles: a row-by-row walk writes
// with a stride of `rows` elements, which for power-of-two plane sizes
// (64x64 = 4096 floats) maps every write of a tile to the same cache set.
// Within a tile both the reads and the writes stay in a few cache lines.
void transpose_tiled(const float* src, float* dst, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t k0 = 0; k0 < cols; k0 += kTile) {
      const int64_t k1 = std::min(cols, k0 + kTile);
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t r = r0; r < r1; ++r) dst[k * rows + r] = src[r * cols + k];
    }
  }
}

void transpose_bytes(const std::byte* src, std::byte* dst, int64_t rows, int64_t cols, size_t es) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      std::memcpy(dst + static_cast<size_t>(k * rows + r) * es, src + static_cast<size_t>(r * cols + k) * es, es);
}

class LayoutKernel final : public Kernel {
 public:
  LayoutKernel(Layout from, Layout to) : from_(from), to_(to) {}
  Status run(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    const Tensor& x = *inputs[0];
    Tensor& y = *outputs[0];
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
    const size_t es = dtype_size(x.dtype());
    const auto* src = static_cast<const std::byte*>(x.raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    if (from_ == to_) {
      std::memcpy(dst, src, x.nbytes());
      return {};
    }
    // Transpose each sample's [rows, cols] matrix: NCHW -> NHWC is [C, HW] ->
    // [HW, C], the reverse swaps the roles.
    const int64_t rows = from_ == Layout::nchw ? c : hw;
    const int64_t cols = from_ == Layout::nchw ? hw : c;
    for (int64_t b = 0; b < n; ++b) {
      const std::byte* s = src + static_cast<size_t>(b * rows * cols) * es;
      std::byte* d = dst + static_cast<size_t>(b * rows * cols) * es;
      if (es == 4) transpose_tiled(reinterpret_cast<const float*>(s), reinterpret_cast<float*>(d), rows, cols);
      else transpose_bytes(s, d, rows, cols, es);
    }
    return {};
  }

 private:
  Layout from_, to_;
};

}  // namespace

std::unique_ptr<Kernel> make_layout_kernel(Layout from, Layout to) { return std::make_unique<LayoutKernel>(from, to); }

}  // namespace caliprox
