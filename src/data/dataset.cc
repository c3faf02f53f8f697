#include "data/dataset.h"

#include <cassert>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <system_error>

#include "data/idx.h"
#include "data/npy.h"
#include "data/raw.h"

namespace caliprox {

namespace {

Result<Tensor> read_samples(const DatasetSpec& spec) {
  switch (spec.format) {
    case DataFormat::idx: return read_idx(spec.samples_path);
    case DataFormat::npy: return read_npy(spec.samples_path);
    case DataFormat::raw: return read_raw(spec.samples_path, spec.raw);
  }
  return invalid_input("{}: unknown dataset format", spec.samples_path);
}

// Labels are read by content, not by the samples' format: .npy labels next to
// raw samples (or IDX labels next to .npy images) are common.
Result<Tensor> read_labels(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f)
    return invalid_input("cannot open labels file {}: {}", path,
                         std::error_code(errno, std::generic_category()).message());
  unsigned char head[6] = {};
  size_t got = std::fread(head, 1, sizeof head, f.get());
  f.reset();
  if (got == 6 && std::memcmp(head, "\x93NUMPY", 6) == 0) return read_npy(path);
  bool gzip = got >= 2 && head[0] == 0x1f && head[1] == 0x8b;
  bool idx = got >= 2 && head[0] == 0 && head[1] == 0;
  if (gzip || idx) return read_idx(path);
  return invalid_input("labels file {}: neither .npy nor IDX (plain or gzip) data", path);
}

bool is_integer(DType t) {
  return t == DType::u8 || t == DType::i8 || t == DType::i32 || t == DType::i64 || t == DType::boolean;
}

Tensor to_float32(const Tensor& t) {
  if (t.dtype() == DType::f32) return t;
  Tensor out(DType::f32, t.shape());
  float* dst = out.data<float>();
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::u8: { const auto* s = t.data<uint8_t>(); for (int64_t i = 0; i < n; ++i) dst[i] = s[i]; break; }
    case DType::i8: { const auto* s = t.data<int8_t>(); for (int64_t i = 0; i < n; ++i) dst[i] = s[i]; break; }
    case DType::i32: {
      const auto* s = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      break;
    }
    default:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(t.at_double(i));
      break;
  }
  return out;
}

// [N, A, B, C] -> [N, A, C, B]-style moves for the two layouts caliprox knows.
Tensor transpose_nchw_nhwc(const Tensor& in, bool to_nhwc) {
  const int64_t n = in.dim(0);
  const int64_t c = to_nhwc ? in.dim(1) : in.dim(3);
  const int64_t h = to_nhwc ? in.dim(2) : in.dim(1);
  const int64_t w = to_nhwc ? in.dim(3) : in.dim(2);
  Tensor out(DType::f32, to_nhwc ? Shape{n, h, w, c} : Shape{n, c, h, w});
  const float* s = in.data<float>();
  float* d = out.data<float>();
  const int64_t hw = h * w;
  for (int64_t b = 0; b < n; ++b) {
    const float* sb = s + b * c * hw;
    float* db = d + b * c * hw;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p) {
        if (to_nhwc) db[p * c + ch] = sb[ch * hw + p];
        else db[ch * hw + p] = sb[p * c + ch];
      }
  }
  return out;
}

// Brings float32 samples into the layout the network wants. Rank 3 defaults
// to IDX-style [N, H, W] images and rank 4 to the target layout; other ranks
// (feature vectors [N, F], ...) are left as they are.
Result<Tensor> apply_layout(Tensor x, const Preprocess& pp, const std::string& path) {
  if (pp.layout != "NCHW" && pp.layout != "NHWC")
    return invalid_input("{}: preprocess layout '{}' is not supported (expected NCHW or NHWC)", path, pp.layout);
  std::string src = pp.source_layout;
  if (src.empty()) src = x.rank() == 3 ? "NHW" : x.rank() == 4 ? pp.layout : "";
  if (src.empty()) return x;
  int64_t want_rank = src == "NHW" ? 3 : (src == "NCHW" || src == "NHWC") ? 4 : -1;
  if (want_rank < 0)
    return invalid_input("{}: source layout '{}' is not supported (expected NHW, NCHW or NHWC)", path, src);
  if (x.rank() != want_rank)
    return invalid_input("{}: source layout {} needs rank-{} samples, the file holds {}", path, src, want_rank,
                         shape_str(x.shape()));
  if (src == "NHW") {
    const Shape& s = x.shape();
    return x.reshaped(pp.layout == "NCHW" ? Shape{s[0], 1, s[1], s[2]} : Shape{s[0], s[1], s[2], 1});
  }
  if (src == pp.layout) return x;
  return transpose_nchw_nhwc(x, pp.layout == "NHWC");
}

Status normalize(Tensor& x, const Preprocess& pp, const std::string& path) {
  // View the samples as [outer, C, inner] with C the channel axis.
  int64_t outer = 1, channels = 1, inner = x.numel();
  if (x.rank() == 4 && pp.layout == "NCHW") {
    outer = x.dim(0); channels = x.dim(1); inner = x.dim(2) * x.dim(3);
  } else if (x.rank() == 4) {
    outer = x.dim(0) * x.dim(1) * x.dim(2); channels = x.dim(3); inner = 1;
  } else if (x.rank() == 2) {
    outer = x.dim(0); channels = x.dim(1); inner = 1;
  }
  auto per_channel = [&](const std::vector<double>& v, double fallback,
                         const char* what) -> Result<std::vector<double>> {
    if (v.empty()) return std::vector<double>(static_cast<size_t>(channels), fallback);
    if (v.size() == 1) return std::vector<double>(static_cast<size_t>(channels), v[0]);
    if (static_cast<int64_t>(v.size()) != channels)
      return invalid_input("{}: preprocess {} has {} values but the samples {} have {} channel(s) (give 1 or {})",
                           path, what, v.size(), shape_str(x.shape()), channels, channels);
    return v;
  };
  CP_ASSIGN_OR_RETURN(std::vector<double> mean, per_channel(pp.mean, 0.0, "mean"));
  CP_ASSIGN_OR_RETURN(std::vector<double> stdev, per_channel(pp.std, 1.0, "std"));
  if (!std::isfinite(pp.scale))
    return invalid_input("{}: preprocess scale is {} (expected a finite number)", path, pp.scale);
  for (size_t c = 0; c < stdev.size(); ++c) {
    if (stdev[c] == 0.0 || !std::isfinite(stdev[c]))
      return invalid_input("{}: preprocess std[{}] is {} (expected a finite non-zero number)", path, c, stdev[c]);
    if (!std::isfinite(mean[c]))
      return invalid_input("{}: preprocess mean[{}] is {} (expected a finite number)", path, c, mean[c]);
  }
  bool identity = pp.scale == 1.0;
  for (size_t c = 0; c < mean.size(); ++c) identity = identity && mean[c] == 0.0 && stdev[c] == 1.0;
  if (identity || x.numel() == 0) return {};

  float* d = x.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c) {
      const double m = mean[static_cast<size_t>(c)], s = stdev[static_cast<size_t>(c)];
      float* p = d + (o * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) p[i] = static_cast<float>((p[i] * pp.scale - m) / s);
    }
  return {};
}

Result<Tensor> convert_labels(const Tensor& raw, int64_t n, const std::string& path, const std::string& samples) {
  if (raw.rank() == 0 || raw.dim(0) != n)
    return invalid_input("labels file {}: has shape {}, but the samples file {} holds {} samples", path,
                         shape_str(raw.shape()), samples, n);
  if (!is_integer(raw.dtype())) return to_float32(raw);  // regression targets
  if (!(raw.rank() == 1 || (raw.rank() == 2 && raw.dim(1) == 1)))
    return invalid_input("labels file {}: integer class labels must have shape [{}] (found {})", path, n,
                         shape_str(raw.shape()));
  Tensor out(DType::i64, {n});
  int64_t* dst = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = raw.dtype() == DType::i64 ? raw.data<int64_t>()[i] : static_cast<int64_t>(raw.at_double(i));
    if (dst[i] < 0)
      return invalid_input("labels file {}: label {} of sample {} is negative (expected a class index)", path, dst[i],
                           i);
  }
  return out;
}

}  // namespace

Result<Dataset> load_dataset(const DatasetSpec& spec) {
  const std::string& path = spec.samples_path;
  CP_ASSIGN_OR_RETURN(Tensor raw, read_samples(spec));
  if (raw.rank() == 0) return invalid_input("{}: samples must have a sample dimension (found a scalar)", path);
  const int64_t n = raw.dim(0);

  Dataset ds;
  CP_ASSIGN_OR_RETURN(ds.samples, apply_layout(to_float32(raw), spec.preprocess, path));
  raw = Tensor();  // release the file's copy before normalising
  // A freshly read f32 file is already private; converted data always is.
  CP_TRY(normalize(ds.samples, spec.preprocess, path));

  if (spec.labels_path) {
    CP_ASSIGN_OR_RETURN(Tensor raw_labels, read_labels(*spec.labels_path));
    CP_ASSIGN_OR_RETURN(Tensor labels, convert_labels(raw_labels, n, *spec.labels_path, path));
    ds.labels = std::move(labels);
  }

  for (const auto& [name, r] : spec.splits) {
    if (r.begin < 0 || r.end > n || r.begin >= r.end)
      return invalid_input(
          "{}: split '{}' is [{}, {}), but the dataset has {} samples (expected 0 <= begin < end <= {})", path, name,
          r.begin, r.end, n, n);
  }
  ds.splits = spec.splits;
  return ds;
}

Tensor Dataset::sample_batch(int64_t begin, int64_t end) const {
  assert(0 <= begin && begin <= end && end <= size());
  Shape shape = samples.shape();
  const size_t row_bytes = shape[0] ? samples.nbytes() / static_cast<size_t>(shape[0]) : 0;
  shape[0] = end - begin;
  // The view borrows: it stays valid while this Dataset lives.
  auto* base = static_cast<char*>(const_cast<void*>(samples.raw()));
  return Tensor::view(samples.dtype(), std::move(shape), base + static_cast<size_t>(begin) * row_bytes);
}

std::optional<Tensor> Dataset::label_batch(int64_t begin, int64_t end) const {
  if (!labels) return std::nullopt;
  assert(0 <= begin && begin <= end && end <= labels->dim(0));
  Shape shape = labels->shape();
  const size_t row_bytes = shape[0] ? labels->nbytes() / static_cast<size_t>(shape[0]) : 0;
  shape[0] = end - begin;
  auto* base = static_cast<char*>(const_cast<void*>(labels->raw()));
  return Tensor::view(labels->dtype(), std::move(shape), base + static_cast<size_t>(begin) * row_bytes);
}

Result<SplitRange> Dataset::split(const std::string& name) const {
  auto it = splits.find(name);
  if (it != splits.end()) return it->second;
  std::vector<std::string> known;
  for (const auto& [k, v] : splits) known.push_back(k);
  return invalid_input("dataset has no split '{}' (known splits: {})", name,
                       known.empty() ? std::string("none") : fmt::format("{}", fmt::join(known, ", ")));
}

}  // namespace caliprox
