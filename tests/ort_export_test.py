#!/usr/bin/env python3
"""Exported networks in ONNX Runtime against caliprox's own outputs.

    ort_export_test.py CALIPROX_EXPORT_CASES SOURCE_ROOT

For each bundled network (the three Fashion-MNIST ones with their
experiments in configs/, the two row-following ones on a small rendered
dataset), caliprox_export_cases lowers every exportable knob kind
(knobs/standard_ops.h) on all layers and on one layer, saves each as ONNX
and records what caliprox's reference backend computes for the first test
samples under the same configuration (int8 with ranges calibrated on the
experiment's calibrate split). tests/ort_export_run.js runs the files in
ONNX Runtime (onnxruntime-node, bench/package.json; its CPU provider with
the default 'all' graph optimizations), and each output is compared here.

Errors are relative to the output's scale (the largest |value| caliprox
computes for that case): `max` the largest and `mean` the mean absolute
difference. TOLERANCES says what each knob kind may differ and why. Exit 77
(Meson: skipped) with the reason when node or onnxruntime-node is missing.
"""
import array
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

SKIPPED = 77

# Both runtimes compute the same operands (rounded weights and bias, Casts
# and Quantize/DequantizeLinear where the knob rounds); they differ in the
# order a convolution sums its products (ORT: im2col sgemm; caliprox's
# reference: filter order) and, for int8, in summing fp32 products of
# dequantised values where caliprox sums int32 codes. fp32 rounding noise
# (~1e-7) alone is what exact and sampling may show. Under a rounding knob
# a value within that noise of a rounding (or code) boundary rounds to the
# neighbouring step in one runtime and not in the other, and the step then
# spreads through every output it feeds: that is what fp16, bf16 and int8
# may show, far above fp32 noise and far below the knob's own effect.
#
# Per knob kind, (max, mean) of |ORT - caliprox| over the outputs, relative
# to the exact network's largest output. Worst seen on an AMD EPYC (AVX-512;
# ORT 1.22.0) over the five networks, 32 images / 64 frames, both scopes:
#   exact, sampling  2.0e-6 / 4.2e-7
#   fp16 (and samp-*-fp16)  4.5e-5 / 1.1e-5
#   bf16  8.5e-5 / 7.7e-6
#   int8  7.4e-3 / 8.1e-5 (int8 on every MobileNet layer: an input code one
#         step off, 1/255 of a layer's range, carried to the logits)
# The bounds leave about 4-5x.
TOLERANCES = {
    "exact": (1e-5, 2e-6),
    "sampling": (1e-5, 2e-6),
    "fp16": (2e-4, 5e-5),
    "bf16": (5e-4, 5e-5),
    "int8": (3e-2, 4e-4),
}
# The bounds above do not tell a faithful fp16 file from one whose rounding
# ORT skipped on a network where fp16 changes little (one fp16 layer moves
# the outputs by ~3e-5). So each knob case also compares the difference to
# the knob's own effect (caliprox with the knob against caliprox exact): the
# mean difference may be at most MAX_EFFECT_RATIO of the mean effect. Seen:
# at most 0.16 (fp16 on every layer of the row-following networks; the
# rounding flips above add up over their layers), 0.06 elsewhere. Running
# the lowered graphs in caliprox with a part of the rounding stripped gives
# ~1 without any rounding, 0.33-0.96 without the input rounding, 0.27-0.43
# without the output rounding where the next layer does not round again.
MAX_EFFECT_RATIO = 0.3


def kind_of(knob):
    if "+" in knob:  # a reshape knob and a kernel knob: the kernel knob's rounding
        knob = knob.split("+", 1)[1]
    if knob == "fp32" or knob.startswith(("prune-", "lowrank-")):  # plain fp32 ops of new shapes
        return "exact"
    if knob.startswith("samp-"):
        return "fp16" if knob.endswith("-fp16") else "sampling"
    return knob


def skip(reason):
    print(f"SKIP: {reason}")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(SKIPPED)


def rowfollow_experiment(root, tmp):
    """The row-following experiment on 96 rendered frames (its data is not committed)."""
    sys.path.insert(0, os.path.join(root, "examples", "rowfollow"))
    from shrunk import shrunk_experiment
    return shrunk_experiment(tmp, frames=96, splits=(16, 32))


def read_floats(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return a


def compare(name, dir, manifest, ort):
    """One line per case; returns (passed, failed)."""
    passed = failed = 0
    exact = read_floats(os.path.join(dir, manifest["cases"][0]["expected"]))
    assert manifest["cases"][0]["knob"] == "fp32", "the first case is the exact network"
    scale = max(max(abs(v) for v in exact), 1e-12)
    for case in manifest["cases"]:
        label = f"{name:20} {case['name']:20}"
        result = ort["cases"].get(case["name"], {"ok": False, "error": "not run"})
        if not result["ok"]:
            print(f"{label} FAIL: ONNX Runtime: {result['error']}")
            failed += 1
            continue
        want = read_floats(os.path.join(dir, case["expected"]))
        got = read_floats(os.path.join(dir, f"{case['name']}.ort.f32"))
        if len(want) != len(got) or list(result["dims"]) != list(case["shape"]):
            print(f"{label} FAIL: ONNX Runtime's output has shape {result['dims']}, caliprox's {case['shape']}")
            failed += 1
            continue
        diff = [abs(g - w) for g, w in zip(got, want)]
        worst, mean = max(diff) / scale, sum(diff) / len(diff) / scale
        tol_max, tol_mean = TOLERANCES[kind_of(case["knob"])]
        ok = all(math.isfinite(v) for v in got) and worst <= tol_max and mean <= tol_mean
        line = f"{label} max {worst:.2e} mean {mean:.2e} (allowed {tol_max:.0e} / {tol_mean:.0e})"
        if case["knob"] != "fp32":
            effect = sum(abs(w - e) for w, e in zip(want, exact)) / len(want) / scale
            ratio = mean / effect if effect > 0 else math.inf
            ok = ok and ratio <= MAX_EFFECT_RATIO
            line += f", knob effect mean {effect:.2e}: ratio {ratio:.3f} (allowed {MAX_EFFECT_RATIO})"
        print(f"{line} {'ok' if ok else 'FAIL'}")
        passed += ok
        failed += not ok
    return passed, failed


def main():
    if len(sys.argv) != 3:
        print("usage: ort_export_test.py CALIPROX_EXPORT_CASES SOURCE_ROOT", file=sys.stderr)
        return 2
    cases_exe, root = sys.argv[1], os.path.abspath(sys.argv[2])
    bench = os.path.join(root, "bench")
    node = shutil.which("node")
    if node is None:
        skip("node is not installed (scripts/install-deps.sh installs nodejs and npm)")
    if not os.path.isfile(os.path.join(bench, "node_modules", "onnxruntime-node", "package.json")):
        skip("onnxruntime-node is not installed in bench/node_modules (run `npm ci` in bench/; "
             "scripts/run-tests.sh does when npm can reach its registry)")
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="caliprox-ort-export-") as tmp:
        rowfollow = rowfollow_experiment(root, tmp)
        networks = [(f"fashion-{n}", os.path.join(root, "configs", f"fashion-{n}.yaml"), None)
                    for n in ("lenet", "mobilenet", "resnet")]
        networks += [(f"rowfollow-{n}", rowfollow, n) for n in ("heading", "distance")]
        for name, experiment, network in networks:
            dir = os.path.join(tmp, name)
            os.makedirs(dir)
            # 32 images (320 logits) or 64 frames (64 values) per case.
            cmd = [cases_exe, experiment, dir, "--samples", "64" if network else "32"]
            cmd += ["--network", network] if network else []
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{name:20} FAIL: caliprox_export_cases exited {p.returncode}: {p.stderr.strip()}")
                failed += 1
                continue
            with open(os.path.join(dir, "manifest.json")) as f:
                manifest = json.load(f)
            r = subprocess.run([node, os.path.join(root, "tests", "ort_export_run.js"), dir, bench],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{name:20} FAIL: ort_export_run.js exited {r.returncode}: {r.stderr.strip()}")
                failed += 1
                continue
            ort = json.loads(r.stdout)
            print(f"== {name}: {len(manifest['cases'])} cases, ONNX Runtime {ort['onnxruntime']}")
            p_, f_ = compare(name, dir, manifest, ort)
            passed += p_
            failed += f_
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
