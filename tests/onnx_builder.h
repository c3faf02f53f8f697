#pragma once
// Builders for ONNX models made in memory with the protobuf API (the
// importer, exporter and control-flow tests).
#include <cctype>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

namespace caliprox::test {

inline onnx::ModelProto make_model(int64_t opset = 13) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

// dims: "3" fixed, "N" symbolic, "?" unknown.
inline void add_value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
                      int elem_type, const std::vector<std::string>& dims) {
  auto* v = list->Add();
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (d == "?") continue;  // unknown: neither value nor param
    if (!d.empty() && (std::isdigit(static_cast<unsigned char>(d[0])) || d[0] == '-'))
      dim->set_dim_value(std::stoll(d));
    else dim->set_dim_param(d);
  }
}

inline onnx::NodeProto* add_node(onnx::GraphProto& g, const std::string& op, std::vector<std::string> inputs,
                                 std::vector<std::string> outputs, const std::string& name = "") {
  auto* n = g.add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (auto& i : inputs) n->add_input(i);
  for (auto& o : outputs) n->add_output(o);
  return n;
}

inline onnx::NodeProto* add_node(onnx::ModelProto& m, const std::string& op, std::vector<std::string> inputs,
                                 std::vector<std::string> outputs, const std::string& name = "") {
  return add_node(*m.mutable_graph(), op, std::move(inputs), std::move(outputs), name);
}

inline onnx::TensorProto float_tensor(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (auto d : dims) t.add_dims(d);
  t.set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  return t;
}

inline onnx::TensorProto int64_tensor(const std::string& name, std::vector<int64_t> dims,
                                      const std::vector<int64_t>& v) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  for (auto d : dims) t.add_dims(d);
  for (auto x : v) t.add_int64_data(x);
  return t;
}

// A graph attribute `key` on `n`, returned for filling.
inline onnx::GraphProto* add_graph_attr(onnx::NodeProto* n, const std::string& key) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name(key);
  return a->mutable_g();
}

inline void add_int_attr(onnx::NodeProto* n, const std::string& key, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

inline void add_ints_attr(onnx::NodeProto* n, const std::string& key, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

// A Constant node producing `t` under `name`.
inline void add_constant(onnx::GraphProto& g, const std::string& name, onnx::TensorProto t) {
  auto* n = add_node(g, "Constant", {}, {name});
  auto* a = n->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  t.set_name("");
  *a->mutable_t() = std::move(t);
}

}  // namespace caliprox::test
