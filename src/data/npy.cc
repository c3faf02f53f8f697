#include "data/npy.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <system_error>

#include "util/atomic_file.h"

namespace caliprox {

// Supported files are little-endian; data is copied without byte swapping.
static_assert(std::endian::native == std::endian::little, "npy reader assumes a little-endian host");

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::string_view kSupportedDescrs = "<f4, <f2, <f8, |u1, |i1, <i4, <i8, |b1";

struct Preamble {
  size_t size = 0;        // magic + version + header-length field
  size_t header_len = 0;  // bytes of the header dict (incl. padding and newline)
};

uint32_t read_le(std::string_view b, size_t at, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}

// `bytes` holds at least the first 10 bytes of the file (12 for versions 2/3).
Result<Preamble> parse_preamble(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != kMagic)
    return invalid_input("{}: not a .npy file (missing the \\x93NUMPY magic)", name);
  auto major = static_cast<uint8_t>(bytes[6]);
  auto minor = static_cast<uint8_t>(bytes[7]);
  if (major == 1 && minor == 0) return Preamble{10, read_le(bytes, 8, 2)};
  if ((major == 2 || major == 3) && minor == 0) {
    if (bytes.size() < 12) return invalid_input("{}: truncated .npy header", name);
    return Preamble{12, read_le(bytes, 8, 4)};
  }
  return invalid_input("{}: .npy format version {}.{} is not supported (expected 1.0, 2.0 or 3.0)", name, major,
                       minor);
}

// The header is a Python dict literal; only the parts NumPy writes are parsed:
// strings, True/False, tuples of integers. Anything else (a list-valued
// structured dtype) is kept as raw text so the error can quote it.
struct PyValue {
  enum class Kind { string, boolean, int_tuple, other } kind = Kind::other;
  std::string text;  // string value, or the raw text for `other`
  bool flag = false;
  Shape ints;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& name) : s_(s), name_(name) {}

  Status parse_dict(std::vector<std::pair<std::string, PyValue>>& out) {
    skip_ws();
    if (!eat('{')) return error("expected '{' at the start of the header dict");
    for (;;) {
      skip_ws();
      if (eat('}')) return {};
      PyValue key;
      CP_TRY(parse_string(key));
      skip_ws();
      if (!eat(':')) return error("expected ':' after key '" + key.text + "'");
      PyValue value;
      CP_TRY(parse_value(value));
      out.emplace_back(key.text, std::move(value));
      skip_ws();
      if (eat(',')) continue;
      if (eat('}')) return {};
      return error("expected ',' or '}' after the value of '" + key.text + "'");
    }
  }

 private:
  Status error(const std::string& what) const {
    return invalid_input("{}: invalid .npy header at offset {}: {} (header: {})", name_, pos_, what, s_);
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) { ++pos_; return true; }
    return false;
  }
  Status parse_string(PyValue& v) {
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) return error("expected a quoted string");
    char quote = s_[pos_++];
    size_t end = s_.find(quote, pos_);
    if (end == std::string_view::npos) return error("unterminated string");
    v.kind = PyValue::Kind::string;
    v.text = std::string(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return {};
  }
  Status parse_int(int64_t& out) {
    size_t start = pos_;
    bool neg = eat('-');
    int64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (v > (INT64_MAX - 9) / 10) return error("dimension too large");
      v = v * 10 + (s_[pos_++] - '0');
    }
    if (pos_ == start + (neg ? 1 : 0)) return error("expected an integer dimension");
    eat('L');  // Python 2 long literals in old files
    out = neg ? -v : v;
    return {};
  }
  Status parse_tuple(PyValue& v) {
    v.kind = PyValue::Kind::int_tuple;
    for (;;) {
      skip_ws();
      if (eat(')')) return {};
      int64_t d = 0;
      CP_TRY(parse_int(d));
      v.ints.push_back(d);
      skip_ws();
      if (eat(',')) continue;
      if (eat(')')) return {};
      return error("expected ',' or ')' in the shape tuple");
    }
  }
  Status skip_nested(PyValue& v) {
    size_t start = pos_;
    int depth = 0;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '\'' || c == '"') {
        PyValue ignored;
        CP_TRY(parse_string(ignored));
        continue;
      }
      if (c == '[' || c == '(' || c == '{') ++depth;
      if (c == ']' || c == ')' || c == '}') --depth;
      ++pos_;
      if (depth == 0) {
        v.kind = PyValue::Kind::other;
        v.text = std::string(s_.substr(start, pos_ - start));
        return {};
      }
    }
    return error("unbalanced brackets");
  }
  Status parse_value(PyValue& v) {
    skip_ws();
    if (pos_ >= s_.size()) return error("expected a value");
    char c = s_[pos_];
    if (c == '\'' || c == '"') return parse_string(v);
    if (c == '(') { ++pos_; return parse_tuple(v); }
    if (c == '[' || c == '{') return skip_nested(v);
    if (s_.substr(pos_, 4) == "True") { pos_ += 4; v.kind = PyValue::Kind::boolean; v.flag = true; return {}; }
    if (s_.substr(pos_, 5) == "False") { pos_ += 5; v.kind = PyValue::Kind::boolean; v.flag = false; return {}; }
    return error("unexpected value");
  }

  std::string_view s_;
  const std::string& name_;
  size_t pos_ = 0;
};

std::optional<DType> dtype_from_descr(std::string_view d) {
  if (d.size() == 3 && (d[0] == '|' || d[0] == '<' || d[0] == '>' || d[0] == '=')) {
    // Byte order is meaningless for one-byte types; NumPy writes '|'.
    std::string_view t = d.substr(1);
    if (t == "u1") return DType::u8;
    if (t == "i1") return DType::i8;
    if (t == "b1") return DType::boolean;
  }
  if (d == "<f4") return DType::f32;
  if (d == "<f2") return DType::f16;
  if (d == "<f8") return DType::f64;
  if (d == "<i4") return DType::i32;
  if (d == "<i8") return DType::i64;
  if (d == "<u2") return DType::u16;
  if (d == "<i2") return DType::i16;
  if (d == "<u4") return DType::u32;
  if (d == "<u8") return DType::u64;
  return std::nullopt;
}

std::string_view descr_for(DType t) {
  switch (t) {
    case DType::f32: return "<f4";
    case DType::f16: return "<f2";
    case DType::f64: return "<f8";
    case DType::u8: return "|u1";
    case DType::i8: return "|i1";
    case DType::i32: return "<i4";
    case DType::i64: return "<i8";
    case DType::boolean: return "|b1";
    case DType::u16: return "<u2";
    case DType::i16: return "<i2";
    case DType::u32: return "<u4";
    case DType::u64: return "<u8";
    case DType::bf16:  // numpy has no bfloat16
    case DType::undefined: break;
  }
  return "";
}

Result<TensorType> parse_header(std::string_view header, const std::string& name) {
  std::vector<std::pair<std::string, PyValue>> dict;
  CP_TRY(HeaderParser(header, name).parse_dict(dict));
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape = nullptr;
  for (const auto& [key, value] : dict) {
    if (key == "descr") descr = &value;
    else if (key == "fortran_order") fortran = &value;
    else if (key == "shape") shape = &value;
  }
  if (!descr || !fortran || !shape)
    return invalid_input("{}: .npy header lacks '{}' (expected keys descr, fortran_order, shape; header: {})", name,
                         !descr ? "descr" : !fortran ? "fortran_order" : "shape", header);
  if (descr->kind != PyValue::Kind::string)
    return invalid_input("{}: structured dtype {} is not supported (supported dtypes: {})", name, descr->text,
                         kSupportedDescrs);
  if (fortran->kind != PyValue::Kind::boolean)
    return invalid_input("{}: .npy header 'fortran_order' must be True or False", name);
  if (fortran->flag)
    return invalid_input("{}: Fortran-order arrays are not supported (save with np.ascontiguousarray)", name);
  if (shape->kind != PyValue::Kind::int_tuple)
    return invalid_input("{}: .npy header 'shape' must be a tuple of integers (found {})", name, shape->text);
  std::optional<DType> dtype = dtype_from_descr(descr->text);
  if (!dtype) {
    if (!descr->text.empty() && descr->text[0] == '>')
      return invalid_input("{}: dtype '{}' is big-endian; supported dtypes (little-endian): {}", name, descr->text,
                           kSupportedDescrs);
    return invalid_input("{}: dtype '{}' is not supported (supported dtypes: {})", name, descr->text,
                         kSupportedDescrs);
  }
  CP_TRY(check_shape(shape->ints, name));
  return TensorType{*dtype, shape->ints};
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string shape_tuple(const Shape& s) {
  if (s.empty()) return "()";
  if (s.size() == 1) return fmt::format("({},)", s[0]);
  return fmt::format("({})", fmt::join(s, ", "));
}

}  // namespace

Result<Tensor> parse_npy(std::string_view bytes, const std::string& name_for_errors) {
  const std::string& name = name_for_errors;
  CP_ASSIGN_OR_RETURN(Preamble pre, parse_preamble(bytes, name));
  if (bytes.size() < pre.size + pre.header_len)
    return invalid_input("{}: truncated .npy header ({} bytes, header needs {})", name, bytes.size(),
                         pre.size + pre.header_len);
  CP_ASSIGN_OR_RETURN(TensorType type, parse_header(bytes.substr(pre.size, pre.header_len), name));
  size_t offset = pre.size + pre.header_len;
  size_t need = static_cast<size_t>(shape_numel(type.shape)) * dtype_size(type.dtype);
  size_t have = bytes.size() - offset;
  if (have < need)
    return invalid_input("{}: truncated .npy data: {} {} needs {} bytes, the file has {}", name,
                         dtype_name(type.dtype), shape_str(type.shape), need, have);
  if (have > need)
    return invalid_input("{}: {} unexpected bytes after the .npy data of {} {}", name, have - need,
                         dtype_name(type.dtype), shape_str(type.shape));
  return Tensor::copy_of(type.dtype, type.shape, bytes.data() + offset);
}

Result<Tensor> read_npy(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return invalid_input("cannot open {}: {}", path, errno_text(errno));
  // Header first, then the data straight into the tensor: no second copy of
  // a large dataset.
  std::string head(12, '\0');
  size_t got = std::fread(head.data(), 1, head.size(), f.get());
  head.resize(got);
  CP_ASSIGN_OR_RETURN(Preamble pre, parse_preamble(head, path));
  std::string header(pre.header_len, '\0');
  size_t already = got - pre.size;  // header bytes read with the preamble
  if (already > header.size()) already = header.size();
  std::memcpy(header.data(), head.data() + pre.size, already);
  size_t rest = std::fread(header.data() + already, 1, header.size() - already, f.get());
  if (already + rest < header.size())
    return invalid_input("{}: truncated .npy header ({} of {} bytes)", path, already + rest, header.size());
  CP_ASSIGN_OR_RETURN(TensorType type, parse_header(header, path));

  Tensor t(type.dtype, type.shape);
  // Bytes of data that were read together with the preamble (only possible
  // for a v1 header shorter than 2 bytes, but handle it anyway).
  size_t spill = got > pre.size + pre.header_len ? got - pre.size - pre.header_len : 0;
  auto* dst = static_cast<char*>(t.raw());
  size_t need = t.nbytes();
  size_t copied = std::min(spill, need);
  if (copied) std::memcpy(dst, head.data() + pre.size + pre.header_len, copied);
  size_t n = std::fread(dst + copied, 1, need - copied, f.get());
  if (std::ferror(f.get())) return runtime_error("cannot read {}: {}", path, errno_text(errno));
  if (copied + n < need)
    return invalid_input("{}: truncated .npy data: {} {} needs {} bytes, the file has {}", path,
                         dtype_name(type.dtype), shape_str(type.shape), need, copied + n);
  if (spill > need || std::fgetc(f.get()) != EOF)
    return invalid_input("{}: unexpected bytes after the .npy data of {} {}", path, dtype_name(type.dtype),
                         shape_str(type.shape));
  return t;
}

std::string serialize_npy(const Tensor& t) {
  assert(!t.empty() && "serialize_npy needs a tensor with a dtype");
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_for(t.dtype()),
                                 shape_tuple(t.shape()));
  // Pad with spaces and end with '\n' so the data starts 64-byte aligned.
  size_t preamble = 10;
  size_t total = preamble + dict.size() + 1;
  if ((total + 63) / 64 * 64 - preamble > 65535) {
    preamble = 12;
    total = preamble + dict.size() + 1;
  }
  size_t padded = (total + 63) / 64 * 64;
  size_t header_len = padded - preamble;
  dict.append(padded - total, ' ');
  dict.push_back('\n');

  std::string out;
  out.reserve(padded + t.nbytes());
  out.append(kMagic);
  out.push_back(static_cast<char>(preamble == 10 ? 1 : 2));
  out.push_back(0);
  for (size_t i = 0; i < preamble - 8; ++i) out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  out.append(dict);
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

Status write_npy(const std::string& path, const Tensor& t) {
  if (t.empty()) return invalid_input("cannot write {}: the tensor has no dtype", path);
  return write_file_atomic(path, serialize_npy(t));
}

}  // namespace caliprox
