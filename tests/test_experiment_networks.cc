// Experiments with several networks (`networks:`): parsing, each network's
// labels, the calibrate axes that name a network, and select_network(); and
// the adapt section (strategies' parameters, streams).
#include <doctest/doctest.h>

#include <string>

#include "experiment/experiment.h"
#include "experiment_sandbox.h"

using namespace caliprox;
using namespace caliprox::testing;

namespace {

// minimal.yaml with `network:` replaced by `networks:` (two networks).
std::string two_networks(const std::string& minimal) {
  const std::string one = "network: {model: models/net.onnx}\n";
  const size_t at = minimal.find(one);
  REQUIRE(at != std::string::npos);
  std::string text = minimal;
  text.replace(at, one.size(), R"(networks:
  heading: {model: models/net.onnx, labels: data/heading.idx}
  distance: {model: models/net.onnx}
)");
  return text;
}

}  // namespace

TEST_CASE("load_experiment: networks, each with its own labels, and select_network") {
  ExperimentSandbox box;
  std::ofstream(box.dir / "data/heading.idx") << "";
  const std::string text = two_networks(read_text(kFixtures / "minimal.yaml"));
  Result<Experiment> r = load_experiment(box.write("two.yaml", text));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  Experiment e = *r;
  REQUIRE(e.networks.size() == 2);
  CHECK(e.networks[0].name == "distance");  // name order
  CHECK(e.networks[1].name == "heading");
  CHECK(e.network.name == "distance");
  CHECK_FALSE(e.dataset.labels_path.has_value());

  // Single-network work must say which network.
  Status st = select_network(e, std::nullopt, "tune");
  CHECK(st.code() == Errc::invalid_input);
  CHECK(st.message().find("names several networks (distance, heading); choose one with --network NAME") !=
        std::string::npos);
  REQUIRE(select_network(e, std::string("heading"), "tune").ok());
  CHECK(e.network.name == "heading");
  CHECK(e.dataset.labels_path == (box.dir / "data/heading.idx").string());
  REQUIRE(select_network(e, std::string("distance"), "tune").ok());
  CHECK_FALSE(e.dataset.labels_path.has_value());  // back to the dataset's (none)
  st = select_network(e, std::string("speed"), "tune");
  CHECK(st.message().find("--network: no network 'speed'") != std::string::npos);

  // One network: no name needed, and it is called "network".
  Experiment single = *load_experiment(box.stage("minimal.yaml"));
  CHECK(select_network(single, std::nullopt, "tune").ok());
  CHECK(single.networks.size() == 1);
  CHECK(single.network.name == "network");
}

TEST_CASE("load_experiment: network and networks, and calibrate axes that name a network") {
  ExperimentSandbox box;
  std::ofstream(box.dir / "data/heading.idx") << "";
  const std::string minimal = read_text(kFixtures / "minimal.yaml");
  const std::string text = two_networks(minimal);
  const std::string app = std::string(CALIPROX_SOURCE_ROOT) + "/tests/data/apps/good.py";
  const std::string section = "application: {command: [" + app + "], goal: [{metric: collisions, max: 0}]}\n";

  // Neither, or both.
  std::string neither = minimal;
  const std::string line = "network: {model: models/net.onnx}\n";
  neither.erase(neither.find(line), line.size());
  CHECK(load_error(box.write("neither.yaml", neither)).find("missing required key 'network' (or networks)") !=
        std::string::npos);
  CHECK(load_error(box.write("neither_calibrate.yaml", neither + section + "calibrate: {axes: [{param: std, lo: 0, hi: 1}]}\n"))
            .find("missing required key 'network' (or networks)") != std::string::npos);
  CHECK(load_error(box.write("both.yaml", text + "network: {model: models/net.onnx}\n"))
            .find("give network or networks, not both") != std::string::npos);

  // Axes: NETWORK.PARAM names; a missing or unknown network is an error.
  Result<Experiment> r = load_experiment(box.write("axes.yaml", text + section + R"(calibrate:
  per: sample
  axes:
    - {network: heading, param: bias, lo: 0, hi: 0.3}
    - {network: heading, param: std, lo: 0, hi: 0.5}
    - {network: distance, param: std, lo: 0, hi: 0.4}
)"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const auto& axes = r->calibrate->axes;
  REQUIRE(axes.size() == 3);
  CHECK(axes[0].name == "heading.bias");
  CHECK(axes[2].network == "distance");
  CHECK(axes[2].name == "distance.std");
  const std::string m = load_error(box.write("bad_axes.yaml", text + section + R"(calibrate:
  axes:
    - {param: bias, lo: 0, hi: 0.3}
    - {network: speed, param: std, lo: 0, hi: 0.5}
    - {network: heading, param: std, lo: 0, hi: 0.5}
    - {network: heading, param: std, lo: 0, hi: 0.4}
)"));
  CHECK(m.find("calibrate.axes[0]: which network? the experiment has several (distance, heading)") !=
        std::string::npos);
  CHECK(m.find("calibrate.axes[1].network: no network 'speed' (the experiment's: distance, heading)") !=
        std::string::npos);
  CHECK(m.find("calibrate.axes[3].param: 'heading.std' has an axis already") != std::string::npos);

  // With one network the axes keep their plain names.
  Result<Experiment> one = load_experiment(box.write("one.yaml", minimal + section + R"(calibrate:
  axes: [{param: bias, lo: 0, hi: 1}]
)"));
  REQUIRE_MESSAGE(one.ok(), one.status().message());
  CHECK(one->calibrate->axes[0].name == "bias");
  CHECK(one->calibrate->axes[0].network == "network");
}

TEST_CASE("load_experiment: the adapt section, its defaults, streams and bad values") {
  ExperimentSandbox box;
  const std::string minimal = read_text(kFixtures / "minimal.yaml");
  Result<Experiment> plain = load_experiment(box.stage("minimal.yaml"));
  REQUIRE(plain.ok());
  CHECK(plain->adapt.strategy == AdaptStrategy::confidence);
  REQUIRE(plain->adapt.streams.size() == 2);  // persistent (mean run 30) and shuffled
  CHECK(plain->adapt.streams[0].name == "persistent-30");
  CHECK(plain->adapt.streams[1].kind == StreamKind::shuffled);

  std::ofstream(box.dir / "data/seq.txt") << "3 1\n4 1 5\n";
  Result<Experiment> r = load_experiment(box.write("adapt.yaml", minimal + R"(adapt:
  strategy: state
  factor: 3
  votes: 4
  split: all
  streams:
    - {kind: persistent, mean_run: 12.5, length: 100, seed: 9}
    - {kind: file, path: data/seq.txt}
)"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->adapt.strategy == AdaptStrategy::state);
  CHECK(r->adapt.params.factor == 3);
  CHECK(r->adapt.params.votes == 4);
  CHECK(r->adapt.split == "all");
  REQUIRE(r->adapt.streams.size() == 2);
  CHECK(r->adapt.streams[0].name == "persistent-12.5");
  CHECK(r->adapt.streams[0].length == 100);
  CHECK(r->adapt.streams[0].seed == 9);
  CHECK(r->adapt.streams[1].name == "seq");
  CHECK(r->adapt.streams[1].indices == std::vector<int64_t>{3, 1, 4, 1, 5});

  std::ofstream(box.dir / "data/bad.txt") << "3 x\n";
  const std::string m = load_error(box.write("bad_adapt.yaml", minimal + R"(adapt:
  less_at: 0.8
  more_at: 0.6
  streams:
    - {kind: shuffled, mean_run: 3}
    - {kind: file}
    - {kind: file, path: data/bad.txt}
)"));
  CHECK(m.find("adapt.more_at: expected at least less_at (0.8), found 0.6") != std::string::npos);
  CHECK(m.find("adapt.streams[0].mean_run: only for kind persistent, not shuffled") != std::string::npos);
  CHECK(m.find("adapt.streams[1]: kind file needs a path") != std::string::npos);
  CHECK(m.find("'x' is not a sample index") != std::string::npos);
}
