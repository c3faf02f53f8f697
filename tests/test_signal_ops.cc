// The signal ops of opset 17: windows, mel filters, DFT and STFT on the
// reference backend, against values worked by hand.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "node_harness.h"

using namespace caliprox;
using namespace caliprox::test;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

Result<std::vector<Tensor>> window(const std::string& op, int64_t size, int64_t periodic) {
  return run_node(make_node(op, 1, {{"periodic", int_attr(periodic)}}), {i64({}, {size})}, {true});
}

}  // namespace

TEST_CASE("signal: Hann, Hamming and Blackman windows, periodic and symmetric") {
  auto hann = window("HannWindow", 4, 1);
  REQUIRE_MESSAGE(hann.ok(), hann.status().message());
  check_values(hann->at(0), {4}, {0, 0.5, 1, 0.5});
  auto hann_sym = window("HannWindow", 4, 0);
  REQUIRE(hann_sym.ok());
  check_values(hann_sym->at(0), {4}, {0, 0.75, 0.75, 0}, 1e-6);
  auto hamming = window("HammingWindow", 4, 1);
  REQUIRE(hamming.ok());
  check_values(hamming->at(0), {4}, {4.0 / 46, 25.0 / 46, 1, 25.0 / 46});
  auto blackman = window("BlackmanWindow", 4, 1);
  REQUIRE(blackman.ok());
  CHECK(std::fabs(blackman->at(0).to_double_vector()[0]) < 1e-7);
  check_values(blackman->at(0), {4}, {0, 0.34, 1, 0.34}, 1e-6);
  auto as_double = run_node(make_node("HannWindow", 1, {{"output_datatype", int_attr(11)}}), {i64({}, {2})}, {true});
  REQUIRE(as_double.ok());
  CHECK(as_double->at(0).dtype() == DType::f64);
  auto negative = window("HannWindow", -1, 1);
  REQUIRE_FALSE(negative.ok());
  CHECK(contains(negative.status().message(), "window size is -1"));
}

TEST_CASE("signal: DFT forward, onesided, inverse, truncated and padded") {
  const Tensor x = f32({1, 4, 1}, {1, 2, 3, 4});
  auto full = run_node(make_node("DFT", 1), {x}, {false});
  REQUIRE_MESSAGE(full.ok(), full.status().message());
  check_values(full->at(0), {1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2}, 1e-6);
  auto half = run_node(make_node("DFT", 1, {{"onesided", int_attr(1)}}), {x}, {false});
  REQUIRE(half.ok());
  check_values(half->at(0), {1, 3, 2}, {10, 0, -2, 2, -2, 0}, 1e-6);
  auto back = run_node(make_node("DFT", 1, {{"inverse", int_attr(1)}}), {full->at(0)}, {false});
  REQUIRE(back.ok());
  check_values(back->at(0), {1, 4, 2}, {1, 0, 2, 0, 3, 0, 4, 0}, 1e-6);
  auto cut = run_node(make_node("DFT", 2), {x, i64({}, {2})}, {false, true});
  REQUIRE_MESSAGE(cut.ok(), cut.status().message());
  check_values(cut->at(0), {1, 2, 2}, {3, 0, -1, 0}, 1e-6);
  auto padded = run_node(make_node("DFT", 2), {f32({1, 2, 1}, {1, 1}), i64({}, {4})}, {false, true});
  REQUIRE(padded.ok());
  check_values(padded->at(0), {1, 4, 2}, {2, 0, 1, -1, 0, 0, 1, 1}, 1e-6);
  // Over axis 2 of [1, 2, 2, 1]: each row on its own.
  auto rows = run_node(make_node("DFT", 1, {{"axis", int_attr(2)}}), {f32({1, 2, 2, 1}, {1, 2, 3, 5})}, {false});
  REQUIRE(rows.ok());
  check_values(rows->at(0), {1, 2, 2, 2}, {3, 0, -1, 0, 8, 0, -2, 0}, 1e-6);
  auto bad = run_node(make_node("DFT", 1, {{"onesided", int_attr(1)}}), {f32({1, 2, 2}, {1, 0, 2, 0})}, {false});
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.status().message(), "onesided DFT needs a real input"));
}

TEST_CASE("signal: STFT frames, with and without a window") {
  const Tensor signal = f32({1, 8, 1}, {1, 2, 3, 4, 5, 6, 7, 8});
  auto plain =
      run_node(make_node("STFT", 4), {signal, i64({}, {2}), Tensor(), i64({}, {4})}, {false, true, false, true});
  REQUIRE_MESSAGE(plain.ok(), plain.status().message());
  // frames [1..4], [3..6], [5..8]: sums 10, 18, 26; bin 1 is -2+2i, bin 2 is -2 in each
  check_values(plain->at(0), {1, 3, 3, 2}, {10, 0, -2, 2, -2, 0, 18, 0, -2, 2, -2, 0, 26, 0, -2, 2, -2, 0}, 1e-6);
  auto windowed = run_node(make_node("STFT", 3), {signal, i64({}, {4}), f32({4}, {0, 1, 1, 0})}, {false, true, false});
  REQUIRE(windowed.ok());
  // frames [0, 2, 3, 0] and [0, 6, 7, 0]: bin 1 is -3-2i and -7-6i... worked: X1 = 2(-i) + 3(-1) = -3 - 2i
  check_values(windowed->at(0), {1, 2, 3, 2}, {5, 0, -3, -2, 1, 0, 13, 0, -7, -6, 1, 0}, 1e-6);
  auto mismatch = run_node(make_node("STFT", 4), {signal, i64({}, {2}), f32({4}, {1, 1, 1, 1}), i64({}, {3})},
                           {false, true, false, true});
  REQUIRE_FALSE(mismatch.ok());
  CHECK(contains(mismatch.status().message(), "window has 4 points but frame_length is 3"));
}

TEST_CASE("signal: MelWeightMatrix rows are FFT bins, columns triangular filters") {
  auto mel = run_node(make_node("MelWeightMatrix", 5),
                      {i64({}, {2}), i64({}, {8}), i64({}, {8000}), f32({}, {0}), f32({}, {4000})},
                      {true, true, true, true, true});
  REQUIRE_MESSAGE(mel.ok(), mel.status().message());
  CHECK(mel->at(0).shape() == Shape{5, 2});
  // Every filter peaks at 1 and is zero outside its band.
  const std::vector<double> w = mel->at(0).to_double_vector();
  for (int m = 0; m < 2; ++m) {
    double peak = 0;
    for (int r = 0; r < 5; ++r) peak = std::max(peak, w[static_cast<size_t>(r * 2 + m)]);
    CHECK(peak == doctest::Approx(1.0));
  }
  auto bad = run_node(make_node("MelWeightMatrix", 5),
                      {i64({}, {2}), i64({}, {8}), i64({}, {8000}), f32({}, {4000}), f32({}, {100})},
                      {true, true, true, true, true});
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.status().message(), "do not make a band"));
}
