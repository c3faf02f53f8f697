#!/usr/bin/env bash
# caliprox vs ONNX Runtime speed benchmark (bench/README.md). Usage:
#   bash bench/run.sh BUILD_DIR [MODEL.onnx ...]
# Default models: models/fashion_{lenet,resnet,mobilenet}.onnx and the
# third-party networks of bench/third_party.tsv (fetched by
# bench/fetch_models.sh; BENCH_THIRD_PARTY=0 leaves them out). Models given on
# the command line take Fashion-MNIST images ([N,1,H,W], one input).
# Environment: BENCH_WARMUP (5), BENCH_REPEATS (30), BENCH_BATCHES ("1 64"),
# BENCH_THREADS (1, 2, 4 ... up to every core), BENCH_TIERS ("native", plus
# "avx2" on CPUs with AVX-512: the caliprox runs capped at AVX2),
# BENCH_KEEP=1 keeps the work folder (raw JSON, inputs, ORT profiles) and
# prints where it is. Then the knob benchmark (knob_bench, bench/README.md)
# per tier: BENCH_KNOBS=0 skips it, BENCH_KNOB_THREADS ("1"),
# BENCH_KNOB_REPEATS (20), BENCH_KNOB_MODELS (the bundled ResNet- and
# MobileNet-style networks).
set -euo pipefail

if (($# < 1)); then
  echo "usage: bash bench/run.sh BUILD_DIR [MODEL.onnx ...]" >&2
  exit 2
fi
build=$(realpath "$1")
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

warmup=${BENCH_WARMUP:-5}
repeats=${BENCH_REPEATS:-30}
read -r -a default_batches <<<"${BENCH_BATCHES:-1 64}"

# 1, 2, 4 ... and every core (the machine's, as the scheduler lets this process use them).
cores=$(nproc)
if [[ -n "${BENCH_THREADS:-}" ]]; then
  read -r -a threads <<<"$BENCH_THREADS"
else
  threads=()
  for ((t = 1; t < cores; t *= 2)); do threads+=("$t"); done
  threads+=("$cores")
fi

# Tiers: the native one, and AVX2 where the CPU has AVX-512 (probed, never assumed).
if [[ -n "${BENCH_TIERS:-}" ]]; then
  read -r -a tiers <<<"$BENCH_TIERS"
else
  tiers=(native)
  if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then tiers+=(avx2); fi
fi

# Each entry: name|path|input shape ("" = Fashion-MNIST images)|batches|repeats
entries=()
if (($# > 0)); then
  for m in "$@"; do
    [[ -f "$m" ]] || { echo "bench: model '$m' not found" >&2; exit 2; }
    entries+=("$(basename "$m" .onnx)|$(realpath "$m")||${default_batches[*]}|$repeats")
  done
else
  for net in fashion_lenet fashion_resnet fashion_mobilenet; do
    m="$root/models/$net.onnx"
    [[ -f "$m" ]] || { echo "bench: model '$m' not found (train them with models/train.py)" >&2; exit 2; }
    entries+=("$net|$m||${default_batches[*]}|$repeats")
  done
  if [[ "${BENCH_THIRD_PARTY:-1}" != 0 ]]; then
    bash "$root/bench/fetch_models.sh"
    while IFS=$'\t' read -r name _ _ _ shape batches reps _; do
      [[ -z "$name" || "$name" == \#* ]] && continue
      [[ "$reps" == - ]] && reps=$repeats
      entries+=("$name|$root/bench/third_party/$name.onnx|$shape|${batches//,/ }|$reps")
    done <"$root/bench/third_party.tsv"
  fi
fi

# oneDNN runs on OpenMP: with the default (active) wait policy idle workers
# spin and steal the shared cores from whatever else runs; passive makes the
# figures far steadier on this machine.
export OMP_WAIT_POLICY=passive
# What the caliprox binary sets for itself when OMP_WAIT_POLICY is unset
# (src/util/process_policy.h): workers spin ~30000 rounds before sleeping, so a team
# that runs layer after layer is not woken from sleep each time.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000}

ninja -C "$build" bench/caliprox_bench bench/knob_bench >&2
bench_exe="$build/bench/caliprox_bench"

if [[ ! -f "$root/bench/node_modules/onnxruntime-node/package.json" ]]; then
  # The npm package ships the CPU runtime; the install script would only fetch
  # optional GPU libraries.
  (cd "$root/bench" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/caliprox-bench.XXXXXX")
if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
  echo "bench: work folder $work" >&2
else
  trap 'rm -rf "$work"' EXIT
fi

# Runs "$@" with the tier's ISA cap: oneDNN's own variable and the project's.
with_tier() {
  if [[ "$tier" == native ]]; then
    "$@"
  else
    ONEDNN_MAX_CPU_ISA=${tier^^} CALIPROX_MAX_ISA=$tier "$@"
  fi
}

for tier in "${tiers[@]}"; do
  dir="$work/$tier"
  mkdir -p "$dir"
  thread_list=$(IFS=,; echo "${threads[*]}")
  with_tier "$bench_exe" peak --threads "$thread_list" --trials 10 --seconds 0.1 --json "$dir/peak_start.json"
  # One process per configuration, caliprox and ORT back to back (alternating
  # which goes first) so both see the same machine load. ORT has no ISA cap:
  # it runs at the native tier in every table.
  order=0
  for entry in "${entries[@]}"; do
    IFS='|' read -r net model shape batch_list reps <<<"$entry"
    shape_args=()
    [[ -n "$shape" ]] && shape_args=(--input-shape "$shape")
    for b in $batch_list; do
      for t in "${threads[@]}"; do
        input="$dir/inputs/$net/input_b$b.f32"
        run_caliprox() {
          with_tier "$bench_exe" model "$model" "${shape_args[@]}" --batches "$b" --threads "$t" --warmup "$warmup" \
            --repeats "$reps" --save-input "$dir/inputs/$net" --peak-trials 3 --json "$dir/caliprox_${net}_b${b}_t${t}.json"
        }
        run_ort() {
          node "$root/bench/ort_bench.js" --model "$model" --input "$input" --batch "$b" "${shape_args[@]}" \
            --threads "$t" --warmup "$warmup" --repeats "$reps" --profile-dir "$dir/ort-profiles" \
            --json "$dir/ort_${net}_b${b}_t${t}.json"
        }
        if ((order % 2 == 0)) || [[ ! -f "$input" ]]; then
          run_caliprox
          run_ort
        else
          run_ort
          run_caliprox
        fi
        order=$((order + 1))
      done
    done
  done
  with_tier "$bench_exe" peak --threads "$thread_list" --trials 10 --seconds 0.1 --json "$dir/peak_end.json"
  suffix=$([[ "$tier" == native ]] && echo "" || echo "-$tier")
  node "$root/bench/report.js" --dir "$dir" --out "$build/bench-results$suffix.json"

  # Knob benchmark: every approximation knob on every convolution of the
  # ResNet- and MobileNet-style networks at batch 64, against the exact layer.
  if [[ "${BENCH_KNOBS:-1}" != 0 ]]; then
    read -r -a knob_models <<<"${BENCH_KNOB_MODELS:-$root/models/fashion_resnet.onnx $root/models/fashion_mobilenet.onnx}"
    knob_model_list=$(IFS=,; echo "${knob_models[*]}")
    knob_threads=$(echo "${BENCH_KNOB_THREADS:-1}" | tr ' ' ',')
    with_tier "$build/bench/knob_bench" --models "$knob_model_list" --threads "$knob_threads" --batch 64 \
      --repeats "${BENCH_KNOB_REPEATS:-20}" --json "$build/knob-bench-results$suffix.json"
  fi
done
