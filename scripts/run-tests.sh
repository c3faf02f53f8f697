#!/usr/bin/env bash
# Runs every test suite through Meson (timeouts, logs) and prints one closing
# line that adds up the counts: "tests: N passed, N failed, N skipped".
#
# On a CPU with AVX-512 the kernel, knob and model suites (the unit tests)
# and the ONNX conformance suite run a second time with the ISA capped at
# AVX2 (CALIPROX_MAX_ISA, which the project's kernels and oneDNN both
# follow), so that every run covers both x86 tiers. The test cases a pass
# skips for want of a CPU feature are listed with their reasons.
set -uo pipefail
BUILD=${1:-build}
# The OpenMP settings the caliprox binary gives itself (src/util/process_policy.h).
# The test binaries apply that policy too, by re-executing themselves, but
# under qemu (the aarch64 tests) re-executing fails, so they are set here.
export OMP_WAIT_POLICY=passive
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000}
logdir="$BUILD/meson-logs"

# The export test (tests/ort_export_test.py) runs exported networks in ONNX
# Runtime: bench/package.json pins onnxruntime-node. Installed here, once,
# from the npm registry; without it (no npm, no network) that test reports
# SKIP with the reason. The package ships the CPU runtime; its install
# script would only fetch optional GPU libraries.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# npm_ci DIR PACKAGE CONSEQUENCE [VAR=VALUE ...]: `npm ci` in DIR once (until
# DIR/node_modules/PACKAGE exists), with the given environment; a failure
# only says what it costs.
npm_ci() {
  local dir=$1 package=$2 consequence=$3
  shift 3
  [[ -f "$root/$dir/node_modules/$package/package.json" ]] && return 0
  command -v npm >/dev/null 2>&1 || return 0
  (cd "$root/$dir" && env "$@" npm ci --no-audit --no-fund >&2) ||
    echo "run-tests: npm ci in $dir/ failed; $consequence" >&2
}
npm_ci bench onnxruntime-node "the ONNX Runtime export test will be skipped" ONNXRUNTIME_NODE_INSTALL=skip

# The report test drives Debian's chromium with playwright-core
# (tests/browser/package.json; no browser is downloaded). Without it that
# test's browser part reports SKIP with the reason.
npm_ci tests/browser playwright-core "the report test's browser checks will be skipped"

# Suites run side by side, one per core (TEST_JOBS overrides): most of
# them are one process on one core at a time (the unit tests, the CLI
# scripts, ONNX Runtime's runs), and OMP_WAIT_POLICY=passive keeps the
# oneDNN teams of two suites from spinning against each other.
jobs=${TEST_JOBS:-$(nproc)}
meson test -C "$BUILD" --print-errorlogs --num-processes "$jobs"
status=$?
logs=("$logdir/testlog.txt")

# What the CPU probe reported to the unit tests ("cpu: x86-64 avx2 ...; no
# ..."; under qemu for a cross build), before any cap of our own.
cpu_line=$(grep -h -m1 '^cpu:' "$logdir/testlog.txt" || true)
echo "${cpu_line:-cpu: (the unit tests did not report the CPU)}"
has_avx512=0
if [[ "${cpu_line%%;*}" == *" avx512f/bw/dq/vl"* ]]; then has_avx512=1; fi
if [[ $has_avx512 -eq 1 && -z "${CALIPROX_MAX_ISA:-}${ONEDNN_MAX_CPU_ISA:-}${DNNL_MAX_CPU_ISA:-}" ]]; then
  echo "== the unit and conformance suites again, with the ISA capped at AVX2 (CALIPROX_MAX_ISA=avx2)"
  CALIPROX_MAX_ISA=avx2 meson test -C "$BUILD" --print-errorlogs --num-processes "$jobs" --logbase testlog-avx2 \
    unit conformance
  capped=$?
  [[ $capped -ne 0 ]] && status=$capped
  logs+=("$logdir/testlog-avx2.txt")
elif [[ $has_avx512 -eq 0 && "$cpu_line" == "cpu: x86-64"* ]]; then
  echo "== no AVX-512 on this CPU: the AVX-512 variants are skipped (listed below)"
fi

passed=0; failed=0; skipped=0
for log in "${logs[@]}"; do
  [[ -f "$log" ]] || continue
  echo "-- $(basename "$log" .txt): test cases skipped on this CPU"
  grep -h '^\[skipped\]' "$log" | sort -u | sed 's/^/   /'
  # doctest: "[doctest] test cases:  57 |  57 passed | 0 failed | 0 skipped"
  if line=$(grep -h '\[doctest\] test cases:' "$log" | tail -n 1); then
    read -r p f s < <(sed -E 's/.*\|\s*([0-9]+) passed\s*\|\s*([0-9]+) failed\s*\|\s*([0-9]+) skipped.*/\1 \2 \3/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  fi
  # Every other suite ends with its own "N passed, N failed, N skipped" line.
  while read -r p f s; do
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  done < <(grep -hE '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" |
           sed -E 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')
done

if [[ $status -ne 0 && $failed -eq 0 ]]; then failed=1; fi  # a crash or timeout counts as a failure
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
