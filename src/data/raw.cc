#include "data/raw.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>

namespace caliprox {

static_assert(std::endian::native == std::endian::little, "raw reader assumes a little-endian host");

Result<Tensor> read_raw(const std::string& path, const RawSpec& spec) {
  if (spec.dtype == DType::undefined) return invalid_input("{}: raw data needs a dtype", path);
  if (spec.shape.empty())
    return invalid_input("{}: raw data needs a shape whose first dimension is the sample count", path);
  if (spec.header_bytes < 0)
    return invalid_input("{}: raw header_bytes is {} (expected >= 0)", path, spec.header_bytes);
  CP_TRY(check_shape(spec.shape, path));

  std::error_code ec;
  auto file_size = std::filesystem::file_size(path, ec);
  if (ec) return invalid_input("cannot open {}: {}", path, ec.message());
  auto data_bytes = static_cast<uintmax_t>(shape_numel(spec.shape)) * dtype_size(spec.dtype);
  auto expected = static_cast<uintmax_t>(spec.header_bytes) + data_bytes;
  if (file_size != expected)
    return invalid_input("{}: file has {} bytes, but {} bytes of header + {} {} ({} bytes of data) need {}", path,
                         file_size, spec.header_bytes, dtype_name(spec.dtype), shape_str(spec.shape), data_bytes,
                         expected);

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return invalid_input("cannot open {}: {}", path, std::error_code(errno, std::generic_category()).message());
  if (spec.header_bytes > 0 && std::fseek(f.get(), static_cast<long>(spec.header_bytes), SEEK_SET) != 0)
    return runtime_error("cannot seek in {}: {}", path, std::error_code(errno, std::generic_category()).message());
  Tensor t(spec.dtype, spec.shape);
  size_t got = std::fread(t.raw(), 1, t.nbytes(), f.get());
  if (got != t.nbytes())
    return runtime_error("cannot read {}: got {} of {} bytes ({})", path, got, t.nbytes(),
                         std::ferror(f.get()) ? std::error_code(errno, std::generic_category()).message()
                                              : std::string("file shrank while reading"));
  return t;
}

}  // namespace caliprox
