#!/usr/bin/env python3
"""A/B speed comparison of two caliprox builds on the same machine, in one run.

    python3 bench/ab.py BEFORE_BENCH_DIR AFTER_BENCH_DIR [--rounds 3] [--repeats 30]

Each directory holds the caliprox_bench and knob_bench binaries of one build
(BUILD/bench, or a copy of them). Every round runs each configuration with A
and B back to back, alternating which goes first, so both see the same
machine load; the table gives, per configuration, the median over rounds of
each round's median latency, and B/A. Configurations: the bundled networks
at batch 1 and 64 with 1 and 2 threads (caliprox_bench model, end to end),
then the knob benchmark's whole-network times for a few knobs (knob_bench).
Machines here are shared and noisy: read ratios within ~5 % as equal.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["fashion_lenet", "fashion_resnet", "fashion_mobilenet"]


def run_json(cmd, path):
    proc = subprocess.run(cmd + ["--json", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"ab: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    with open(path) as f:
        return json.load(f)


def model_rows(bench_dir, model, repeats, work):
    exe = os.path.join(bench_dir, "caliprox_bench")
    doc = run_json([exe, "model", os.path.join(ROOT, "models", model + ".onnx"), "--batches", "1", "64",
                    "--threads", "1", "2", "--warmup", "5", "--repeats", str(repeats), "--no-layers"],
                   os.path.join(work, "model.json"))
    return {f"{model} b{r['batch']} t{r['threads']}": r["latency_ms"]["median"] for r in doc["runs"]}


def knob_rows(bench_dir, knobs, repeats, work):
    exe = os.path.join(bench_dir, "knob_bench")
    models = ",".join(os.path.join(ROOT, "models", m + ".onnx") for m in ["fashion_resnet", "fashion_mobilenet"])
    doc = run_json([exe, "--models", models, "--threads", "1", "--batch", "64", "--repeats", str(repeats),
                    "--knobs", ",".join(knobs)], os.path.join(work, "knobs.json"))
    rows = {}
    for net in doc["networks"]:
        name = os.path.basename(net["model"]).removesuffix(".onnx")
        for k in net["knobs"]:
            rows[f"{name} b64 t1 all-{k['knob']}"] = k["net_knob_ms"]
            rows[f"{name} b64 t1 exact (knob_bench)"] = k["net_exact_ms"]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="bench folder of build A (before)")
    ap.add_argument("b", help="bench folder of build B (after)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--knobs", default="perf-row-2-0,samp-2-0,bf16,int8")
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()
    for d in (args.a, args.b):
        for exe in ("caliprox_bench", "knob_bench"):
            if not os.access(os.path.join(d, exe), os.X_OK):
                sys.exit(f"ab: {os.path.join(d, exe)} is missing or not executable")
    # The policy bench/run.sh uses (see bench/README.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")
    samples = {"a": {}, "b": {}}
    with tempfile.TemporaryDirectory() as work:
        for rnd in range(args.rounds):
            order = ["a", "b"] if rnd % 2 == 0 else ["b", "a"]
            jobs = [(model_rows, m, args.repeats) for m in MODELS]
            jobs.append((knob_rows, args.knobs.split(","), max(5, args.repeats // 3)))
            for fn, what, repeats in jobs:
                for side in order:
                    rows = fn(getattr(args, side), what, repeats, work)
                    for key, ms in rows.items():
                        samples[side].setdefault(key, []).append(ms)
            print(f"ab: round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    table = []
    print(f"{'configuration':44s} {'A ms':>9s} {'B ms':>9s} {'B/A':>6s}")
    for key in samples["a"]:
        if key not in samples["b"]:
            continue
        a, b = statistics.median(samples["a"][key]), statistics.median(samples["b"][key])
        table.append({"configuration": key, "a_ms": a, "b_ms": b, "ratio": b / a, "rounds": len(samples["a"][key])})
        print(f"{key:44s} {a:9.3f} {b:9.3f} {b / a:6.3f}")
    ratios = [r["ratio"] for r in table]
    print(f"median B/A over {len(ratios)} configurations: {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)


if __name__ == "__main__":
    main()
