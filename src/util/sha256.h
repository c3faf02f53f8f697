#pragma once
// SHA-256 (FIPS 180-4) of bytes and of files: content addresses for the
// files an MPI job stages to its workers (dist/stage.h), where a cache hit
// must mean the same bytes. Streaming: feed update() any number of times.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace caliprox {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view bytes);
// Reads the file in chunks; runtime error naming the path when unreadable.
Result<std::string> sha256_file(const std::string& path);

}  // namespace caliprox
