#pragma once
// The importer's graph half (ir/onnx_import.cc reads files, tensors and the
// model header): one onnx::GraphProto into a Graph, recursing into the
// subgraphs of If, Loop and Scan. Only the importer includes this header.
#include <set>
#include <string>

#include "ir/graph.h"
#include "ir/onnx_import.h"
#include "util/status.h"

namespace onnx {
class GraphProto;
}  // namespace onnx

namespace caliprox {

struct GraphImportContext {
  std::string path;      // the model file, for messages
  std::string base_dir;  // external data is resolved below it
  int64_t opset = 0;     // default-domain opset of the model
  LoadOptions options;
  // Node names of every graph of the model, so generated names are unique
  // across subgraphs too (an inlined branch joins its outer graph).
  std::set<std::string> taken_names;
};

// Node names the model spells out, in every graph and subgraph.
void collect_node_names(const onnx::GraphProto& gp, std::set<std::string>& names);

// The main graph (`subgraph` false: every value it reads must be defined in
// it) or a subgraph (`subgraph` true: values it reads from outer scopes
// become Graph::captures).
Result<Graph> import_graph(const onnx::GraphProto& gp, GraphImportContext& ctx, bool subgraph);

// Whether find_op() defines the node's op (default domain only).
bool op_is_supported(const Node& node);

}  // namespace caliprox
