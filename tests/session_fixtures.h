#pragma once
// Hand-built graphs and test backends shared by the executor tests
// (test_session.cc, test_knob_session.cc).
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/layout.h"
#include "engine/session.h"

namespace caliprox::testing {

inline Attribute ints_attr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::ints;
  a.ints = std::move(v);
  return a;
}

inline Node make_node(std::string op, std::vector<std::string> in, std::vector<std::string> out, std::string name = "") {
  static int counter = 0;
  Node n;
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.name = name.empty() ? n.op_type + "_" + std::to_string(counter++) : std::move(name);
  return n;
}

// A session of `g` with input "x" of `shape`; fails the test when it cannot be built.
inline std::unique_ptr<Session> make_session(const Graph& g, Backend& backend, const Shape& shape,
                                             SessionOptions opt = {}) {
  auto s = Session::create(g, backend, {{"x", shape}}, opt);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

inline Tensor random_tensor(Shape shape, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(DType::f32, std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (float& v : t.span<float>()) v = d(rng);
  return t;
}

inline ValueInfo input_info(const std::string& name, std::vector<Dim> dims) {
  ValueInfo v;
  v.name = name;
  v.dtype = DType::f32;
  v.dims = std::move(dims);
  return v;
}

// x[N,4,6,6] -> Conv(8,3x3,pad1) -> BN -> Add(shortcut) -> Relu -> GlobalAveragePool
//   -> Reshape(shape from Shape/Gather/Concat) -> out
inline Graph residual_graph(std::mt19937& rng) {
  Graph g;
  g.name = "residual";
  g.opset = 13;
  g.inputs.push_back(input_info("x", {Dim{-1, "N"}, Dim{4, ""}, Dim{6, ""}, Dim{6, ""}}));
  g.initializers["w1"] = random_tensor({8, 4, 3, 3}, rng);
  g.initializers["b1"] = random_tensor({8}, rng);
  g.initializers["w_sc"] = random_tensor({8, 4, 1, 1}, rng);
  g.initializers["gamma"] = random_tensor({8}, rng, 0.5f, 1.5f);
  g.initializers["beta"] = random_tensor({8}, rng);
  g.initializers["mean"] = random_tensor({8}, rng);
  g.initializers["var"] = random_tensor({8}, rng, 0.5f, 2.f);
  Tensor idx(DType::i64, {1});
  idx.data<int64_t>()[0] = 0;
  g.initializers["zero"] = idx;
  Tensor minus_one(DType::i64, {1});
  minus_one.data<int64_t>()[0] = -1;
  g.initializers["minus_one"] = minus_one;

  Node conv = make_node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  conv.attrs["pads"] = ints_attr({1, 1, 1, 1});
  conv.attrs["kernel_shape"] = ints_attr({3, 3});
  g.nodes.push_back(conv);
  g.nodes.push_back(make_node("BatchNormalization", {"c1", "gamma", "beta", "mean", "var"}, {"bn1"}, "bn1"));
  g.nodes.push_back(make_node("Conv", {"x", "w_sc"}, {"sc"}, "shortcut"));
  g.nodes.push_back(make_node("Add", {"bn1", "sc"}, {"sum"}, "add"));
  g.nodes.push_back(make_node("Relu", {"sum"}, {"act"}, "relu"));
  g.nodes.push_back(make_node("GlobalAveragePool", {"act"}, {"pooled"}, "gap"));
  g.nodes.push_back(make_node("Shape", {"pooled"}, {"shape"}, "shape"));
  Node gather = make_node("Gather", {"shape", "zero"}, {"batch"}, "gather");
  gather.attrs["axis"].kind = Attribute::Kind::i;
  gather.attrs["axis"].i = 0;
  g.nodes.push_back(gather);
  Node concat = make_node("Concat", {"batch", "minus_one"}, {"new_shape"}, "concat");
  concat.attrs["axis"].kind = Attribute::Kind::i;
  concat.attrs["axis"].i = 0;
  g.nodes.push_back(concat);
  g.nodes.push_back(make_node("Reshape", {"pooled", "new_shape"}, {"out"}, "reshape"));
  g.outputs.push_back({"out", DType::f32, std::nullopt});
  return g;
}



// Runs Conv nodes "channels-last" by converting around the reference kernel:
// exercises the executor's layout propagation without oneDNN.
class NhwcConvBackend final : public Backend {
 public:
  std::string_view name() const override { return "nhwc-test"; }
  bool supports(const NodeContext& ctx) const override { return ctx.node.op_type == "Conv" && ref_->supports(ctx); }
  // knobs_nhwc false: approximated convolutions only in NCHW (the executor
  // must then adapt them inside a channels-last stretch).
  explicit NhwcConvBackend(bool knobs_nhwc = true) : knobs_nhwc_(knobs_nhwc) {}
  bool supports_nhwc(const NodeContext& ctx) const override {
    return supports(ctx) && (knobs_nhwc_ || ctx.knob == nullptr || ctx.knob->kind == KnobKind::exact);
  }
  Result<std::unique_ptr<Kernel>> prepare(const NodeContext& ctx) override {
    CP_ASSIGN_OR_RETURN(auto inner, ref_->prepare(ctx));
    if (ctx.layout == Layout::nchw) return inner;
    return std::unique_ptr<Kernel>(std::make_unique<Wrapped>(std::move(inner), ctx));
  }

 private:
  struct Wrapped final : Kernel {
    Wrapped(std::unique_ptr<Kernel> k, const NodeContext& ctx) : inner(std::move(k)) {
      for (size_t i = 0; i < ctx.input_types.size(); ++i)
        to_plain.push_back(ctx.constants[i] == nullptr && ctx.input_types[i].shape.size() == 4);
      for (const auto& t : ctx.output_types) outs.emplace_back(t.dtype, t.shape);
    }
    Status run(std::span<const Tensor* const> in, std::span<Tensor* const> out) override {
      auto to_nchw = make_layout_kernel(Layout::nhwc, Layout::nchw);
      auto to_nhwc = make_layout_kernel(Layout::nchw, Layout::nhwc);
      std::vector<Tensor> plain;
      std::vector<const Tensor*> args;
      plain.reserve(in.size());
      for (size_t i = 0; i < in.size(); ++i) {
        if (!in[i] || !to_plain[i]) {
          args.push_back(in[i]);
          continue;
        }
        plain.emplace_back(in[i]->dtype(), in[i]->shape());
        Tensor* dst = &plain.back();
        CP_TRY(to_nchw->run(std::span<const Tensor* const>(&in[i], 1), std::span<Tensor* const>(&dst, 1)));
        args.push_back(dst);
      }
      std::vector<Tensor*> o;
      for (auto& t : outs) o.push_back(&t);
      CP_TRY(inner->run(args, o));
      for (size_t i = 0; i < out.size(); ++i) {
        const Tensor* src = &outs[i];
        CP_TRY(to_nhwc->run(std::span<const Tensor* const>(&src, 1), out.subspan(i, 1)));
      }
      return {};
    }
    std::unique_ptr<Kernel> inner;
    std::vector<bool> to_plain;
    std::vector<Tensor> outs;
  };
  bool knobs_nhwc_ = true;
  std::unique_ptr<Backend> ref_ = make_reference_backend({});
};


}  // namespace caliprox::testing
