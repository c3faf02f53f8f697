#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

namespace caliprox {

namespace {

// IDX allows up to 255 dimensions; anything beyond a handful means the file
// is not IDX (or is corrupt).
constexpr int kMaxIdxRank = 8;

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzPtr = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// gzread reads gzip and plain files alike. Returns bytes read; a
// decompression error is a Status (corrupt gzip stream).
Result<size_t> read_some(gzFile f, void* dst, size_t n, const std::string& path) {
  size_t total = 0;
  auto* p = static_cast<char*>(dst);
  while (total < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - total, size_t{1} << 30));
    int got = gzread(f, p + total, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      if (err == Z_ERRNO) return runtime_error("cannot read {}: {}", path, std::strerror(errno));
      return invalid_input("{}: corrupt gzip data: {}", path, msg ? msg : "unknown zlib error");
    }
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  return total;
}

uint32_t be32(const uint8_t* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

template <size_t N>
void swap_bytes_inplace(void* data, size_t count) {
  auto* p = static_cast<uint8_t*>(data);
  for (size_t i = 0; i < count; ++i, p += N) std::reverse(p, p + N);
}

struct IdxType {
  DType dtype;     // dtype of the tensor caliprox returns
  size_t stored;   // bytes per element in the file
  const char* name;
};

bool idx_type(uint8_t code, IdxType& out) {
  switch (code) {
    case 0x08: out = {DType::u8, 1, "unsigned byte"}; return true;
    case 0x09: out = {DType::i8, 1, "signed byte"}; return true;
    case 0x0B: out = {DType::i32, 2, "short"}; return true;
    case 0x0C: out = {DType::i32, 4, "int"}; return true;
    case 0x0D: out = {DType::f32, 4, "float"}; return true;
    case 0x0E: out = {DType::f64, 8, "double"}; return true;
    default: return false;
  }
}

}  // namespace

Result<Tensor> read_idx(const std::string& path) {
  GzPtr f(gzopen(path.c_str(), "rb"));
  if (!f) return invalid_input("cannot open {}: {}", path, std::strerror(errno));
  uint8_t magic[4];
  CP_ASSIGN_OR_RETURN(size_t got, read_some(f.get(), magic, 4, path));
  if (got < 4) return invalid_input("{}: truncated IDX header ({} bytes)", path, got);
  if (magic[0] != 0 || magic[1] != 0)
    return invalid_input("{}: not an IDX file (magic {:02x}{:02x}{:02x}{:02x}, expected 0000TTDD)", path, magic[0],
                         magic[1], magic[2], magic[3]);
  IdxType type{};
  if (!idx_type(magic[2], type))
    return invalid_input(
        "{}: IDX element type 0x{:02X} is not supported (supported: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, "
        "0x0E f64)",
        path, magic[2]);
  int rank = magic[3];
  if (rank < 1 || rank > kMaxIdxRank)
    return invalid_input("{}: IDX rank {} is out of range (expected 1 to {})", path, rank, kMaxIdxRank);

  uint8_t dims_raw[4 * kMaxIdxRank];
  CP_ASSIGN_OR_RETURN(got, read_some(f.get(), dims_raw, 4 * static_cast<size_t>(rank), path));
  if (got < 4 * static_cast<size_t>(rank))
    return invalid_input("{}: truncated IDX header ({} of {} dimension sizes)", path, got / 4, rank);
  Shape shape(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) shape[i] = be32(dims_raw + 4 * i);
  CP_TRY(check_shape(shape, path));

  Tensor t(type.dtype, shape);
  auto count = static_cast<size_t>(t.numel());
  size_t need = count * type.stored;
  if (type.stored == 2) {
    // int16 is widened in place: read into the upper half, convert upwards.
    auto* dst = t.data<int32_t>();
    auto* src = reinterpret_cast<uint8_t*>(dst) + 2 * count;
    CP_ASSIGN_OR_RETURN(got, read_some(f.get(), src, need, path));
    if (got == need)
      for (size_t i = 0; i < count; ++i)
        dst[i] = static_cast<int16_t>(static_cast<uint16_t>((src[2 * i] << 8) | src[2 * i + 1]));
  } else {
    CP_ASSIGN_OR_RETURN(got, read_some(f.get(), t.raw(), need, path));
    if (type.stored == 4) swap_bytes_inplace<4>(t.raw(), count);
    if (type.stored == 8) swap_bytes_inplace<8>(t.raw(), count);
  }
  if (got < need)
    return invalid_input("{}: truncated IDX data: {} {} needs {} bytes, the file has {}", path, type.name,
                         shape_str(shape), need, got);
  uint8_t extra;
  CP_ASSIGN_OR_RETURN(got, read_some(f.get(), &extra, 1, path));
  if (got != 0) return invalid_input("{}: unexpected bytes after the IDX data of {}", path, shape_str(shape));
  return t;
}

}  // namespace caliprox
