#!/usr/bin/env python3
"""End-to-end tests of the reshape knobs (prune-*, lowrank-*) and of
caliprox export: configurations that combine a reshape and a kernel knob,
tune and profile with reshape knobs in the space, the exported ONNX file,
and their bad inputs (each writing nothing).

Usage: cli_reshape_test.py CALIPROX_BINARY SOURCE_ROOT
"""
import json
import os
import tempfile

from cli_support import LENET, ROOT, SkipTest, expect_error, experiment, finish, lenet_input, run, test, write

RESNET = os.path.join(ROOT, "configs", "fashion-resnet.yaml")
STEM = "/stem/stem.0/Conv"
BLOCK0_CONV2 = "/blocks/blocks.0/conv2/Conv"  # in the stem's residual group

RESHAPE_SECTION = """
knobs:
  include: ["prune-*", "lowrank-*", "samp-2-*", "int8"]
tune:
  strategy: evolutionary
  qos_mode: p2
  iterations: 40
  finalists: 2
  predictor_samples: 128
"""


def config(tmp, knobs, name="config.json"):
    return write(os.path.join(tmp, name), json.dumps({"knobs": knobs}))


def lenet_experiment(tmp, extra=""):
    path = experiment(tmp, **{"test: [5000, 10000]": "test: [5000, 5320]", "tune: [1000, 5000]": "tune: [1000, 1320]"})
    with open(path, "a") as f:
        f.write(extra)
    return path


def require_models():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")


@test
def eval_runs_a_pruned_and_perforated_layer():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        exp = lenet_experiment(tmp)
        conf = config(tmp, {"/conv1/Conv": "prune-0.5+perf-row-2-0", "/fc1/Gemm": "lowrank-0.5"})
        exact = run("eval", exp, "-o", os.path.join(tmp, "a"), "--json")
        approx = run("eval", exp, "-o", os.path.join(tmp, "b"), "--json", "--config", conf)
        assert exact.returncode == 0 and approx.returncode == 0, approx.stderr
        e, a = json.loads(exact.stdout), json.loads(approx.stdout)
        assert a["configuration"] == {"/conv1/Conv": "prune-0.5+perf-row-2-0", "/fc1/Gemm": "lowrank-0.5"}
        assert a["metrics"]["top1"] != e["metrics"]["top1"] and a["metrics"]["top1"] > 50, a["metrics"]
        assert "repairing pruned layers by least squares" in approx.stderr, approx.stderr


@test
def bad_reshape_configurations_are_refused_and_write_nothing():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        cases = [
            ({STEM: "prune-0.5", BLOCK0_CONV2: "prune-0.25"}, ["belong to one residual group", STEM, BLOCK0_CONV2]),
            ({STEM: "int8+prune-0.5"}, ["a combined knob is a reshape knob"]),
            ({STEM: "prune-0.3"}, ["unknown knob 'prune-0.3'", "did you mean"]),
            ({"/fc/Gemm": "prune-0.5"}, ["/fc/Gemm", "not a Conv"]),
            ({"/blocks/blocks.0/conv1/Conv": "lowrank-0.5+perf-row-9-0"}, ["unknown knob 'perf-row-9-0'"]),
        ]
        for knobs, needles in cases:
            expect_error(run("eval", RESNET, "-o", out, "--config", config(tmp, knobs)), 2, *needles)
            p = run("export", RESNET, "--config", config(tmp, knobs), "-o", os.path.join(tmp, "m.onnx"))
            expect_error(p, 2, *needles)
        assert not os.path.exists(out) and not os.path.exists(os.path.join(tmp, "m.onnx"))


@test
def export_writes_a_checked_standard_onnx_file():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        knobs = {STEM: "prune-0.5", "/blocks/blocks.1/conv1/Conv": "prune-0.5+samp-2-0",
                 "/blocks/blocks.2/conv2/Conv": "lowrank-0.5", "/fc/Gemm": "lowrank-0.5"}
        model = os.path.join(tmp, "out", "model.onnx")
        os.makedirs(os.path.dirname(model))
        p = run("export", RESNET, "--config", config(tmp, knobs), "-o", model, "--json")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert doc["output"] == model and doc["configuration"] == knobs
        # Pruning half the stem's group and a block's channels, factorising two layers: far fewer weights.
        assert doc["weight_bytes"]["after"] < 0.7 * doc["weight_bytes"]["before"], doc["weight_bytes"]
        assert doc["verified"]["samples"] == 64 and doc["verified"]["max_rel_diff"] < 1e-4, doc["verified"]
        # The file is plain ONNX that caliprox (and any runtime) loads: the knob nodes have new shapes.
        inf = run("infer", model, "-i", lenet_input(tmp), "-o", os.path.join(tmp, "y"), "--json")
        assert inf.returncode == 0, inf.stderr
        # An int8 layer is written as QuantizeLinear / DequantizeLinear, which caliprox runs: the file is checked.
        p = run("export", RESNET, "--config", config(tmp, {STEM: "prune-0.25+int8"}), "-o", model)
        assert p.returncode == 0, p.stderr
        assert "checked in caliprox on" in p.stdout and "not checked" not in p.stdout, p.stdout


@test
def export_refuses_perforation_and_bad_paths_leaving_nothing():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.onnx")
        p = run("export", RESNET, "--config", config(tmp, {STEM: "prune-0.5+perf-row-2-0"}), "-o", model)
        expect_error(p, 2, "perf-row-2-0", STEM, "no standard ONNX op")
        assert not os.path.exists(model)
        # An existing file is not replaced by a failed export.
        write(model, "keep")
        expect_error(run("export", RESNET, "--config", config(tmp, {STEM: "perf-col-2-0"}), "-o", model), 2,
                     "perf-col-2-0")
        with open(model) as f:
            assert f.read() == "keep"
        p = run("export", RESNET, "--config", config(tmp, {STEM: "prune-0.5"}), "-o",
                os.path.join(tmp, "missing", "dir", "model.onnx"))
        assert p.returncode != 0 and "missing" in p.stderr, p.stderr
        expect_error(run("export", RESNET, "-o", model), 2, "--config")


@test
def tune_and_profile_search_reshape_knobs_only_when_included():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        # Without a pattern naming them, reshape knobs stay out of the space.
        plain = lenet_experiment(tmp, RESHAPE_SECTION.replace('"prune-*", "lowrank-*", ', ""))
        prof = os.path.join(tmp, "plain")
        p = run("profile", plain, "-o", prof, "--batch", "32", "--min-rounds", "2", "--min-seconds", "0",
                "--warmup", "1")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(prof, "profile.json")) as f:
            assert json.load(f)["reshape"] == {}
        exp = lenet_experiment(tmp, RESHAPE_SECTION)
        prof = os.path.join(tmp, "prof")
        p = run("profile", exp, "-o", prof, "--batch", "32", "--min-rounds", "2", "--min-seconds", "0",
                "--warmup", "1")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(prof, "profile.json")) as f:
            reshape = json.load(f)["reshape"]
        assert sorted(reshape) == ["/conv1/Conv", "/conv2/Conv", "/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"], reshape
        assert sorted(reshape["/conv1/Conv"]) == ["lowrank-0.25", "lowrank-0.5", "prune-0.25", "prune-0.5"]
        assert all(m["speedup"] > 0 and m["latency_ms"]["count"] >= 2 for k in reshape.values() for m in k.values())
        out = os.path.join(tmp, "run")
        p = run("tune", exp, "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        # The single-knob runs covered every reshape knob of the space on its own.
        with open(os.path.join(out, "records.jsonl")) as f:
            singles = [json.loads(line) for line in f.readlines()[1:]]
        singles = [r["knobs"] for r in singles if r["phase"] == "single"]
        assert {"/conv1/Conv": "prune-0.5"} in singles and {"/fc1/Gemm": "lowrank-0.25"} in singles, singles
        with open(os.path.join(out, "pareto.json")) as f:
            levels = json.load(f)["configurations"]
        for level in levels:  # every value is one knob choice, as export and eval read them
            for node, knob in level["knobs"].items():
                assert knob.count("+") <= 1, level
        # Resuming replays everything.
        again = run("tune", exp, "-o", out, "--json")
        assert again.returncode == 0, again.stderr
        with open(os.path.join(out, "pareto.json")) as f:
            assert json.load(f)["configurations"] == levels


finish()
