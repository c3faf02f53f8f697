// ONNX export (ir/onnx_export.h): graphs written and read back are the same
// graphs, the bundled networks compute the same bits after a round trip, and
// a failed write names the path and leaves nothing behind.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <onnx/onnx_pb.h>

#include "backends/backend.h"
#include "engine/session.h"
#include "ir/onnx_export.h"
#include "ir/onnx_import.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace caliprox;
using caliprox::testing::ScratchDir;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool same_attribute(const Attribute& a, const Attribute& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Attribute::Kind::f: return std::memcmp(&a.f, &b.f, sizeof a.f) == 0;
    case Attribute::Kind::i: return a.i == b.i;
    case Attribute::Kind::s: return a.s == b.s;
    case Attribute::Kind::t: return same_tensor(a.t, b.t);
    case Attribute::Kind::floats:
      return a.floats.size() == b.floats.size() &&
             std::memcmp(a.floats.data(), b.floats.data(), a.floats.size() * sizeof(float)) == 0;
    case Attribute::Kind::ints: return a.ints == b.ints;
    case Attribute::Kind::strings: return a.strings == b.strings;
    case Attribute::Kind::graph: return a.g && b.g && a.g->nodes.size() == b.g->nodes.size();
  }
  return false;
}

void check_same_values(const std::vector<ValueInfo>& a, const std::vector<ValueInfo>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(a[i].name);
    CHECK(a[i].name == b[i].name);
    CHECK(a[i].dtype == b[i].dtype);
    REQUIRE(a[i].dims.has_value() == b[i].dims.has_value());
    if (!a[i].dims) continue;
    REQUIRE(a[i].dims->size() == b[i].dims->size());
    for (size_t d = 0; d < a[i].dims->size(); ++d) {
      CHECK((*a[i].dims)[d].value == (*b[i].dims)[d].value);
      CHECK((*a[i].dims)[d].symbol == (*b[i].dims)[d].symbol);
    }
  }
}

// Everything a Graph holds except source_path and node indices.
void check_same_graph(const Graph& a, const Graph& b) {
  CHECK(a.name == b.name);
  CHECK(a.opset == b.opset);
  REQUIRE(a.nodes.size() == b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node& x = a.nodes[i];
    const Node& y = b.nodes[i];
    CAPTURE(x.name);
    CHECK(x.name == y.name);
    CHECK(x.op_type == y.op_type);
    CHECK(x.domain == y.domain);
    CHECK(x.inputs == y.inputs);
    CHECK(x.outputs == y.outputs);
    CHECK(x.opset == y.opset);
    REQUIRE(x.attrs.size() == y.attrs.size());
    for (const auto& [key, attr] : x.attrs) {
      CAPTURE(key);
      REQUIRE(y.attrs.count(key) == 1);
      CHECK(same_attribute(attr, y.attrs.at(key)));
    }
  }
  REQUIRE(a.initializers.size() == b.initializers.size());
  for (const auto& [name, t] : a.initializers) {
    CAPTURE(name);
    REQUIRE(b.initializers.count(name) == 1);
    CHECK(same_tensor(t, b.initializers.at(name)));
  }
  check_same_values(a.inputs, b.inputs);
  check_same_values(a.outputs, b.outputs);
}

std::vector<fs::path> bundled_models() {
  std::vector<fs::path> models;
  for (const char* dir : {"models", "examples/rowfollow/models"})
    for (const auto& entry : fs::directory_iterator(fs::path(CALIPROX_SOURCE_ROOT) / dir))
      if (entry.path().extension() == ".onnx") models.push_back(entry.path());
  std::sort(models.begin(), models.end());
  return models;
}

// The graph's outputs on the reference backend for a seeded input of batch 3.
std::vector<Tensor> run_reference(const Graph& g, uint32_t seed) {
  REQUIRE(g.inputs.size() == 1);
  const ValueInfo& in = g.inputs[0];
  REQUIRE(in.dims.has_value());
  Shape shape;
  for (const Dim& d : *in.dims) shape.push_back(d.fixed() ? d.value : 3);
  Tensor x(DType::f32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (float& v : x.span<float>()) v = dist(rng);
  auto backend = create_backend("reference", {1});
  REQUIRE(backend.ok());
  auto session = Session::create(g, **backend, {{in.name, shape}});
  REQUIRE_MESSAGE(session.ok(), session.status().message());
  REQUIRE((*session)->run(std::span<const Tensor>(&x, 1)).ok());
  std::vector<Tensor> outs;
  for (size_t i = 0; i < g.outputs.size(); ++i) outs.push_back((*session)->output(i).clone());
  return outs;
}

Attribute attr_of(Attribute::Kind kind) {
  Attribute a;
  a.kind = kind;
  return a;
}

// A graph with every attribute kind, every element type ONNX files hold,
// fixed / symbolic / unknown dims, a node of another domain and an output
// without a type.
Graph every_kind_graph() {
  Graph g;
  g.name = "kinds";
  g.opset = 13;
  g.inputs.push_back({"x", DType::f32, std::vector<Dim>{Dim{-1, "batch"}, Dim{4, ""}, Dim{}}});
  g.inputs.push_back({"rankless", DType::i64, std::nullopt});
  const DType types[] = {DType::f32, DType::u8,      DType::i8,  DType::i32,
                         DType::i64, DType::boolean, DType::f16, DType::f64};
  int k = 0;
  for (DType t : types) {
    Tensor v(t, {2, 3});
    auto* bytes = static_cast<unsigned char*>(v.raw());
    for (size_t i = 0; i < v.nbytes(); ++i)
      bytes[i] = static_cast<unsigned char>(t == DType::boolean ? i % 2 : 7 * i + 1);
    g.initializers[fmt::format("init{}", k++)] = v;
  }
  g.initializers["scalar"] = Tensor(DType::f32, {});
  g.initializers["empty"] = Tensor(DType::i64, {0});

  Node n;
  n.name = "custom";
  n.op_type = "Frobnicate";
  n.domain = "com.example";
  n.inputs = {"x", "", "init0"};
  n.outputs = {"y", ""};
  n.attrs["f"] = attr_of(Attribute::Kind::f);
  n.attrs["f"].f = -0.375f;
  n.attrs["i"] = attr_of(Attribute::Kind::i);
  n.attrs["i"].i = -(int64_t{1} << 40);
  n.attrs["s"] = attr_of(Attribute::Kind::s);
  n.attrs["s"].s = std::string("bytes\0inside", 12);
  n.attrs["t"] = attr_of(Attribute::Kind::t);
  n.attrs["t"].t = g.initializers["init6"];
  n.attrs["floats"] = attr_of(Attribute::Kind::floats);
  n.attrs["floats"].floats = {1.5f, -2.f, 1e-30f};
  n.attrs["ints"] = attr_of(Attribute::Kind::ints);
  n.attrs["ints"].ints = {0, -1, 3};
  n.attrs["strings"] = attr_of(Attribute::Kind::strings);
  n.attrs["strings"].strings = {"a", "", "c"};
  n.opset = 13;
  g.nodes.push_back(n);
  Node relu;
  relu.name = "relu";
  relu.op_type = "Relu";
  relu.inputs = {"y"};
  relu.outputs = {"out"};
  relu.opset = 13;
  g.nodes.push_back(relu);
  g.outputs.push_back({"out", DType::f32, std::vector<Dim>{Dim{-1, "batch"}, Dim{4, ""}, Dim{}}});
  g.outputs.push_back({"y", DType::undefined, std::nullopt});
  return g;
}

}  // namespace

TEST_CASE("onnx export: every bundled model round-trips and computes the same bits") {
  const auto models = bundled_models();
  REQUIRE(models.size() >= 5);  // three Fashion-MNIST networks, two row-following ones
  ScratchDir dir("onnx_export");
  for (const auto& path : models) {
    CAPTURE(path.string());
    auto original = load_onnx(path.string());
    REQUIRE_MESSAGE(original.ok(), original.status().message());
    const std::string out = (dir.path / path.filename()).string();
    Status saved = save_onnx(*original, out);
    REQUIRE_MESSAGE(saved.ok(), saved.message());
    auto again = load_onnx(out);
    REQUIRE_MESSAGE(again.ok(), again.status().message());
    check_same_graph(*original, *again);

    const auto want = run_reference(*original, 7);
    const auto got = run_reference(*again, 7);
    REQUIRE(want.size() == got.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK(same_tensor(want[i], got[i]));
  }
}

TEST_CASE("onnx export: attributes, element types, dims and domains survive the round trip") {
  const Graph g = every_kind_graph();
  auto bytes = serialize_onnx(g);
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().message());
  LoadOptions lenient;
  lenient.require_supported_ops = false;  // com.example:Frobnicate
  auto back = load_onnx_from_bytes(*bytes, "kinds.onnx", "", lenient);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  check_same_graph(g, *back);

  onnx::ModelProto model;
  REQUIRE(model.ParseFromString(*bytes));
  CHECK(model.ir_version() == 7);  // opset 13 came with IR 7
  std::map<std::string, int64_t> imports;
  for (const auto& op : model.opset_import()) imports[op.domain()] = op.version();
  CHECK(imports == std::map<std::string, int64_t>{{"", 13}, {"com.example", 1}});
  CHECK(onnx_ir_version_for_opset(9) == 4);
  CHECK(onnx_ir_version_for_opset(11) == 6);
  CHECK(onnx_ir_version_for_opset(17) == 8);
}

TEST_CASE("onnx export: an unwritable path is an error naming it, and nothing is left") {
  ScratchDir dir("onnx_export");
  const Graph g = every_kind_graph();
  const fs::path blocker = dir.path / "not_a_folder";
  std::ofstream(blocker) << "a file where a folder should be";
  for (const fs::path& target : {blocker / "model.onnx", dir.path / "missing" / "model.onnx"}) {
    CAPTURE(target.string());
    Status st = save_onnx(g, target.string());
    REQUIRE(!st.ok());
    CHECK(st.code() == Errc::runtime);
    CHECK(contains(st.message(), target.string()));
  }
  // Nothing but the blocker: no model, no temporary file.
  std::vector<fs::path> left;
  for (const auto& e : fs::recursive_directory_iterator(dir.path)) left.push_back(e.path());
  CHECK(left == std::vector<fs::path>{blocker});

  // A graph that cannot be written leaves an existing file as it was.
  const fs::path existing = dir.path / "old.onnx";
  std::ofstream(existing) << "old";
  Graph bad = g;
  bad.nodes[1].attrs["caliprox.activation"] = attr_of(Attribute::Kind::s);
  Status st = save_onnx(bad, existing.string());
  REQUIRE(!st.ok());
  CHECK(contains(st.message(), existing.string()));
  std::ifstream in(existing);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(content == "old");
}

TEST_CASE("onnx export: what an ONNX file cannot say is refused, naming the node or tensor") {
  const Graph g = every_kind_graph();
  SUBCASE("the executor's internal attributes") {
    Graph bad = g;
    bad.nodes[1].attrs["caliprox.residual"] = attr_of(Attribute::Kind::i);
    auto r = serialize_onnx(bad);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "node 'relu'"));
    CHECK(contains(r.status().message(), "caliprox.residual"));
  }
  SUBCASE("a node made under another opset") {
    Graph bad = g;
    bad.nodes[1].opset = 11;
    auto r = serialize_onnx(bad);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "node 'relu'"));
    CHECK(contains(r.status().message(), "opset 11"));
  }
  SUBCASE("no opset at all") {
    Graph bad = g;
    bad.opset = 0;
    for (Node& n : bad.nodes) n.opset = 0;
    auto r = serialize_onnx(bad);
    REQUIRE(!r.ok());
    CHECK(contains(r.status().message(), "no opset"));
  }
  SUBCASE("the graph's opset from its nodes when the graph has none") {
    Graph from_nodes = g;
    from_nodes.opset = 0;
    auto r = serialize_onnx(from_nodes);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    onnx::ModelProto model;
    REQUIRE(model.ParseFromString(*r));
    CHECK(model.opset_import(0).version() == 13);
  }
  SUBCASE("tensors of a type ONNX has no number for") {
    Graph bad = g;
    bad.initializers["odd"] = Tensor::view(static_cast<DType>(8), {0}, nullptr);  // STRING
    auto r = serialize_onnx(bad);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "tensor 'odd'"));
  }
}
