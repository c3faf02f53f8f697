#pragma once
// Headerless binary arrays: little-endian, C order, layout given by RawSpec
// (dtype, full shape, bytes to skip at the start). The file size must match.
#include <string>

#include "data/dataset.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

Result<Tensor> read_raw(const std::string& path, const RawSpec& spec);

}  // namespace caliprox
