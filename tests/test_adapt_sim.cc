// Run-time adaptation (src/adapt): input streams, the simulation of a
// strategy and of the oracle over precomputed answers, C and W, and
// observations from outputs. The strategies themselves are in test_adapt.cc.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "adapt/simulate.h"
#include "adapt/stream.h"

using namespace caliprox;

namespace {

Stream stream_of(const StreamSpec& spec, int64_t begin, const std::vector<int64_t>& labels) {
  auto s = make_stream(spec, begin, labels);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return s.value();
}

// `classes` classes of `per_class` samples each, interleaved.
std::vector<int64_t> labels_of(int64_t classes, int64_t per_class) {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < classes * per_class; ++i) labels.push_back(i % classes);
  return labels;
}

// Three levels, six samples (dataset indices 100 .. 105). Level 0 is always
// right; level 1 misses samples 2 and 5; level 2 misses 1, 2 and 5.
const std::vector<int64_t> tiny_labels = {0, 1, 1, 0, 2, 2};

LevelAnswers tiny_answers() {
  const std::vector<std::vector<int64_t>> argmax = {{0, 1, 1, 0, 2, 2}, {0, 1, 0, 0, 2, 1}, {0, 2, 0, 0, 2, 1}};
  const std::vector<std::vector<double>> top1 = {
      {0.9, 0.8, 0.6, 0.7, 0.5, 0.7}, {0.6, 0.9, 0.4, 0.8, 0.7, 0.3}, {0.5, 0.5, 0.5, 0.5, 0.5, 0.5}};
  LevelAnswers a;
  a.begin = 100;
  for (int l = 0; l < 3; ++l) {
    a.answers.emplace_back();
    for (size_t i = 0; i < 6; ++i) a.answers.back().push_back(Observation{l, argmax[l][i], top1[l][i]});
  }
  return a;
}

const std::vector<LevelCost> tiny_costs = {{10, 1.0}, {6, 0.5}, {3, 0.25}};

}  // namespace

TEST_CASE("adapt: streams are deterministic for a seed") {
  const auto labels = labels_of(5, 40);
  for (StreamKind kind : {StreamKind::persistent, StreamKind::shuffled}) {
    StreamSpec spec;
    spec.kind = kind;
    spec.seed = 7;
    const Stream a = stream_of(spec, 0, labels), b = stream_of(spec, 0, labels);
    CHECK(a.samples == b.samples);
    CHECK(a.samples.size() == labels.size());
    spec.seed = 8;
    CHECK(stream_of(spec, 0, labels).samples != a.samples);
  }
}

TEST_CASE("adapt: a persistent stream's runs average near mean_run") {
  const auto labels = labels_of(10, 100);
  StreamSpec spec;
  spec.mean_run = 30;
  spec.length = 20000;
  spec.seed = 3;
  const Stream s = stream_of(spec, 500, labels);
  REQUIRE(s.samples.size() == 20000);
  // A change always moves to another class, so every change is visible.
  int64_t runs = 1;
  for (size_t i = 1; i < s.samples.size(); ++i) {
    if (labels[static_cast<size_t>(s.samples[i] - 500)] != labels[static_cast<size_t>(s.samples[i - 1] - 500)]) ++runs;
  }
  const double mean = 20000.0 / static_cast<double>(runs);
  CHECK(mean > 24);
  CHECK(mean < 36);
  // 20000 draws from 1000 samples: most reuse one.
  CHECK(s.repeated >= 19000);
}

TEST_CASE("adapt: mean_run 1 changes class at every input") {
  const auto labels = labels_of(3, 10);
  StreamSpec spec;
  spec.mean_run = 1;
  spec.length = 200;
  const Stream s = stream_of(spec, 0, labels);
  for (size_t i = 1; i < s.samples.size(); ++i) {
    CHECK(labels[static_cast<size_t>(s.samples[i])] != labels[static_cast<size_t>(s.samples[i - 1])]);
  }
}

TEST_CASE("adapt: persistent draws without repetition and counts reuse") {
  // Two classes of 50: 40 inputs cannot use a class up, so no reuse.
  StreamSpec spec;
  spec.length = 40;
  const Stream fresh = stream_of(spec, 0, labels_of(2, 50));
  CHECK(fresh.repeated == 0);
  CHECK(std::set<int64_t>(fresh.samples.begin(), fresh.samples.end()).size() == 40);

  // One class of 3 samples, 10 inputs: 3 fresh draws, then 7 reused; each
  // block of 3 is a reshuffle of the whole class.
  spec.length = 10;
  const Stream reused = stream_of(spec, 20, {7, 7, 7});
  CHECK(reused.repeated == 7);
  for (size_t b = 0; b + 3 <= reused.samples.size(); b += 3) {
    std::vector<int64_t> block(reused.samples.begin() + static_cast<long>(b),
                               reused.samples.begin() + static_cast<long>(b + 3));
    std::sort(block.begin(), block.end());
    CHECK(block == std::vector<int64_t>{20, 21, 22});
  }
}

TEST_CASE("adapt: a shuffled stream is a permutation of the split") {
  StreamSpec spec;
  spec.kind = StreamKind::shuffled;
  const Stream s = stream_of(spec, 10, labels_of(4, 25));
  CHECK(s.repeated == 0);
  std::vector<int64_t> sorted = s.samples;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> want(100);
  for (int64_t i = 0; i < 100; ++i) want[static_cast<size_t>(i)] = 10 + i;
  CHECK(sorted == want);
  CHECK(s.samples != want);  // 100! orders: the identity would be a bug

  spec.length = 30;
  const Stream part = stream_of(spec, 10, labels_of(4, 25));
  CHECK(part.samples.size() == 30);
  CHECK(std::set<int64_t>(part.samples.begin(), part.samples.end()).size() == 30);
}

TEST_CASE("adapt: stream errors") {
  StreamSpec spec;
  spec.name = "s";
  spec.kind = StreamKind::shuffled;
  spec.length = 11;
  auto longer = make_stream(spec, 0, labels_of(2, 5));
  REQUIRE_FALSE(longer.ok());
  CHECK(longer.status().code() == Errc::invalid_input);
  CHECK(longer.status().message().find("would repeat samples") != std::string::npos);
  CHECK(longer.status().message().find("the split has 10") != std::string::npos);

  spec.kind = StreamKind::file;
  spec.length = 0;
  spec.indices = {5, 7, 20, 3};
  auto outside = make_stream(spec, 5, labels_of(2, 5));  // split [5, 15)
  REQUIRE_FALSE(outside.ok());
  CHECK(outside.status().message().find("index 20 at position 2") != std::string::npos);

  spec.kind = StreamKind::persistent;
  spec.mean_run = 0.5;
  CHECK(make_stream(spec, 0, labels_of(2, 5)).status().message().find("mean_run") != std::string::npos);
  spec.mean_run = 30;
  CHECK(make_stream(spec, 0, {}).status().message().find("empty") != std::string::npos);
}

TEST_CASE("adapt: a file stream is its indices, cut to a shorter length") {
  StreamSpec spec;
  spec.kind = StreamKind::file;
  spec.indices = {14, 5, 5, 9};
  CHECK(stream_of(spec, 5, labels_of(2, 5)).samples == spec.indices);
  spec.length = 2;
  CHECK(stream_of(spec, 5, labels_of(2, 5)).samples == std::vector<int64_t>{14, 5});
}

TEST_CASE("adapt: simulate naive on a tiny set of answers") {
  auto naive = make_strategy(AdaptStrategy::naive, StrategyParams{}, 3);
  REQUIRE(naive.ok());
  const std::vector<int64_t> stream = {100, 100, 102, 102, 105, 104};
  // input  sample level argmax label exact  naive's next
  //   0     100    0     0      0     0     first: more -> 1 (step 2), switch
  //   1     100    1     0      0     0     same: more -> 2 (clamped), switch
  //   2     102    2     0      1     1     same: more, stays 2
  //   3     102    2     0      1     1     same: stays 2
  //   4     105    2     1      2     2     differs: less -> 1, switch
  //   5     104    1     2      2     2     (a change after the last input is not paid)
  // Right and agreeing: inputs 0, 1, 5. Latency 10 + 6 + 3 * 3 + 6 = 31
  // plus 3 switches of 2 ms; energy 1 + .5 + 3 * .25 + .5 = 2.75 plus 3 * .1.
  const SimulationResult r = simulate(**naive, stream, tiny_answers(), tiny_labels, tiny_costs, 2.0, 0.1);
  CHECK(r.strategy == "naive");
  CHECK(r.trace == std::vector<int>{0, 1, 2, 2, 2, 1});
  CHECK(r.accuracy == doctest::Approx(0.5));
  CHECK(r.agreement == doctest::Approx(0.5));
  CHECK(r.switches == 3);
  CHECK(r.switches_per_1000 == doctest::Approx(500));
  CHECK(r.mean_latency_ms == doctest::Approx(37.0 / 6));
  REQUIRE(r.mean_energy_j.has_value());
  CHECK(*r.mean_energy_j == doctest::Approx(3.05 / 6));
  CHECK(r.level_counts == std::vector<int64_t>{1, 2, 3});
}

TEST_CASE("adapt: simulate static, and energy only when every level has it") {
  StrategyParams p;
  p.static_level = 1;
  auto fixed = make_strategy(AdaptStrategy::static_level, p, 3);
  REQUIRE(fixed.ok());
  auto costs = tiny_costs;
  costs[2].energy_j.reset();
  const std::vector<int64_t> stream = {100, 101, 102, 103, 104, 105};
  const SimulationResult r = simulate(**fixed, stream, tiny_answers(), tiny_labels, costs, 2.0, std::nullopt);
  CHECK(r.strategy == "static");
  CHECK(r.accuracy == doctest::Approx(4.0 / 6));  // level 1 misses 102 and 105
  CHECK(r.agreement == doctest::Approx(4.0 / 6));
  CHECK(r.mean_latency_ms == doctest::Approx(6));
  CHECK_FALSE(r.mean_energy_j.has_value());
  CHECK(r.switches == 0);
  CHECK(r.level_counts == std::vector<int64_t>{0, 6, 0});
}

TEST_CASE("adapt: the oracle runs the most approximate level that agrees") {
  const std::vector<int64_t> stream = {100, 100, 102, 102, 105, 104};
  // 100: level 2 says 0 like level 0 -> 2. 102: levels 2 and 1 say 0, level
  // 0 says 1 -> 0. 105: levels 2 and 1 say 1, level 0 says 2 -> 0. 104:
  // level 2 says 2 -> 2. Trace 2 2 0 0 0 2: two changes, not paid; every
  // input agrees with level 0, which is always right.
  const SimulationResult r = simulate_oracle(stream, tiny_answers(), tiny_labels, tiny_costs);
  CHECK(r.strategy == "oracle");
  CHECK(r.trace == std::vector<int>{2, 2, 0, 0, 0, 2});
  CHECK(r.accuracy == doctest::Approx(1));
  CHECK(r.agreement == doctest::Approx(1));
  CHECK(r.switches == 2);
  CHECK(r.mean_latency_ms == doctest::Approx(39.0 / 6));
  REQUIRE(r.mean_energy_j.has_value());
  CHECK(*r.mean_energy_j == doctest::Approx(3.75 / 6));
  CHECK(r.level_counts == std::vector<int64_t>{3, 0, 3});
}

TEST_CASE("adapt: confidence_stats groups by the predicted class") {
  const ConfidenceStats st = confidence_stats(tiny_answers(), tiny_labels, 3);
  REQUIRE(st.correct.size() == 3);
  REQUIRE(st.wrong.size() == 3);
  // Level 0 is always right: C per class (.9 + .7) / 2, (.8 + .6) / 2,
  // (.5 + .7) / 2; no W.
  CHECK(st.correct[0][0] == doctest::Approx(0.8));
  CHECK(st.correct[0][1] == doctest::Approx(0.7));
  CHECK(st.correct[0][2] == doctest::Approx(0.6));
  for (double w : st.wrong[0]) CHECK(std::isnan(w));
  // Level 1 predicts 0 rightly (.6, .8) and wrongly for 102 (.4); 1 rightly
  // (.9) and wrongly for 105 (.3); 2 rightly (.7).
  CHECK(st.correct[1][0] == doctest::Approx(0.7));
  CHECK(st.correct[1][1] == doctest::Approx(0.9));
  CHECK(st.correct[1][2] == doctest::Approx(0.7));
  CHECK(st.wrong[1][0] == doctest::Approx(0.4));
  CHECK(st.wrong[1][1] == doctest::Approx(0.3));
  CHECK(std::isnan(st.wrong[1][2]));
}

TEST_CASE("adapt: observations apply softmax to logits, not to probabilities") {
  const auto logits = observations(std::vector<float>{1, 2, 3, 0, 0, 0, 1000, 999, 0}, 3, 4);
  REQUIRE(logits.size() == 3);
  CHECK(logits[0].level == 4);
  CHECK(logits[0].argmax == 2);
  CHECK(logits[0].top1 == doctest::Approx(1 / (1 + std::exp(-1.0) + std::exp(-2.0))));
  CHECK(logits[1].argmax == 0);  // a tie: the first maximum
  CHECK(logits[1].top1 == doctest::Approx(1.0 / 3));
  CHECK(logits[2].argmax == 0);  // stable: no overflow
  CHECK(logits[2].top1 == doctest::Approx(1 / (1 + std::exp(-1.0))));

  const auto probs = observations(std::vector<float>{0.2f, 0.5f, 0.3f, 0.6f, 0.3f, 0.1f}, 3, 0);
  REQUIRE(probs.size() == 2);
  CHECK(probs[0].argmax == 1);
  CHECK(probs[0].top1 == doctest::Approx(0.5));
  CHECK(probs[1].argmax == 0);
  CHECK(probs[1].top1 == doctest::Approx(0.6));

  // One row that does not sum to 1: all rows are logits.
  const auto mixed = observations(std::vector<float>{0.2f, 0.5f, 0.3f, 1, 2, 3}, 3, 0);
  CHECK(mixed[0].argmax == 1);
  CHECK(mixed[0].top1 ==
        doctest::Approx(std::exp(0.5) / (std::exp(0.2) + std::exp(0.5) + std::exp(0.3))).epsilon(1e-6));
}
