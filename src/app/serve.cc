// caliprox serve: the network under test for an application, over a Unix
// socket (man caliprox-serve documents the frames byte by byte): exact, an
// approximate configuration (--config), or the exact outputs perturbed by an
// error model (--error-model). One connection at a time, any number of
// requests per connection; a bad request gets an error frame and the
// server stays up. SIGINT / SIGTERM stop it; the socket file is removed.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "app/common.h"
#include "eval/evaluator.h"
#include "qos/error_model.h"
#include "util/log.h"

namespace caliprox {

namespace {

constexpr uint32_t kMaxHeader = 1 << 16;
constexpr uint64_t kMaxPayload = uint64_t{1} << 30;

// Reads exactly n bytes; false at end of stream or on an error.
bool read_all(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
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
    const int probe = ::socket(AF_UNIX, SOCK_STREAM, 0);
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

struct Server {
  Evaluator& ev;
  std::optional<ErrorModel> model;
  uint64_t seed;
  int64_t served = 0;

  // One request: the reply frame's header and payload, or an error header.
  nlohmann::json answer(const std::string& header_text, const std::vector<char>& payload, Tensor& out) {
    const nlohmann::json h = nlohmann::json::parse(header_text, nullptr, false);
    auto error = [](std::string text) { return nlohmann::json{{"error", std::move(text)}}; };
    if (h.is_discarded() || !h.is_object() || !h.contains("inputs") || !h["inputs"].is_array() ||
        h["inputs"].size() != 1 || !h["inputs"][0].is_object())
      return error("the header must be a JSON object with \"inputs\": [{\"dtype\", \"shape\"}] (one input)");
    const auto& in = h["inputs"][0];
    if (in.value("dtype", "") != "float32") return error(fmt::format("dtype {}: expected float32", in.value("dtype", "?")));
    Shape shape;
    if (!in.contains("shape") || !in["shape"].is_array()) return error("the input has no \"shape\" list");
    for (const auto& d : in["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 1) return error(fmt::format("shape {}: dimensions are positive integers", in["shape"].dump()));
      shape.push_back(d.get<int64_t>());
    }
    if (Status st = check_input_fits(*ev.io().input, shape, "the request"); !st.ok()) return error(st.message());
    if (payload.size() != static_cast<size_t>(shape_numel(shape)) * 4)
      return error(fmt::format("shape {} needs {} payload bytes, found {}", shape_str(shape), shape_numel(shape) * 4,
                               payload.size()));
    Tensor x(DType::f32, shape);
    std::memcpy(x.raw(), payload.data(), payload.size());
    auto session = ev.session(shape[0]);
    if (!session.ok()) return error(session.status().message());
    if (Status st = (*session)->run(std::span<const Tensor>(&x, 1)); !st.ok()) return error(st.message());
    const auto& names = (*session)->output_names();
    const size_t k = static_cast<size_t>(std::find(names.begin(), names.end(), ev.io().output) - names.begin());
    out = (*session)->output(k).clone();
    if (model) {
      if (Status st = apply_error_model(*model, out, seed, h.value("first_sample", int64_t{0})); !st.ok())
        return error(st.message());
    }
    ++served;
    return {{"outputs", {{{"name", ev.io().output}, {"dtype", "float32"}, {"shape", out.shape()}}}}};
  }

  // Serves one connection until the client closes it (or --max-requests).
  void connection(int fd, int64_t max_requests) {
    for (;;) {
      uint32_t hn = 0;
      if (!read_all(fd, &hn, 4)) return;
      if (hn > kMaxHeader) {
        send_frame(fd, {{"error", fmt::format("header of {} bytes: at most {}", hn, kMaxHeader)}}, nullptr, 0);
        return;  // the stream cannot be resynchronised
      }
      std::string header(hn, '\0');
      uint64_t bytes = 0;
      if (!read_all(fd, header.data(), hn) || !read_all(fd, &bytes, 8)) return;
      if (bytes > kMaxPayload) {
        send_frame(fd, {{"error", fmt::format("payload of {} bytes: at most {}", bytes, kMaxPayload)}}, nullptr, 0);
        return;
      }
      std::vector<char> payload(bytes);
      if (!read_all(fd, payload.data(), bytes)) return;
      Tensor out;
      const nlohmann::json reply = answer(header, payload, out);
      const bool ok = !reply.contains("error");
      if (!ok) log_warn("serve: request refused: {}", reply["error"].get<std::string>());
      if (!send_frame(fd, reply, ok ? out.raw() : nullptr, ok ? out.nbytes() : 0)) return;
      if (max_requests > 0 && served >= max_requests) return;
    }
  }
};

}  // namespace

Status run_serve(const ServeSettings& s) {
  CP_ASSIGN_OR_RETURN(Experiment exp, load_experiment(s.experiment_path));
  const ResolvedTarget target = resolve_target(exp, s.common);
  CP_ASSIGN_OR_RETURN(auto ev, Evaluator::create(exp, target.backend, target.threads, false, log_notice));
  if (s.config_path && s.error_model)
    return invalid_input("--config and --error-model: serve one network under test, not both");
  if (s.config_path) {
    CP_ASSIGN_OR_RETURN(KnobConfig config, load_knob_config(*s.config_path));
    CP_TRY(ev->configure(config).with_context(*s.config_path));
  }
  Server server{*ev, std::nullopt, s.seed};
  if (s.error_model) {
    const nlohmann::json j = nlohmann::json::parse(*s.error_model, nullptr, false);
    if (j.is_discarded()) return invalid_input("--error-model: not JSON: {}", *s.error_model);
    CP_ASSIGN_OR_RETURN(ErrorModel m, parse_error_model(j, "--error-model"));
    server.model = m;
  }
  CP_ASSIGN_OR_RETURN(int listener, listen_on(s.socket_path));
  log_info("serve: {} ({}) on {}", exp.network.model_path,
           s.config_path ? *s.config_path : s.error_model ? "exact outputs with an error model" : "exact",
           s.socket_path);
  while (!interrupt_requested() && !(s.max_requests > 0 && server.served >= s.max_requests)) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;  // look at the signal flag now and then
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    server.connection(fd, s.max_requests);
    ::close(fd);
  }
  ::close(listener);
  ::unlink(s.socket_path.c_str());
  log_info("serve: {} request(s) answered; stopped", server.served);
  return {};
}

}  // namespace caliprox
