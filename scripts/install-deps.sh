#!/usr/bin/env bash
# Installs the Debian packages caliprox needs to build, test and run its demo,
# and the plotting libraries `caliprox report` inlines into its pages (npm ci
# in src/report/web/; the build embeds them into the binary).
# Idempotent: only missing packages are installed; waits for the apt lock held by
# other sessions instead of failing. Installs by package name only.
set -euo pipefail

BUILD_PKGS=(
  build-essential meson ninja-build cmake pkg-config
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libfmt-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev opencl-headers libclblast-dev zlib1g-dev doctest-dev
  libhwy-dev
  libopenmpi-dev openmpi-bin
)
DATA_PKGS=(dataset-fashion-mnist libonnx-testdata)
# The tests run the Python client of `caliprox serve` (clients/python), which
# needs numpy, with Debian's /usr/bin/python3; the export test runs the
# exported networks in ONNX Runtime from Node (onnxruntime-node, installed by
# scripts/run-tests.sh with `npm ci` in bench/).
# PoCL: an OpenCL device on the CPU, so the OpenCL backend is tested everywhere;
# openssh-server: the deploy tests start an sshd of their own on 127.0.0.1.
# chromium: the report test opens the pages `caliprox report` writes in headless
# Chromium (driven by playwright-core from tests/browser/, which run-tests.sh installs).
TEST_PKGS=(python3-numpy nodejs npm pocl-opencl-icd openssh-server chromium)
# Open MPI (libopenmpi-dev, openmpi-bin): the MPI scale-out of tune, calibrate
# and inject (meson option mpi, auto), tested with mpirun on this machine.
# (oneDNN's CMake package looks up OpenCL, hence the OpenCL headers; the OpenCL
# backend builds on them and CLBlast.)
# The benchmark drives ONNX Runtime from Node; the model trainers need torch
# (models/train.py also onnx), the fine-tune hooks torch and numpy only.
EXTRA_PKGS=()
for arg in "$@"; do
  case "$arg" in
    --bench) EXTRA_PKGS+=(nodejs npm) ;;
    --train) EXTRA_PKGS+=(python3-torch python3-onnx python3-numpy) ;;
    # The aarch64 cross build (scripts/aarch64-sysroot.sh): the native cross
    # compiler and qemu-aarch64; the arm64 libraries go into a sysroot.
    --aarch64) EXTRA_PKGS+=(g++-aarch64-linux-gnu qemu-user) ;;
    *) echo "install-deps: unknown option '$arg' (expected --bench, --train or --aarch64)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${BUILD_PKGS[@]}" "${DATA_PKGS[@]}" "${TEST_PKGS[@]}" "${EXTRA_PKGS[@]}"; do
  # node/npm may come from outside Debian on some machines; a working binary is enough.
  if [[ "$pkg" == nodejs || "$pkg" == npm ]] && command -v "${pkg/nodejs/node}" >/dev/null 2>&1; then
    continue
  fi
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

# Vega and Vega-Lite, pinned by src/report/web/package-lock.json. Without them
# (no npm, no registry) caliprox still builds and its report pages carry the
# data and tables without plots, saying why.
install_plot_libraries() {
  local web
  web="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/report/web"
  [[ -f "$web/node_modules/vega-lite/build/vega-lite.min.js" ]] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: no npm: caliprox report will write pages without plots" >&2
    return 0
  fi
  (cd "$web" && npm ci --no-audit --no-fund >&2) ||
    echo "install-deps: npm ci in src/report/web failed: caliprox report will write pages without plots" >&2
}

if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present" >&2
  install_plot_libraries
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
install_plot_libraries
