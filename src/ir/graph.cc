#include "ir/graph.h"

#include <set>

#include <fmt/format.h>

namespace caliprox {

int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.i;
}

float Node::attr_float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.f;
}

std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.s;
}

std::vector<int64_t> Node::attr_ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.ints;
}

std::vector<float> Node::attr_floats(const std::string& key, std::vector<float> fallback) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? fallback : it->second.floats;
}

std::string Node::describe() const { return fmt::format("node '{}' ({}, #{})", name, op_type, index); }

const ValueInfo* Graph::find_input(const std::string& name) const {
  for (const auto& v : inputs)
    if (v.name == name) return &v;
  return nullptr;
}

const Node* Graph::find_node(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

std::vector<std::string> subgraph_captures(const Node& node) {
  std::set<std::string> names;
  for (const auto& [key, a] : node.attrs)
    if (a.kind == Attribute::Kind::graph && a.g) names.insert(a.g->captures.begin(), a.g->captures.end());
  return {names.begin(), names.end()};
}

size_t explicit_input_count(const Node& node) {
  const size_t captured = subgraph_captures(node).size();
  return node.inputs.size() >= captured ? node.inputs.size() - captured : 0;
}

}  // namespace caliprox
