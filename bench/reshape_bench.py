#!/usr/bin/env python3
"""Reshape knobs (prune-*, lowrank-*): nominal against measured speedups, per
layer and for whole networks, from one interleaved measurement.

    /usr/bin/python3 bench/reshape_bench.py [CALIPROX] [EXPERIMENT.yaml] [--batch 64]
        [--min-seconds 2] [--out DIR]

Defaults: build/src/cli/caliprox and configs/fashion-resnet.yaml. It runs the
tool as a user would:
  - `caliprox knobs EXP --json`: every layer's FLOPs and the FLOPs each of its
    reshape knobs removes from the network (nominal network speedup =
    network FLOPs / (network FLOPs - saved));
  - `caliprox eval EXP --config C --json` for four whole-network
    configurations (prune-0.25 and prune-0.5 on every layer that takes it,
    i.e. every residual group and block; lowrank-0.5 and lowrank-0.25 on
    every layer that takes it): top-1 (or the metric) on the test split and
    the rewritten network's FLOPs (its nominal speedup);
  - `caliprox profile EXP --configs ALL.json --batch B`: every (layer,
    reshape knob) and the four configurations, each timed as a whole network
    against the exact one, rounds interleaved (A B A B ...), medians.
Prints one table; `measured / nominal` is the share of the promised speedup
that the machine delivers.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(caliprox, *args):
    p = subprocess.run([caliprox, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"reshape_bench: caliprox {' '.join(args)} failed (exit {p.returncode}):\n{p.stderr}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("caliprox", nargs="?", default=os.path.join(ROOT, "build", "src", "cli", "caliprox"))
    ap.add_argument("experiment", nargs="?", default=os.path.join(ROOT, "configs", "fashion-resnet.yaml"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--out", default=None, help="keep the profile and the configurations here")
    a = ap.parse_args()
    work = a.out or tempfile.mkdtemp(prefix="caliprox-reshape-bench.")
    os.makedirs(work, exist_ok=True)

    # The experiment with the reshape knobs in its knob space (and no others:
    # the per-layer table is about them), paths made absolute.
    base = os.path.dirname(os.path.abspath(a.experiment))
    with open(a.experiment) as f:
        lines = f.read().splitlines()
    out, skip = [], False
    for line in lines:
        if line.startswith(("knobs:", "tune:")):
            skip = True
            continue
        if skip and (line.startswith(" ") or not line.strip()):
            continue
        skip = False
        out.append(line.replace("../", os.path.join(base, "..") + "/"))
    exp = os.path.join(work, "experiment.yaml")
    with open(exp, "w") as f:
        f.write("\n".join(out) + '\nknobs:\n  include: ["prune-*", "lowrank-*"]\n')

    knobs = json.loads(run(a.caliprox, "knobs", exp, "--json"))
    total = sum(layer["flops"] for layer in knobs["layers"])
    scale = a.batch / knobs["batch"]  # knobs counts at the experiment's batch
    whole = {}
    for knob in ("prune-0.25", "prune-0.5", "lowrank-0.5", "lowrank-0.25"):
        config = {layer["node"]: knob for layer in knobs["layers"] if knob in layer["knobs"]}
        if config:
            whole[knob] = config
    configs = [{"id": f"{k} on {len(c)} layers", "knobs": c} for k, c in whole.items()]
    configs_path = os.path.join(work, "configs.json")
    with open(configs_path, "w") as f:
        json.dump(configs, f)

    quality = {}
    for c in configs:
        path = os.path.join(work, "one.json")
        with open(path, "w") as f:
            json.dump({"knobs": c["knobs"]}, f)
        e = json.loads(run(a.caliprox, "eval", exp, "--config", path, "--json", "-o", os.path.join(work, "eval")))
        quality[c["id"]] = (e["qos"]["value"], e["flops"]["exact"] / e["flops"]["configured"])
    exact = json.loads(run(a.caliprox, "eval", exp, "--json", "-o", os.path.join(work, "eval")))

    run(a.caliprox, "profile", exp, "--configs", configs_path, "--batch", str(a.batch), "--min-seconds",
        str(a.min_seconds), "-o", os.path.join(work, "profile"), "--json")
    with open(os.path.join(work, "profile", "profile.json")) as f:
        prof = json.load(f)

    metric = exact["qos"]["metric"]
    print(f"{knobs['experiment']}: batch {a.batch}, {prof['backend']} backend, {prof['context'].get('threads', '?')} "
          f"thread(s); exact network {prof['baseline']['latency_ms']['median']:.3f} ms (median), "
          f"{total * scale / 1e6:.1f} MFLOP in Conv and Gemm layers; {metric} {exact['qos']['value']:.2f} on the test split")
    print(f"cpu: {knobs['cpu']}")
    print(f"\n{'layer':<44} {'knob':<13} {'nominal':>8} {'measured':>9} {'meas/nom':>9}")
    ratios = []
    for layer in knobs["layers"]:
        for knob, saved in sorted(layer.get("flops_saved", {}).items()):
            m = prof["reshape"].get(layer["node"], {}).get(knob)
            if m is None:
                continue
            nominal = total / (total - saved)
            ratios.append(m["speedup"] / nominal)
            print(f"{layer['node']:<44} {knob:<13} {nominal:>7.2f}x {m['speedup']:>8.2f}x {m['speedup'] / nominal:>9.2f}")
    print(f"\n{'whole network':<44} {metric:>8} {'nominal':>8} {'measured':>9} {'meas/nom':>9}")
    for c in prof["configurations"]:
        q, nominal = quality[c["id"]]
        print(f"{c['id']:<44} {q:>8.2f} {nominal:>7.2f}x {c['speedup']:>8.2f}x {c['speedup'] / nominal:>9.2f}")
    if ratios:
        ratios.sort()
        print(f"\nper layer: measured / nominal median {ratios[len(ratios) // 2]:.2f} "
              f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}) over {len(ratios)} (layer, knob) pairs")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
