// SHA-256 against the FIPS 180-4 examples, and the staging manifest of an
// MPI job (dist/stage.h) that names the workers' mirror: order and
// duplicates do not matter, content and the executable bit do.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "dist/cluster.h"
#include "dist/stage.h"
#include "temp_dir.h"
#include "util/sha256.h"

using namespace caliprox;

TEST_CASE("sha256: the FIPS 180-4 examples, streamed in any pieces") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(sha256_hex(two_blocks) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;
  for (size_t i = 0; i < two_blocks.size(); i += 7) h.update(two_blocks.substr(i, 7));
  CHECK(h.hex_digest() == sha256_hex(two_blocks));
  Sha256 million;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) million.update(chunk);
  CHECK(million.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("stage: the manifest names the files by content, in any order") {
  testing::ScratchDir dir("stage");
  const std::string a = dir.path.string() + "/a.bin", b = dir.path.string() + "/b.sh";
  std::ofstream(a) << "model bytes";
  std::ofstream(b) << "#!/bin/sh\n";
  ::chmod(b.c_str(), 0755);
  auto m1 = make_manifest({b, a, a});
  REQUIRE(m1.ok());
  REQUIRE(m1->files.size() == 2);
  CHECK(m1->files[0].path == a);
  CHECK(m1->files[0].sha256 == sha256_hex("model bytes"));
  CHECK(m1->files[0].size == 11);
  CHECK_FALSE(m1->files[0].executable);
  CHECK(m1->files[1].executable);
  auto m2 = make_manifest({a, b});
  REQUIRE(m2.ok());
  CHECK(m2->id == m1->id);
  auto back = StageManifest::from_json(m1->to_json());
  REQUIRE(back.ok());
  CHECK(back->id == m1->id);
  CHECK(back->files[1].executable);
  std::ofstream(a) << "other bytes";
  auto m3 = make_manifest({a, b});
  REQUIRE(m3.ok());
  CHECK(m3->id != m1->id);
  auto missing = make_manifest({dir.path.string() + "/nope.onnx"});
  CHECK(missing.status().code() == Errc::invalid_input);
  CHECK(missing.status().message().find("nope.onnx") != std::string::npos);
  CHECK_FALSE(StageManifest::from_json(nlohmann::json{{"id", "x"}}).ok());
}

TEST_CASE("cluster: the launcher's environment says whether this is an MPI job") {
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("PMI_SIZE");
  CHECK_FALSE(launch_of_environment().by_mpirun);
  ::setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
  ::setenv("OMPI_COMM_WORLD_RANK", "2", 1);
  const Launch l = launch_of_environment();
  CHECK(l.by_mpirun);
  CHECK(l.size == 3);
  CHECK(l.rank == 2);
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");
  const Status st = status_from_json(status_json(Status(Errc::unreachable, "gone")));
  CHECK(st.code() == Errc::unreachable);
  CHECK(st.message() == "gone");
  CHECK(status_from_json(status_json(Status())).ok());
}
