#pragma once
// Graph IR: what the ONNX importer produces and what sessions execute.
// It holds no backend state; sessions own kernels and buffers.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ir/tensor.h"

namespace caliprox {

struct Graph;

struct Attribute {
  // graph: a subgraph (If's branches, Loop's and Scan's body).
  enum class Kind { f, i, s, t, floats, ints, strings, graph };
  Kind kind = Kind::i;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::shared_ptr<const Graph> g;
};

struct Node {
  std::string name;     // ONNX name, or a stable generated one ("<op>_<index>") when empty
  std::string op_type;  // "Conv"
  std::string domain;   // "" for the default ONNX domain
  std::vector<std::string> inputs;   // value names; "" marks an omitted optional input
  std::vector<std::string> outputs;  // value names; "" marks an omitted optional output
  std::map<std::string, Attribute> attrs;
  int index = 0;  // position in the ONNX file's node list (for error messages)
  // Default-domain opset the node was imported under (0: unknown, newest
  // semantics apply). A few ops changed meaning without a visible attribute
  // or input difference (Softmax before 13, Dropout's mask before 10).
  int64_t opset = 0;

  bool has(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> fallback = {}) const;
  // "node 'conv1' (Conv, #3)": for error messages.
  std::string describe() const;
};

// A dimension as declared in the model: a fixed size or a symbol ("N", "batch")
// or unknown (neither). Resolved from actual input shapes at session creation.
struct Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string symbol;  // non-empty when symbolic
  bool fixed() const { return value >= 0; }
};

struct ValueInfo {
  std::string name;
  DType dtype = DType::undefined;
  std::optional<std::vector<Dim>> dims;  // nullopt when the rank is unknown
};

struct Graph {
  std::string name;
  std::string source_path;  // the .onnx file (for error messages)
  int64_t opset = 0;        // default-domain opset version
  std::vector<Node> nodes;  // in file order (topologically sorted by ONNX rule)
  std::map<std::string, Tensor> initializers;  // includes folded Constant nodes
  std::vector<ValueInfo> inputs;   // graph inputs that are not initializers
  std::vector<ValueInfo> outputs;
  // Subgraphs only: the outer-scope values its nodes, outputs or nested
  // subgraphs read, sorted. The importer appends them, as the union over the
  // node's subgraphs in this order (subgraph_captures()), to the inputs of the
  // node that owns the subgraph, so liveness and rewiring see every read; the
  // subgraph keeps the original names and is bound to them by position.
  std::vector<std::string> captures;

  const ValueInfo* find_input(const std::string& name) const;
  const Node* find_node(const std::string& name) const;
};

// The sorted union of the captures of `node`'s subgraph attributes: the
// names its trailing inputs were read under (empty for nodes without one).
std::vector<std::string> subgraph_captures(const Node& node);

// How many of `node`'s inputs are ONNX inputs (the rest are captures).
size_t explicit_input_count(const Node& node);

}  // namespace caliprox
