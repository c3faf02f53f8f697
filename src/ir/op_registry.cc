#include "ir/op_registry.h"

#include <algorithm>

namespace caliprox {

namespace {
const std::vector<OpDef>& table() {
  static const std::vector<OpDef> t = [] {
    std::vector<OpDef> ops;
    register_tensor_ops(ops);
    register_nn_ops(ops);
    register_elementwise_ops(ops);
    register_index_ops(ops);
    register_quant_ops(ops);
    register_rnn_ops(ops);
    register_reduce_ops(ops);
    register_control_ops(ops);
    register_linalg_ops(ops);
    register_sample_ops(ops);
    register_tfidf_ops(ops);
    register_signal_ops(ops);
    std::sort(ops.begin(), ops.end(), [](const OpDef& a, const OpDef& b) { return a.op_type < b.op_type; });
    return ops;
  }();
  return t;
}
}  // namespace

const OpDef* find_op(std::string_view op_type) {
  const auto& t = table();
  auto it = std::lower_bound(t.begin(), t.end(), op_type,
                             [](const OpDef& d, std::string_view s) { return d.op_type < s; });
  return (it != t.end() && it->op_type == op_type) ? &*it : nullptr;
}

std::vector<std::string_view> supported_op_types() {
  std::vector<std::string_view> names;
  for (const auto& d : table()) names.push_back(d.op_type);
  return names;
}

}  // namespace caliprox
