#pragma once
// The importer's tensor conversion, for code that already holds an
// onnx::TensorProto (tests, tools building models in memory). Only this
// header exposes a protobuf type, and only by forward declaration.
#include <string>

#include "ir/tensor.h"
#include "util/status.h"

namespace onnx {
class TensorProto;
}  // namespace onnx

namespace caliprox {

// Converts dims and data (typed fields, little-endian raw_data, or external
// data resolved below `base_dir`) into an owned Tensor. Errors name the
// tensor: bad dims or data size / escaping external location ->
// Errc::invalid_input; element type caliprox lacks -> Errc::unsupported.
Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir);

}  // namespace caliprox
