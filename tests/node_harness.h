#pragma once
// Shared by the op tests: attribute and tensor builders, and running one
// node through find_op()->infer and a backend's prepare()/run().
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "backends/backend.h"
#include "ir/op_registry.h"

namespace caliprox::test {

inline Attribute ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::ints;
  a.ints = std::move(v);
  return a;
}
inline Attribute floats(std::vector<float> v) {
  Attribute a;
  a.kind = Attribute::Kind::floats;
  a.floats = std::move(v);
  return a;
}
inline Attribute strings(std::vector<std::string> v) {
  Attribute a;
  a.kind = Attribute::Kind::strings;
  a.strings = std::move(v);
  return a;
}
inline Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = v;
  return a;
}
inline Attribute float_attr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::f;
  a.f = v;
  return a;
}
inline Attribute str(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::s;
  a.s = std::move(v);
  return a;
}

// A node with `inputs` inputs (in0, in1, ...) and `outputs` outputs.
inline Node make_node(std::string op, size_t inputs, std::map<std::string, Attribute> attrs = {}, size_t outputs = 1) {
  Node n;
  n.name = "t_" + op;
  n.op_type = std::move(op);
  for (size_t i = 0; i < inputs; ++i) n.inputs.push_back(fmt::format("in{}", i));
  for (size_t i = 0; i < outputs; ++i) n.outputs.push_back(fmt::format("out{}", i));
  n.attrs = std::move(attrs);
  return n;
}

template <typename T> Tensor tensor(Shape shape, std::vector<T> values) {
  REQUIRE(static_cast<int64_t>(values.size()) == shape_numel(shape));
  if constexpr (std::is_same_v<T, bool>) {
    std::vector<uint8_t> bytes(values.begin(), values.end());
    return Tensor::copy_of(DType::boolean, std::move(shape), bytes.data());
  } else {
    return Tensor::copy_of(dtype_of<T>(), std::move(shape), values.data());
  }
}
inline Tensor f32(Shape shape, std::vector<float> v) { return tensor<float>(std::move(shape), std::move(v)); }
inline Tensor i64(Shape shape, std::vector<int64_t> v) { return tensor<int64_t>(std::move(shape), std::move(v)); }
inline Tensor iota(Shape shape, float start = 0) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return f32(std::move(shape), v);
}

// The node as imported under `opset` (ops whose meaning changed between
// opsets read Node::opset).
inline Node at_opset(Node node, int64_t opset) {
  node.opset = opset;
  return node;
}

// Inference for one node. An empty Tensor stands for an omitted optional
// input; constant[i] says whether inference may read input i's values.
inline Result<std::vector<TensorType>> infer_node(const Node& node, const std::vector<Tensor>& inputs,
                                                  const std::vector<bool>& constant) {
  const OpDef* def = find_op(node.op_type);
  REQUIRE(def != nullptr);
  std::vector<InferInput> in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    in.push_back(t.empty() ? InferInput{} : InferInput{t.type(), constant[i] ? &t : nullptr});
  }
  return def->infer(node, in);
}

// Runs one node on `backend` (the reference one when null): inference, the
// backend's supports() and prepare(), outputs allocated with the inferred
// types, Kernel::run(). Outputs the node omits ("" names) come back empty.
inline Result<std::vector<Tensor>> run_node(const Node& node, const std::vector<Tensor>& inputs,
                                            const std::vector<bool>& constant, Backend* backend = nullptr) {
  CP_ASSIGN_OR_RETURN(std::vector<TensorType> types, infer_node(node, inputs, constant));
  std::unique_ptr<Backend> reference;
  if (backend == nullptr) {
    reference = make_reference_backend({});
    backend = reference.get();
  }
  NodeContext ctx{node, {}, {}, types, 1};
  std::vector<const Tensor*> in_ptrs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    ctx.input_types.push_back(t.empty() ? TensorType{} : t.type());
    ctx.constants.push_back(t.empty() || !constant[i] ? nullptr : &t);
    in_ptrs.push_back(t.empty() ? nullptr : &t);
  }
  if (!backend->supports(ctx))
    return unsupported("{}: not supported by the {} backend", node.describe(), backend->name());
  CP_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> kernel, backend->prepare(ctx));
  std::vector<Tensor> outputs(types.size());
  std::vector<Tensor*> out_ptrs(types.size(), nullptr);
  for (size_t j = 0; j < types.size(); ++j) {
    if (j < node.outputs.size() && !node.outputs[j].empty()) {
      outputs[j] = Tensor(types[j].dtype, types[j].shape);
      out_ptrs[j] = &outputs[j];
    }
  }
  CP_TRY(kernel->run(in_ptrs, out_ptrs));
  return outputs;
}

// Runs `node` with input #0 a run-time input and the others constants (as
// indices and shape-like inputs are in real models), or every input a
// run-time input with `dynamic_all`.
inline Result<std::vector<Tensor>> run_rest_constant(const Node& node, const std::vector<Tensor>& values,
                                                     bool dynamic_all = false) {
  std::vector<bool> constant(values.size(), !dynamic_all);
  if (!constant.empty()) constant[0] = false;
  return run_node(node, values, constant);
}

// Element-wise comparison with a relative tolerance; NaN expects NaN, an
// infinity the same infinity.
inline void check_values(const Tensor& t, const Shape& shape, const std::vector<double>& expected, double tol = 1e-5) {
  CHECK(shape_str(t.shape()) == shape_str(shape));
  const std::vector<double> got = t.to_double_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    if (std::isnan(expected[i])) CHECK(std::isnan(got[i]));
    else if (std::isinf(expected[i])) CHECK(got[i] == expected[i]);
    else CHECK(got[i] == doctest::Approx(expected[i]).epsilon(tol));
  }
}

}  // namespace caliprox::test
