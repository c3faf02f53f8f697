// dist/cluster.h in a build without MPI: mpirun with several ranks is
// refused (each rank would otherwise run the whole job on its own and
// write the same files).
#include <fmt/format.h>

#include "dist/cluster.h"

namespace caliprox {

std::string mpi_library_version() { return ""; }

Result<std::unique_ptr<Cluster>> start_cluster(int* /*argc*/, char*** /*argv*/) {
  const Launch l = launch_of_environment();
  return Status(Errc::unsupported,
                fmt::format("started by mpirun with {} ranks, but this caliprox was built without MPI "
                            "(caliprox --version says so): install Open MPI (scripts/install-deps.sh) and "
                            "rebuild with meson configure -Dmpi=enabled",
                            l.size));
}

}  // namespace caliprox
