#pragma once
// A fresh folder under the system temp dir, removed at scope exit (tests
// that write files: test_onnx_export.cc, test_plain_ops.cc).
#include <unistd.h>
#include <filesystem>
#include <string>
#include <system_error>

namespace caliprox::testing {

struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& tag) {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("caliprox_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

}  // namespace caliprox::testing
