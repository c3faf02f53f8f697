// Dataset readers (npy, IDX, raw), preprocessing and atomic artifact writes.
// Fixtures are built byte by byte here, so no Python is needed to run them.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/idx.h"
#include "data/npy.h"
#include "data/raw.h"
#include "util/atomic_file.h"

using namespace caliprox;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / fmt::format("caliprox-test-data-{}-{}", ::getpid(), counter++);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// A .npy file with an arbitrary header dict (no padding: readers must not care).
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict + "\n";
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  size_t len_bytes = major == 1 ? 2 : 4;
  for (size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string make_idx(uint8_t type, const std::vector<uint32_t>& dims, const std::string& payload) {
  std::string out = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) out += be32(d);
  return out + payload;
}

template <typename T>
Tensor make_tensor(DType dt, Shape shape, std::vector<T> values) {
  return Tensor::copy_of(dt, std::move(shape), values.data());
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("npy: round trip of every supported dtype through a file") {
  TempDir dir;
  std::vector<Tensor> cases = {
      make_tensor<float>(DType::f32, {2, 3}, {1.5f, -2.f, 0.f, 3.25f, 1e-8f, -7.f}),
      make_tensor<uint16_t>(DType::f16, {3}, {float_to_half(1.f), float_to_half(-0.5f), float_to_half(65504.f)}),
      make_tensor<double>(DType::f64, {1, 2}, {3.141592653589793, -1e300}),
      make_tensor<uint8_t>(DType::u8, {2, 2}, {0, 1, 200, 255}),
      make_tensor<int8_t>(DType::i8, {4}, {-128, -1, 0, 127}),
      make_tensor<int32_t>(DType::i32, {2}, {-2147483647 - 1, 123456}),
      make_tensor<int64_t>(DType::i64, {2, 1}, {-5, int64_t{1} << 40}),
      make_tensor<uint8_t>(DType::boolean, {3}, {1, 0, 1}),
      make_tensor<float>(DType::f32, {}, {42.f}),   // scalar: shape ()
      Tensor(DType::f32, {0, 4}),                   // no elements
  };
  for (const Tensor& t : cases) {
    CAPTURE(dtype_name(t.dtype()));
    CAPTURE(shape_str(t.shape()));
    std::string path = dir.file("t.npy");
    REQUIRE(write_npy(path, t).ok());
    auto back = read_npy(path);
    REQUIRE(back.ok());
    CHECK(same_bytes(*back, t));
    auto parsed = parse_npy(serialize_npy(t), "memory");
    REQUIRE(parsed.ok());
    CHECK(same_bytes(*parsed, t));
    // Data starts 64-byte aligned, as NumPy writes it.
    std::string bytes = serialize_npy(t);
    CHECK((bytes.size() - t.nbytes()) % 64 == 0);
  }
}

TEST_CASE("npy: header matches NumPy's np.save byte for byte") {
  // np.save(f, np.zeros((2, 3), np.float32)) writes exactly this 128-byte header.
  std::string expected("\x93NUMPY\x01\x00\x76\x00", 10);
  expected += "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  expected.append(128 - 1 - expected.size(), ' ');
  expected.push_back('\n');
  std::string bytes = serialize_npy(Tensor(DType::f32, {2, 3}));
  REQUIRE(bytes.size() == 128 + 24);
  CHECK(bytes.substr(0, 128) == expected);
  CHECK(contains(serialize_npy(Tensor(DType::i64, {5})), "'shape': (5,), }"));
  CHECK(contains(serialize_npy(Tensor(DType::u8, {})), "'descr': '|u1', 'fortran_order': False, 'shape': (), }"));
}

TEST_CASE("npy: format versions 2.0 and 3.0 and Python 2 long dims") {
  std::string data(8, '\0');
  int32_t vals[2] = {7, -9};
  std::memcpy(data.data(), vals, 8);
  for (int major : {2, 3}) {
    auto t = parse_npy(make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", data, major), "v");
    REQUIRE(t.ok());
    CHECK(t->dtype() == DType::i32);
    CHECK(t->to_int64_vector() == std::vector<int64_t>{7, -9});
  }
  auto old = parse_npy(make_npy("{'descr': '<i4', 'shape': (1L, 2L), 'fortran_order': False}", data), "old");
  REQUIRE(old.ok());
  CHECK(old->shape() == Shape{1, 2});
}

TEST_CASE("npy: Fortran order, unsupported dtypes and bad headers are rejected") {
  std::string four(4, '\0');
  auto fortran = parse_npy(make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", four), "f.npy");
  REQUIRE(!fortran.ok());
  CHECK(fortran.status().code() == Errc::invalid_input);
  CHECK(contains(fortran.status().message(), "f.npy: Fortran-order arrays are not supported"));
  CHECK(contains(fortran.status().message(), "np.ascontiguousarray"));

  auto complex = parse_npy(make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", std::string(8, 0)),
                           "c.npy");
  REQUIRE(!complex.ok());
  CHECK(complex.status().code() == Errc::invalid_input);
  CHECK(contains(complex.status().message(), "'<c8'"));
  CHECK(contains(complex.status().message(), "<f4, <f2"));

  auto big = parse_npy(make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", four), "b.npy");
  REQUIRE(!big.ok());
  CHECK(contains(big.status().message(), "big-endian"));

  auto structured = parse_npy(
      make_npy("{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", std::string(8, 0)),
      "s.npy");
  REQUIRE(!structured.ok());
  CHECK(contains(structured.status().message(), "structured dtype"));

  auto no_shape = parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False}", four), "n.npy");
  REQUIRE(!no_shape.ok());
  CHECK(contains(no_shape.status().message(), "'shape'"));

  auto negative = parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", four), "neg.npy");
  REQUIRE(!negative.ok());
  CHECK(negative.status().code() == Errc::invalid_input);

  auto not_npy = parse_npy("PK\x03\x04 definitely a zip", "z.npy");
  REQUIRE(!not_npy.ok());
  CHECK(contains(not_npy.status().message(), "not a .npy file"));

  auto version = parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", four, 4), "v.npy");
  REQUIRE(!version.ok());
  CHECK(contains(version.status().message(), "version 4.0"));
}

TEST_CASE("npy: truncated data and headers are input errors") {
  TempDir dir;
  Tensor t = make_tensor<float>(DType::f32, {2, 2}, {1, 2, 3, 4});
  std::string bytes = serialize_npy(t);
  for (size_t cut : {size_t{1}, size_t{15}, bytes.size() - 20, bytes.size() - 120}) {
    CAPTURE(cut);
    std::string part = bytes.substr(0, bytes.size() - cut);
    auto mem = parse_npy(part, "mem.npy");
    REQUIRE(!mem.ok());
    CHECK(mem.status().code() == Errc::invalid_input);
    CHECK(contains(mem.status().message(), "truncated"));
    write_bytes(dir.file("cut.npy"), part);
    auto file = read_npy(dir.file("cut.npy"));
    REQUIRE(!file.ok());
    CHECK(file.status().code() == Errc::invalid_input);
    CHECK(contains(file.status().message(), dir.file("cut.npy")));
    CHECK(contains(file.status().message(), "truncated"));
  }
  write_bytes(dir.file("long.npy"), bytes + "xx");
  auto extra = read_npy(dir.file("long.npy"));
  REQUIRE(!extra.ok());
  CHECK(contains(extra.status().message(), "unexpected bytes"));

  auto missing = read_npy(dir.file("missing.npy"));
  REQUIRE(!missing.ok());
  CHECK(missing.status().code() == Errc::invalid_input);
  CHECK(contains(missing.status().message(), "missing.npy"));
}

TEST_CASE("idx: plain and gzip files of each element type") {
  TempDir dir;
  std::string u8_payload = {1, 2, 3, 4, 5, static_cast<char>(250)};
  std::string u8_file = make_idx(0x08, {2, 3}, u8_payload);
  write_bytes(dir.file("u8.idx"), u8_file);
  write_gzip(dir.file("u8.idx.gz"), u8_file);
  for (const char* name : {"u8.idx", "u8.idx.gz"}) {
    CAPTURE(name);
    auto t = read_idx(dir.file(name));
    REQUIRE(t.ok());
    CHECK(t->dtype() == DType::u8);
    CHECK(t->shape() == Shape{2, 3});
    CHECK(t->to_int64_vector() == std::vector<int64_t>{1, 2, 3, 4, 5, 250});
  }

  // int16 -1, 258, -32768 big-endian, widened to int32.
  write_gzip(dir.file("i16.gz"), make_idx(0x0B, {3}, std::string("\xff\xff\x01\x02\x80\x00", 6)));
  auto i16 = read_idx(dir.file("i16.gz"));
  REQUIRE(i16.ok());
  CHECK(i16->dtype() == DType::i32);
  CHECK(i16->to_int64_vector() == std::vector<int64_t>{-1, 258, -32768});

  write_bytes(dir.file("i8"), make_idx(0x09, {2}, std::string("\xfe\x05", 2)));
  auto i8 = read_idx(dir.file("i8"));
  REQUIRE(i8.ok());
  CHECK(i8->to_int64_vector() == std::vector<int64_t>{-2, 5});

  write_bytes(dir.file("i32"), make_idx(0x0C, {1, 2}, be32(0xfffffffeu) + be32(70000)));
  auto i32 = read_idx(dir.file("i32"));
  REQUIRE(i32.ok());
  CHECK(i32->dtype() == DType::i32);
  CHECK(i32->to_int64_vector() == std::vector<int64_t>{-2, 70000});

  // 1.5f = 0x3FC00000, -2.0f = 0xC0000000
  write_bytes(dir.file("f32"), make_idx(0x0D, {2}, be32(0x3FC00000u) + be32(0xC0000000u)));
  auto f32 = read_idx(dir.file("f32"));
  REQUIRE(f32.ok());
  CHECK(f32->to_double_vector() == std::vector<double>{1.5, -2.0});

  // 0.1 as double = 0x3FB999999999999A
  write_bytes(dir.file("f64"), make_idx(0x0E, {1}, be32(0x3FB99999u) + be32(0x9999999Au)));
  auto f64 = read_idx(dir.file("f64"));
  REQUIRE(f64.ok());
  CHECK(f64->dtype() == DType::f64);
  CHECK(f64->at_double(0) == 0.1);
}

TEST_CASE("idx: truncated, corrupt and unsupported files are input errors") {
  TempDir dir;
  std::string full = make_idx(0x08, {2, 3}, "abcdef");
  struct Case {
    std::string name, bytes, expect;
    bool gz;
  };
  std::vector<Case> cases = {
      {"data.idx", full.substr(0, full.size() - 1), "truncated IDX data", false},
      {"data.idx.gz", full.substr(0, full.size() - 2), "truncated IDX data", true},
      {"dims.idx", full.substr(0, 9), "truncated IDX header", false},
      {"magic.idx", full.substr(0, 3), "truncated IDX header", false},
      {"extra.idx", full + "g", "unexpected bytes", false},
      {"type.idx", make_idx(0x0A, {1}, "ab"), "0x0A is not supported", false},
      {"rank.idx", make_idx(0x08, {}, ""), "rank 0", false},
      {"text.idx", "hello world", "not an IDX file", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    if (c.gz) write_gzip(dir.file(c.name), c.bytes);
    else write_bytes(dir.file(c.name), c.bytes);
    auto t = read_idx(dir.file(c.name));
    REQUIRE(!t.ok());
    CHECK(t.status().code() == Errc::invalid_input);
    CHECK(contains(t.status().message(), dir.file(c.name)));
    CHECK(contains(t.status().message(), c.expect));
  }
  // A gzip stream cut in the middle: zlib reports it, never a silent short read.
  write_gzip(dir.file("whole.gz"), make_idx(0x08, {1000}, std::string(1000, 'x')));
  std::string gz = read_bytes(dir.file("whole.gz"));
  write_bytes(dir.file("cut.gz"), gz.substr(0, gz.size() - 10));
  auto cut = read_idx(dir.file("cut.gz"));
  REQUIRE(!cut.ok());
  CHECK(cut.status().code() == Errc::invalid_input);
}

TEST_CASE("raw: header skip and size check") {
  TempDir dir;
  std::string data = "HDR";
  float vals[4] = {1, 2, 3, 4};
  data.append(reinterpret_cast<const char*>(vals), sizeof vals);
  write_bytes(dir.file("x.bin"), data);
  RawSpec spec;
  spec.dtype = DType::f32;
  spec.shape = {2, 2};
  spec.header_bytes = 3;
  auto t = read_raw(dir.file("x.bin"), spec);
  REQUIRE(t.ok());
  CHECK(t->to_double_vector() == std::vector<double>{1, 2, 3, 4});
  spec.shape = {3, 2};
  auto wrong = read_raw(dir.file("x.bin"), spec);
  REQUIRE(!wrong.ok());
  CHECK(wrong.status().code() == Errc::invalid_input);
  CHECK(contains(wrong.status().message(), "file has 19 bytes"));
  CHECK(contains(wrong.status().message(), "need 27"));
}

TEST_CASE("dataset: real Fashion-MNIST t10k set") {
  const std::string root = "/usr/share/datasets/fashion-mnist/";
  REQUIRE_MESSAGE(fs::exists(root + "t10k-images-idx3-ubyte.gz"), "install the Debian package dataset-fashion-mnist");
  auto images = read_idx(root + "t10k-images-idx3-ubyte.gz");
  REQUIRE(images.ok());
  CHECK(images->dtype() == DType::u8);
  CHECK(images->shape() == Shape{10000, 28, 28});
  // Facts of the public file: pixel sums of the first and last image and row 14 of image 0.
  auto pixels = images.value().span<uint8_t>();
  int64_t sum0 = 0, sum_last = 0;
  for (int i = 0; i < 784; ++i) sum0 += pixels[i], sum_last += pixels[9999 * 784 + i];
  CHECK(sum0 == 33456);
  CHECK(sum_last == 24390);
  const std::vector<int> row14 = {0,   0,   0,   0,   0,   0,   2,   4,   1,   0,   0,   0,   98,  136,
                                  110, 109, 110, 162, 135, 144, 149, 159, 167, 144, 158, 169, 119, 0};
  for (int x = 0; x < 28; ++x) CHECK(pixels[14 * 28 + x] == row14[x]);

  DatasetSpec spec;
  spec.format = DataFormat::idx;
  spec.samples_path = root + "t10k-images-idx3-ubyte.gz";
  spec.labels_path = root + "t10k-labels-idx1-ubyte.gz";
  spec.preprocess.scale = 1.0 / 255.0;
  spec.splits = {{"tune", {0, 5000}}, {"test", {5000, 10000}}};
  auto ds = load_dataset(spec);
  REQUIRE(ds.ok());
  CHECK(ds->size() == 10000);
  CHECK(ds->samples.shape() == Shape{10000, 1, 28, 28});
  CHECK(ds->samples.dtype() == DType::f32);
  CHECK(ds->samples.data<float>()[14 * 28 + 12] == doctest::Approx(98.0 / 255.0).epsilon(1e-6));
  REQUIRE(ds->labels.has_value());
  CHECK(ds->labels->dtype() == DType::i64);
  CHECK(ds->labels->shape() == Shape{10000});
  std::vector<int64_t> labels = ds->labels->to_int64_vector();
  CHECK(std::vector<int64_t>(labels.begin(), labels.begin() + 10) ==
        std::vector<int64_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  CHECK(std::vector<int64_t>(labels.end() - 5, labels.end()) == std::vector<int64_t>{9, 1, 8, 1, 5});
  std::vector<int> per_class(10, 0);
  for (int64_t l : labels) per_class.at(static_cast<size_t>(l))++;
  CHECK(per_class == std::vector<int>(10, 1000));

  auto test = ds->split("test");
  REQUIRE(test.ok());
  Tensor batch = ds->sample_batch(test->begin, test->begin + 64);
  CHECK(batch.shape() == Shape{64, 1, 28, 28});
  CHECK(batch.raw() == ds->samples.data<float>() + 5000 * 784);  // a view, not a copy
  auto lb = ds->label_batch(test->begin, test->begin + 64);
  REQUIRE(lb.has_value());
  CHECK(lb->shape() == Shape{64});
  CHECK(lb->data<int64_t>()[0] == labels[5000]);
}

namespace {
// Two 2x2 RGB samples stored NHWC: value = 100*n + 10*(h*2+w) + c.
Tensor two_nhwc_samples() {
  Tensor t(DType::u8, {2, 2, 2, 3});
  uint8_t* p = t.data<uint8_t>();
  for (int n = 0; n < 2; ++n)
    for (int hw = 0; hw < 4; ++hw)
      for (int c = 0; c < 3; ++c) p[(n * 4 + hw) * 3 + c] = static_cast<uint8_t>(100 * n + 10 * hw + c);
  return t;
}
}  // namespace

TEST_CASE("dataset: preprocessing math and layouts on a synthetic set") {
  TempDir dir;
  REQUIRE(write_npy(dir.file("x.npy"), two_nhwc_samples()).ok());
  REQUIRE(write_npy(dir.file("y.npy"), make_tensor<int32_t>(DType::i32, {2}, {3, 0})).ok());
  DatasetSpec spec;
  spec.format = DataFormat::npy;
  spec.samples_path = dir.file("x.npy");
  spec.labels_path = dir.file("y.npy");
  spec.preprocess.scale = 0.5;
  spec.preprocess.mean = {1, 2, 3};
  spec.preprocess.std = {2, 4, 8};
  spec.preprocess.source_layout = "NHWC";

  SUBCASE("NHWC file to NCHW network") {
    spec.preprocess.layout = "NCHW";
    auto ds = load_dataset(spec);
    REQUIRE(ds.ok());
    REQUIRE(ds->samples.shape() == Shape{2, 3, 2, 2});
    const float* x = ds->samples.data<float>();
    // n=1, c=2, h=1, w=0: stored 100 + 10*2 + 2 = 122 -> (61 - 3) / 8 = 7.25
    CHECK(x[((1 * 3 + 2) * 2 + 1) * 2 + 0] == doctest::Approx(7.25));
    // n=0, c=0, h=0, w=0: stored 0 -> (0 - 1) / 2 = -0.5
    CHECK(x[0] == doctest::Approx(-0.5));
    const double mean[3] = {1, 2, 3}, sd[3] = {2, 4, 8};
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < 3; ++c)
        for (int hw = 0; hw < 4; ++hw)
          CHECK(x[(n * 3 + c) * 4 + hw] == doctest::Approx((0.5 * (100 * n + 10 * hw + c) - mean[c]) / sd[c]));
    REQUIRE(ds->labels.has_value());
    CHECK(ds->labels->dtype() == DType::i64);
    CHECK(ds->labels->to_int64_vector() == std::vector<int64_t>{3, 0});
  }
  SUBCASE("NHWC file to NHWC network keeps the order") {
    spec.preprocess.layout = "NHWC";
    auto ds = load_dataset(spec);
    REQUIRE(ds.ok());
    REQUIRE(ds->samples.shape() == Shape{2, 2, 2, 3});
    // n=1, h=1, w=0, c=2 at flat index ((1*2+1)*2+0)*3+2 = 20
    CHECK(ds->samples.data<float>()[20] == doctest::Approx(7.25));
  }
  SUBCASE("NCHW file to NHWC network") {
    // Store the NCHW version, then ask for NHWC back: must equal the NHWC preprocessed values.
    Tensor nchw(DType::u8, {2, 3, 2, 2});
    Tensor src = two_nhwc_samples();
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < 3; ++c)
        for (int hw = 0; hw < 4; ++hw)
          nchw.data<uint8_t>()[(n * 3 + c) * 4 + hw] = src.data<uint8_t>()[(n * 4 + hw) * 3 + c];
    REQUIRE(write_npy(dir.file("x.npy"), nchw).ok());
    spec.preprocess.source_layout = "NCHW";
    spec.preprocess.layout = "NHWC";
    auto ds = load_dataset(spec);
    REQUIRE(ds.ok());
    REQUIRE(ds->samples.shape() == Shape{2, 2, 2, 3});
    CHECK(ds->samples.data<float>()[20] == doctest::Approx(7.25));
    CHECK(ds->samples.data<float>()[1] == doctest::Approx((0.5 * 1 - 2) / 4));
  }
  SUBCASE("NHW images get a channel axis; one mean/std for all") {
    Tensor nhw = make_tensor<uint8_t>(DType::u8, {2, 1, 2}, {0, 255, 51, 102});
    REQUIRE(write_npy(dir.file("x.npy"), nhw).ok());
    spec.preprocess = {};
    spec.preprocess.scale = 1.0 / 255;
    spec.preprocess.mean = {0.2};
    spec.preprocess.std = {0.5};
    spec.preprocess.layout = "NHWC";
    auto ds = load_dataset(spec);
    REQUIRE(ds.ok());
    CHECK(ds->samples.shape() == Shape{2, 1, 2, 1});
    CHECK(ds->samples.to_double_vector()[1] == doctest::Approx(1.6));
    CHECK(ds->samples.to_double_vector()[2] == doctest::Approx(0.0).epsilon(1e-6));
    spec.preprocess.layout = "NCHW";
    auto nchw = load_dataset(spec);
    REQUIRE(nchw.ok());
    CHECK(nchw->samples.shape() == Shape{2, 1, 1, 2});
  }
  SUBCASE("float labels become float32 targets") {
    REQUIRE(write_npy(dir.file("y.npy"), make_tensor<double>(DType::f64, {2, 2}, {0.5, 1, 2, -3})).ok());
    auto ds = load_dataset(spec);
    REQUIRE(ds.ok());
    REQUIRE(ds->labels.has_value());
    CHECK(ds->labels->dtype() == DType::f32);
    CHECK(ds->labels->shape() == Shape{2, 2});
    auto row = ds->label_batch(1, 2);
    REQUIRE(row.has_value());
    CHECK(row->shape() == Shape{1, 2});
    CHECK(row->to_double_vector() == std::vector<double>{2, -3});
  }
  SUBCASE("wrong number of means") {
    spec.preprocess.mean = {1, 2};
    auto ds = load_dataset(spec);
    REQUIRE(!ds.ok());
    CHECK(contains(ds.status().message(), "mean has 2 values"));
    CHECK(contains(ds.status().message(), "x.npy"));
  }
  SUBCASE("zero std") {
    spec.preprocess.std = {1, 0, 1};
    auto ds = load_dataset(spec);
    REQUIRE(!ds.ok());
    CHECK(contains(ds.status().message(), "std[1]"));
  }
}

TEST_CASE("dataset: split and label errors name the file and split") {
  TempDir dir;
  REQUIRE(write_npy(dir.file("x.npy"), Tensor(DType::f32, {10, 4})).ok());
  REQUIRE(write_npy(dir.file("y9.npy"), Tensor(DType::i64, {9})).ok());
  DatasetSpec spec;
  spec.format = DataFormat::npy;
  spec.samples_path = dir.file("x.npy");

  for (SplitRange bad : {SplitRange{0, 11}, SplitRange{5, 5}, SplitRange{-1, 3}, SplitRange{7, 2}}) {
    CAPTURE(bad.begin);
    CAPTURE(bad.end);
    spec.splits = {{"ok", {0, 10}}, {"calibrate", bad}};
    auto ds = load_dataset(spec);
    REQUIRE(!ds.ok());
    CHECK(ds.status().code() == Errc::invalid_input);
    CHECK(contains(ds.status().message(), "split 'calibrate'"));
    CHECK(contains(ds.status().message(), dir.file("x.npy")));
    CHECK(contains(ds.status().message(), "10 samples"));
  }

  spec.splits = {{"tune", {0, 4}}, {"test", {4, 10}}};
  auto ok = load_dataset(spec);
  REQUIRE(ok.ok());
  CHECK(ok->samples.shape() == Shape{10, 4});  // feature vectors stay as they are
  CHECK(!ok->labels.has_value());
  CHECK(!ok->label_batch(0, 2).has_value());
  auto missing = ok->split("calibrate");
  REQUIRE(!missing.ok());
  CHECK(contains(missing.status().message(), "'calibrate'"));
  CHECK(contains(missing.status().message(), "test, tune"));

  spec.labels_path = dir.file("y9.npy");
  auto wrong = load_dataset(spec);
  REQUIRE(!wrong.ok());
  CHECK(contains(wrong.status().message(), dir.file("y9.npy")));
  CHECK(contains(wrong.status().message(), "10 samples"));

  write_bytes(dir.file("labels.txt"), "1 2 3\n");
  spec.labels_path = dir.file("labels.txt");
  auto text = load_dataset(spec);
  REQUIRE(!text.ok());
  CHECK(contains(text.status().message(), "neither .npy nor IDX"));
}

TEST_CASE("atomic_file: writes replace whole files and leave no temporaries") {
  TempDir dir;
  std::string target = dir.file("sub/deeper/out.json");
  REQUIRE(ensure_directory(dir.file("sub/deeper")).ok());
  REQUIRE(ensure_directory(dir.file("sub/deeper")).ok());  // already there: fine
  REQUIRE(write_file_atomic(target, "first version, longer").ok());
  REQUIRE(write_file_atomic(target, "second").ok());
  CHECK(read_bytes(target) == "second");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.file("sub/deeper"))) {
    CAPTURE(e.path().string());
    ++entries;
  }
  CHECK(entries == 1);

  auto no_dir = write_file_atomic(dir.file("nope/out.json"), "x");
  REQUIRE(!no_dir.ok());
  CHECK(no_dir.code() == Errc::runtime);
  CHECK(contains(no_dir.message(), dir.file("nope/out.json")));

  // Renaming over a directory fails after the temp file was written: it must be removed.
  REQUIRE(ensure_directory(dir.file("sub/deeper/taken")).ok());
  auto over_dir = write_file_atomic(dir.file("sub/deeper/taken"), "x");
  REQUIRE(!over_dir.ok());
  CHECK(contains(over_dir.message(), "taken"));
  entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.file("sub/deeper"))) ++entries;
  CHECK(entries == 2);  // out.json and the directory, no temporary

  write_bytes(dir.file("plain"), "file");
  auto blocked = ensure_directory(dir.file("plain"));
  REQUIRE(!blocked.ok());
  CHECK(contains(blocked.message(), "plain"));
}

TEST_CASE("atomic_file: a FIFO (or a device such as /dev/null) is written to, not replaced") {
  TempDir dir;
  const std::string fifo = dir.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // A second name for the FIFO, to release the reader if the write went elsewhere.
  const std::string spare = dir.file("pipe-link");
  REQUIRE(::link(fifo.c_str(), spare.c_str()) == 0);
  std::string got;
  std::thread reader([&] {
    std::ifstream in(fifo, std::ios::binary);
    got.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  });
  const Status st = write_file_atomic(fifo, "through the pipe");
  struct stat now {};
  if (::stat(fifo.c_str(), &now) != 0 || !S_ISFIFO(now.st_mode)) {
    const int release = ::open(spare.c_str(), O_WRONLY);  // the reader gets EOF
    if (release >= 0) ::close(release);
  }
  reader.join();
  REQUIRE(st.ok());
  CHECK(got == "through the pipe");
  struct stat after {};
  REQUIRE(::stat(fifo.c_str(), &after) == 0);
  CHECK(S_ISFIFO(after.st_mode));  // still the FIFO: a rename would have made it a regular file
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++entries;
  CHECK(entries == 2);  // the FIFO's two names, no temporary beside them
}
