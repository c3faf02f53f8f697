// ONNX importer: models built in memory with the protobuf API, plus the
// fixtures in tests/data/onnx/ (regenerate with make_fixtures.py).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include <onnx/onnx_pb.h>

#include "ir/onnx_import.h"
#include "ir/onnx_proto.h"
#include "ir/op_registry.h"
#include "onnx_builder.h"

namespace fs = std::filesystem;
using namespace caliprox;
using namespace caliprox::test;

namespace {

const std::string kFixtures = std::string(CALIPROX_SOURCE_ROOT) + "/tests/data/onnx";

// X[2,3] -> Relu -> Y: the smallest valid graph.
onnx::ModelProto relu_model() {
  auto m = make_model();
  add_value(m.mutable_graph()->mutable_input(), "X", onnx::TensorProto::FLOAT, {"2", "3"});
  add_value(m.mutable_graph()->mutable_output(), "Y", onnx::TensorProto::FLOAT, {"2", "3"});
  add_node(m, "Relu", {"X"}, {"Y"}, "relu");
  return m;
}

Result<Graph> load(const onnx::ModelProto& m, const std::string& base_dir = "") {
  return load_onnx_from_bytes(m.SerializeAsString(), "mem.onnx", base_dir, LoadOptions{.require_supported_ops = false});
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A fresh folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("caliprox_onnx_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("onnx import: raw_data and typed-field initializers") {
  auto m = relu_model();
  auto* g = m.mutable_graph();
  *g->add_initializer() = float_tensor("raw", {2, 2}, {1.f, -2.f, 3.5f, 4.f});
  auto* i64 = g->add_initializer();
  i64->set_name("i64");
  i64->set_data_type(onnx::TensorProto::INT64);
  i64->add_dims(3);
  for (int64_t v : {int64_t{7}, int64_t{-8}, int64_t{1} << 40}) i64->add_int64_data(v);
  auto* h = g->add_initializer();  // float16 as uint16 bit patterns in int32_data
  h->set_name("half");
  h->set_data_type(onnx::TensorProto::FLOAT16);
  h->add_dims(2);
  h->add_int32_data(float_to_half(1.5f));
  h->add_int32_data(float_to_half(-0.25f));
  auto* b = g->add_initializer();
  b->set_name("flags");
  b->set_data_type(onnx::TensorProto::BOOL);
  b->add_dims(3);
  for (int v : {1, 0, 1}) b->add_int32_data(v);
  auto* d = g->add_initializer();
  d->set_name("dbl");
  d->set_data_type(onnx::TensorProto::DOUBLE);
  d->add_double_data(2.25);  // rank 0: one value

  auto r = load(m);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const auto& inits = r->initializers;
  REQUIRE(inits.size() == 5);
  const Tensor& raw = inits.at("raw");
  CHECK(raw.dtype() == DType::f32);
  CHECK(raw.shape() == Shape{2, 2});
  CHECK(raw.to_double_vector() == std::vector<double>{1, -2, 3.5, 4});
  CHECK(inits.at("i64").to_int64_vector() == std::vector<int64_t>{7, -8, int64_t{1} << 40});
  CHECK(inits.at("half").dtype() == DType::f16);
  CHECK(inits.at("half").to_double_vector() == std::vector<double>{1.5, -0.25});
  CHECK(inits.at("flags").to_double_vector() == std::vector<double>{1, 0, 1});
  CHECK(inits.at("dbl").shape().empty());
  CHECK(inits.at("dbl").at_double(0) == 2.25);
}

TEST_CASE("onnx import: truncated or oversized data is refused") {
  auto m = relu_model();
  auto t = float_tensor("W", {2, 3}, {1, 2, 3, 4, 5, 6});
  SUBCASE("raw_data short by one element") { t.mutable_raw_data()->resize(20); }
  SUBCASE("raw_data one byte too long") { t.mutable_raw_data()->push_back('\0'); }
  SUBCASE("float_data count mismatch") {
    t.clear_raw_data();
    for (int i = 0; i < 5; ++i) t.add_float_data(1.f);
  }
  *m.mutable_graph()->add_initializer() = t;
  auto r = load(m);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::invalid_input);
  CHECK(contains(r.status().message(), "mem.onnx"));
  CHECK(contains(r.status().message(), "tensor 'W'"));
  CHECK(contains(r.status().message(), "[2, 3]"));
}

TEST_CASE("onnx import: negative and absurd dims, unknown dtype") {
  auto m = relu_model();
  auto t = float_tensor("W", {2, 3}, {1, 2, 3, 4, 5, 6});
  SUBCASE("negative initializer dim") {
    t.set_dims(1, -3);
    *m.mutable_graph()->add_initializer() = t;
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "tensor 'W'"));
    CHECK(contains(r.status().message(), "-3"));
  }
  SUBCASE("absurdly large initializer dims") {
    t.set_dims(0, int64_t{1} << 40);
    t.set_dims(1, int64_t{1} << 40);
    *m.mutable_graph()->add_initializer() = t;
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "tensor 'W'"));
  }
  SUBCASE("negative graph input dim") {
    m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)
        ->set_dim_value(-1);
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "graph input 'X'"));
  }
  SUBCASE("unsupported element type") {
    t.set_data_type(onnx::TensorProto::COMPLEX64);
    *m.mutable_graph()->add_initializer() = t;
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::unsupported);
    CHECK(contains(r.status().message(), "tensor 'W'"));
    CHECK(contains(r.status().message(), "COMPLEX64"));
  }
  SUBCASE("int8 value out of range in int32_data") {
    onnx::TensorProto q;
    q.set_name("q");
    q.set_data_type(onnx::TensorProto::INT8);
    q.add_dims(2);
    q.add_int32_data(5);
    q.add_int32_data(300);
    *m.mutable_graph()->add_initializer() = q;
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.status().message(), "int32_data[1] = 300"));
  }
}

TEST_CASE("onnx import: Constant nodes are folded into initializers") {
  auto m = make_model();
  auto* g = m.mutable_graph();
  add_value(g->mutable_input(), "X", onnx::TensorProto::FLOAT, {"3"});
  add_value(g->mutable_output(), "Y", onnx::TensorProto::FLOAT, {"3"});
  auto* c0 = add_node(m, "Constant", {}, {"c_tensor"});
  auto* a = c0->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = float_tensor("", {3}, {1, 2, 3});
  auto* c1 = add_node(m, "Constant", {}, {"c_float"});
  a = c1->add_attribute();
  a->set_name("value_float");
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(0.5f);
  auto* c2 = add_node(m, "Constant", {}, {"c_ints"});
  a = c2->add_attribute();
  a->set_name("value_ints");
  a->set_type(onnx::AttributeProto::INTS);
  a->add_ints(4);
  a->add_ints(-1);
  add_node(m, "Add", {"X", "c_tensor"}, {"Y"}, "add");

  auto r = load(m);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->nodes.size() == 1);
  CHECK(r->nodes[0].op_type == "Add");
  CHECK(r->nodes[0].index == 3);  // file position, for error messages
  CHECK(r->initializers.at("c_tensor").to_double_vector() == std::vector<double>{1, 2, 3});
  CHECK(r->initializers.at("c_float").shape().empty());
  CHECK(r->initializers.at("c_float").at_double(0) == 0.5);
  CHECK(r->initializers.at("c_ints").dtype() == DType::i64);
  CHECK(r->initializers.at("c_ints").to_int64_vector() == std::vector<int64_t>{4, -1});
}

TEST_CASE("onnx import: attributes of every kind, subgraphs included") {
  auto m = relu_model();
  auto* n = m.mutable_graph()->mutable_node(0);
  auto add = [&](const std::string& name, onnx::AttributeProto::AttributeType type) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(type);
    return a;
  };
  add("f", onnx::AttributeProto::FLOAT)->set_f(0.25f);
  add("i", onnx::AttributeProto::INT)->set_i(-7);
  add("s", onnx::AttributeProto::STRING)->set_s("NOTSET");
  *add("t", onnx::AttributeProto::TENSOR)->mutable_t() = float_tensor("", {1}, {9});
  auto* fs_attr = add("fs", onnx::AttributeProto::FLOATS);
  fs_attr->add_floats(1.f);
  fs_attr->add_floats(2.f);
  auto* is = add("is", onnx::AttributeProto::INTS);
  is->add_ints(3);
  auto* ss = add("ss", onnx::AttributeProto::STRINGS);
  ss->add_strings("a");
  ss->add_strings("b");
  SUBCASE("all kinds convert") {
    auto r = load(m);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    const Node& node = r->nodes.at(0);
    CHECK(node.attr_float("f", 0) == 0.25f);
    CHECK(node.attr_int("i", 0) == -7);
    CHECK(node.attr_string("s", "") == "NOTSET");
    CHECK(node.attrs.at("t").kind == Attribute::Kind::t);
    CHECK(node.attrs.at("t").t.at_double(0) == 9.0);
    CHECK(node.attr_floats("fs") == std::vector<float>{1.f, 2.f});
    CHECK(node.attr_ints("is") == std::vector<int64_t>{3});
    CHECK(node.attrs.at("ss").strings == std::vector<std::string>{"a", "b"});
  }
  SUBCASE("a GRAPH attribute imports as a subgraph") {
    auto* body = add("body", onnx::AttributeProto::GRAPH)->mutable_g();
    body->set_name("sub");
    add_value(body->mutable_output(), "X", onnx::TensorProto::FLOAT, {"2", "3"});
    auto r = load(m);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    const Attribute& a = r->nodes.at(0).attrs.at("body");
    REQUIRE(a.kind == Attribute::Kind::graph);
    CHECK(a.g->nodes.empty());
    // The subgraph's output reads the outer X: a capture, appended to the
    // node's inputs so liveness sees the read.
    CHECK(a.g->captures == std::vector<std::string>{"X"});
    CHECK(r->nodes.at(0).inputs == std::vector<std::string>{"X", "X"});
    CHECK(explicit_input_count(r->nodes.at(0)) == 1);
  }
  SUBCASE("an unsupported op inside a subgraph is listed and named") {
    n->set_op_type("If");
    auto* then_branch = add("then_branch", onnx::AttributeProto::GRAPH)->mutable_g();
    add_node(*then_branch, "Frobnicate", {"X"}, {"t"}, "inner");
    add_value(then_branch->mutable_output(), "t", onnx::TensorProto::FLOAT, {});
    auto strict = load_onnx_from_bytes(m.SerializeAsString(), "mem.onnx", "", {});
    REQUIRE_FALSE(strict.ok());
    CHECK(contains(strict.status().message(), "node 'inner'"));
    CHECK(contains(strict.status().message(), "op Frobnicate is not supported"));
    CHECK(contains(strict.status().message(), "subgraph 'then_branch'"));
    auto lenient = load(m);
    REQUIRE_MESSAGE(lenient.ok(), lenient.status().message());
    CHECK(unsupported_ops(*lenient) == std::vector<std::string>{"Frobnicate"});
  }
}

TEST_CASE("onnx import: symbolic and unknown dims are preserved; initializer inputs are constants") {
  auto m = relu_model();
  auto* g = m.mutable_graph();
  g->clear_input();
  add_value(g->mutable_input(), "X", onnx::TensorProto::FLOAT, {"N", "?", "3"});
  add_value(g->mutable_input(), "W", onnx::TensorProto::FLOAT, {"2"});
  *g->add_initializer() = float_tensor("W", {2}, {1, 2});
  auto r = load(m);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->inputs.size() == 1);
  const ValueInfo& x = r->inputs[0];
  CHECK(x.name == "X");
  CHECK(x.dtype == DType::f32);
  REQUIRE(x.dims.has_value());
  REQUIRE(x.dims->size() == 3);
  CHECK((*x.dims)[0].symbol == "N");
  CHECK_FALSE((*x.dims)[0].fixed());
  CHECK((*x.dims)[1].symbol.empty());
  CHECK_FALSE((*x.dims)[1].fixed());
  CHECK((*x.dims)[2].value == 3);
  CHECK(r->find_input("W") == nullptr);
  CHECK(r->initializers.count("W") == 1);

  // No shape at all: rank unknown.
  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto r2 = load(m);
  REQUIRE(r2.ok());
  CHECK_FALSE(r2->inputs[0].dims.has_value());
}

TEST_CASE("onnx import: unnamed nodes get stable, unique names") {
  auto m = relu_model();
  auto* g = m.mutable_graph();
  g->mutable_node(0)->set_name("");                   // #0 -> relu_0
  add_node(m, "Relu", {"Y"}, {"Z"}, "");              // #1 -> relu_1
  add_node(m, "Sigmoid", {"Z"}, {"S"}, "relu_3");     // #2 explicitly named like a generated name
  add_node(m, "Relu", {"S"}, {"T"}, "");              // #3 -> relu_3 collides -> relu_3_2
  g->mutable_output(0)->set_name("T");
  auto r = load(m);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->nodes.size() == 4);
  CHECK(r->nodes[0].name == "relu_0");
  CHECK(r->nodes[1].name == "relu_1");
  CHECK(r->nodes[2].name == "relu_3");
  CHECK(r->nodes[3].name == "relu_3_2");
  auto again = load(m);  // stable across loads
  REQUIRE(again.ok());
  CHECK(again->nodes[3].name == "relu_3_2");
}

TEST_CASE("onnx import: unsorted nodes are sorted stably; cycles are refused") {
  auto m = make_model();
  auto* g = m.mutable_graph();
  add_value(g->mutable_input(), "X", onnx::TensorProto::FLOAT, {"2"});
  add_value(g->mutable_output(), "C", onnx::TensorProto::FLOAT, {"2"});
  add_node(m, "Relu", {"B"}, {"C"}, "third");
  add_node(m, "Relu", {"X"}, {"A"}, "first");
  add_node(m, "Relu", {"A"}, {"B"}, "second");
  add_node(m, "Abs", {"X"}, {"D"}, "independent");
  SUBCASE("sorted") {
    auto r = load(m);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    std::vector<std::string> names;
    for (const auto& n : r->nodes) names.push_back(n.name);
    CHECK(names == std::vector<std::string>{"first", "second", "third", "independent"});
    CHECK(r->find_node("third")->index == 0);
  }
  SUBCASE("cycle") {
    g->mutable_node(1)->set_input(0, "C");  // first <- third <- second <- first
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "cycle"));
  }
  SUBCASE("undefined input") {
    g->mutable_node(3)->set_input(0, "nowhere");
    auto r = load(m);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.status().message(), "'nowhere'"));
    CHECK(contains(r.status().message(), "node 'independent'"));
  }
}

TEST_CASE("onnx import: unsupported ops and opsets") {
  auto m = make_model();
  auto* g = m.mutable_graph();
  add_value(g->mutable_input(), "X", onnx::TensorProto::FLOAT, {"2"});
  add_value(g->mutable_output(), "Y", onnx::TensorProto::FLOAT, {"2"});
  add_node(m, "NotARealOp", {"X"}, {"Z"}, "mystery");
  add_node(m, "Relu", {"Z"}, {"Y"}, "custom")->set_domain("com.example");

  auto strict = load_onnx_from_bytes(m.SerializeAsString(), "mem.onnx", "", {});
  REQUIRE_FALSE(strict.ok());
  CHECK(strict.status().code() == Errc::unsupported);
  const std::string& msg = strict.status().message();
  CHECK(contains(msg, "mem.onnx"));
  CHECK(contains(msg, "node 'mystery' (NotARealOp, #0)"));
  CHECK(contains(msg, "com.example:Relu"));

  auto lenient = load(m);
  REQUIRE_MESSAGE(lenient.ok(), lenient.status().message());
  auto ops = unsupported_ops(*lenient);
  CHECK(std::find(ops.begin(), ops.end(), "NotARealOp") != ops.end());
  CHECK(std::find(ops.begin(), ops.end(), "com.example:Relu") != ops.end());
  Status st = check_ops_supported(*lenient);
  CHECK(st.code() == Errc::unsupported);

  // Only another domain imported: fine while every node belongs to it.
  auto training = make_model();
  training.mutable_opset_import(0)->set_domain("ai.onnx.preview.training");
  training.mutable_opset_import(0)->set_version(1);
  add_value(training.mutable_graph()->mutable_input(), "X", onnx::TensorProto::FLOAT, {"2"});
  add_value(training.mutable_graph()->mutable_output(), "Y", onnx::TensorProto::FLOAT, {"2"});
  auto* momentum = add_node(training, "Momentum", {"X"}, {"Y"}, "m");
  momentum->set_domain("ai.onnx.preview.training");
  auto only_training = load(training);
  REQUIRE_MESSAGE(only_training.ok(), only_training.status().message());
  CHECK(unsupported_ops(*only_training) == std::vector<std::string>{"ai.onnx.preview.training:Momentum"});
  momentum->set_domain("");
  auto undeclared = load(training);
  REQUIRE_FALSE(undeclared.ok());
  CHECK(undeclared.status().code() == Errc::invalid_input);
  CHECK(contains(undeclared.status().message(), "no opset for the default ONNX domain"));

  // Opsets 1-8 are read (ir/onnx_legacy.h); 0 and anything past 17 are not.
  for (int64_t opset : {0, 18}) {
    CAPTURE(opset);
    auto old = relu_model();
    old.mutable_opset_import(0)->set_version(opset);
    auto r = load(old);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::unsupported);
    CHECK(contains(r.status().message(), "opset " + std::to_string(opset)));
  }
}

TEST_CASE("onnx import: external data inside the folder loads; escaping locations are refused") {
  auto ok = load_onnx(kFixtures + "/external_ok/model.onnx", {.require_supported_ops = false});
  REQUIRE_MESSAGE(ok.ok(), ok.status().message());
  CHECK(ok->initializers.at("W").to_double_vector() == std::vector<double>{0.5, 1.5, 2.5, 3.5, 4.5, 5.5});
  CHECK(ok->source_path == kFixtures + "/external_ok/model.onnx");

  auto escape = load_onnx(kFixtures + "/external_escape/model.onnx", {.require_supported_ops = false});
  REQUIRE_FALSE(escape.ok());
  CHECK(escape.status().code() == Errc::invalid_input);
  CHECK(contains(escape.status().message(), "tensor 'W'"));
  CHECK(contains(escape.status().message(), "'../external_ok/weights.bin'"));
  CHECK(contains(escape.status().message(), "outside the model's folder"));

  // Absolute locations and symlinks that leave the folder, built at run time.
  TempDir outside, model_dir;
  write_bytes(outside.path / "secret.bin", std::string(24, '\x01'));
  auto m = relu_model();
  auto* w = m.mutable_graph()->add_initializer();
  w->set_name("W");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(6);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  SUBCASE("absolute") {
    loc->set_value((outside.path / "secret.bin").string());
    auto r = load(m, model_dir.path.string());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "absolute"));
  }
  SUBCASE("symlink out of the folder") {
    fs::create_symlink(outside.path / "secret.bin", model_dir.path / "link.bin");
    loc->set_value("link.bin");
    auto r = load(m, model_dir.path.string());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Errc::invalid_input);
    CHECK(contains(r.status().message(), "'link.bin'"));
  }
  SUBCASE("subfolder with .. that stays inside, and a short file") {
    fs::create_directories(model_dir.path / "sub");
    write_bytes(model_dir.path / "w.bin", std::string(24, '\0'));
    loc->set_value("sub/../w.bin");
    auto r = load(m, model_dir.path.string());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->initializers.at("W").numel() == 6);
    write_bytes(model_dir.path / "w.bin", std::string(20, '\0'));
    auto short_file = load(m, model_dir.path.string());
    REQUIRE_FALSE(short_file.ok());
    CHECK(contains(short_file.status().message(), "runs past its end"));
  }
}

TEST_CASE("onnx import: missing, truncated and non-ONNX files") {
  auto missing = load_onnx(kFixtures + "/does_not_exist.onnx");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Errc::invalid_input);
  CHECK(contains(missing.status().message(), "does_not_exist.onnx"));

  auto truncated = load_onnx(kFixtures + "/truncated.onnx");
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.status().code() == Errc::invalid_input);
  CHECK(contains(truncated.status().message(), "truncated.onnx: not a valid ONNX model ("));

  auto text = load_onnx_from_bytes("hello, this is not a model", "notes.txt", "", {});
  REQUIRE_FALSE(text.ok());
  CHECK(contains(text.status().message(), "notes.txt: not a valid ONNX model"));
  auto empty = load_onnx_from_bytes("", "empty.onnx", "", {});
  REQUIRE_FALSE(empty.ok());
  CHECK(contains(empty.status().message(), "empty.onnx: not a valid ONNX model"));
}

TEST_CASE("onnx import: TensorProto files (conformance input_N.pb format)") {
  TempDir dir;
  auto t = float_tensor("x", {1, 2}, {3.f, -4.f});
  write_bytes(dir.path / "input_0.pb", t.SerializeAsString());
  auto r = load_tensor_proto_file((dir.path / "input_0.pb").string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->shape() == Shape{1, 2});
  CHECK(r->to_double_vector() == std::vector<double>{3, -4});

  std::string bytes = t.SerializeAsString();
  write_bytes(dir.path / "cut.pb", bytes.substr(0, bytes.size() - 3));
  auto cut = load_tensor_proto_file((dir.path / "cut.pb").string());
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.status().code() == Errc::invalid_input);
  CHECK(contains(cut.status().message(), "cut.pb"));

  auto direct = tensor_from_proto(t, "");
  REQUIRE(direct.ok());
  CHECK(direct->numel() == 2);
}
