#!/usr/bin/env python3
"""End-to-end tests of run-time adaptation: caliprox adapt-sim (levels measured,
strategies simulated over streams, adaptation.json), serve --adaptation, and
their bad inputs.

Usage: cli_adapt_test.py CALIPROX_BINARY SOURCE_ROOT
"""
import json
import os
import struct
import subprocess
import tempfile

from cli_support import (CALIPROX, LENET, SkipTest, expect_error, experiment, finish, run, serve_request, start_server,
                         test, write)

ADAPT = """adapt:
  strategy: state
  streams:
    - {kind: persistent, mean_run: 20, length: 600, seed: 3}
    - {kind: shuffled, length: 600, seed: 4}
"""


def level(n, knobs, loss=0.5, speedup=1.5):
    return {"id": "exact" if n == 0 else f"c{n}", "level": n, "knobs": knobs,
            "qos": {"test": 90.0 - loss * n, "tune": 90.0 - loss * n},
            "qos_loss": {"test": loss * n, "tune": loss * n}, "qos_predicted": None,
            "speedup": {"measured": speedup ** n, "predicted": speedup ** n}}


def pareto(tmp, levels, experiment_name="fashion-lenet", name="pareto.json"):
    doc = {"baseline": {"latency_ms": 1.0, "qos": {"test": 90.0, "tune": 90.0}}, "experiment": experiment_name,
           "fingerprint": "0", "goal": {"kind": "absolute", "max_loss": 3.0, "unit": "pp"}, "loss_unit": "pp",
           "metric": "top1", "configurations": levels}
    return write(os.path.join(tmp, name), json.dumps(doc))


# Three levels of the bundled LeNet: exact, perforated first conv, int8 everywhere + perforation.
LEVELS = [level(0, {}), level(1, {"/conv1/Conv": "perf-row-2-0"}),
          level(2, {"/conv1/Conv": "perf-row-2-0", "/conv2/Conv": "int8"})]


def adapt_experiment(tmp, extra=ADAPT):
    path = experiment(tmp, **{"test: [5000, 10000]": "test: [5000, 6000]"})
    with open(path, "a") as f:
        f.write(extra)
    return path


def sim(tmp, *args):
    return run("adapt-sim", adapt_experiment(tmp), "--pareto", pareto(tmp, LEVELS), "-o", os.path.join(tmp, "out"),
               "--min-rounds", "5", "--min-seconds", "0", "--all-levels", *args)


@test
def adapt_sim_measures_levels_simulates_strategies_and_writes_the_table():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        p = sim(tmp)
        assert p.returncode == 0, p.stderr
        assert "stream persistent-20 (600 inputs" in p.stdout and "stream shuffled (600 inputs)" in p.stdout, p.stdout
        out = os.path.join(tmp, "out")
        with open(os.path.join(out, "adaptation.json")) as f:
            table = json.load(f)
        assert table["format"] == "caliprox-adaptation" and table["strategy"]["name"] == "state"
        assert [l["id"] for l in table["levels"]] == ["exact", "c1", "c2"]
        assert table["levels"][0]["time_proxy"] == 1.0 and all(l["latency_ms"] > 0 for l in table["levels"])
        assert table["classes"] == 10 and len(table["confidence"]["correct"]) == 3
        assert "/conv2/Conv" in table["input_ranges"]  # int8 level: its calibrated range travels with the table
        assert (table["energy_unavailable"] is None) == all(l["energy_j"] is not None for l in table["levels"])
        with open(os.path.join(out, "adapt-sim.json")) as f:
            report = json.load(f)
        persistent, shuffled = report["streams"]
        names = [r["strategy"] for r in persistent["results"]]
        assert names == ["static-0", "static-1", "static-2", "naive", "state", "confidence", "oracle"], names
        by = {r["strategy"]: r for r in persistent["results"]}
        assert by["static-0"]["agreement"] == 1.0 and by["static-0"]["savings_vs_exact"] == 0.0
        assert by["oracle"]["agreement"] == 1.0  # the oracle never disagrees with the exact network
        assert sum(by["naive"]["level_counts"]) == 600
        for r in persistent["results"]:
            assert abs(r["savings_vs_exact"] - (1 - r["mean_latency_ms"] / by["static-0"]["mean_latency_ms"])) < 1e-9
        with open(os.path.join(out, "adapt-traces.json")) as f:
            traces = json.load(f)
        walk = traces["persistent-20"]["confidence"]
        assert len(walk["levels"]) == 600 and len(walk["confidence"]) == 600
        assert all(0 < c <= 1 for c in walk["confidence"]) and set(walk["levels"]) <= {0, 1, 2}
        # The same seeds give the same streams and simulations (latencies aside).
        again = sim(tmp)
        with open(os.path.join(out, "adapt-traces.json")) as f:
            assert json.load(f) == traces, again.stderr


def serve_levels(sock, images):
    """Requests of one image each; the level of every reply."""
    levels = []
    for img in images:
        reply, _ = serve_request(sock, [1, 1, 28, 28], struct.pack("<784f", *img))
        assert "error" not in reply, reply
        levels.append(reply["level"])
    return levels


@test
def serve_switches_levels_per_request_and_refuses_foreign_tables():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        assert sim(tmp).returncode == 0
        table = os.path.join(tmp, "out", "adaptation.json")
        sock = os.path.join(tmp, "a.sock")
        server = start_server([CALIPROX, "serve", adapt_experiment(tmp), "--socket", sock, "--adaptation", table,
                               "--strategy", "naive", "--max-requests", "30"], sock, stderr=subprocess.PIPE, text=True)
        # Two different images in turn: naive sees the top class change and steps back.
        images = [[((i * 7919 + k) % 255) / 255.0 for i in range(784)] for k in (0, 101)]
        levels = serve_levels(sock, [images[0]] * 10 + [images[i % 2] for i in range(20)])
        assert server.wait(timeout=30) == 0
        log = server.stderr.read()
        assert levels[0] == 0 and max(levels[:10]) == 2, levels  # the same input: more, up to the top level
        assert "level switches:" in log, log
        # A table whose levels name nodes this model lacks is refused.
        with open(table) as f:
            doc = json.load(f)
        doc["levels"][1]["knobs"] = {"/conv9/Conv": "int8"}
        bad = write(os.path.join(tmp, "bad.json"), json.dumps(doc))
        expect_error(run("serve", adapt_experiment(tmp), "--socket", sock, "--adaptation", bad), 2, "/conv9/Conv")
        expect_error(run("serve", adapt_experiment(tmp), "--socket", sock, "--strategy", "naive"), 2,
                     "--strategy needs --adaptation")


@test
def adapt_sim_bad_inputs_write_nothing():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        exp = adapt_experiment(tmp)
        cases = [
            (pareto(tmp, LEVELS, "fashion-resnet", "other.json"), 2, "the frontier of experiment 'fashion-resnet'"),
            (pareto(tmp, [LEVELS[0], level(1, {"/blocks/blocks.0/conv1/Conv": "int8"})], name="resnet.json"), 2,
             "is it the frontier of another network?"),
            (pareto(tmp, LEVELS[:1], name="exact.json"), 3, "no approximate level"),
        ]
        for path, code, needle in cases:
            expect_error(run("adapt-sim", exp, "--pareto", path, "-o", out, "--min-rounds", "3", "--min-seconds", "0"),
                         code, needle)
            assert not os.path.exists(out), needle
        too_long = adapt_experiment(tmp, "adapt:\n  streams: [{kind: shuffled, length: 5000}]\n")
        expect_error(run("adapt-sim", too_long, "--pareto", pareto(tmp, LEVELS), "-o", out), 2,
                     "would repeat samples")
        bad = adapt_experiment(tmp, "adapt:\n  less_at: 0.9\n  more_at: 0.5\n")
        expect_error(run("adapt-sim", bad, "--pareto", pareto(tmp, LEVELS), "-o", out), 2, "adapt.more_at")
        expect_error(run("adapt-sim", adapt_experiment(tmp), "--pareto", pareto(tmp, LEVELS), "--strategy", "lucky",
                         "-o", out), 2,
                     "--strategy lucky")
        assert not os.path.exists(out)


finish()
