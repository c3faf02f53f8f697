#!/usr/bin/env bash
# caliprox vs ONNX Runtime speed benchmark (bench/README.md). Usage:
#   bash bench/run.sh BUILD_DIR [MODEL.onnx ...]
# Default models: models/fashion_{lenet,resnet,mobilenet}.onnx.
# Environment: BENCH_WARMUP (5), BENCH_REPEATS (30), BENCH_BATCHES ("1 64"),
# BENCH_THREADS ("1 2"), BENCH_KEEP=1 keeps the work folder (raw JSON, inputs,
# ORT profiles) and prints where it is. Then the knob benchmark (knob_bench,
# bench/README.md): BENCH_KNOBS=0 skips it, BENCH_KNOB_THREADS ("1"),
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

models=("$@")
if ((${#models[@]} == 0)); then
  models=("$root"/models/fashion_{lenet,resnet,mobilenet}.onnx)
fi
for m in "${models[@]}"; do
  if [[ ! -f "$m" ]]; then
    echo "bench: model '$m' not found (train them with models/train.py, or pass ONNX files after the build folder)" >&2
    exit 2
  fi
done

warmup=${BENCH_WARMUP:-5}
repeats=${BENCH_REPEATS:-30}
read -r -a batches <<<"${BENCH_BATCHES:-1 64}"
read -r -a threads <<<"${BENCH_THREADS:-1 2}"

# oneDNN runs on OpenMP: with the default (active) wait policy idle workers
# spin and steal the shared cores from whatever else runs; passive makes the
# figures far steadier on this machine.
export OMP_WAIT_POLICY=passive
# What the caliprox binary sets for itself when OMP_WAIT_POLICY is unset
# (src/util/process_policy.h): workers spin ~30000 rounds before sleeping, so a team
# that runs layer after layer is not woken from sleep each time.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000}

ninja -C "$build" bench/caliprox_bench >&2
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

thread_list=$(IFS=,; echo "${threads[*]}")
"$bench_exe" peak --threads "$thread_list" --trials 10 --seconds 0.1 --json "$work/peak_start.json"

# One process per configuration, caliprox and ORT back to back (alternating
# which goes first) so both see the same machine load.
order=0
for model in "${models[@]}"; do
  net=$(basename "$model" .onnx)
  for b in "${batches[@]}"; do
    for t in "${threads[@]}"; do
      run_caliprox() {
        "$bench_exe" model "$model" --batches "$b" --threads "$t" --warmup "$warmup" --repeats "$repeats" \
          --save-input "$work" --peak-trials 3 --json "$work/caliprox_${net}_b${b}_t${t}.json"
      }
      run_ort() {
        node "$root/bench/ort_bench.js" --model "$model" --input "$work/input_b$b.f32" --batch "$b" \
          --threads "$t" --warmup "$warmup" --repeats "$repeats" --profile-dir "$work/ort-profiles" \
          --json "$work/ort_${net}_b${b}_t${t}.json"
      }
      if ((order % 2 == 0)) || [[ ! -f "$work/input_b$b.f32" ]]; then
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

"$bench_exe" peak --threads "$thread_list" --trials 10 --seconds 0.1 --json "$work/peak_end.json"
node "$root/bench/report.js" --dir "$work" --out "$build/bench-results.json"

# Knob benchmark: every approximation knob on every convolution of the
# ResNet- and MobileNet-style networks at batch 64, against the exact layer.
if [[ "${BENCH_KNOBS:-1}" != 0 ]]; then
  ninja -C "$build" bench/knob_bench >&2
  read -r -a knob_models <<<"${BENCH_KNOB_MODELS:-$root/models/fashion_resnet.onnx $root/models/fashion_mobilenet.onnx}"
  knob_model_list=$(IFS=,; echo "${knob_models[*]}")
  knob_threads=$(echo "${BENCH_KNOB_THREADS:-1}" | tr ' ' ',')
  "$build/bench/knob_bench" --models "$knob_model_list" --threads "$knob_threads" --batch 64 \
    --repeats "${BENCH_KNOB_REPEATS:-20}" --json "$build/knob-bench-results.json"
fi
