#!/usr/bin/env bash
# Cross-builds caliprox for aarch64 and runs its unit tests and the ONNX
# conformance suite under qemu-aarch64 (`make test-aarch64`).
#
#   scripts/test-aarch64.sh [BUILD]    (default: build-aarch64)
#
# scripts/aarch64-sysroot.sh prepares the cross tools, the arm64 sysroot and
# the Meson cross file; the cross file names qemu-aarch64 -L <sysroot> as
# Meson's exe wrapper, so `meson test` (through scripts/run-tests.sh, which
# also prints the closing "tests: N passed, N failed, N skipped" line) runs
# the aarch64 test binaries under qemu. JOBS sets ninja's parallelism
# (default 2).
#
# QEMU_CPU (read by qemu-aarch64 itself) picks the emulated CPU; default
# neoverse-n1 (Advanced SIMD, no SVE), as on the common aarch64 servers.
# qemu's own default, `max`, has 512-bit SVE, which only A64FX-class chips
# have and for which oneDNN 2.6 picks its jit:sve_512 kernels instead of
# the gemm / reference paths that every other aarch64 CPU gets; to test
# those, run with QEMU_CPU=max.
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/.." && pwd)
cd "$root_dir"
BUILD=${1:-build-aarch64}
JOBS=${JOBS:-2}
sysroot_dir=$root_dir/build-aarch64-sysroot
cross_file=$sysroot_dir/cross.ini

bash scripts/aarch64-sysroot.sh "$sysroot_dir"
[[ -f "$cross_file" ]] || { echo "test-aarch64: $cross_file missing after aarch64-sysroot.sh" >&2; exit 1; }

if [[ ! -f "$BUILD/build.ninja" ]]; then
  meson setup "$BUILD" --cross-file "$cross_file" ${MESON_FLAGS:-}
elif ! grep -qsF "$cross_file" "$BUILD/meson-private/cmd_line.txt"; then
  echo "test-aarch64: $BUILD exists but is not a build with $cross_file; remove it or pass another folder" >&2
  exit 1
fi
ninja -C "$BUILD" -j "$JOBS"

export QEMU_CPU=${QEMU_CPU:-neoverse-n1}
echo "test-aarch64: running the tests under qemu-aarch64 (QEMU_CPU=$QEMU_CPU)" >&2

status=0
bash scripts/run-tests.sh "$BUILD" || status=$?

# caliprox deploy to an aarch64 target: the native binary pushes this build
# over ssh (an sshd of the test's own on 127.0.0.1) and runs it under
# qemu-aarch64 through the target's command prefix.
native=${NATIVE_BUILD:-build}/src/cli/caliprox
if [[ -x "$native" ]]; then
  echo "== caliprox deploy to an aarch64 target (qemu-aarch64 as the command prefix)" >&2
  CALIPROX_CLI_TEST_ONLY=aarch64 python3 tests/cli_deploy_test.py "$native" "$root_dir" \
    "$root_dir/$BUILD/src/cli/caliprox" "$sysroot_dir/root" || status=1
else
  echo "test-aarch64: no native build at $native: the aarch64 deploy case was not run" >&2
fi
exit $status
