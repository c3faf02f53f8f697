#pragma once
// What the experiment tests share: the fixtures folder, a temporary folder
// with stand-ins for the files experiments reference, and loading a file
// that must fail.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "experiment/experiment.h"

namespace caliprox::testing {

namespace fs = std::filesystem;

inline const fs::path kFixtures = fs::path(CALIPROX_SOURCE_ROOT) / "tests/data/experiments";

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A temporary folder holding models/net.onnx, data/images.idx and
// data/labels.idx (empty: load_experiment only checks that they exist).
struct ExperimentSandbox {
  fs::path dir;
  ExperimentSandbox() {
    static int counter = 0;
    dir = fs::temp_directory_path() / fmt::format("caliprox-test-experiment-{}-{}", ::getpid(), counter++);
    fs::create_directories(dir / "models");
    fs::create_directories(dir / "data");
    for (const char* f : {"models/net.onnx", "data/images.idx", "data/labels.idx"}) std::ofstream(dir / f) << "";
  }
  ~ExperimentSandbox() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string stage(const std::string& fixture) const {
    fs::copy_file(kFixtures / fixture, dir / fixture, fs::copy_options::overwrite_existing);
    return (dir / fixture).string();
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

// Loads a fixture that must fail and returns the message after checking the code.
inline std::string load_error(const std::string& path) {
  Result<Experiment> r = load_experiment(path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::invalid_input);
  return r.status().message();
}

}  // namespace caliprox::testing
