#include "eval/serve_host.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/log.h"

namespace caliprox {

namespace {

constexpr uint32_t kMaxHeader = 1 << 16;
constexpr uint64_t kMaxPayload = uint64_t{1} << 30;

// Reads exactly n bytes; false at end of stream, on an error, or when
// `done()` says so while waiting (the socket has a receive timeout).
bool read_all(int fd, void* p, size_t n, const std::function<bool()>& done) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !done()) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool send_frame(int fd, const nlohmann::json& header, const void* payload, uint64_t bytes) {
  const std::string h = header.dump();
  const uint32_t hn = static_cast<uint32_t>(h.size());
  return write_all(fd, &hn, 4) && write_all(fd, h.data(), h.size()) && write_all(fd, &bytes, 8) &&
         write_all(fd, payload, bytes);
}

// Binds `path`, refusing a path that exists and is not a stale socket.
Result<int> listen_on(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return invalid_input("--socket '{}': a socket path is 1 to {} bytes long", path, sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return invalid_input("--socket '{}' exists and is not a socket; not touching it", path);
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool alive = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (alive) return invalid_input("--socket '{}': another server is listening there", path);
    ::unlink(path.c_str());  // a stale socket left by a server that died
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return runtime_error("socket: {}", std::strerror(errno));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 8) != 0) {
    const int e = errno;
    ::close(fd);
    return runtime_error("--socket '{}': {}", path, std::strerror(e));
  }
  return fd;
}

nlohmann::json error_header(std::string text) { return {{"error", std::move(text)}}; }

}  // namespace

struct ServeHost::Net {
  std::unique_ptr<Evaluator> ev;
  std::optional<ErrorModel> model;
  std::shared_ptr<const AdaptationTable> table;  // with adapt: run-time adaptation
  std::optional<AdaptiveController> adapt;
  int last_level = -1;                  // the level the previous request ran at
  std::map<int64_t, int> configured;    // per batch size: the level its session is set to
  std::set<std::pair<int, int64_t>> prepared;  // (level, batch) whose kernels exist

  // Adaptation: the level this request (of `batch` samples) runs at,
  // switched to if need be. The first switch to a level at a batch size
  // prepares its kernels: timed apart from the steady-state switches.
  Status switch_level(int64_t batch, SwitchTimes& times) {
    if (!adapt) return {};
    CP_ASSIGN_OR_RETURN(Session * s, ev->session(batch));
    const int level = adapt->level();
    const bool first = prepared.insert({level, batch}).second;
    const auto it = configured.find(batch);
    if (it != configured.end() && it->second == level) {
      last_level = level;
      return {};
    }
    const auto t0 = std::chrono::steady_clock::now();
    CP_TRY(s->configure(adapt->knobs()));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (last_level >= 0 && level != last_level) (first ? times.first : times.steady).add(dt);
    configured[batch] = level;
    last_level = level;
    return {};
  }

  // One request for this network: the reply header (outputs or error), `out` its tensor.
  nlohmann::json answer(const nlohmann::json& h, const std::vector<char>& payload, uint64_t seed, Tensor& out,
                        SwitchTimes& times) {
    if (!h.contains("inputs") || !h["inputs"].is_array() || h["inputs"].size() != 1 || !h["inputs"][0].is_object())
      return error_header("the header must be a JSON object with \"inputs\": [{\"dtype\", \"shape\"}] (one input)");
    const auto& in = h["inputs"][0];
    if (in.value("dtype", "") != "float32")
      return error_header(fmt::format("dtype {}: expected float32", in.value("dtype", "?")));
    Shape shape;
    if (!in.contains("shape") || !in["shape"].is_array()) return error_header("the input has no \"shape\" list");
    for (const auto& d : in["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 1)
        return error_header(fmt::format("shape {}: dimensions are positive integers", in["shape"].dump()));
      shape.push_back(d.get<int64_t>());
    }
    if (Status st = check_input_fits(*ev->io().input, shape, "the request"); !st.ok()) return error_header(st.message());
    if (payload.size() != static_cast<size_t>(shape_numel(shape)) * 4)
      return error_header(fmt::format("shape {} needs {} payload bytes, found {}", shape_str(shape),
                                      shape_numel(shape) * 4, payload.size()));
    Tensor x(DType::f32, shape);
    std::memcpy(x.raw(), payload.data(), payload.size());
    if (Status st = switch_level(shape[0], times); !st.ok()) return error_header(st.message());
    const int level = last_level;
    auto session = ev->session(shape[0]);
    if (!session.ok()) return error_header(session.status().message());
    if (Status st = (*session)->run(std::span<const Tensor>(&x, 1)); !st.ok()) return error_header(st.message());
    const auto& names = (*session)->output_names();
    const size_t k = static_cast<size_t>(std::find(names.begin(), names.end(), ev->io().output) - names.begin());
    out = (*session)->output(k).clone();
    const auto first = h.value("first_sample", int64_t{0});
    if (model)
      if (Status st = apply_error_model(*model, out, seed, first); !st.ok()) return error_header(st.message());
    nlohmann::json reply = {{"outputs", {{{"name", ev->io().output}, {"dtype", "float32"}, {"shape", out.shape()}}}}};
    if (adapt) {
      reply["level"] = level;
      adapt->observe(out.span<float>());
    }
    return reply;
  }
};

Result<std::unique_ptr<ServeHost>> ServeHost::create(const Experiment& exp, const std::string& backend, int threads) {
  std::unique_ptr<ServeHost> host(new ServeHost());
  for (const NetworkSpec& n : exp.networks) {
    Experiment one = exp;
    CP_TRY(select_network(one, n.name, "serve"));
    auto net = std::make_unique<Net>();
    CP_ASSIGN_OR_RETURN(net->ev, Evaluator::create(one, backend, threads, false,
                                                    [](const std::string& text) { log_info("{}", text); }));
    host->names_.push_back(n.name);
    host->nets_.push_back(std::move(net));
  }
  return host;
}

ServeHost::~ServeHost() { stop(); }

Status ServeHost::set(const std::map<std::string, ServedState>& states, uint64_t seed) {
  for (const auto& [name, state] : states) {
    if (std::find(names_.begin(), names_.end(), name) == names_.end())
      return invalid_input("network '{}': not in the experiment (it has: {})", name, fmt::join(names_, ", "));
    if (state.config && state.error_model)
      return invalid_input("network '{}': serve a configuration or an error model, not both", name);
  }
  for (size_t i = 0; i < names_.size(); ++i) {
    const auto it = states.find(names_[i]);
    const ServedState none;
    const ServedState& s = it == states.end() ? none : it->second;
    CP_TRY(nets_[i]->ev->configure(s.config.value_or(KnobConfig{})).with_context(fmt::format("network '{}'", names_[i])));
    nets_[i]->model = s.error_model;
    nets_[i]->adapt.reset();
    nets_[i]->table.reset();
    nets_[i]->last_level = -1;
    nets_[i]->configured.clear();
  }
  seed_ = seed;
  return {};
}

Status ServeHost::set_adaptation(const std::string& name, std::shared_ptr<const AdaptationTable> table,
                                 AdaptStrategy kind, const StrategyParams& params) {
  const auto it = std::find(names_.begin(), names_.end(), name);
  if (it == names_.end())
    return invalid_input("network '{}': not in the experiment (it has: {})", name, fmt::join(names_, ", "));
  Net& net = *nets_[static_cast<size_t>(it - names_.begin())];
  const std::string model = net.ev->experiment().network.model_path;
  if (std::filesystem::path(table->model).lexically_normal() != std::filesystem::path(model).lexically_normal())
    return invalid_input("the adaptation table is for model {}, network '{}' is {}", table->model, name, model);
  for (const AdaptationLevel& l : table->levels)
    CP_TRY(net.ev->configure(l.knobs).with_context(fmt::format("adaptation level {} ({})", l.level, l.id)));
  CP_ASSIGN_OR_RETURN(AdaptiveController c, AdaptiveController::create(*table, kind, params));
  net.table = std::move(table);
  net.adapt.emplace(std::move(c));
  net.model.reset();
  net.last_level = -1;
  net.configured.clear();
  net.prepared.clear();
  return {};
}

void ServeHost::connection(int fd, int64_t max_requests) {
  for (;;) {
    uint32_t hn = 0;
    if (!read_all(fd, &hn, 4, done_)) return;
    if (hn > kMaxHeader) {
      send_frame(fd, error_header(fmt::format("header of {} bytes: at most {}", hn, kMaxHeader)), nullptr, 0);
      return;  // the stream cannot be resynchronised
    }
    std::string text(hn, '\0');
    uint64_t bytes = 0;
    if (!read_all(fd, text.data(), hn, done_) || !read_all(fd, &bytes, 8, done_)) return;
    if (bytes > kMaxPayload) {
      send_frame(fd, error_header(fmt::format("payload of {} bytes: at most {}", bytes, kMaxPayload)), nullptr, 0);
      return;
    }
    std::vector<char> payload(bytes);
    if (!read_all(fd, payload.data(), bytes, done_)) return;
    Tensor out;
    nlohmann::json reply;
    const nlohmann::json h = nlohmann::json::parse(text, nullptr, false);
    if (h.is_discarded() || !h.is_object()) {
      reply = error_header("the header is not a JSON object");
    } else if (h.contains("network") && !h["network"].is_string()) {
      reply = error_header("\"network\" names a network (a string)");
    } else if (!h.contains("network") && names_.size() > 1) {
      reply = error_header(fmt::format("which network? give \"network\": one of {}", fmt::join(names_, ", ")));
    } else {
      const std::string name = h.value("network", names_.front());
      const auto it = std::find(names_.begin(), names_.end(), name);
      if (it == names_.end())
        reply = error_header(fmt::format("no network '{}' (the experiment's: {})", name, fmt::join(names_, ", ")));
      else
        reply = nets_[static_cast<size_t>(it - names_.begin())]->answer(h, payload, seed_, out, switch_times_);
    }
    const bool ok = !reply.contains("error");
    if (ok) ++served_;
    else log_warn("serve: request refused: {}", reply["error"].get<std::string>());
    if (!send_frame(fd, reply, ok ? out.raw() : nullptr, ok ? out.nbytes() : 0)) return;
    if (max_requests > 0 && served_ >= max_requests) return;
  }
}

void ServeHost::loop(int listener, const std::function<bool()>& done, int64_t max_requests) {
  done_ = done;
  while (!done() && !(max_requests > 0 && served_ >= max_requests)) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;  // look at the stop flag now and then
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // Reads wake every 200 ms to look at done(): a client that stops
    // talking does not pin the server when it is told to stop.
    timeval tv{0, 200000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connection(fd, max_requests);
    ::close(fd);
  }
}

Status ServeHost::serve(const std::string& path, const std::function<bool()>& done, int64_t max_requests) {
  CP_ASSIGN_OR_RETURN(int listener, listen_on(path));
  loop(listener, done, max_requests);
  ::close(listener);
  ::unlink(path.c_str());
  return {};
}

Status ServeHost::start(const std::string& path) {
  stop();
  CP_ASSIGN_OR_RETURN(listener_, listen_on(path));
  path_ = path;
  stopping_ = false;
  thread_ = std::thread([this] { loop(listener_, [this] { return stopping_.load(); }, 0); });
  return {};
}

void ServeHost::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  thread_.join();
  ::close(listener_);
  ::unlink(path_.c_str());
  listener_ = -1;
}

Result<SocketDir> SocketDir::create() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp && std::strlen(tmp) < 60 ? tmp : "/tmp";
  std::string pattern = base + "/caliprox-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    return runtime_error("cannot make a folder for a server socket under {}: {}", base, std::strerror(errno));
  return SocketDir(pattern);
}

SocketDir::~SocketDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace caliprox
