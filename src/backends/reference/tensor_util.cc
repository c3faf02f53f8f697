#include "backends/reference/tensor_util.h"

namespace caliprox::reference::tensor {

void encode_scalar(DType dtype, double value, void* out) {
  AllTypes::visit(dtype, [&](auto tag) {
    using T = decltype(tag);
    T v = convert<T>(value);
    std::memcpy(out, &v, sizeof(T));
  });
}

void encode_doubles(const std::vector<double>& v, Tensor& out) {
  auto* bytes = static_cast<std::byte*>(out.raw());
  const size_t esize = dtype_size(out.dtype());
  for (size_t i = 0; i < v.size(); ++i) encode_scalar(out.dtype(), v[i], bytes + i * esize);
}

void copy_bytes(const Tensor& from, Tensor& to) {
  assert(from.nbytes() == to.nbytes());
  if (from.raw() != to.raw() && to.nbytes() > 0) std::memmove(to.raw(), from.raw(), to.nbytes());
}

IndexMaps broadcast_maps(const Shape& in, const Shape& out) {
  assert(in.size() <= out.size());
  const size_t offset = out.size() - in.size();
  const auto strides = shape_strides(in);
  IndexMaps maps(out.size());
  for (size_t a = 0; a < out.size(); ++a) {
    maps[a].assign(static_cast<size_t>(out[a]), 0);
    if (a < offset) continue;  // axis the input does not have
    const size_t ia = a - offset;
    if (in[ia] == 1 && out[a] != 1) continue;  // broadcast: always index 0
    for (int64_t i = 0; i < out[a]; ++i) maps[a][static_cast<size_t>(i)] = i * strides[ia];
  }
  return maps;
}

IndexMaps identity_maps(const Shape& shape) { return broadcast_maps(shape, shape); }

}  // namespace caliprox::reference::tensor
