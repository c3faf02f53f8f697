#!/usr/bin/env bash
# Runs every test suite through Meson (timeouts, logs) and prints one closing
# line that adds up the counts: "tests: N passed, N failed, N skipped".
set -uo pipefail
BUILD=${1:-build}
export OMP_WAIT_POLICY=passive
logdir="$BUILD/meson-logs"

meson test -C "$BUILD" --print-errorlogs --num-processes 1
status=$?

passed=0; failed=0; skipped=0
# doctest: "[doctest] test cases:  57 |  57 passed | 0 failed | 0 skipped"
if line=$(grep -h '\[doctest\] test cases:' "$logdir/testlog.txt" | tail -n 1); then
  read -r p f s < <(sed -E 's/.*\|\s*([0-9]+) passed\s*\|\s*([0-9]+) failed\s*\|\s*([0-9]+) skipped.*/\1 \2 \3/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
fi
# Every other suite ends with its own "N passed, N failed, N skipped" line.
while read -r p f s; do
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done < <(grep -hE '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$logdir/testlog.txt" |
         sed -E 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')

if [[ $status -ne 0 && $failed -eq 0 ]]; then failed=1; fi  # a crash or timeout counts as a failure
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
