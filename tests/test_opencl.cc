// The OpenCL backend against the reference backend, on whatever OpenCL
// device this machine has (CI: Debian's PoCL CPU device). Without one every
// case reports a skip with the reason.
//
// Tolerances: max |opencl - reference| / (1 + max |reference|) over the
// output. fp32: 1e-4 (CLBlast sums a K-term dot product in another order
// and the device's exp/tanh differ by a few ulp; observed ~1e-6). Half
// knobs: 2e-3 (both round their output to IEEE half, 2^-11 relative, and a
// different fp32 sum can round to the neighbouring half value).
#include <doctest/doctest.h>

#ifdef CALIPROX_HAVE_OPENCL

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <tuple>

#include "cpu_needs.h"
#include "engine/session.h"
#include "ir/onnx_import.h"
#include "onednn_cases.h"
#include "session_fixtures.h"

using namespace caliprox;
namespace oc = caliprox::onednn_test;

namespace {

constexpr double kTol = 1e-4;
constexpr double kHalfTol = 2e-3;

// The backend (created once, when the cases register), or null; the cases
// that need it are skipped with the reason when there is none
// (CP_NEEDS_OPENCL, counted and listed like the CPU skips).
Result<std::unique_ptr<Backend>>& made_backend() {
  static Result<std::unique_ptr<Backend>> made = create_backend("opencl", {});
  return made;
}
Backend* device_backend() { return made_backend().ok() ? made_backend()->get() : nullptr; }
const char* no_device_reason() {
  static const std::string reason =
      made_backend().ok() ? std::string() : "no OpenCL device here: " + made_backend().status().message();
  return reason.c_str();
}
#define CP_NEEDS_OPENCL CP_NEEDS(device_backend() != nullptr, no_device_reason())

// Runs one node on the device: non-constant inputs uploaded, outputs
// downloaded; twice (a kernel must not depend on an earlier run). With
// `in_place` the fused residual (input #3) shares the output's buffer.
std::vector<Tensor> run_on_device(Backend& backend, const oc::NodeCase& c, const Knob* knob = nullptr,
                                  bool in_place = false) {
  NodeContext ctx = oc::context_for(c);
  ctx.knob = knob;
  REQUIRE_MESSAGE(backend.supports(ctx), c.node.describe());
  auto kernel = backend.prepare(ctx);
  REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
  DeviceMemory& mem = *backend.device_memory();
  std::vector<Tensor> dev_in(c.inputs.size()), dev_out;
  std::vector<const Tensor*> in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (c.inputs[i].empty() || c.constant[i]) {
      in.push_back(c.inputs[i].empty() ? nullptr : &c.inputs[i]);
      continue;
    }
    auto t = mem.allocate(c.inputs[i].dtype(), c.inputs[i].shape());
    REQUIRE(t.ok());
    dev_in[i] = std::move(t).value();
    in.push_back(&dev_in[i]);
  }
  for (const auto& t : ctx.output_types) {
    auto d = mem.allocate(t.dtype, t.shape);
    REQUIRE(d.ok());
    dev_out.push_back(std::move(d).value());
  }
  std::vector<Tensor*> out;
  for (auto& t : dev_out) out.push_back(&t);
  if (in_place) out[0] = &dev_in[3];
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < c.inputs.size(); ++i)
      if (!dev_in[i].empty()) REQUIRE(mem.upload(c.inputs[i], dev_in[i]).ok());
    Status st = (*kernel)->run(in, out);
    REQUIRE_MESSAGE(st.ok(), st.message());
  }
  std::vector<Tensor> host;
  for (size_t j = 0; j < out.size(); ++j) {
    host.emplace_back(ctx.output_types[j].dtype, ctx.output_types[j].shape);
    REQUIRE(mem.download(*out[j], host.back()).ok());
  }
  return host;
}

std::vector<Tensor> run_reference(const oc::NodeCase& c, const Knob* knob = nullptr) {
  NodeContext ctx = oc::context_for(c);
  ctx.knob = knob;
  auto kernel = oc::reference_backend().prepare(ctx);
  REQUIRE_MESSAGE(kernel.ok(), kernel.status().message());
  return oc::run_kernel(**kernel, c, ctx);
}

void check_case(Backend& b, const oc::NodeCase& c, double tol = kTol) {
  CAPTURE(c.node.describe());
  const double err = oc::relative_error(run_on_device(b, c)[0], run_reference(c)[0]);
  CHECK(err <= tol);
}

oc::NodeCase conv_case(std::mt19937& rng, Shape x, Shape w, std::vector<int64_t> pads, std::vector<int64_t> strides,
                       int64_t group = 1, bool residual = false, const char* act = nullptr) {
  const int64_t c_out = w[0];
  const int64_t oh = (x[2] + pads[0] + pads[2] - w[2]) / strides[0] + 1,
                ow = (x[3] + pads[1] + pads[3] - w[3]) / strides[1] + 1;
  std::vector<Tensor> in{oc::random_tensor(x, rng), oc::random_tensor(w, rng), oc::random_tensor({c_out}, rng)};
  std::vector<bool> constant{false, true, true};
  if (residual) {
    in.push_back(oc::random_tensor({x[0], c_out, oh, ow}, rng));
    constant.push_back(false);
  }
  std::map<std::string, Attribute> attrs{{"pads", oc::ints(pads)},
                                         {"strides", oc::ints(strides)},
                                         {"group", oc::int_attr(group)}};
  if (residual) attrs[kAttrResidual] = oc::int_attr(1);
  if (act) attrs[kAttrActivation] = oc::str(act);
  return oc::make_case("Conv", std::move(in), std::move(attrs), constant);
}

}  // namespace

TEST_CASE("opencl: Conv matches the reference, exact and under every kernel knob it runs" * CP_NEEDS_OPENCL) {
  Backend* b = device_backend();
  REQUIRE(b != nullptr);
  std::mt19937 rng(oc::test_seed("opencl conv"));
  const std::vector<oc::NodeCase> cases = {
      conv_case(rng, {2, 5, 9, 11}, {7, 5, 3, 3}, {1, 1, 1, 1}, {1, 1}),
      conv_case(rng, {3, 4, 12, 10}, {6, 4, 3, 3}, {1, 0, 1, 0}, {2, 2}, 1, true, "Relu"),
      conv_case(rng, {2, 6, 8, 8}, {6, 1, 3, 3}, {1, 1, 1, 1}, {1, 1}, 6, false, "HardSwish"),  // depthwise
      conv_case(rng, {1, 8, 7, 9}, {4, 4, 5, 5}, {2, 2, 2, 2}, {1, 1}, 2, true, "Clip"),        // grouped
      conv_case(rng, {2, 8, 6, 6}, {16, 8, 1, 1}, {0, 0, 0, 0}, {1, 1}, 1, false, "Sigmoid"),
  };
  for (const auto& c : cases) {
    check_case(*b, c);
    for (const Knob& k : knob_catalogue()) {
      if (k.kind != KnobKind::perforation && k.kind != KnobKind::sampling && k.kind != KnobKind::fp16) continue;
      NodeContext ctx = oc::context_for(c);
      ctx.knob = &k;
      if (!knob_applies(k, c.node, ctx.input_types[0].shape, ctx.input_types[1].shape).ok()) continue;
      CAPTURE(k.name);
      CAPTURE(c.node.attrs.count("group") ? c.node.attr_int("group", 1) : 1);
      const double err = oc::relative_error(run_on_device(*b, c, &k)[0], run_reference(c, &k)[0]);
      CHECK(err <= (k.half ? kHalfTol : kTol));
    }
  }
}

TEST_CASE("opencl: a fused residual may share the output's buffer" * CP_NEEDS_OPENCL) {
  Backend* b = device_backend();
  REQUIRE(b != nullptr);
  std::mt19937 rng(oc::test_seed("opencl residual"));
  const oc::NodeCase c = conv_case(rng, {2, 4, 8, 8}, {4, 4, 3, 3}, {1, 1, 1, 1}, {1, 1}, 1, true, "Relu");
  const Knob* perf = find_knob("perf-row-2-1");
  REQUIRE(perf != nullptr);
  for (const Knob* k : {static_cast<const Knob*>(nullptr), perf}) {
    const double err = oc::relative_error(run_on_device(*b, c, k, true)[0], run_reference(c, k)[0]);
    CHECK(err <= kTol);
  }
}

TEST_CASE("opencl: the other ops match the reference" * CP_NEEDS_OPENCL) {
  Backend* b = device_backend();
  REQUIRE(b != nullptr);
  std::mt19937 rng(oc::test_seed("opencl ops"));
  auto r = [&](Shape s, float lo = -2, float hi = 2) { return oc::random_tensor(std::move(s), rng, lo, hi); };
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu"})
    check_case(*b, oc::make_case(op, {r({2, 3, 5, 7})}));
  check_case(*b, oc::make_case("Clip", {r({2, 3, 5, 7}), test::f32({}, {-0.5f}), test::f32({}, {1.0f})}, {},
                               {false, true, true}));
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min"}) {
    check_case(*b, oc::make_case(op, {r({2, 3, 4, 5}), r({2, 3, 4, 5}, 0.5f, 2)}));
    check_case(*b, oc::make_case(op, {r({2, 3, 4, 5}), r({3, 1, 1}, 0.5f, 2)}, {}, {false, true}));
    check_case(*b, oc::make_case(op, {r({1, 4, 1}), r({3, 1, 5}, 0.5f, 2)}));
  }
  check_case(*b, oc::make_case("MaxPool", {r({2, 3, 9, 8})},
                               {{"kernel_shape", oc::ints({3, 3})},
                                {"strides", oc::ints({2, 2})},
                                {"pads", oc::ints({1, 1, 1, 1})}}));
  check_case(*b, oc::make_case("MaxPool", {r({1, 2, 10, 10})},
                               {{"kernel_shape", oc::ints({2, 2})},
                                {"dilations", oc::ints({2, 2})},
                                {"ceil_mode", oc::int_attr(1)},
                                {"strides", oc::ints({2, 2})}}));
  for (int include : {0, 1})
    check_case(*b, oc::make_case("AveragePool", {r({2, 3, 9, 8})},
                                 {{"kernel_shape", oc::ints({3, 2})},
                                  {"strides", oc::ints({2, 1})},
                                  {"pads", oc::ints({1, 0, 1, 1})},
                                  {"count_include_pad", oc::int_attr(include)},
                                  {"ceil_mode", oc::int_attr(1)}}));
  check_case(*b, oc::make_case("GlobalAveragePool", {r({2, 5, 6, 7})}));
  check_case(*b, oc::make_case("GlobalMaxPool", {r({2, 5, 6, 7})}));
  check_case(*b, oc::make_case("BatchNormalization", {r({2, 4, 3, 5}), r({4}), r({4}), r({4}), r({4}, 0.5f, 2)}, {},
                               {false, true, true, true, true}));
  check_case(*b, oc::make_case("Softmax", {r({3, 10})}));
  check_case(*b, oc::make_case("Softmax", {r({2, 3, 4})}, {{"axis", oc::int_attr(1)}}));
  check_case(*b, oc::make_case("Concat", {r({2, 3, 4}), r({2, 1, 4}), r({2, 2, 4})}, {{"axis", oc::int_attr(1)}},
                               {false, true, false}));
  check_case(*b, oc::make_case("Flatten", {r({2, 3, 4, 5})}, {{"axis", oc::int_attr(1)}}));
  for (int ta : {0, 1})
    for (int tb : {0, 1}) {
      Shape a = ta ? Shape{12, 5} : Shape{5, 12}, w = tb ? Shape{7, 12} : Shape{12, 7};
      check_case(*b, oc::make_case("Gemm", {r(a), r(w), r({7})},
                                   {{"transA", oc::int_attr(ta)},
                                    {"transB", oc::int_attr(tb)},
                                    {"alpha", oc::float_attr(0.5f)},
                                    {"beta", oc::float_attr(2.0f)}},
                                   {false, true, true}));
    }
  check_case(*b, oc::make_case("MatMul", {r({2, 3, 6}), r({6, 4})}, {}, {false, true}));
  // Resize over height and width (X, roi omitted, scales), each mode.
  for (const auto& [mode, coords, sh, sw] :
       std::vector<std::tuple<const char*, const char*, float, float>>{{"nearest", "asymmetric", 2.0f, 2.0f},
                                                                       {"linear", "half_pixel", 1.5f, 0.5f},
                                                                       {"linear", "align_corners", 2.0f, 3.0f},
                                                                       {"cubic", "half_pixel", 0.6f, 1.7f}}) {
    CAPTURE(mode);
    check_case(*b, oc::make_case("Resize", {r({2, 3, 7, 9}), Tensor(), test::f32({4}, {1, 1, sh, sw})},
                                 {{"mode", oc::str(mode)}, {"coordinate_transformation_mode", oc::str(coords)}},
                                 {false, false, true}));
  }
}

TEST_CASE("opencl: a network runs on the device with values kept there, and host fallbacks move only what they need" *
          CP_NEEDS_OPENCL) {
  Backend* b = device_backend();
  REQUIRE(b != nullptr);
  std::mt19937 rng(11);
  const Graph g = testing::residual_graph(rng);
  const Tensor x = testing::random_tensor({5, 4, 6, 6}, rng);
  auto ref = make_reference_backend({});
  auto want_s = testing::make_session(g, *ref, x.shape());
  REQUIRE(want_s->run(std::span<const Tensor>(&x, 1)).ok());
  const Tensor want = want_s->output(0).clone();

  auto s = testing::make_session(g, *b, x.shape());
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  CHECK(oc::relative_error(s->output(0), want) <= kTol);
  // One upload (the input), one download (the output): nothing else crosses.
  CHECK(s->transfers().uploads == 1);
  CHECK(s->transfers().downloads == 1);
  int on_device = 0;
  for (const auto& [node, backend] : s->node_backends()) on_device += backend == "opencl";
  CHECK(on_device >= 3);

  // int8 has no OpenCL kernel: its layer runs on the host inside the device
  // plan (its input down, its output up) and agrees with the reference.
  s->track_input_ranges(true);
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  auto ranges = s->input_ranges();
  s->track_input_ranges(false);
  want_s->set_calibrated_ranges(ranges);
  s->set_calibrated_ranges(ranges);
  const std::string site = s->knob_sites().front().node;
  REQUIRE(want_s->configure({{site, "int8"}}).ok());
  REQUIRE(s->configure({{site, "int8"}}).ok());
  REQUIRE(want_s->run(std::span<const Tensor>(&x, 1)).ok());
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  CHECK(oc::relative_error(s->output(0), want_s->output(0)) <= kTol);
  CHECK(s->transfers().downloads == 2);
  CHECK(s->transfers().uploads == 2);
}

TEST_CASE("opencl: observers see and change a device node's values as on the host" * CP_NEEDS_OPENCL) {
  Backend* b = device_backend();
  REQUIRE(b != nullptr);
  std::mt19937 rng(12);
  const Graph g = testing::residual_graph(rng);
  const Tensor x = testing::random_tensor({3, 4, 6, 6}, rng);
  auto ref = make_reference_backend({});
  auto want_s = testing::make_session(g, *ref, x.shape());
  auto s = testing::make_session(g, *b, x.shape());
  for (Session* one : {want_s.get(), s.get()}) one->track_input_ranges(true);
  REQUIRE(want_s->run(std::span<const Tensor>(&x, 1)).ok());
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  REQUIRE(s->input_ranges().size() == want_s->input_ranges().size());
  for (const auto& [node, range] : want_s->input_ranges()) {
    CAPTURE(node);
    CHECK(s->input_ranges().at(node).min == doctest::Approx(range.min).epsilon(1e-5));
    CHECK(s->input_ranges().at(node).max == doctest::Approx(range.max).epsilon(1e-5));
  }
}

TEST_CASE("opencl: a node larger than the device allows runs on the host, and the result is the same" *
          CP_NEEDS_OPENCL) {
  std::mt19937 rng(13);
  const Graph g = testing::residual_graph(rng);
  const Tensor x = testing::random_tensor({64, 4, 6, 6}, rng);
  // 32 KiB per buffer: the 64 x 8 x 6 x 6 activations (73 KiB) do not fit.
  BackendOptions small;
  small.device.memory_limit = 32 << 10;
  auto made = create_backend("opencl", small);
  REQUIRE_MESSAGE(made.ok(), made.status().message());
  auto ref = make_reference_backend({});
  auto want_s = testing::make_session(g, *ref, x.shape());
  REQUIRE(want_s->run(std::span<const Tensor>(&x, 1)).ok());
  auto s = testing::make_session(g, **made, x.shape());
  REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
  CHECK(oc::relative_error(s->output(0), want_s->output(0)) <= kTol);
  int host = 0;
  for (const auto& [node, backend] : s->node_backends()) host += backend == "reference";
  CHECK(host >= 1);
}

TEST_CASE("opencl: the bundled networks under every kernel knob the device runs match the reference" *
          CP_NEEDS_OPENCL) {
  Backend* b = device_backend();
  REQUIRE(b != nullptr);
  auto ref = make_reference_backend({});
  std::mt19937 rng(14);
  const Tensor x = testing::random_tensor({2, 1, 28, 28}, rng, 0, 1);
  for (const char* file : {"fashion_lenet.onnx", "fashion_mobilenet.onnx", "fashion_resnet.onnx"}) {
    auto graph = load_onnx((std::filesystem::path(CALIPROX_SOURCE_ROOT) / "models" / file).string());
    REQUIRE_MESSAGE(graph.ok(), graph.status().message());
    auto made = Session::create(*graph, *b, {{"input", x.shape()}});
    auto want_made = Session::create(*graph, *ref, {{"input", x.shape()}});
    REQUIRE_MESSAGE(made.ok(), made.status().message());
    REQUIRE_MESSAGE(want_made.ok(), want_made.status().message());
    Session* s = made->get();
    Session* want_s = want_made->get();
    double worst_f32 = 0, worst_half = 0;
    for (const Knob& k : knob_catalogue()) {
      if (k.kind != KnobKind::perforation && k.kind != KnobKind::sampling && k.kind != KnobKind::fp16) continue;
      KnobConfig config;
      for (const KnobSite& site : s->knob_sites())
        if (std::find(site.knobs.begin(), site.knobs.end(), &k) != site.knobs.end()) config[site.node] = k.name;
      CAPTURE(file);
      CAPTURE(k.name);
      REQUIRE(s->configure(config).ok());
      REQUIRE(want_s->configure(config).ok());
      REQUIRE(s->run(std::span<const Tensor>(&x, 1)).ok());
      REQUIRE(want_s->run(std::span<const Tensor>(&x, 1)).ok());
      const double err = oc::relative_error(s->output(0), want_s->output(0));
      (k.half ? worst_half : worst_f32) = std::max(k.half ? worst_half : worst_f32, err);
      // Every layer of the chain adds its own rounding: 10x the one-layer tolerance.
      CHECK(err <= (k.half ? 10 * kHalfTol : 10 * kTol));
      CHECK(s->transfers().uploads == 1);
    }
    MESSAGE(file << ": worst error fp32 knobs " << worst_f32 << ", half knobs " << worst_half);
  }
}

TEST_CASE("opencl: a selector that matches nothing is 'unreachable' and names what exists") {
  for (const auto& [platform, device] :
       std::vector<std::pair<std::string, std::string>>{{"no-such-platform", ""}, {"", "99"}}) {
    BackendOptions o;
    o.device = {platform, device, 0};
    auto made = create_backend("opencl", o);
    REQUIRE_FALSE(made.ok());
    CHECK(made.status().code() == Errc::unreachable);
    CHECK(made.status().message().find("OpenCL") != std::string::npos);
  }
}

#else

TEST_CASE("opencl: the backend's tests" *
          CP_NEEDS(false, "this build has no OpenCL backend (the OpenCL loader or CLBlast was not found)")) {}

#endif
