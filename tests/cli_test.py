#!/usr/bin/env python3
"""End-to-end tests of the caliprox binary: exit codes, error messages, that
nothing is written on failure, and the JSON summaries' structure against
golden files (tests/data/golden/*.json hold the keys and value types).

Usage: cli_test.py CALIPROX_BINARY SOURCE_ROOT
Prints one line per test and closes with "N passed, N failed, N skipped".
"""
import json
import os
import re
import signal
import struct
import subprocess
import tempfile
import time

from cli_support import (CALIPROX, ENV, FIXTURES, LENET, ROOT, SkipTest, expect_error, experiment, finish, golden,
                         lenet_input, npy_bytes, read_npy_shape, run, structure, test, write)


# ---------------------------------------------------------------- usage
@test
def usage_errors_exit_2():
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("infer", LENET, "--bogus-option").returncode == 2
    assert run("eval").returncode == 2  # missing experiment


@test
def help_and_version():
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("caliprox "), v
    # The CPU probe's finding: architecture, then what it has and lacks.
    assert re.search(r"^cpu: (x86-64|aarch64)", v.stdout, re.M), v.stdout
    # A misspelt ISA cap is a usage error, never silently "no cap".
    bad = subprocess.run([CALIPROX, "knobs"], capture_output=True, text=True,
                         env=dict(ENV, CALIPROX_MAX_ISA="avx3"))
    assert bad.returncode == 2 and "CALIPROX_MAX_ISA=avx3" in bad.stderr, bad
    for sub in ("check", "infer", "eval"):
        h = run(sub, "--help")
        assert h.returncode == 0 and "--json" in h.stdout, (sub, h.stdout)


# ---------------------------------------------------------------- infer
@test
def infer_writes_outputs_and_latency_json():
    with tempfile.TemporaryDirectory() as tmp:
        x = lenet_input(tmp)
        outs = {}
        for backend in ("reference", "onednn"):
            out = os.path.join(tmp, backend)
            p = run("infer", LENET, "-i", f"input={x}", "-o", out, "--backend", backend,
                    "--repeat", "3", "--warmup", "1", "--json")
            assert p.returncode == 0, p.stderr
            summary = json.loads(p.stdout)
            assert structure(summary) == golden("infer.json"), structure(summary)
            path = summary["outputs"]["logits"]
            assert read_npy_shape(path) == [2, 10]
            lat = summary["latency_ms"]
            assert 0 < lat["min"] <= lat["median"] <= lat["max"] and lat["count"] == 3, lat
            with open(path, "rb") as f:
                outs[backend] = f.read()
        # Same input, same model: logits agree across backends to float32 rounding.
        a = struct.unpack("<20f", outs["reference"][-80:])
        b = struct.unpack("<20f", outs["onednn"][-80:])
        assert max(abs(p - q) for p, q in zip(a, b)) < 1e-3, (a, b)


@test
def infer_single_input_shorthand_and_table():
    with tempfile.TemporaryDirectory() as tmp:
        p = run("infer", LENET, "-i", lenet_input(tmp), "-o", os.path.join(tmp, "o"))
        assert p.returncode == 0, p.stderr
        assert "logits" in p.stdout and "[2, 10]" in p.stdout, p.stdout


def assert_nothing_written(out):
    assert not os.path.exists(out), f"{out} was created although the command failed"


@test
def infer_unknown_input_name():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o")
        p = run("infer", LENET, "-i", f"pixels={lenet_input(tmp)}", "-o", out)
        expect_error(p, 2, "has no input 'pixels'", "input")
        assert_nothing_written(out)


@test
def infer_fortran_order_npy():
    with tempfile.TemporaryDirectory() as tmp:
        x = write(os.path.join(tmp, "f.npy"), npy_bytes("<f4", [2, 1, 28, 28], b"\0" * 2 * 784 * 4, fortran=True))
        out = os.path.join(tmp, "o")
        expect_error(run("infer", LENET, "-i", f"input={x}", "-o", out), 2, "Fortran")
        assert_nothing_written(out)


@test
def infer_unsupported_npy_dtype():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o")
        expect_error(run("infer", LENET, "-i", f"input={lenet_input(tmp, descr='<c8')}", "-o", out), 2, "<c8")
        assert_nothing_written(out)


@test
def infer_input_dtype_mismatch():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o")
        expect_error(run("infer", LENET, "-i", f"input={lenet_input(tmp, descr='<f8')}", "-o", out), 2,
                     "float32", "float64")
        assert_nothing_written(out)


@test
def infer_input_shape_mismatch():
    with tempfile.TemporaryDirectory() as tmp:
        x = write(os.path.join(tmp, "x.npy"), npy_bytes("<f4", [1, 1, 32, 32], b"\0" * 1024 * 4))
        out = os.path.join(tmp, "o")
        expect_error(run("infer", LENET, "-i", f"input={x}", "-o", out), 2, "input")
        assert_nothing_written(out)


def bad_model_case(model, *needles):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o")
        x = write(os.path.join(tmp, "x.npy"), npy_bytes("<f4", [2, 3], b"\0" * 24))
        expect_error(run("infer", model, "-i", f"X={x}", "-o", out), 2, *needles)
        assert_nothing_written(out)


@test
def infer_missing_model():
    bad_model_case("/nonexistent/model.onnx", "/nonexistent/model.onnx")


@test
def infer_truncated_model():
    bad_model_case(os.path.join(FIXTURES, "onnx", "truncated.onnx"), "truncated.onnx")


@test
def infer_corrupt_model():
    with tempfile.TemporaryDirectory() as tmp:
        junk = write(os.path.join(tmp, "junk.onnx"), bytes(range(256)) * 8)
        bad_model_case(junk, "junk.onnx")


@test
def infer_unsupported_op():
    bad_model_case(os.path.join(FIXTURES, "onnx", "unsupported_op.onnx"), "Unique", "unique")


@test
def infer_external_data_escaping():
    bad_model_case(os.path.join(FIXTURES, "onnx", "external_escape", "model.onnx"), "../external_ok/weights.bin")


@test
def infer_negative_dimension():
    bad_model_case(os.path.join(FIXTURES, "onnx", "negative_dim.onnx"), "-3")


@test
def infer_absurd_dimension():
    bad_model_case(os.path.join(FIXTURES, "onnx", "absurd_dim.onnx"), "absurdly large")


# ---------------------------------------------------------------- check / eval
@test
def check_bundled_experiments():
    for name in ("fashion-lenet", "fashion-resnet", "fashion-mobilenet"):
        path = os.path.join(ROOT, "configs", f"{name}.yaml")
        model = os.path.join(ROOT, "models", name.replace("-", "_") + ".onnx")
        if not os.path.exists(model):
            raise SkipTest(f"{model} not trained yet")
        p = run("check", path, "--json")
        assert p.returncode == 0, p.stderr
        assert structure(json.loads(p.stdout)) == golden("check.json"), p.stdout


@test
def check_malformed_yaml():
    with tempfile.TemporaryDirectory() as tmp:
        bad = write(os.path.join(tmp, "bad.yaml"), "name: x\nnetwork: [unclosed\n")
        expect_error(run("check", bad), 2, "bad.yaml:", "malformed YAML")


@test
def check_misspelt_key():
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp, **{"  labels:": "  lables:"})
        with open(exp) as f:
            line = 1 + f.read().split("\n").index("  lables: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
        expect_error(run("check", exp), 2, f"exp.yaml:{line}:3:", "dataset", "unknown key 'lables'",
                     "did you mean 'labels'")


@test
def check_wrong_type():
    with tempfile.TemporaryDirectory() as tmp:
        expect_error(run("check", experiment(tmp, **{"batch:__64": "batch: sixty-four"})), 2,
                     "dataset.batch", "integer")


@test
def check_missing_data_file():
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp, **{"t10k-labels-idx1-ubyte.gz": "no-such-labels.gz"})
        expect_error(run("check", exp), 2, "dataset.labels", "no-such-labels.gz")


def opencl_built():
    p = run("knobs", "--backend", "opencl", "--json")
    if "unknown backend" in p.stderr:
        raise SkipTest("this build has no OpenCL backend")
    return p


@test
def opencl_target_reports_its_device_or_exits_4():
    p = opencl_built()
    if p.returncode == 4:
        raise SkipTest("no OpenCL device here: " + p.stderr.strip())
    assert p.returncode == 0, p.stderr
    device = json.loads(p.stdout)["device"]
    assert device["device"] and device["driver"] and device["fp16"] in ("cl_khr_fp16", "none"), device
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp, **{"backend: onednn": "backend: opencl"})
        p = run("check", exp, "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["targets"][0]["device"]["device"] == device["device"], p.stdout
        p = run("check", exp)
        assert p.returncode == 0 and "device   host:" in p.stdout and device["device"] in p.stdout, p.stdout
        out = os.path.join(tmp, "run")
        p = run("eval", exp, "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        summary = json.loads(p.stdout)
        assert summary["metrics"]["top1"] > 80, p.stdout
        # LeNet's Flatten is a device copy: only the batch goes up and the logits down.
        assert summary["transfers_per_batch"]["uploads"] == 1, p.stdout
        assert summary["transfers_per_batch"]["downloads"] == 1, p.stdout
        # No OpenCL driver at all (the ICD loader finds no vendor), and a kernel build that fails.
        def run_env(extra, *args):
            return subprocess.run([CALIPROX, *args], capture_output=True, text=True, env=dict(ENV, **extra))
        expect_error(run_env({"OCL_ICD_VENDORS": os.path.join(tmp, "none")}, "check", exp), 4,
                     "no platform with a device was found")
        broken = run_env({"CALIPROX_OPENCL_OPTIONS": "-Dactivate=(", "CALIPROX_CACHE_DIR": os.path.join(tmp, "cache")},
                         "eval", exp, "-o", os.path.join(tmp, "broken"))
        assert broken.returncode == 1 and "build log:" in broken.stderr and "-Dactivate=(" in broken.stderr, broken.stderr
        assert_nothing_written(os.path.join(tmp, "broken"))
        for key, value in (("platform", "no-such-platform"), ("device", "42")):
            bad = experiment(tmp, **{"backend: onednn": f"backend: opencl\n    {key}: {value}"})
            expect_error(run("check", bad), 4, "target 'host'", "OpenCL", "found:")
            expect_error(run("eval", bad, "-o", os.path.join(tmp, "bad")), 4, "OpenCL")
            assert_nothing_written(os.path.join(tmp, "bad"))


@test
def check_and_eval_dataset_that_does_not_fit():
    with tempfile.TemporaryDirectory() as tmp:
        # 300 raw 32x32 images: valid data, wrong size for a 28x28 network.
        write(os.path.join(tmp, "images.u8"), bytes(300 * 32 * 32))
        exp = experiment(tmp, **{
            "format: idx": "format: raw\n  raw: {dtype: uint8, shape: [300, 32, 32]}",
            "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz": os.path.join(tmp, "images.u8"),
            "  labels: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\n": "",
            "metric: top1": "metric: agreement-top1",
            "calibrate: [0, 1000]": "calibrate: [0, 100]",
            "tune: [1000, 5000]": "tune: [100, 200]",
            "test: [5000, 10000]": "test: [200, 300]",
        })
        expect_error(run("check", exp), 2, "images.u8", "[64, 1, 32, 32]", "input")
        out = os.path.join(tmp, "run")
        expect_error(run("eval", exp, "-o", out), 2, "images.u8")
        assert_nothing_written(out)


@test
def eval_writes_eval_json():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp, **{"test: [5000, 10000]": "test: [5000, 5640]"})
        out = os.path.join(tmp, "run")
        p = run("eval", exp, "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        summary = json.loads(p.stdout)
        assert structure(summary) == golden("eval.json"), structure(summary)
        with open(os.path.join(out, "eval.json")) as f:
            on_disk = json.load(f)
        assert on_disk["samples"] == 640 and on_disk["qos"]["metric"] == "top1"
        assert 85.0 < on_disk["metrics"]["top1"] <= 100.0, on_disk["metrics"]
        # Default run directory is runs/<experiment name>/ under the working directory.
        p = run("eval", exp, "--quiet", cwd=tmp)
        assert p.returncode == 0, p.stderr
        assert os.path.exists(os.path.join(tmp, "runs", "fashion-lenet", "eval.json"))
        # --verbose adds the debug details (graph passes, the session's
        # kernels) to stderr; with --quiet it is a usage error.
        p = run("eval", exp, "-v", "-o", out)
        assert p.returncode == 0, p.stderr
        assert "graph passes:" in p.stderr and "session:" in p.stderr, p.stderr
        expect_error(run("eval", exp, "-q", "-v", "-o", out), 2, "--verbose")


@test
def eval_unknown_split():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        expect_error(run("eval", experiment(tmp), "--split", "validation", "-o", out), 2, "validation", "test")
        assert_nothing_written(out)


@test
def eval_interrupted_exits_130_and_writes_nothing():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        # The reference backend takes seconds on the whole t10k set: time to interrupt it.
        exp = experiment(tmp, **{"test: [5000, 10000]": "test: [0, 10000]"})
        proc = subprocess.Popen([CALIPROX, "eval", exp, "-o", out, "--backend", "reference"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            raise SkipTest("eval finished before the signal arrived")
        assert proc.returncode == 130, (proc.returncode, err)
        assert "interrupted" in err, err
        assert_nothing_written(os.path.join(out, "eval.json"))


@test
def knobs_catalogue_lists_every_knob_with_ids():
    p = run("knobs", "--json")
    assert p.returncode == 0, p.stderr
    knobs = {k["name"]: k for k in json.loads(p.stdout)["knobs"]}
    assert len(knobs) == 62, len(knobs)
    # ApproxHPVM IDs: 11 exact, 12 fp16, 121-138 perforation, 151-168 in fp16, 231-239 sampling, 261-269 in fp16.
    ids = sorted(k["hpvm_id"] for k in knobs.values() if k["hpvm_id"] is not None)
    assert ids == [11, 12] + list(range(121, 139)) + list(range(151, 169)) + list(range(231, 240)) + \
        list(range(261, 270)), ids
    assert knobs["perf-row-2-0"]["hpvm_id"] == 123 and knobs["samp-4-3"]["hpvm_id"] == 239
    assert knobs["perf-row-2-0"]["nominal_speedup"] == 2.0 and knobs["samp-3-1"]["nominal_speedup"] == 1.5
    # How this CPU runs each knob: fp16 (and every -fp16 variant) is emulated everywhere.
    assert knobs["fp16"]["here"]["run"] == "emulated" and knobs["perf-row-2-0-fp16"]["here"]["run"] == "emulated"
    assert knobs["perf-row-2-0"]["here"]["run"] == "native"
    assert knobs["int8"]["here"]["run"] in ("native", "emulated") and knobs["int8"]["here"]["how"]
    assert knobs["int8"]["ops"] == ["Conv"]
    # Reshape knobs: no ApproxHPVM ID, nominal speedup from their fraction, run as plain ops everywhere.
    assert knobs["prune-0.5"]["hpvm_id"] is None and knobs["prune-0.5"]["nominal_speedup"] == 2.0
    assert knobs["lowrank-0.25"]["nominal_speedup"] == 4.0 and knobs["lowrank-0.25"]["ops"] == ["Conv", "Gemm"]
    assert knobs["prune-0.25"]["here"]["run"] == "native", knobs["prune-0.25"]["here"]
    # Capped at AVX2, bf16 and int8 are emulated, and say why.
    capped = json.loads(subprocess.run([CALIPROX, "knobs", "--json"], capture_output=True, text=True,
                                       env=dict(ENV, CALIPROX_MAX_ISA="avx2"), check=True).stdout)
    if capped["cpu"].startswith("x86-64"):
        assert capped["support"]["bf16"]["run"] == "emulated" and "AVX512-BF16" in capped["support"]["bf16"]["how"]
        assert capped["support"]["int8"]["run"] == "emulated" and "VNNI" in capped["support"]["int8"]["how"]
        assert "capped at avx2" in capped["cpu"], capped["cpu"]
    p = run("knobs")
    assert p.returncode == 0 and "perf-col-3-2" in p.stdout and "emulated" in p.stdout, p.stdout


@test
def knobs_per_network_layers_and_flops():
    with tempfile.TemporaryDirectory() as tmp:
        p = run("knobs", experiment(tmp), "--json")
        assert p.returncode == 0, p.stderr
        layers = json.loads(p.stdout)["layers"]
        assert [l["node"] for l in layers] == ["/conv1/Conv", "/conv2/Conv", "/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"], \
            [l["node"] for l in layers]
        for l in layers[:2]:
            assert l["op"] == "Conv" and l["flops"] > 1e6
            assert l["knobs"]["fp32"] == 1.0 and l["knobs"]["perf-row-2-0"] >= 2.0
            assert l["reference_fallback"] == [], l["reference_fallback"]
            # Pruning half the channels saves more than half of this layer (the next one narrows too).
            assert l["flops_saved"]["prune-0.5"] > 0.5 * l["flops"], l["flops_saved"]
        for l in layers[2:]:  # fully connected layers take only the factorisation
            assert l["op"] == "Gemm" and sorted(l["knobs"]) == ["fp32", "lowrank-0.25", "lowrank-0.5"], l["knobs"]
            # lowrank-0.5 keeps at most half of the layer's work.
            assert 0.5 * l["flops"] <= l["flops_saved"]["lowrank-0.5"] < l["flops"], l


def knob_config(tmp, knobs, name="config.json"):
    return write(os.path.join(tmp, name), json.dumps({"id": 7, "level": 1, "knobs": knobs}))


@test
def eval_with_config_changes_accuracy_and_records_it():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp, **{"test: [5000, 10000]": "test: [5000, 5640]"})
        conf = knob_config(tmp, {"/conv1/Conv": "perf-row-2-1", "/conv2/Conv": 236})
        exact = run("eval", exp, "-o", os.path.join(tmp, "a"), "--json")
        approx = run("eval", exp, "-o", os.path.join(tmp, "b"), "--json", "--config", conf)
        assert exact.returncode == 0 and approx.returncode == 0, approx.stderr
        e, a = json.loads(exact.stdout), json.loads(approx.stdout)
        assert e["configuration"] == {} and a["configuration"] == {"/conv1/Conv": "perf-row-2-1",
                                                                   "/conv2/Conv": "samp-4-0"}
        assert a["metrics"]["top1"] != e["metrics"]["top1"]
        assert a["metrics"]["top1"] > 50.0


@test
def bad_configs_name_node_and_knob():
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp, **{"test: [5000, 10000]": "test: [5000, 5064]"})
        out = os.path.join(tmp, "run")
        cases = [
            ({"/conv9/Conv": "samp-2-0"}, ["/conv9/Conv", "samp-2-0", "/conv1/Conv"]),
            ({"/conv1/Conv": "perf-rows-2-0"}, ["/conv1/Conv", "perf-rows-2-0", "perf-row-2-0"]),
            ({"/fc1/Gemm": "fp16"}, ["/fc1/Gemm", "fp16", "Conv only"]),
            ({"/conv1/Conv": 999}, ["/conv1/Conv", "999"]),
        ]
        for knobs, parts in cases:
            expect_error(run("eval", exp, "-o", out, "--config", knob_config(tmp, knobs)), 2, *parts)
            assert_nothing_written(out)
        expect_error(run("eval", exp, "-o", out, "--config", write(os.path.join(tmp, "x.json"), "{\"knobs\": [")),
                     2, "x.json", "JSON")
        # A perforation rate that leaves nothing on a 1-row feature map (infer on a 1x28 image is not
        # possible for LeNet; the engine's unit tests cover it).


@test
def infer_with_config_int8_calibrates_on_the_input():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        vals = [((i * 37) % 255) / 255.0 for i in range(2 * 28 * 28)]
        x = write(os.path.join(tmp, "x.npy"), npy_bytes("<f4", [2, 1, 28, 28], struct.pack("<%df" % len(vals), *vals)))
        conf = knob_config(tmp, {"/conv1/Conv": "int8", "/conv2/Conv": "bf16"})
        p = run("infer", LENET, "-i", x, "-o", os.path.join(tmp, "out"), "--config", conf, "--json")
        assert p.returncode == 0, p.stderr
        assert read_npy_shape(json.loads(p.stdout)["outputs"]["logits"]) == [2, 10]


TUNE_SECTION = """
knobs:
  include: ["perf-*-2-*", "samp-2-*", "samp-3-*", "int8"]
  exclude: ["*fp16"]
tune:
  strategy: evolutionary
  qos_mode: p2
  iterations: 60
  finalists: 3
  predictor_samples: 192
"""


def tune_experiment(tmp, extra=TUNE_SECTION, **overrides):
    overrides.setdefault("test: [5000, 10000]", "test: [5000, 5640]")
    overrides.setdefault("tune: [1000, 5000]", "tune: [1000, 1640]")
    path = experiment(tmp, **overrides)
    with open(path, "a") as f:
        f.write(extra)
    return path


def search_lines(records):
    """The search phase of a records.jsonl: what must not depend on interruptions."""
    out = []
    with open(records) as f:
        for line in f.readlines()[1:]:
            r = json.loads(line)
            if r["phase"] == "search":
                out.append((r["iteration"], json.dumps(r["knobs"], sort_keys=True), r["qos_loss"],
                            r["speedup"]["predicted"]))
    return sorted(out)


def tune_until_search(exp, out, *args):
    """A tune into `out`, returned once its records hold a search evaluation (stderr piped)."""
    proc = subprocess.Popen([CALIPROX, "tune", exp, "-o", out, "--quiet", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    records = os.path.join(out, "records.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(records) and '"phase":"search"' in open(records).read():
            break
        time.sleep(0.005)
    return proc, records


@test
def tune_writes_frontier_records_and_resumes_after_kill_9():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = tune_experiment(tmp)
        a = os.path.join(tmp, "a")
        p = run("tune", exp, "-o", a, "--json")
        assert p.returncode in (0, 3), p.stderr
        doc = json.loads(p.stdout)
        for key in ("experiment", "fingerprint", "metric", "goal", "baseline", "configurations"):
            assert key in doc, key
        assert doc["configurations"][0]["level"] == 0 and doc["configurations"][0]["knobs"] == {}
        for c in doc["configurations"][1:]:
            assert c["qos_loss"]["tune"] <= 1.0 + 1e-9 and c["qos_loss"]["test"] <= 1.0 + 1e-9, c
            assert c["speedup"]["measured"] > 0 and c["speedup"]["predicted"] > 0
        with open(os.path.join(a, "pareto.json")) as f:
            assert json.load(f)["fingerprint"] == doc["fingerprint"]
        uninterrupted = search_lines(os.path.join(a, "records.jsonl"))
        assert len(uninterrupted) == 60, len(uninterrupted)

        # Same command into b, killed with SIGKILL once the search has started, then resumed.
        b = os.path.join(tmp, "b")
        proc, records = tune_until_search(exp, b)
        proc.kill()
        proc.communicate()
        p = run("tune", exp, "-o", b, "--json")
        assert p.returncode in (0, 3), p.stderr
        assert search_lines(records) == uninterrupted
        resumed = json.loads(p.stdout)
        assert resumed["fingerprint"] == doc["fingerprint"]

        # A truncated last line is ignored (with a warning); a corrupt line elsewhere is an error.
        with open(records, "a") as f:
            f.write('{"phase": "search", "iterat')
        p = run("tune", exp, "-o", b)
        assert p.returncode in (0, 3), p.stderr
        assert "truncated" in p.stderr.lower() or "ignor" in p.stderr.lower(), p.stderr
        lines = open(records).read().splitlines()
        lines[3] = "{not json"
        write(records, "\n".join(lines) + "\n")
        before = open(records).read()
        expect_error(run("tune", exp, "-o", b), 2, "records.jsonl", ":4")
        assert open(records).read() == before


@test
def tune_seed_option_and_sigterm_says_what_is_kept():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = tune_experiment(tmp)
        out = os.path.join(tmp, "s")
        proc, records = tune_until_search(exp, out, "--seed", "7")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            raise SkipTest("tune finished before the signal arrived")
        assert proc.returncode == 130, (proc.returncode, err)
        kept = re.search(r"records\.jsonl: (\d+) evaluations kept; re-run the same command to resume", err)
        assert kept, err
        with open(records) as f:
            lines = f.readlines()
        # The header carries the seed; every finished evaluation was kept.
        assert '"seed":7' in lines[0], lines[0]
        assert int(kept.group(1)) == len(lines) - 1, (kept.group(1), len(lines))


@test
def tune_bad_inputs():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        # Empty knob space.
        exp = tune_experiment(tmp, TUNE_SECTION.replace('exclude: ["*fp16"]', 'exclude: ["*"]'))
        expect_error(run("tune", exp, "-o", out), 2, "knob space")
        # A budget of zero.
        exp = tune_experiment(tmp)
        expect_error(run("tune", exp, "-o", out, "--iterations", "0"), 2, "budget")
        # A pattern that matches no knob.
        exp = tune_experiment(tmp, TUNE_SECTION.replace('"int8"]', '"int9"]'))
        expect_error(run("check", exp), 2, "knobs.include", "int9")
        # measured costs without a profile.
        exp = tune_experiment(tmp, TUNE_SECTION.replace("qos_mode: p2", "qos_mode: p2\n  cost_mode: measured"))
        expect_error(run("check", exp), 2, "tune.cost_mode", "profile")


@test
def profile_writes_cost_table_and_tune_refuses_a_foreign_profile():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = tune_experiment(tmp)
        prof = os.path.join(tmp, "prof")
        conf = knob_config(tmp, {"/conv1/Conv": "perf-row-2-1"})
        p = run("profile", exp, "-o", prof, "--batch", "32", "--min-rounds", "3", "--min-seconds", "0",
                "--warmup", "1", "--configs", conf, "--json")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(prof, "profile.json")) as f:
            doc = json.load(f)
        assert doc["batch_size"] == 32 and doc["method"]["order"] == "interleaved"
        assert [l["node"] for l in doc["layers"]] == ["/conv1/Conv", "/conv2/Conv"]
        assert "perf-row-2-1" in doc["layers"][0]["knobs"] and "fp32" in doc["layers"][0]["knobs"]
        assert doc["configurations"][0]["id"] == "7" and doc["configurations"][0]["speedup"] > 0
        assert doc["energy"]["available"] or doc["energy"]["reason"]
        if not doc["energy"]["available"]:
            assert doc["baseline"]["energy_j"] is None
        # Measured at batch 32, used by a batch-64 tune: another fingerprint.
        exp2 = tune_experiment(tmp, TUNE_SECTION.replace("qos_mode: p2", "qos_mode: p2\n  cost_mode: measured\n"
                                                          "  profile: " + os.path.join(prof, "profile.json")))
        expect_error(run("tune", exp2, "-o", os.path.join(tmp, "t")), 2, "profile.json", "fingerprint")


finish()
