#include "ir/onnx_import.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <queue>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>  // defines ONNX_API, then includes onnx-ml.pb.h

#include "ir/onnx_legacy.h"
#include "ir/onnx_proto.h"
#include "ir/op_registry.h"

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

bool op_is_supported(const Node& node) { return node.domain.empty() && find_op(node.op_type) != nullptr; }

std::string op_label(const Node& node) {
  return node.domain.empty() ? node.op_type : fmt::format("{}:{}", node.domain, node.op_type);
}

const char* type_case_name(onnx::TypeProto::ValueCase c) {
  switch (c) {
    case onnx::TypeProto::kTensorType: return "tensor";
    case onnx::TypeProto::kSequenceType: return "sequence";
    case onnx::TypeProto::kMapType: return "map";
    case onnx::TypeProto::kOptionalType: return "optional";
    case onnx::TypeProto::kSparseTensorType: return "sparse tensor";
#ifdef ONNX_ML  // the static build's protobuf code has no ML extensions
    case onnx::TypeProto::kOpaqueType: return "opaque";
#endif
    case onnx::TypeProto::VALUE_NOT_SET: return "unset";
  }
  return "unknown";
}

// `kind` is "graph input" / "graph output". Inputs need a type (sessions
// allocate them); an output's type may be left to shape inference.
Result<ValueInfo> convert_value_info(const onnx::ValueInfoProto& v, const char* kind) {
  ValueInfo info;
  info.name = v.name();
  const std::string what = fmt::format("{} '{}'", kind, v.name());
  if (v.name().empty()) return invalid_input("{} has an empty name", kind);
  if (!v.has_type() || v.type().value_case() == onnx::TypeProto::VALUE_NOT_SET) {
    if (std::string_view(kind) == "graph input") return invalid_input("{}: no type is declared", what);
    return info;
  }
  if (v.type().value_case() != onnx::TypeProto::kTensorType)
    return unsupported("{}: has type '{}'; caliprox handles tensors only", what, type_case_name(v.type().value_case()));
  const auto& tt = v.type().tensor_type();
  if (tt.elem_type() != onnx::TensorProto_DataType_UNDEFINED) {
    if (!dtype_known(tt.elem_type()))
      return unsupported("{}: element type {} is not supported", what, onnx_dtype_name(tt.elem_type()));
    info.dtype = static_cast<DType>(tt.elem_type());
  } else if (std::string_view(kind) == "graph input") {
    return invalid_input("{}: element type is not set", what);
  }
  if (!tt.has_shape()) return info;
  std::vector<Dim> dims;
  Shape fixed;  // symbolic/unknown dims counted as 1, to bound the fixed ones
  for (const auto& d : tt.shape().dim()) {
    Dim dim;
    if (d.has_dim_value()) {
      dim.value = d.dim_value();
    } else if (d.has_dim_param()) {
      dim.symbol = d.dim_param();
    }
    fixed.push_back(d.has_dim_value() ? d.dim_value() : 1);
    dims.push_back(std::move(dim));
  }
  CP_TRY(check_shape(fixed, what));
  info.dims = std::move(dims);
  return info;
}

Result<Attribute> convert_attribute(const onnx::AttributeProto& a, const Node& node, const std::string& base_dir) {
  const std::string what = fmt::format("{}: attribute '{}'", node.describe(), a.name());
  if (a.has_ref_attr_name()) return unsupported("{}: refers to a function attribute, which is not supported", what);
  auto type = a.type();
  if (type == onnx::AttributeProto::UNDEFINED) {  // old exporters leave it unset: infer from the filled field
    if (a.has_f()) type = onnx::AttributeProto::FLOAT;
    else if (a.has_i()) type = onnx::AttributeProto::INT;
    else if (a.has_s()) type = onnx::AttributeProto::STRING;
    else if (a.has_t()) type = onnx::AttributeProto::TENSOR;
    else if (a.has_g()) type = onnx::AttributeProto::GRAPH;
    else if (a.floats_size()) type = onnx::AttributeProto::FLOATS;
    else if (a.ints_size()) type = onnx::AttributeProto::INTS;
    else if (a.strings_size()) type = onnx::AttributeProto::STRINGS;
    else return invalid_input("{}: has no type and no value", what);
  }
  Attribute out;
  switch (type) {
    case onnx::AttributeProto::FLOAT: out.kind = Attribute::Kind::f; out.f = a.f(); break;
    case onnx::AttributeProto::INT: out.kind = Attribute::Kind::i; out.i = a.i(); break;
    case onnx::AttributeProto::STRING: out.kind = Attribute::Kind::s; out.s = a.s(); break;
    case onnx::AttributeProto::TENSOR: {
      out.kind = Attribute::Kind::t;
      auto t = tensor_from_proto(a.t(), base_dir);
      if (!t.ok()) return t.status().with_context(what);
      out.t = std::move(t).value();
      break;
    }
    case onnx::AttributeProto::FLOATS:
      out.kind = Attribute::Kind::floats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.kind = Attribute::Kind::ints;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = Attribute::Kind::strings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    default:
      return unsupported("{}: attributes of type {} are not supported (subgraphs and sparse tensors cannot be "
                         "imported)", what, onnx::AttributeProto_AttributeType_Name(type));
  }
  return out;
}

// The tensor a Constant node produces (opset 1-17 forms: `value` since 1, the
// sparse and typed forms since 12).
Result<Tensor> constant_value(const onnx::NodeProto& n, const Node& node, const std::string& base_dir) {
  if (n.attribute_size() != 1)
    return invalid_input("{}: a Constant needs exactly one value attribute, found {}", node.describe(),
                         n.attribute_size());
  const auto& a = n.attribute(0);
  CP_ASSIGN_OR_RETURN(Attribute attr, convert_attribute(a, node, base_dir));
  const std::string& key = a.name();
  if (key == "value" && attr.kind == Attribute::Kind::t) return attr.t;
  if (key == "value_float" && attr.kind == Attribute::Kind::f) return Tensor::copy_of(DType::f32, {}, &attr.f);
  if (key == "value_int" && attr.kind == Attribute::Kind::i) return Tensor::copy_of(DType::i64, {}, &attr.i);
  if (key == "value_floats" && attr.kind == Attribute::Kind::floats)
    return Tensor::copy_of(DType::f32, {static_cast<int64_t>(attr.floats.size())}, attr.floats.data());
  if (key == "value_ints" && attr.kind == Attribute::Kind::ints)
    return Tensor::copy_of(DType::i64, {static_cast<int64_t>(attr.ints.size())}, attr.ints.data());
  if (key == "value_string" || key == "value_strings" || key == "sparse_value")
    return unsupported("{}: Constant attribute '{}' is not supported (string and sparse constants)", node.describe(),
                       key);
  return invalid_input("{}: unexpected Constant attribute '{}' (expected value, value_float(s) or value_int(s))",
                       node.describe(), key);
}

// Stable topological order: Kahn's algorithm always taking the ready node
// that comes first in the file, so an already sorted file keeps its order.
Status sort_topologically(Graph& g) {
  std::unordered_set<std::string> available;
  for (const auto& in : g.inputs) available.insert(in.name);
  for (const auto& [name, t] : g.initializers) available.insert(name);
  std::unordered_map<std::string, size_t> producer;
  for (size_t j = 0; j < g.nodes.size(); ++j) {
    for (const auto& o : g.nodes[j].outputs) {
      if (o.empty()) continue;
      if (available.count(o))
        return invalid_input("{}: {}: output '{}' is already a graph input or initializer", g.source_path,
                             g.nodes[j].describe(), o);
      auto [it, fresh] = producer.emplace(o, j);
      if (!fresh)
        return invalid_input("{}: value '{}' is produced twice: by {} and by {}", g.source_path, o,
                             g.nodes[it->second].describe(), g.nodes[j].describe());
    }
  }
  const size_t n = g.nodes.size();
  std::vector<size_t> pending(n, 0);
  std::vector<std::vector<size_t>> users(n);
  for (size_t j = 0; j < n; ++j) {
    std::set<size_t> deps;
    for (const auto& in : g.nodes[j].inputs) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        return invalid_input("{}: {}: input '{}' is not a graph input, an initializer or any node's output",
                             g.source_path, g.nodes[j].describe(), in);
      deps.insert(it->second);
    }
    pending[j] = deps.size();
    for (size_t d : deps) users[d].push_back(j);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t j = 0; j < n; ++j)
    if (pending[j] == 0) ready.push(j);
  std::vector<size_t> order;
  order.reserve(n);
  while (!ready.empty()) {
    size_t j = ready.top();
    ready.pop();
    order.push_back(j);
    for (size_t u : users[j])
      if (--pending[u] == 0) ready.push(u);
  }
  if (order.size() != n) {
    for (size_t j = 0; j < n; ++j)
      if (pending[j] != 0)
        return invalid_input("{}: the nodes form a cycle ({} depends on its own output, directly or through others)",
                             g.source_path, g.nodes[j].describe());
  }
  bool sorted = std::is_sorted(order.begin(), order.end());
  if (!sorted) {
    std::vector<Node> nodes;
    nodes.reserve(n);
    for (size_t j : order) nodes.push_back(std::move(g.nodes[j]));
    g.nodes = std::move(nodes);
  }
  for (const auto& out : g.outputs)
    if (!available.count(out.name) && !producer.count(out.name))
      return invalid_input("{}: graph output '{}' is not produced by any node, input or initializer", g.source_path,
                           out.name);
  return {};
}

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<Graph> import_model(const onnx::ModelProto& model, const std::string& path, const std::string& base_dir,
                           const LoadOptions& options) {
  Graph g;
  g.source_path = path;
  bool has_default = false;
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") {
      has_default = true;
      g.opset = op.version();
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
  if (has_default && (g.opset < kMinOnnxOpset || g.opset > kMaxOnnxOpset))
    return unsupported("{}: opset {} of the default ONNX domain is not supported (caliprox handles opsets {}-{})", path,
                       g.opset, kMinOnnxOpset, kMaxOnnxOpset);

  g.name = gp.name();
  if (gp.sparse_initializer_size() > 0)
    return unsupported("{}: sparse initializers are not supported ('{}')", path,
                       gp.sparse_initializer(0).values().name());
  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) return invalid_input("{}: an initializer has an empty name", path);
    if (g.initializers.count(init.name())) return invalid_input("{}: initializer '{}' appears twice", path, init.name());
    auto t = tensor_from_proto(init, base_dir);
    if (!t.ok()) return t.status().with_context(path);
    g.initializers.emplace(init.name(), std::move(t).value());
  }

  // Graph inputs that are initializers (IR < 4 lists them as inputs) are constants.
  std::unordered_set<std::string> seen_inputs;
  for (const auto& in : gp.input()) {
    if (g.initializers.count(in.name())) continue;
    if (!seen_inputs.insert(in.name()).second) return invalid_input("{}: graph input '{}' appears twice", path, in.name());
    auto info = convert_value_info(in, "graph input");
    if (!info.ok()) return info.status().with_context(path);
    g.inputs.push_back(std::move(info).value());
  }
  for (const auto& out : gp.output()) {
    auto info = convert_value_info(out, "graph output");
    if (!info.ok()) return info.status().with_context(path);
    g.outputs.push_back(std::move(info).value());
  }

  // Node skeletons first, so an unsupported op is reported before any error
  // its attributes (e.g. a subgraph) would cause.
  std::unordered_set<std::string> taken_names;
  for (const auto& n : gp.node())
    if (!n.name().empty()) taken_names.insert(n.name());
  std::vector<const onnx::NodeProto*> protos;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& n = gp.node(i);
    Node node;
    node.domain = n.domain() == "ai.onnx" ? std::string() : n.domain();
    node.op_type = node.domain.empty() ? legacy_op_type(n.op_type(), g.opset) : n.op_type();
    node.index = i;
    node.opset = g.opset;
    node.name = n.name();
    if (node.name.empty()) {
      std::string base = fmt::format("{}_{}", lowercase(n.op_type()), i);
      node.name = base;
      for (int k = 2; taken_names.count(node.name); ++k) node.name = fmt::format("{}_{}", base, k);
      taken_names.insert(node.name);
    }
    if (node.op_type.empty()) return invalid_input("{}: {}: empty op_type", path, node.describe());
    node.inputs.assign(n.input().begin(), n.input().end());
    node.outputs.assign(n.output().begin(), n.output().end());
    if (node.domain.empty() && node.op_type == "Constant") {
      if (node.outputs.size() != 1 || node.outputs[0].empty())
        return invalid_input("{}: {}: a Constant needs exactly one named output", path, node.describe());
      const std::string& out = node.outputs[0];
      if (g.initializers.count(out) || seen_inputs.count(out))
        return invalid_input("{}: {}: output '{}' is already an initializer or graph input", path, node.describe(), out);
      auto value = constant_value(n, node, base_dir);
      if (!value.ok()) return value.status().with_context(path);
      g.initializers.emplace(out, std::move(value).value());
      continue;
    }
    g.nodes.push_back(std::move(node));
    protos.push_back(&n);
  }
  if (options.require_supported_ops) CP_TRY(check_ops_supported(g));
  for (size_t j = 0; j < g.nodes.size(); ++j) {
    Node& node = g.nodes[j];
    for (const auto& a : protos[j]->attribute()) {
      if (a.name().empty()) return invalid_input("{}: {}: an attribute has an empty name", path, node.describe());
      auto attr = convert_attribute(a, node, base_dir);
      if (!attr.ok()) {
        // A node kept only so the caller can list its unsupported op (If,
        // Loop, Scan) must not hide that op behind an error about the
        // subgraph attribute it could never use.
        if (!options.require_supported_ops && attr.status().code() == Errc::unsupported && !op_is_supported(node))
          continue;
        return attr.status().with_context(path);
      }
      node.attrs[a.name()] = std::move(attr).value();
    }
  }
  if (auto st = upgrade_legacy_nodes(g); !st.ok()) return st.with_context(path);
  CP_TRY(sort_topologically(g));
  return g;
}

}  // namespace

std::vector<std::string> unsupported_ops(const Graph& graph) {
  std::vector<std::string> ops;
  for (const auto& node : graph.nodes) {
    if (op_is_supported(node)) continue;
    std::string label = op_label(node);
    if (std::find(ops.begin(), ops.end(), label) == ops.end()) ops.push_back(std::move(label));
  }
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
