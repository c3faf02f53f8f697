// caliprox_conformance: runs the ONNX backend-test cases shipped by Debian's
// libonnx-testdata (model.onnx + test_data_set_*/{input,output}_N.pb) on each
// backend and compares with the expected outputs using the ONNX backend
// test's tolerances. See tests/conformance.md.
//
// Each case runs in a forked child so a crashing or hanging kernel costs one
// case (reported as failed), not the whole run.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include "backends/backend.h"
#include "ir/onnx_import.h"
#include "ir/onnx_proto.h"
#include "engine/session.h"
#include "util/log.h"
#include "util/process_policy.h"

namespace fs = std::filesystem;
using namespace caliprox;

namespace {

// onnx/backend/test/runner: np.testing.assert_allclose(ref, out, rtol=1e-3, atol=1e-7).
constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-7;
constexpr const char* kDefaultDataRoot = "/usr/share/libonnx-testdata/data";
constexpr const char* kSuites[] = {"node", "pytorch-converted", "pytorch-operator"};

enum class Outcome { pass, fail, skip };

struct BackendResult {
  std::string backend;
  Outcome outcome = Outcome::pass;
  std::string reason;  // why it failed or was skipped
  // Some node ran on this backend's own kernels (not all on the reference
  // fallback), in every data set.
  bool native = false;
  // Some data set also ran with its batch split over two threads.
  bool split = false;
};

struct Case {
  std::string name;  // "node/test_abs"
  fs::path dir;
};

struct Settings {
  std::vector<std::string> backends;
  std::vector<fs::path> roots;
  std::string filter;
  bool list_skips = false;
  bool fork_cases = true;
  bool verbose = false;
  int jobs = 1;
  int timeout_s = 120;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

Result<NamedTensor> read_pb(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_input("{}: cannot open", path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) return invalid_input("{}: not a valid TensorProto", path.string());
  auto t = tensor_from_proto(proto, path.parent_path().string());
  if (!t.ok()) return t.status().with_context(path.string());
  return NamedTensor{proto.name(), std::move(t).value()};
}

// input_0.pb, input_1.pb, ... in numeric order.
std::vector<fs::path> numbered_files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int i = 0;; ++i) {
    fs::path p = dir / fmt::format("{}_{}.pb", prefix, i);
    if (!fs::exists(p)) break;
    files.push_back(p);
  }
  return files;
}

std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

bool is_float(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16; }

// Empty when `got` matches `want`; otherwise what differs, with the max abs error.
std::string compare(const Tensor& got, const Tensor& want, const std::string& name) {
  if (got.dtype() != want.dtype())
    return fmt::format("output '{}': dtype {}, expected {}", name, dtype_name(got.dtype()), dtype_name(want.dtype()));
  if (got.shape() != want.shape())
    return fmt::format("output '{}': shape {}, expected {}", name, shape_str(got.shape()), shape_str(want.shape()));
  int64_t bad = 0, worst = -1;
  double max_abs = 0;
  const bool fp = is_float(want.dtype());
  // 64-bit integers compared exactly (a double cannot hold every value).
  const bool i64 = want.dtype() == DType::i64 || want.dtype() == DType::u64;
  for (int64_t i = 0; i < want.numel(); ++i) {
    bool ok;
    double err = 0;
    if (i64) {
      int64_t g, w;
      std::memcpy(&g, static_cast<const std::byte*>(got.raw()) + 8 * i, 8);
      std::memcpy(&w, static_cast<const std::byte*>(want.raw()) + 8 * i, 8);
      ok = g == w;
      err = std::fabs(static_cast<double>(g) - static_cast<double>(w));
    } else {
      double g = got.at_double(i), w = want.at_double(i);
      if (fp && std::isnan(w)) ok = std::isnan(g);
      else if (fp && std::isinf(w)) ok = g == w;
      else if (fp) ok = !std::isnan(g) && std::fabs(g - w) <= kAtol + kRtol * std::fabs(w);
      else ok = g == w;
      err = std::isfinite(g) && std::isfinite(w) ? std::fabs(g - w) : (ok ? 0 : HUGE_VAL);
    }
    if (!ok) {
      ++bad;
      if (worst < 0 || err > max_abs) worst = i;
    }
    if (!ok || err > max_abs) max_abs = std::max(max_abs, err);
  }
  if (bad == 0) return {};
  return fmt::format("output '{}': {} of {} values outside rtol={} atol={}; max abs error {:.3g}, worst at {} "
                     "(got {:.7g}, expected {:.7g})", name, bad, want.numel(), kRtol, kAtol, max_abs,
                     index_str(worst, want.shape()), got.at_double(worst), want.at_double(worst));
}

// ONNX 1.12 wrote the test data of bfloat16 values as UINT16 tensors of the
// same bit patterns (NumPy has no bfloat16): read them as the bfloat16 the
// model declares.
Tensor bf16_from_test_data(const Tensor& t, DType declared) {
  if (declared != DType::bf16 || t.dtype() != DType::u16) return t;
  return Tensor::copy_of(DType::bf16, t.shape(), t.raw());
}

// One test_data_set on one backend.
BackendResult run_data_set(const Graph& graph, Backend& backend, const fs::path& set_dir) {
  BackendResult r{std::string(backend.name()), Outcome::pass, {}};
  auto fail = [&](Outcome o, std::string why) {
    r.outcome = o;
    r.reason = std::move(why);
    return r;
  };
  auto load_all = [&](const std::string& prefix, std::vector<NamedTensor>& out) -> Status {
    for (const auto& p : numbered_files(set_dir, prefix)) {
      CP_ASSIGN_OR_RETURN(NamedTensor t, read_pb(p));
      out.push_back(std::move(t));
    }
    return {};
  };
  std::vector<NamedTensor> inputs, outputs;
  for (const char* prefix : {"input", "output"}) {
    Status st = load_all(prefix, std::string(prefix) == "input" ? inputs : outputs);
    if (!st.ok()) return fail(st.code() == Errc::unsupported ? Outcome::skip : Outcome::fail, st.message());
  }
  // Data files carry the input's name; older cases rely on position.
  bool by_name = std::all_of(inputs.begin(), inputs.end(), [&](const NamedTensor& t) {
    return graph.find_input(t.name) != nullptr;
  });
  if (!by_name && inputs.size() != graph.inputs.size())
    return fail(Outcome::fail, fmt::format("{} input files for {} graph inputs", inputs.size(), graph.inputs.size()));
  std::map<std::string, Tensor> data;
  for (size_t i = 0; i < inputs.size(); ++i)
    data[by_name ? inputs[i].name : graph.inputs[i].name] = inputs[i].tensor;
  for (auto& [name, t] : data)
    if (const ValueInfo* info = graph.find_input(name)) t = bf16_from_test_data(t, info->dtype);
  for (auto& out : outputs)
    for (const auto& info : graph.outputs)
      if (info.name == out.name) out.tensor = bf16_from_test_data(out.tensor, info.dtype);

  SessionOptions options;
  std::map<std::string, Shape> shapes;
  for (const auto& in : graph.inputs) {
    auto it = data.find(in.name);
    if (it == data.end()) return fail(Outcome::fail, fmt::format("no data for graph input '{}'", in.name));
    if (in.dims && in.dims->size() != it->second.shape().size())
      return fail(Outcome::skip, fmt::format("the case's data contradicts its model: input '{}' has shape {} but the "
                                             "model declares rank {}",
                                             in.name, shape_str(it->second.shape()), in.dims->size()));
    // Integer and bool inputs are mostly shapes, axes and indices: binding
    // them lets shape inference see their values (e.g. Reshape's shape).
    if (is_float(it->second.dtype())) shapes[in.name] = it->second.shape();
    else options.bound_inputs[in.name] = it->second;
  }
  auto session = Session::create(graph, backend, shapes, options);
  if (!session.ok() && session.status().code() == Errc::unsupported) {
    // Small float vectors fed as inputs are parameters in these cases
    // (Resize's scales and roi): exporters make them initializers, and the
    // output shape depends on them. Retry with them bound as constants.
    SessionOptions retry = options;
    std::map<std::string, Shape> retry_shapes;
    for (const auto& [name, shape] : shapes) {
      if (shape.size() <= 1) retry.bound_inputs[name] = data.at(name);
      else retry_shapes[name] = shape;
    }
    if (retry.bound_inputs.size() > options.bound_inputs.size())
      if (auto second = Session::create(graph, backend, retry_shapes, retry); second.ok()) session = std::move(second);
  }
  if (!session.ok())
    return fail(session.status().code() == Errc::unsupported ? Outcome::skip : Outcome::fail,
                session.status().message());
  // Runs a session and compares its outputs with the expected ones.
  auto check = [&](Session& session, std::string_view how) -> std::string {
    std::vector<Tensor> run_inputs;
    for (const auto& name : session.input_names()) run_inputs.push_back(data.at(name));
    Status st = session.run(run_inputs);
    if (!st.ok()) return fmt::format("run{}: {}", how, st.message());
    const auto& out_names = session.output_names();
    for (size_t k = 0; k < outputs.size(); ++k) {
      auto it = std::find(out_names.begin(), out_names.end(), outputs[k].name);
      size_t index = it != out_names.end() ? static_cast<size_t>(it - out_names.begin()) : k;
      if (index >= out_names.size())
        return fmt::format("expected output #{} ('{}') but the session has {} outputs", k, outputs[k].name,
                           out_names.size());
      std::string diff = compare(session.output(index), outputs[k].tensor, out_names[index]);
      if (!diff.empty()) return fmt::format("{}{}", diff, how);
    }
    return {};
  };
  if (std::string why = check(**session, ""); !why.empty()) return fail(Outcome::fail, why);
  for (const auto& [node, ran_on] : (*session)->node_backends())
    if (ran_on == backend.name()) r.native = true;

  // The same case with two threads: a batch of 2+ on a graph that keeps its
  // samples apart runs split (engine/batch_split.h), one chunk per thread.
  std::map<std::string, Shape> fed;
  for (const auto& name : (*session)->input_names()) fed[name] = data.at(name).shape();
  SessionOptions two = options;
  two.threads = 2;
  for (const auto& name : (*session)->input_names()) two.bound_inputs.erase(name);
  for (const auto& [name, t] : data)
    if (!fed.count(name)) two.bound_inputs[name] = t;
  if (auto split = Session::create(graph, backend, fed, two); split.ok() && (*split)->batch_split().chunk > 0) {
    r.split = true;
    const BatchSplit& p = (*split)->batch_split();
    if (std::string why = check(**split, fmt::format(" (batch split in {} chunks of {})", p.chunks, p.chunk));
        !why.empty())
      return fail(Outcome::fail, why);
  }
  return r;
}

// A backend that cannot be created here (the OpenCL backend without a
// device) skips every case, with its reason.
using BackendList = std::vector<Result<std::unique_ptr<Backend>>>;

// Cases whose expected outputs contradict the spec as ONNX Runtime and later
// ONNX releases read it: skipped with the reason, never counted as passes.
const char* known_data_defect(const std::string& case_name) {
  static const std::map<std::string, const char*> kDefects = {
      {"test_cast_FLOAT_to_BFLOAT16",
       "the expected output truncates float to bfloat16; ONNX Runtime, the ONNX reference since 1.13 and caliprox "
       "round to nearest even (onnx/onnx#3876)"},
  };
  auto it = kDefects.find(case_name);
  return it == kDefects.end() ? nullptr : it->second;
}

std::vector<BackendResult> run_case(const Case& c, const std::vector<std::string>& backend_list,
                                    BackendList& backends) {
  std::vector<BackendResult> results;
  auto all = [&](Outcome o, const std::string& why) {
    for (const auto& b : backend_list) results.push_back({b, o, why});
    return results;
  };
  if (const char* defect = known_data_defect(c.dir.filename().string()))
    return all(Outcome::skip, fmt::format("known defect of this case's data: {}", defect));
  auto graph = load_onnx((c.dir / "model.onnx").string(), LoadOptions{.require_supported_ops = false});
  if (!graph.ok())
    return all(graph.status().code() == Errc::unsupported ? Outcome::skip : Outcome::fail, graph.status().message());
  auto missing = unsupported_ops(*graph);
  if (!missing.empty()) return all(Outcome::skip, fmt::format("unsupported op {}", fmt::join(missing, ", ")));
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(c.dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return all(Outcome::fail, "no test_data_set_* folder");
  for (size_t b = 0; b < backends.size(); ++b) {
    if (!backends[b].ok()) {
      results.push_back(
          {backend_list[b], Outcome::skip, fmt::format("backend unavailable: {}", backends[b].status().message())});
      continue;
    }
    Backend& backend = **backends[b];
    BackendResult overall{std::string(backend.name()), Outcome::pass, {}, true};
    for (const auto& set : sets) {
      BackendResult r = run_data_set(*graph, backend, set);
      overall.native = overall.native && r.native;
      overall.split = overall.split || r.split;
      if (r.outcome == Outcome::pass) continue;
      if (overall.outcome == Outcome::pass || r.outcome == Outcome::fail) {
        overall = r;
        if (sets.size() > 1) overall.reason = fmt::format("{}: {}", set.filename().string(), r.reason);
      }
      if (r.outcome == Outcome::fail) break;
    }
    results.push_back(std::move(overall));
  }
  return results;
}

std::string op_types(const fs::path& dir) {
  auto g = load_onnx((dir / "model.onnx").string(), LoadOptions{.require_supported_ops = false});
  if (!g.ok()) return "?";
  std::vector<std::string> ops;
  for (const auto& n : g->nodes)
    if (std::find(ops.begin(), ops.end(), n.op_type) == ops.end()) ops.push_back(n.op_type);
  if (ops.size() > 4) {
    ops.resize(4);
    ops.push_back("...");
  }
  return fmt::format("{}", fmt::join(ops, ","));
}

// The same limitation hit by many cases differs only in paths and names:
// strip those so skips group by cause.
std::string skip_group(const std::string& reason) {
  static const std::regex path(R"(^\S*/model\.onnx: |\S*/test_data_set_\d+/\S+\.pb: |^test_data_set_\d+: )");
  static const std::regex node(R"(node '[^']*' \(([^,]+), #\d+\))");
  static const std::regex named(R"((graph input|graph output|tensor|input|output|value|initializer) '[^']*')");
  std::string s = std::regex_replace(reason, path, "");
  s = std::regex_replace(s, node, "$1");
  s = std::regex_replace(s, named, "$1 '*'");
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::pass: return "pass";
    case Outcome::fail: return "fail";
    case Outcome::skip: return "skip";
  }
  return "?";
}

// Child -> parent wire format: one line per backend, fields separated by \x1f.
std::string encode(const std::vector<BackendResult>& results) {
  std::string out;
  for (const auto& r : results) {
    std::string reason = r.reason.substr(0, 4000);
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    out += fmt::format("{}\x1f{}\x1f{}{}\x1f{}\n", r.backend, outcome_name(r.outcome), r.native ? 1 : 0,
                       r.split ? 1 : 0, reason);
  }
  return out;
}

std::vector<BackendResult> decode(const std::string& text) {
  std::vector<BackendResult> results;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t a = line.find('\x1f'), b = line.find('\x1f', a + 1), c = line.find('\x1f', b + 1);
    if (a == std::string::npos || b == std::string::npos || c == std::string::npos) continue;
    std::string o = line.substr(a + 1, b - a - 1);
    const std::string flags = line.substr(b + 1, c - b - 1);  // native, split
    results.push_back({line.substr(0, a), o == "pass" ? Outcome::pass : o == "skip" ? Outcome::skip : Outcome::fail,
                       line.substr(c + 1), flags.size() > 0 && flags[0] == '1', flags.size() > 1 && flags[1] == '1'});
  }
  return results;
}

struct Running {
  pid_t pid;
  int fd;
  size_t case_index;
};

std::vector<BackendResult> finish_child(const Running& r, int status, const Settings& s) {
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(r.fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(r.fd);
  auto results = decode(text);
  std::string why;
  if (WIFSIGNALED(status))
    why = WTERMSIG(status) == SIGALRM ? fmt::format("timed out after {} s", s.timeout_s)
                                      : fmt::format("crashed ({})", strsignal(WTERMSIG(status)));
  else if (WEXITSTATUS(status) != 0)
    why = fmt::format("child exited with status {}", WEXITSTATUS(status));
  for (const auto& b : s.backends) {
    bool reported = std::any_of(results.begin(), results.end(), [&](const BackendResult& x) { return x.backend == b; });
    if (!reported) results.push_back({b, Outcome::fail, why.empty() ? "no result reported" : why});
  }
  return results;
}

// Runs every case (forked, up to s.jobs at a time) and returns results by case.
void run_all(const std::vector<Case>& cases, const Settings& s, const std::function<void(size_t)>& on_done,
             std::vector<std::vector<BackendResult>>& results) {
  auto make_backends = [&] {
    BackendList list;
    for (const auto& name : s.backends) list.push_back(create_backend(name, {}));
    return list;
  };
  if (!s.fork_cases) {
    auto backends = make_backends();
    for (size_t i = 0; i < cases.size(); ++i) {
      results[i] = run_case(cases[i], s.backends, backends);
      on_done(i);
    }
    return;
  }
  std::vector<Running> running;
  size_t next = 0;
  while (next < cases.size() || !running.empty()) {
    while (next < cases.size() && static_cast<int>(running.size()) < s.jobs) {
      int fds[2];
      if (pipe(fds) != 0) std::abort();
      fflush(stdout);
      fflush(stderr);
      pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        alarm(static_cast<unsigned>(s.timeout_s));
        auto backends = make_backends();
        std::string text = encode(run_case(cases[next], s.backends, backends));
        for (size_t off = 0; off < text.size();) {
          ssize_t w = write(fds[1], text.data() + off, text.size() - off);
          if (w <= 0) _exit(3);
          off += static_cast<size_t>(w);
        }
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], next++});
    }
    int status = 0;
    pid_t done = waitpid(-1, &status, 0);
    auto it = std::find_if(running.begin(), running.end(), [&](const Running& r) { return r.pid == done; });
    if (it == running.end()) continue;
    results[it->case_index] = finish_child(*it, status, s);
    on_done(it->case_index);
    running.erase(it);
  }
}

std::vector<Case> find_cases(const Settings& s) {
  std::vector<Case> cases;
  auto add_suite = [&](const fs::path& suite) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(suite))
      if (e.is_directory() && fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) cases.push_back({suite.filename().string() + "/" + d.filename().string(), d});
  };
  for (const auto& root : s.roots) {
    if (fs::exists(root / "model.onnx")) {
      cases.push_back({root.parent_path().filename().string() + "/" + root.filename().string(), root});
    } else if (fs::exists(root / "node")) {
      for (const char* suite : kSuites)
        if (fs::is_directory(root / suite)) add_suite(root / suite);
    } else {
      add_suite(root);
    }
  }
  if (!s.filter.empty())
    std::erase_if(cases, [&](const Case& c) { return c.name.find(s.filter) == std::string::npos; });
  return cases;
}

int usage(std::FILE* out, const char* argv0, int code) {
  fmt::print(out,
             "usage: {} [--backend NAME]... [--filter SUBSTR] [--list-skips] [-j N] [--timeout S] [--no-fork] "
             "[--verbose] [DATA_DIR]...\n"
             "  DATA_DIR: a libonnx-testdata data folder (default $CALIPROX_ONNX_TESTDATA or {}),\n"
             "            one suite folder (e.g. .../node) or one case folder\n",
             argv0, kDefaultDataRoot);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  apply_process_policy(argv);  // the OpenMP settings the caliprox binary runs with
  Settings s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (a == "--backend") s.backends.push_back(value());
    else if (a == "--filter") s.filter = value();
    else if (a == "--list-skips") s.list_skips = true;
    else if (a == "--no-fork") s.fork_cases = false;
    else if (a == "--verbose") s.verbose = true;
    else if (a == "-j") s.jobs = std::max(1, std::atoi(value().c_str()));
    else if (a == "--timeout") s.timeout_s = std::max(1, std::atoi(value().c_str()));
    else if (a == "-h" || a == "--help") return usage(stdout, argv[0], 0);
    else if (!a.empty() && a[0] == '-') return usage(stderr, argv[0], 2);
    else s.roots.emplace_back(a);
  }
  set_log_level(LogLevel::error);
  if (s.backends.empty())
    for (auto name : backend_names()) s.backends.emplace_back(name);
  // Names are checked without creating a backend: the parent process must
  // not start library thread pools that forked children would inherit.
  const auto known = backend_names();
  for (const auto& b : s.backends) {
    if (std::find(known.begin(), known.end(), b) == known.end()) {
      fmt::print(stderr, "unknown backend '{}' (built: {})\n", b, fmt::join(known, ", "));
      return 2;
    }
  }
  if (s.roots.empty()) {
    const char* env = std::getenv("CALIPROX_ONNX_TESTDATA");
    s.roots.emplace_back(env && *env ? env : kDefaultDataRoot);
  }
  for (const auto& r : s.roots) {
    if (!fs::is_directory(r)) {
      fmt::print(stderr, "{}: no ONNX test data here (install libonnx-testdata or set CALIPROX_ONNX_TESTDATA)\n",
                 r.string());
      return 77;  // meson: skipped
    }
  }
  std::vector<Case> cases = find_cases(s);
  if (cases.empty()) return fmt::print(stderr, "no cases found (filter '{}')\n", s.filter), 77;

  auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<BackendResult>> results(cases.size());
  int passed = 0, failed = 0, skipped = 0;
  auto on_done = [&](size_t i) {
    for (const auto& r : results[i]) {
      if (r.outcome == Outcome::pass) ++passed;
      else if (r.outcome == Outcome::skip) ++skipped;
      else ++failed;
      if (r.outcome == Outcome::fail)
        fmt::print("FAIL {} [{}] ({}): {}\n", cases[i].name, r.backend, op_types(cases[i].dir), r.reason);
      else if (s.verbose)
        fmt::print("{} {} [{}]{}{}\n", r.outcome == Outcome::pass ? "PASS" : "SKIP", cases[i].name, r.backend,
                   r.reason.empty() ? "" : ": ", r.reason);
    }
    std::fflush(stdout);
  };
  run_all(cases, s, on_done, results);

  // Skip reasons grouped by cause, most frequent first.
  std::map<std::string, std::vector<std::string>> groups;
  for (size_t i = 0; i < cases.size(); ++i)
    for (const auto& r : results[i])
      if (r.outcome == Outcome::skip) groups[skip_group(r.reason)].push_back(cases[i].name + " [" + r.backend + "]");
  std::vector<std::pair<std::string, std::vector<std::string>>> sorted(groups.begin(), groups.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  if (!sorted.empty()) fmt::print("skipped (case x backend), by reason:\n");
  for (const auto& [reason, names] : sorted) {
    std::vector<std::string> few(names.begin(), names.begin() + static_cast<long>(std::min<size_t>(3, names.size())));
    fmt::print("  {:5}  {}\n         e.g. {}{}\n", names.size(), reason, fmt::join(few, ", "),
               names.size() > few.size() ? ", ..." : "");
  }
  // Passing on a backend says little about its kernels when every node fell
  // back to the reference backend.
  for (const auto& b : s.backends) {
    if (b == "reference") continue;
    int pass = 0, native = 0;
    for (const auto& per_case : results)
      for (const auto& r : per_case)
        if (r.backend == b && r.outcome == Outcome::pass) ++pass, native += r.native ? 1 : 0;
    fmt::print("{}: {} of {} passing cases ran at least one node on {} kernels (the rest fell back to reference)\n", b,
               native, pass, b);
  }
  for (const auto& b : s.backends) {
    int split = 0;
    for (const auto& per_case : results)
      for (const auto& r : per_case)
        if (r.backend == b && r.outcome == Outcome::pass && r.split) ++split;
    fmt::print("{}: {} passing cases also passed with their batch split over two threads\n", b, split);
  }
  if (s.list_skips) {
    fmt::print("all skips:\n");
    for (size_t i = 0; i < cases.size(); ++i)
      for (const auto& r : results[i])
        if (r.outcome == Outcome::skip) fmt::print("  SKIP {} [{}]: {}\n", cases[i].name, r.backend, r.reason);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "{} cases x {} backends in {:.1f} s\n", cases.size(), s.backends.size(), secs);
  fmt::print("{} passed, {} failed, {} skipped\n", passed, failed, skipped);
  return failed > 0 ? 1 : 0;
}
