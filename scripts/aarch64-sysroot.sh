#!/usr/bin/env bash
# Prepares the aarch64 cross build: installs the native cross tools
# (g++-aarch64-linux-gnu, qemu-user) if missing, downloads Debian's arm64
# builds of the stack and unpacks them into a sysroot, and writes the Meson
# cross file for it.
#
#   scripts/aarch64-sysroot.sh [DIR]    (default: build-aarch64-sysroot)
#
# DIR/root       the sysroot (--sysroot for g++, -L for qemu-aarch64)
# DIR/cross.ini  cross/aarch64-linux-gnu.ini.in with the sysroot's path
# DIR/apt, debs  apt's arm64 lists and the downloaded packages (a cache)
#
# Why not `apt-get install pkg:arm64`: libyaml-cpp-dev:arm64 is not
# co-installable with the amd64 package (apt would remove the native one).
# So apt runs here on private lists and an empty status file with arm64 as
# its only architecture: `install --download-only` then resolves the whole
# dependency closure without touching the system's dpkg database, and
# dpkg -x unpacks each package. Idempotent: a stamp holding the package list
# skips the download and unpack when nothing changed.
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root_dir/build-aarch64-sysroot}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sysroot=$dir/root

die() { echo "aarch64-sysroot: $*" >&2; exit 1; }

# The arm64 -dev packages the build needs (meson.build, src/backends/onednn,
# tests): their run-time libraries, libc, libstdc++ and libgomp come with the
# closure. OpenCL: oneDNN's CMake package looks it up, and with CLBlast the
# OpenCL backend is built for aarch64 too (under qemu it finds no device and
# its tests report the skip).
PKGS=(
  libfmt-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev zlib1g-dev
  libprotobuf-dev libonnx-dev libdnnl-dev doctest-dev
  ocl-icd-opencl-dev opencl-headers libclblast-dev libhwy-dev
)

# 1. Native tools (the native build's packages too: protoc, cmake, meson).
bash "$root_dir/scripts/install-deps.sh" --aarch64
for tool in aarch64-linux-gnu-g++ qemu-aarch64 dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || die "'$tool' not found after install-deps.sh --aarch64"
done

stamp=$sysroot/.caliprox-sysroot
want="packages: ${PKGS[*]}"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "aarch64-sysroot: $sysroot is up to date" >&2
else
  # 2. Download the closure with a private apt state (lists, cache, status).
  apt_dir=$dir/apt
  mkdir -p "$apt_dir/lists/partial" "$dir/debs/partial"
  : >"$apt_dir/status"
  apt_opts=(
    -o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
    -o Dir::Cache="$apt_dir/cache" -o Dir::Cache::archives="$dir/debs"
    -o APT::Install-Recommends=false -o Debug::NoLocking=true
  )
  echo "aarch64-sysroot: fetching arm64 package lists" >&2
  apt-get "${apt_opts[@]}" update -qq || die "apt-get update (arm64 lists) failed"
  echo "aarch64-sysroot: downloading ${PKGS[*]} and their dependencies" >&2
  apt-get "${apt_opts[@]}" install -y -qq --download-only "${PKGS[@]}" >/dev/null ||
    die "apt-get could not download the arm64 packages"

  # 3. Unpack into a fresh tree, then swap it in (an interrupted run leaves
  # no half-built sysroot behind).
  tmp=$dir/root.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  shopt -s nullglob
  debs=("$dir"/debs/*_arm64.deb "$dir"/debs/*_all.deb)
  ((${#debs[@]} > 0)) || die "no packages in $dir/debs"
  for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$tmp"; done
  # Merge /lib, /bin, /sbin into /usr as an installed bookworm system has
  # them: arm64 binaries ask for /lib/ld-linux-aarch64.so.1.
  for d in lib bin sbin; do
    if [[ -d "$tmp/$d" && ! -L "$tmp/$d" ]]; then
      mkdir -p "$tmp/usr/$d"
      cp -a "$tmp/$d/." "$tmp/usr/$d/"
      rm -rf "${tmp:?}/$d"
    fi
    ln -sfn "usr/$d" "$tmp/$d"
  done
  # Absolute links (e.g. libfoo.so -> /lib/aarch64-linux-gnu/libfoo.so.1)
  # would point out of the sysroot: make them relative.
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    [[ "$target" == /* ]] || continue
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$tmp$target")" "$link"
  done < <(find "$tmp" -type l -print0)
  [[ -e "$tmp/lib/ld-linux-aarch64.so.1" ]] || die "the sysroot has no /lib/ld-linux-aarch64.so.1"
  echo "$want" >"$tmp/.caliprox-sysroot"
  rm -rf "$sysroot"
  mv "$tmp" "$sysroot"
  echo "aarch64-sysroot: unpacked ${#debs[@]} packages into $sysroot" >&2
fi

# 4. The cross file, always rewritten (cheap; follows template edits).
sed "s|@SYSROOT@|$sysroot|g" "$root_dir/cross/aarch64-linux-gnu.ini.in" >"$dir/cross.ini"
echo "aarch64-sysroot: cross file $dir/cross.ini" >&2
