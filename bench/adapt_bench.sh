#!/usr/bin/env bash
# Run-time adaptation on the bundled ResNet-style experiment (bench/README.md,
# "Run-time adaptation"). Usage:
#   bash bench/adapt_bench.sh BUILD_DIR [pareto.json]
# Without a pareto.json it runs `caliprox tune` first (the experiment's own
# settings, a few minutes on 2 cores). Then `caliprox adapt-sim` measures the
# levels on this machine and simulates every strategy, every static level
# and the oracle over a persistent stream (mean run 30) and a shuffled one;
# the summary says whether the best strategy saves at least 25 % of the
# exact network's measured time at most 1 pp below its accuracy.
set -euo pipefail
if (($# < 1)); then
  echo "usage: bash bench/adapt_bench.sh BUILD_DIR [pareto.json]" >&2
  exit 2
fi
build=$(realpath "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OMP_WAIT_POLICY=passive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
exp="$root/configs/fashion-resnet.yaml"
pareto=${2:-}
if [[ -z "$pareto" ]]; then
  "$build/src/cli/caliprox" tune "$exp" -o "$work/tune" -q
  pareto="$work/tune/pareto.json"
fi
"$build/src/cli/caliprox" adapt-sim "$exp" --pareto "$pareto" -o "$work/adapt"
/usr/bin/python3 - "$work/adapt/adapt-sim.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for s in doc["streams"]:
    rows = {r["strategy"]: r for r in s["results"]}
    exact = rows["static-0"]["accuracy"]
    ok = [r for r in s["results"] if r["strategy"] not in ("oracle",) and not r["strategy"].startswith("static")
          and exact - r["accuracy"] <= 0.01]
    best = max(ok, key=lambda r: r["savings_vs_exact"]) if ok else None
    statics = [r for k, r in rows.items() if k.startswith("static") and exact - r["accuracy"] <= 0.01]
    best_static = max(statics, key=lambda r: r["savings_vs_exact"])
    line = (f"{s['name']}: best strategy {best['strategy']} saves {100 * best['savings_vs_exact']:.1f} % "
            f"at {100 * (exact - best['accuracy']):.2f} pp" if best else f"{s['name']}: no strategy within 1 pp")
    print(line + f"; best static level within 1 pp ({best_static['strategy']}) saves "
          f"{100 * best_static['savings_vs_exact']:.1f} %; oracle {100 * rows['oracle']['savings_vs_exact']:.1f} %"
          + ("; target (>= 25 % at <= 1 pp): met" if best and best["savings_vs_exact"] >= 0.25 else
             "; target (>= 25 % at <= 1 pp): not met"))
PY
