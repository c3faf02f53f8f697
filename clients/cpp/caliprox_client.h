#pragma once
// A client of `caliprox serve` (man caliprox-serve): header only, POSIX
// sockets and the standard library, no caliprox headers. Frames are
//   u32 LE header length | header (JSON text) | u64 LE payload length | payload
// and tensors travel as raw little-endian float32 in the payload.
//
//   caliprox::ServeClient c("/tmp/net.sock");
//   std::vector<float> y = c.infer({2, 1, 28, 28}, x);  // x: 2*1*28*28 floats
//   // c.output_shape() is the shape of y; errors throw std::runtime_error.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace caliprox {

class ServeClient {
 public:
  explicit ServeClient(const std::string& socket_path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || socket_path.size() >= sizeof addr.sun_path) throw std::runtime_error("caliprox client: bad socket");
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("caliprox client: cannot connect to " + socket_path);
    }
  }
  ~ServeClient() { ::close(fd_); }
  ServeClient(const ServeClient&) = delete;
  ServeClient& operator=(const ServeClient&) = delete;

  // One batch in (shape [N, ...], float32), the network's output out.
  // first_sample: the batch's first sample in the application's stream (the
  // server's error model draws by it).
  // `network`: which of the experiment's networks (its `networks:` key);
  // empty for the only one. Names are [a-z][a-z0-9_-]*: no JSON escaping.
  std::vector<float> infer(const std::vector<int64_t>& shape, const std::vector<float>& x, int64_t first_sample = 0,
                           const std::string& network = "") {
    std::string header = "{";
    if (!network.empty()) header += "\"network\": \"" + network + "\", ";
    header += "\"inputs\": [{\"dtype\": \"float32\", \"shape\": [";
    for (size_t i = 0; i < shape.size(); ++i) header += (i ? ", " : "") + std::to_string(shape[i]);
    header += "]}], \"first_sample\": " + std::to_string(first_sample) + "}";
    send_frame(header, x.data(), x.size() * sizeof(float));
    std::string reply;
    std::vector<float> y;
    read_frame(reply, y);
    if (reply.find("\"error\"") != std::string::npos) throw std::runtime_error("caliprox serve: " + reply);
    shape_ = parse_shape(reply);
    return y;
  }
  const std::vector<int64_t>& output_shape() const { return shape_; }

 private:
  void write_all(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd_, c, n);
      if (w <= 0) throw std::runtime_error("caliprox client: write failed");
      c += w;
      n -= static_cast<size_t>(w);
    }
  }
  void read_all(void* p, size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      const ssize_t r = ::read(fd_, c, n);
      if (r <= 0) throw std::runtime_error("caliprox client: the server closed the connection");
      c += r;
      n -= static_cast<size_t>(r);
    }
  }
  // Lengths are little-endian on the wire; this header assumes a
  // little-endian host (x86-64, aarch64).
  void send_frame(const std::string& header, const void* payload, uint64_t bytes) {
    const uint32_t h = static_cast<uint32_t>(header.size());
    write_all(&h, 4);
    write_all(header.data(), header.size());
    write_all(&bytes, 8);
    write_all(payload, bytes);
  }
  void read_frame(std::string& header, std::vector<float>& payload) {
    uint32_t h = 0;
    read_all(&h, 4);
    header.resize(h);
    read_all(header.data(), h);
    uint64_t bytes = 0;
    read_all(&bytes, 8);
    payload.resize(bytes / sizeof(float));
    read_all(payload.data(), bytes);
  }
  static std::vector<int64_t> parse_shape(const std::string& header) {
    std::vector<int64_t> shape;
    const auto at = header.find("\"shape\"");
    if (at == std::string::npos) return shape;
    const auto open = header.find('[', at), close = header.find(']', at);
    std::string list = header.substr(open + 1, close - open - 1);
    for (size_t p = 0; p < list.size();) {
      size_t used = 0;
      shape.push_back(std::stoll(list.substr(p), &used));
      p += used;
      while (p < list.size() && (list[p] == ',' || list[p] == ' ')) ++p;
    }
    return shape;
  }

  int fd_ = -1;
  std::vector<int64_t> shape_;
};

}  // namespace caliprox
