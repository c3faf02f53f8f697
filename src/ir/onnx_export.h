#pragma once
// ONNX model export: a Graph becomes a .onnx file (protobuf ModelProto, the
// Debian libonnx the importer reads) that other runtimes (ONNX Runtime) load.
// It is the inverse of onnx_import.h up to what the import folds: Constant
// nodes come back as initializers, generated node names ("conv_3") become
// real names, and an empty graph name is written as "caliprox" (the ONNX
// checker wants one). Protobuf types stay out of this header.
//
// What is written:
//   - opset_import: the default domain at Graph::opset (or, when that is 0,
//     the one opset the nodes carry), and every other domain a node uses, at
//     version 1 (a Node holds no version for its domain);
//   - ir_version: the ONNX IR version that introduced the default opset
//     (opset 9: 4 ... opset 15-17: 8), so older runtimes accept the file;
//   - nodes in Graph order with every attribute kind, initializers of every
//     element type ONNX files hold (raw little-endian data), graph inputs and
//     outputs with their fixed, symbolic or unknown dims.
//
// Refused, with an error naming the node or tensor (Errc::invalid_input):
// a node whose opset differs from the graph's (an ONNX file has one opset
// per domain, and some ops changed meaning between opsets), a node carrying
// the executor's internal attributes ("caliprox.*", op_registry.h: a fused
// node no other runtime understands), default-domain nodes with no opset,
// and bfloat16 tensors (internal to caliprox: never in a Graph from import).
// A model over protobuf's 2 GiB message limit is Errc::unsupported (the
// exporter writes no external data).
#include <string>

#include "ir/graph.h"
#include "util/status.h"

namespace caliprox {

// The serialized ModelProto.
Result<std::string> serialize_onnx(const Graph& graph);

// Serializes and writes `path` atomically (util/atomic_file.h): on any
// error nothing is left at `path` (an existing file stays as it was).
// I/O errors are Errc::runtime and name the path.
Status save_onnx(const Graph& graph, const std::string& path);

// The ONNX IR version that came with default-domain opset `opset` (the
// lowest IR version a runtime must read to accept that opset).
int64_t onnx_ir_version_for_opset(int64_t opset);

}  // namespace caliprox
