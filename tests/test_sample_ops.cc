// GridSample, MaxUnpool and RoiAlign on the reference backend, against
// values worked by hand (the conformance cases cover bicubic and the other
// grids).
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

// X = [[0, 1], [2, 3]] sampled at the given (x, y) grid points.
Result<std::vector<Tensor>> sample(std::map<std::string, Attribute> attrs, std::vector<float> points) {
  const auto n = static_cast<int64_t>(points.size() / 2);
  return run_node(make_node("GridSample", 2, std::move(attrs)),
                  {f32({1, 1, 2, 2}, {0, 1, 2, 3}), f32({1, 1, n, 2}, points)}, {false, false});
}

}  // namespace

TEST_CASE("GridSample: bilinear with and without aligned corners") {
  auto aligned = sample({{"align_corners", int_attr(1)}}, {-1, -1, 0, 0, 1, -1, 1, 1});
  REQUIRE_MESSAGE(aligned.ok(), aligned.status().message());
  check_values(aligned->at(0), {1, 1, 1, 4}, {0, 1.5, 1, 3});
  // Not aligned: -1 and 1 are the outer edges; (1, 1) is pixel (1.5, 1.5),
  // a quarter of pixel (1, 1) and three quarters of zero padding.
  auto edges = sample({}, {0, 0, 1, 1});
  REQUIRE(edges.ok());
  check_values(edges->at(0), {1, 1, 1, 2}, {1.5, 0.75});
}

TEST_CASE("GridSample: padding modes outside the image") {
  // (2, -1) is pixel (2.5, -0.5).
  auto zeros = sample({{"padding_mode", str("zeros")}}, {2, -1});
  REQUIRE(zeros.ok());
  check_values(zeros->at(0), {1, 1, 1, 1}, {0});
  auto border = sample({{"padding_mode", str("border")}}, {2, -1});
  REQUIRE(border.ok());
  check_values(border->at(0), {1, 1, 1, 1}, {1});  // clamped to pixel (1, 0)
  auto reflection = sample({{"padding_mode", str("reflection")}}, {2, -1});
  REQUIRE(reflection.ok());
  check_values(reflection->at(0), {1, 1, 1, 1}, {0.5});  // reflected to (0.5, 0)
  auto bad = sample({{"padding_mode", str("wrap")}}, {0, 0});
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.status().message(), "padding_mode 'wrap'"));
}

TEST_CASE("GridSample: nearest rounds half to even; bicubic is exact on a linear ramp") {
  auto nearest = sample({{"mode", str("nearest")}}, {0, 0, 0.5f, 0.5f});
  REQUIRE(nearest.ok());
  check_values(nearest->at(0), {1, 1, 1, 2}, {0, 3});  // pixel (0.5, 0.5) rounds to (0, 0)
  // Keys' cubic reproduces a linear function where all taps are inside: a
  // 4 x 4 ramp v = x + 4y at pixel (1.5, 1.5) (aligned grid point 0) is 7.5.
  std::vector<float> ramp(16);
  for (int i = 0; i < 16; ++i) ramp[static_cast<size_t>(i)] = static_cast<float>(i);
  auto cubic = run_node(make_node("GridSample", 2, {{"mode", str("bicubic")}, {"align_corners", int_attr(1)}}),
                        {f32({1, 1, 4, 4}, ramp), f32({1, 1, 1, 2}, {0, 0})}, {false, false});
  REQUIRE_MESSAGE(cubic.ok(), cubic.status().message());
  check_values(cubic->at(0), {1, 1, 1, 1}, {7.5});
}

TEST_CASE("MaxUnpool: values go back to the positions MaxPool's indices name") {
  auto node = make_node("MaxUnpool", 2, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  const Tensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor idx = i64({1, 1, 2, 2}, {0, 3, 8, 15});
  auto y = run_node(node, {x, idx}, {false, false});
  REQUIRE_MESSAGE(y.ok(), y.status().message());
  std::vector<double> want(16, 0);
  want[0] = 1, want[3] = 2, want[8] = 3, want[15] = 4;
  check_values(y->at(0), {1, 1, 4, 4}, want);
  auto shaped = run_node(make_node("MaxUnpool", 3, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}}),
                         {x, idx, i64({4}, {1, 1, 5, 5})}, {false, false, true});
  REQUIRE_MESSAGE(shaped.ok(), shaped.status().message());
  // The indices count in the 4 x 4 unpooled plane; the 5 x 5 output pads
  // its last row and column, so 15 = (3, 3) lands at 3 * 5 + 3.
  std::vector<double> padded(25, 0);
  padded[0] = 1, padded[3] = 2, padded[10] = 3, padded[18] = 4;
  check_values(shaped->at(0), {1, 1, 5, 5}, padded);
  auto outside = run_node(node, {x, i64({1, 1, 2, 2}, {0, 3, 8, 16})}, {false, false});
  REQUIRE_FALSE(outside.ok());
  CHECK(contains(outside.status().message(),
                 "index 16 at position 3 is outside the 16 positions of the unpooled shape [1, 1, 4, 4]"));
}

TEST_CASE("RoiAlign: average and max of the samples in each bin") {
  const Tensor x = f32({1, 1, 2, 2}, {0, 1, 2, 3});
  auto roi = [&](std::map<std::string, Attribute> attrs, std::vector<float> box, int64_t batch = 0) {
    return run_node(make_node("RoiAlign", 3, std::move(attrs)), {x, f32({1, 4}, box), i64({1}, {batch})},
                    {false, false, false});
  };
  // half_pixel: box (0, 0)-(2, 2) is pixels -0.5..1.5; one bin of 2 x 2
  // samples lands on the four pixel centres.
  auto avg = roi({}, {0, 0, 2, 2});
  REQUIRE_MESSAGE(avg.ok(), avg.status().message());
  check_values(avg->at(0), {1, 1, 1, 1}, {1.5});
  auto max = roi({{"mode", str("max")}}, {0, 0, 2, 2});
  REQUIRE(max.ok());
  check_values(max->at(0), {1, 1, 1, 1}, {3});
  // output_half_pixel: box (0, 0)-(1, 1), one sample at (0.5, 0.5).
  auto legacy = roi({{"coordinate_transformation_mode", str("output_half_pixel")}}, {0, 0, 1, 1});
  REQUIRE(legacy.ok());
  check_values(legacy->at(0), {1, 1, 1, 1}, {1.5});
  auto two_by_two = roi({{"output_height", int_attr(2)}, {"output_width", int_attr(2)}}, {0, 0, 2, 2});
  REQUIRE(two_by_two.ok());
  check_values(two_by_two->at(0), {1, 1, 2, 2}, {0, 1, 2, 3});
  auto outside = roi({}, {0, 0, 2, 2}, 1);
  REQUIRE_FALSE(outside.ok());
  CHECK(contains(outside.status().message(), "batch index 1 of roi 0 is outside the batch of 1"));
}
