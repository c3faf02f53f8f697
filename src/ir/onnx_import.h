#pragma once
// ONNX model import: a .onnx file (protobuf ModelProto, Debian's libonnx 1.12)
// becomes a Graph. Everything a corrupt or hostile file could do wrong is
// checked here, once, so sessions and backends can trust the Graph: shapes,
// data sizes, external-data locations, topological order, dtypes, opsets.
// Protobuf types stay out of this header (see onnx_proto.h for the one
// function that takes a TensorProto).
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

// Default-domain opsets the importer accepts; outside: Errc::unsupported.
// Nodes of opsets below 10 are rewritten into their newer forms
// (ir/onnx_legacy.h). 17 is the newest opset of Debian 12's ONNX (1.12).
inline constexpr int64_t kMinOnnxOpset = 1;
inline constexpr int64_t kMaxOnnxOpset = 17;
// The exporter writes opsets 9-17 only: an older graph's nodes were
// rewritten at import and no longer have their opset's meaning.
inline constexpr int64_t kMinExportOpset = 9;

struct LoadOptions {
  // When false, nodes whose op caliprox has no definition for (find_op())
  // are kept so a caller can list them (unsupported_ops()) instead of
  // failing on the first; the conformance runner uses this to skip cases.
  bool require_supported_ops = true;
};

// Reads and validates `path`. Errors: missing/unreadable file or malformed
// model -> Errc::invalid_input naming the path; valid but outside what this
// build handles (opset, dtype, op, attribute kind) -> Errc::unsupported.
Result<Graph> load_onnx(const std::string& path, const LoadOptions& options = {});

// Same, from the serialized bytes. `path_for_errors` prefixes messages and
// becomes Graph::source_path; `base_dir` is the folder external-data
// locations are relative to (empty: external data is refused).
Result<Graph> load_onnx_from_bytes(std::string_view bytes, const std::string& path_for_errors,
                                   const std::string& base_dir, const LoadOptions& options = {});

// Op types (in order of first use) that find_op() does not know, or that
// belong to a non-default domain (reported as "<domain>:<op_type>").
std::vector<std::string> unsupported_ops(const Graph& graph);

// Errc::unsupported naming the first unsupported node (Node::describe()) and
// listing the other unsupported op types, if any.
Status check_ops_supported(const Graph& graph);

// A serialized onnx::TensorProto file (the input_N.pb / output_N.pb files of
// the ONNX conformance data). External data is resolved next to the file.
Result<Tensor> load_tensor_proto_file(const std::string& path);

// Name of an ONNX TensorProto element type code ("FLOAT", "UINT16", ...),
// or "type <code>" when the code is not an ONNX type at all.
std::string onnx_dtype_name(int onnx_type);

}  // namespace caliprox
