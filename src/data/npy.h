#pragma once
// NumPy .npy files (format versions 1.0, 2.0, 3.0), the exchange format of
// `caliprox infer` and of datasets prepared in Python.
//
// Supported dtypes (little-endian, C order): <f4 <f2 <f8 |u1 |i1 <i4 <i8 |b1.
// Fortran-order arrays, big-endian data and other dtypes are rejected with
// Errc::invalid_input naming the file and the dtype.
#include <string>
#include <string_view>

#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

Result<Tensor> read_npy(const std::string& path);
// Same as read_npy on bytes already in memory; `name_for_errors` prefixes errors.
Result<Tensor> parse_npy(std::string_view bytes, const std::string& name_for_errors);

// Version 1.0 (2.0 when the header does not fit in 64 KiB); the header is
// padded so the data starts at a multiple of 64 bytes, as NumPy does.
// The tensor must have a dtype (not DType::undefined).
std::string serialize_npy(const Tensor& t);
// Atomic (temp file + rename); errors name the path.
Status write_npy(const std::string& path, const Tensor& t);

}  // namespace caliprox
