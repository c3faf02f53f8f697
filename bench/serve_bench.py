#!/usr/bin/python3
"""Round-trip overhead of `caliprox serve` against in-process inference, in one run.

    /usr/bin/python3 bench/serve_bench.py BUILD_DIR [--requests 300]

Starts `caliprox serve` on the bundled LeNet experiment (reference and onednn
backends, 1 thread) and times requests of batch 1 and 64 from the Python client
(clients/python, numpy), then `caliprox infer --repeat` on the same
inputs (its median is in-process inference of one batch). Prints the medians and
the difference: what a request costs beyond the inference itself (framing, the
socket, copies, the client).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import caliprox_client  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: serve_bench.py BUILD_DIR [--requests N]")
    exe = os.path.join(sys.argv[1], "src", "cli", "caliprox")
    n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 300
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    with tempfile.TemporaryDirectory() as tmp:
        exp = os.path.join(tmp, "exp.yaml")
        with open(os.path.join(ROOT, "configs", "fashion-lenet.yaml")) as f:
            text = f.read().replace("../models/", os.path.join(ROOT, "models") + "/")
        with open(exp, "w") as f:
            f.write(text)
        print(f"{'backend':10s} {'batch':>5s} {'serve ms':>9s} {'infer ms':>9s} {'overhead ms':>12s}")
        for backend in ("reference", "onednn"):
            sock = os.path.join(tmp, f"{backend}.sock")
            server = subprocess.Popen([exe, "serve", exp, "--socket", sock, "--backend", backend, "--threads", "1",
                                       "-q"])
            while not os.path.exists(sock):
                time.sleep(0.02)
            client = caliprox_client.Client(sock)
            for batch in (1, 64):
                x = np.random.default_rng(1).standard_normal((batch, 1, 28, 28)).astype(np.float32)
                np.save(os.path.join(tmp, "x.npy"), x)
                for _ in range(10):
                    client.infer(x)
                times = []
                for _ in range(n):
                    t = time.perf_counter()
                    client.infer(x)
                    times.append((time.perf_counter() - t) * 1e3)
                p = subprocess.run([exe, "infer", os.path.join(ROOT, "models", "fashion_lenet.onnx"), "-i",
                                    os.path.join(tmp, "x.npy"), "-o", os.path.join(tmp, "o"), "--backend", backend,
                                    "--threads", "1", "--warmup", "10", "--repeat", str(n), "--json"],
                                   capture_output=True, text=True, check=True)
                infer_ms = json.loads(p.stdout)["latency_ms"]["median"]
                serve_ms = statistics.median(times)
                print(f"{backend:10s} {batch:5d} {serve_ms:9.3f} {infer_ms:9.3f} {serve_ms - infer_ms:12.3f}")
            client.close()
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
