#include "ir/onnx_import.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>  // defines ONNX_API, then includes onnx-ml.pb.h

#include "ir/onnx_graph_import.h"
#include "ir/onnx_proto.h"

namespace caliprox {

namespace fs = std::filesystem;

// raw_data and external data are little-endian by the ONNX spec; they are
// copied as-is, which is only right on a little-endian host (x86-64, arm64).
static_assert(std::endian::native == std::endian::little, "ONNX raw_data import assumes a little-endian host");

std::string onnx_dtype_name(int onnx_type) {
  if (onnx::TensorProto_DataType_IsValid(onnx_type))
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(onnx_type));
  return fmt::format("type {}", onnx_type);
}

namespace {

// Whole file into memory; errors name the path.
Result<std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return invalid_input("{}: no such file", path);
  if (!fs::is_regular_file(path, ec)) return invalid_input("{}: not a regular file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_input("{}: cannot open ({})", path, std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return invalid_input("{}: read error ({})", path, std::strerror(errno));
  return bytes;
}

std::string parent_dir(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

Result<uint64_t> parse_size_key(const std::string& value, const std::string& what, const std::string& key) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, v);
  if (ec != std::errc() || ptr != end || value.empty())
    return invalid_input("{}: external data '{}' is '{}' (expected a non-negative integer)", what, key, value);
  return v;
}

// The file an external-data location names, refusing anything outside
// base_dir: data locations come from the (untrusted) model file, so
// "../../etc/passwd", absolute paths and symlinks pointing out are rejected.
Result<fs::path> resolve_external_location(const std::string& location, const std::string& base_dir,
                                           const std::string& what) {
  if (location.empty()) return invalid_input("{}: external data has no 'location'", what);
  if (base_dir.empty())
    return invalid_input("{}: external data location '{}' cannot be resolved: the model was not loaded from a file",
                         what, location);
  fs::path loc(location);
  if (loc.is_absolute() || loc.has_root_name() || loc.has_root_directory())
    return invalid_input("{}: external data location '{}' is an absolute path (expected a path relative to the "
                         "model's folder)", what, location);
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::absolute(base_dir, ec), ec);
  if (ec) return invalid_input("{}: cannot resolve the model folder '{}' ({})", what, base_dir, ec.message());
  fs::path full = fs::weakly_canonical(base / loc, ec);
  if (ec) return invalid_input("{}: cannot resolve external data location '{}' ({})", what, location, ec.message());
  fs::path rel = full.lexically_relative(base);
  if (rel.empty() || rel == "." || *rel.begin() == "..")
    return invalid_input("{}: external data location '{}' resolves to '{}', outside the model's folder '{}'", what,
                         location, full.string(), base.string());
  return full;
}

// Reads the tensor's external data after validating the location, the
// declared length and the file size, so nothing is allocated for a bogus file.
Result<Tensor> read_external_tensor(const onnx::TensorProto& p, const std::string& base_dir, const std::string& what,
                                    DType dt, const Shape& shape) {
  const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dt);
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset") {
      CP_ASSIGN_OR_RETURN(offset, parse_size_key(kv.value(), what, "offset"));
    } else if (kv.key() == "length") {
      CP_ASSIGN_OR_RETURN(length, parse_size_key(kv.value(), what, "length"));
    }
  }
  CP_ASSIGN_OR_RETURN(fs::path file, resolve_external_location(location, base_dir, what));
  if (length && *length != nbytes)
    return invalid_input("{}: external data length is {} bytes but dims {} of {} need {} bytes", what, *length,
                         shape_str(shape), dtype_name(dt), nbytes);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    return invalid_input("{}: external data file '{}' (location '{}') does not exist or is not a regular file", what,
                         file.string(), location);
  uint64_t file_size = fs::file_size(file, ec);
  if (ec) return invalid_input("{}: cannot stat external data file '{}' ({})", what, file.string(), ec.message());
  if (offset > file_size || file_size - offset < nbytes)
    return invalid_input("{}: external data file '{}' has {} bytes; offset {} + {} bytes runs past its end "
                         "(truncated data)", what, file.string(), file_size, offset, nbytes);
  Tensor t(dt, shape);
  std::ifstream in(file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(nbytes));
  if (!in) return invalid_input("{}: cannot read {} bytes at offset {} of '{}'", what, nbytes, offset, file.string());
  return t;
}

// Typed-field payloads. Counts are compared before anything is allocated.
template <typename Field>
Status check_count(const Field& field, const char* field_name, int64_t numel, const std::string& what,
                   const Shape& shape) {
  if (static_cast<int64_t>(field.size()) != numel)
    return invalid_input("{}: {} holds {} values but dims {} need {} (truncated or corrupt data)", what, field_name,
                         field.size(), shape_str(shape), numel);
  return {};
}

// int32_data carries the narrow types (spec: int8/uint8/int16/uint16/bool as
// values, float16 and bfloat16 as their uint16 bit patterns); out-of-range
// values mean corruption.
Status decode_int32_data(const onnx::TensorProto& p, DType dt, const std::string& what, Tensor& t) {
  int64_t lo = 0, hi = 0;
  switch (dt) {
    case DType::i8: lo = -128; hi = 127; break;
    case DType::u8: lo = 0; hi = 255; break;
    case DType::boolean: lo = 0; hi = 1; break;
    case DType::f16:
    case DType::bf16:
    case DType::u16:
      lo = 0;
      hi = 65535;
      break;
    case DType::i16:
      lo = INT16_MIN;
      hi = INT16_MAX;
      break;
    case DType::i32: lo = INT32_MIN; hi = INT32_MAX; break;
    default: return runtime_error("{}: internal error: int32_data decoding for {}", what, dtype_name(dt));
  }
  auto* dst = static_cast<std::byte*>(t.raw());
  for (int i = 0; i < p.int32_data_size(); ++i) {
    int32_t v = p.int32_data(i);
    if (v < lo || v > hi)
      return invalid_input("{}: int32_data[{}] = {} is out of range for {} (expected {}..{})", what, i, v,
                           dtype_name(dt), lo, hi);
    switch (dt) {
      case DType::i8: { auto x = static_cast<int8_t>(v); std::memcpy(dst + i, &x, 1); break; }
      case DType::u8:
      case DType::boolean: { auto x = static_cast<uint8_t>(v); std::memcpy(dst + i, &x, 1); break; }
      case DType::f16:
      case DType::bf16:
      case DType::u16: {
        auto x = static_cast<uint16_t>(v);
        std::memcpy(dst + 2 * i, &x, 2);
        break;
      }
      case DType::i16: {
        auto x = static_cast<int16_t>(v);
        std::memcpy(dst + 2 * i, &x, 2);
        break;
      }
      default: std::memcpy(dst + 4 * i, &v, 4); break;
    }
  }
  return {};
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& p, const std::string& base_dir) {
  const std::string what = fmt::format("tensor '{}'", p.name());
  if (p.data_type() == onnx::TensorProto_DataType_UNDEFINED)
    return invalid_input("{}: element type (data_type) is not set", what);
  if (!dtype_known(p.data_type()))
    return unsupported("{}: element type {} is not supported (caliprox handles FLOAT, FLOAT16, BFLOAT16, DOUBLE, "
                       "INT8/16/32/64, UINT8/16/32/64, BOOL)",
                       what, onnx_dtype_name(p.data_type()));
  if (p.has_segment()) return unsupported("{}: segmented tensors are not supported", what);
  Shape shape(p.dims().begin(), p.dims().end());
  CP_TRY(check_shape(shape, what));
  const auto dt = static_cast<DType>(p.data_type());
  const int64_t numel = shape_numel(shape);
  const uint64_t nbytes = static_cast<uint64_t>(numel) * dtype_size(dt);

  if (p.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    return read_external_tensor(p, base_dir, what, dt, shape);
  if (p.has_raw_data()) {
    if (p.raw_data().size() != nbytes)
      return invalid_input("{}: raw_data holds {} bytes but dims {} of {} need {} bytes (truncated or corrupt data)",
                           what, p.raw_data().size(), shape_str(shape), dtype_name(dt), nbytes);
    return Tensor::copy_of(dt, shape, p.raw_data().data());
  }
  switch (dt) {
    case DType::f32:
      CP_TRY(check_count(p.float_data(), "float_data", numel, what, shape));
      return Tensor::copy_of(dt, shape, p.float_data().data());
    case DType::f64:
      CP_TRY(check_count(p.double_data(), "double_data", numel, what, shape));
      return Tensor::copy_of(dt, shape, p.double_data().data());
    case DType::i64:
      CP_TRY(check_count(p.int64_data(), "int64_data", numel, what, shape));
      return Tensor::copy_of(dt, shape, p.int64_data().data());
    case DType::i32:
    case DType::i8:
    case DType::u8:
    case DType::i16:
    case DType::u16:
    case DType::boolean:
    case DType::f16:
    case DType::bf16: {
      CP_TRY(check_count(p.int32_data(), "int32_data", numel, what, shape));
      Tensor t(dt, shape);
      CP_TRY(decode_int32_data(p, dt, what, t));
      return t;
    }
    case DType::u32:
    case DType::u64: {
      // uint64_data carries both; uint32 values past 2^32 mean corruption.
      CP_TRY(check_count(p.uint64_data(), "uint64_data", numel, what, shape));
      Tensor t(dt, shape);
      for (int i = 0; i < p.uint64_data_size(); ++i) {
        const uint64_t v = p.uint64_data(i);
        if (dt == DType::u64) {
          t.data<uint64_t>()[i] = v;
        } else if (v > UINT32_MAX) {
          return invalid_input("{}: uint64_data[{}] = {} is out of range for uint32", what, i, v);
        } else {
          t.data<uint32_t>()[i] = static_cast<uint32_t>(v);
        }
      }
      return t;
    }
    case DType::undefined: break;
  }
  return invalid_input("{}: element type {} has no data field", what, onnx_dtype_name(p.data_type()));
}

Result<Tensor> load_tensor_proto_file(const std::string& path) {
  CP_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  onnx::TensorProto proto;
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return invalid_input("{}: not a valid ONNX TensorProto ({} bytes; truncated or another format)", path,
                         bytes.size());
  try {
    auto t = tensor_from_proto(proto, parent_dir(path));
    if (!t.ok()) return t.status().with_context(path);
    return t;
  } catch (const std::bad_alloc&) {
    return runtime_error("{}: out of memory while loading the tensor", path);
  }
}

namespace {

std::string op_label(const Node& node) {
  return node.domain.empty() ? node.op_type : fmt::format("{}:{}", node.domain, node.op_type);
}

Result<Graph> import_model(const onnx::ModelProto& model, const std::string& path, const std::string& base_dir,
                           const LoadOptions& options) {
  GraphImportContext ctx{path, base_dir, 0, options, {}};
  bool has_default = false;
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") {
      has_default = true;
      ctx.opset = op.version();
    }
  }
  const onnx::GraphProto& gp = model.graph();
  // A model made only of other domains' ops (e.g. ai.onnx.preview.training)
  // need not import the default domain; its ops are reported as unsupported.
  bool uses_default = std::any_of(gp.node().begin(), gp.node().end(), [](const onnx::NodeProto& n) {
    return n.domain().empty() || n.domain() == "ai.onnx";
  });
  if (!has_default && uses_default)
    return invalid_input("{}: the model declares no opset for the default ONNX domain (opset_import)", path);
  if (has_default && (ctx.opset < kMinOnnxOpset || ctx.opset > kMaxOnnxOpset))
    return unsupported("{}: opset {} of the default ONNX domain is not supported (caliprox handles opsets {}-{})", path,
                       ctx.opset, kMinOnnxOpset, kMaxOnnxOpset);
  collect_node_names(gp, ctx.taken_names);
  return import_graph(gp, ctx, false);
}

// Adds the unsupported op types of `graph` and its subgraphs to `ops`.
void add_unsupported_ops(const Graph& graph, std::vector<std::string>& ops) {
  for (const auto& node : graph.nodes) {
    for (const auto& [key, a] : node.attrs)
      if (a.kind == Attribute::Kind::graph && a.g) add_unsupported_ops(*a.g, ops);
    if (op_is_supported(node)) continue;
    std::string label = op_label(node);
    if (std::find(ops.begin(), ops.end(), label) == ops.end()) ops.push_back(std::move(label));
  }
}

}  // namespace

std::vector<std::string> unsupported_ops(const Graph& graph) {
  std::vector<std::string> ops;
  add_unsupported_ops(graph, ops);
  return ops;
}

Status check_ops_supported(const Graph& graph) {
  for (const auto& node : graph.nodes) {
    if (op_is_supported(node)) continue;
    std::vector<std::string> others = unsupported_ops(graph);
    others.erase(std::remove(others.begin(), others.end(), op_label(node)), others.end());
    std::string why = node.domain.empty()
                          ? std::string("caliprox has no implementation of this op")
                          : fmt::format("domain '{}' is not the default ONNX domain", node.domain);
    std::string rest = others.empty() ? std::string()
                                      : fmt::format("; other unsupported ops in this model: {}", fmt::join(others, ", "));
    return unsupported("{}: {}: op {} is not supported ({}){}", graph.source_path, node.describe(), op_label(node), why,
                       rest);
  }
  return {};
}

Result<Graph> load_onnx_from_bytes(std::string_view bytes, const std::string& path_for_errors,
                                   const std::string& base_dir, const LoadOptions& options) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    return invalid_input("{}: {} bytes exceeds protobuf's 2 GiB message limit (store weights as external data)",
                         path_for_errors, bytes.size());
  try {
    onnx::ModelProto model;
    if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      return invalid_input("{}: not a valid ONNX model (protobuf parsing failed on {} bytes: truncated, corrupt or "
                           "not an ONNX file)", path_for_errors, bytes.size());
    if (!model.has_ir_version() || !model.has_graph())
      return invalid_input("{}: not a valid ONNX model (no {} field: empty, truncated or not an ONNX file)",
                           path_for_errors, model.has_ir_version() ? "graph" : "ir_version");
    return import_model(model, path_for_errors, base_dir, options);
  } catch (const std::bad_alloc&) {
    return runtime_error("{}: out of memory while importing the model", path_for_errors);
  }
}

Result<Graph> load_onnx(const std::string& path, const LoadOptions& options) {
  CP_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return load_onnx_from_bytes(bytes, path, parent_dir(path), options);
}

}  // namespace caliprox
