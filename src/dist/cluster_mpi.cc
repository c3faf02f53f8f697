// The MPI transport of dist/cluster.h (built with -Dmpi=enabled / auto when
// MPI is found). Every MPI call holds one mutex (MPI_THREAD_SERIALIZED):
// rank 0's pool threads each talk to their own worker, and a receive polls
// MPI_Iprobe with a sleep between polls that grows to 2 ms, so an idle rank
// leaves its core to the application runs.
// The C API only: the deprecated C++ bindings do not build warning-free.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include <fmt/format.h>

#include "dist/cluster.h"

namespace caliprox {

namespace {

class MpiCluster final : public Cluster {
 public:
  MpiCluster(int rank, std::vector<std::string> hosts) {
    rank_ = rank;
    hosts_ = std::move(hosts);
  }
  ~MpiCluster() override {
    std::lock_guard lock(mu_);
    MPI_Finalize();
  }

  Status send(int to, int tag, std::string_view bytes) override {
    if (bytes.size() > static_cast<size_t>(INT_MAX))
      return runtime_error("rank {}: a message of {} bytes is too large for one MPI send", rank_, bytes.size());
    // A nonblocking send, completed by polling like receive(): a large
    // message waits for its receiver without holding the lock.
    MPI_Request req;
    {
      std::lock_guard lock(mu_);
      if (MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD, &req) !=
          MPI_SUCCESS)
        return runtime_error("rank {}: MPI_Isend to rank {} failed", rank_, to);
    }
    return wait([&] {
      int done = 0;
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      return done != 0;
    });
  }

  Result<std::string> receive(int from, int tag, int* got_tag) override {
    MPI_Status status;
    CP_TRY(wait([&] {
      int flag = 0;
      MPI_Iprobe(from, tag < 0 ? MPI_ANY_TAG : tag, MPI_COMM_WORLD, &flag, &status);
      return flag != 0;
    }));
    std::lock_guard lock(mu_);
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    std::string bytes(static_cast<size_t>(count), '\0');
    if (MPI_Recv(bytes.data(), count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS)
      return runtime_error("rank {}: MPI_Recv from rank {} failed", rank_, from);
    if (got_tag) *got_tag = status.MPI_TAG;
    return bytes;
  }

 private:
  // Polls `ready` under the lock until true, sleeping between polls.
  template <class Ready> Status wait(const Ready& ready) {
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (ready()) return {};
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
    }
  }

  std::mutex mu_;
};

}  // namespace

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string v(text, static_cast<size_t>(len));
  if (const size_t comma = v.find(','); comma != std::string::npos) v.resize(comma);  // "Open MPI v4.1.4"
  return v;
}

Result<std::unique_ptr<Cluster>> start_cluster(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    return runtime_error("MPI_Init_thread failed");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    return runtime_error("this MPI library gives thread level {} (caliprox needs MPI_THREAD_SERIALIZED)", provided);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  // Every rank's host name, in fixed-size slots (NUL-terminated).
  constexpr size_t kSlot = 256;
  std::string name = this_host_name();
  name.resize(kSlot - 1);
  name.push_back('\0');
  std::vector<char> all(static_cast<size_t>(size) * kSlot);
  MPI_Allgather(name.data(), kSlot, MPI_CHAR, all.data(), kSlot, MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> hosts;
  for (int r = 0; r < size; ++r) hosts.emplace_back(all.data() + static_cast<size_t>(r) * kSlot);
  return std::unique_ptr<Cluster>(new MpiCluster(rank, std::move(hosts)));
}

}  // namespace caliprox
