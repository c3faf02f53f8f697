#pragma once
// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
// Big-endian header and data; element types 0x08 u8, 0x09 i8, 0x0B i16
// (widened to int32: caliprox has no int16 tensors), 0x0C i32, 0x0D f32,
// 0x0E f64. Errors (Errc::invalid_input) name the file.
#include <string>

#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

Result<Tensor> read_idx(const std::string& path);

}  // namespace caliprox
