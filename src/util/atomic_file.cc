#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

namespace caliprox {

namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Unique within the process (counter) and across processes (pid + random), so
// parallel writers of the same artifact never share a temporary file.
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  return fmt::format("{}.tmp.{}.{}.{:x}", path, static_cast<long>(::getpid()), counter.fetch_add(1), salt & 0xffffff);
}

Status write_all(int fd, std::string_view bytes, const std::string& tmp) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return runtime_error("cannot write {}: {}", tmp, errno_text(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return {};
}

// Makes the rename itself durable; failure here is not worth failing the write
// (some file systems refuse fsync on directories).
void sync_directory_of(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

Status write_file_atomic(const std::string& path, std::string_view bytes) {
  if (path.empty()) return invalid_input("cannot write a file with an empty path");
  // A device, FIFO or socket (--json /dev/null, /dev/stdout, a pipe) is
  // written to as it is: renaming a file over it would replace the device
  // node itself with a regular file.
  struct stat st_path {};
  if (::stat(path.c_str(), &st_path) == 0 && !S_ISREG(st_path.st_mode) && !S_ISDIR(st_path.st_mode)) {
    const int out = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (out < 0) return runtime_error("cannot open {} for writing: {}", path, errno_text(errno));
    Status written = write_all(out, bytes, path);
    ::close(out);
    return written;
  }
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = temp_name_for(path);
    // 0666 minus the umask: artifacts get the same permissions as with fopen().
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return runtime_error("cannot create a temporary file for {}: {}", path, errno_text(errno));

  Status st = write_all(fd, bytes, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = runtime_error("cannot flush {} to disk: {}", tmp, errno_text(errno));
  if (::close(fd) != 0 && st.ok()) st = runtime_error("cannot close {}: {}", tmp, errno_text(errno));
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    st = runtime_error("cannot rename {} to {}: {}", tmp, path, errno_text(errno));
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.with_context(fmt::format("writing {}", path));
  }
  sync_directory_of(path);
  return {};
}

Status ensure_directory(const std::string& dir) {
  if (dir.empty()) return invalid_input("cannot create a directory with an empty path");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return runtime_error("cannot create directory {}: {}", dir, ec.message());
  if (!std::filesystem::is_directory(dir, ec))
    return runtime_error("cannot create directory {}: a file that is not a directory is in the way", dir);
  return {};
}

}  // namespace caliprox
