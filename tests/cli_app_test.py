#!/usr/bin/env python3
"""End-to-end tests of the application side of caliprox: application
evaluators, calibrate, inject, serve, experiments with several networks and
eval --application (network mode).

Usage: cli_app_test.py CALIPROX_BINARY SOURCE_ROOT
"""
import json
import math
import os
import struct
import sys
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "rowfollow"))
from shrunk import shrunk_experiment  # noqa: E402
from cli_support import (CALIPROX, LENET, ROOT, SkipTest, calibrate_experiment, conforms, expect_error, experiment,
                         finish, lenet_input, run, serve_request, start_server, test, write)


@test
def check_application_section():
    app = os.path.join(ROOT, "tests", "data", "apps", "good.py")
    section = f"application:\n  command: [{app}]\n  goal: [{{metric: collisions, max: 0}}]\n"
    with tempfile.TemporaryDirectory() as tmp:
        exp = experiment(tmp)
        with open(exp, "a") as f:
            f.write(section)
        p = run("check", exp)
        assert p.returncode == 0, p.stderr
        assert f"application  {app} (timeout 600 s, 1 repeat(s)); goal: collisions <= 0" in p.stdout, p.stdout
        p = run("check", exp, "--json")
        assert json.loads(p.stdout)["application"]["goal"] == [{"metric": "collisions", "max": 0}], p.stdout
        plain = write(os.path.join(tmp, "plain.py"), "print()\n")
        with open(exp, "w") as f:
            f.write(open(experiment(tmp)).read() + section.replace(app, plain))
        expect_error(run("check", exp), 2, "application.command[0]", "is not executable")


def exceed(b, s):
    cdf = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))
    return cdf((-1 - b) / s) + 1 - cdf((1 - b) / s) if s > 0 else float(abs(b) > 1)


@test
def calibrate_finds_the_region_and_answers_queries():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        p = run("calibrate", calibrate_experiment(tmp), "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        summary = json.loads(p.stdout)
        with open(os.path.join(out, "budgets.json")) as f:
            budgets = json.load(f)
        assert budgets["runs"]["total"] == 25 and len(budgets["points"]) == 25, budgets["runs"]
        assert summary["volume_fraction"] == budgets["region"]["volume_fraction"]
        # Against the truth on a grid: every point the region holds is valid
        # (the application is deterministic and monotone here).
        truth = sum(exceed(1.5 * (i + .5) / 60, (j + .5) / 60) <= 0.05 for i in range(60) for j in range(60)) / 3600
        assert abs(budgets["region"]["volume_fraction"] - truth) < 0.1, (budgets["region"], truth)
        for box in budgets["region"]["boxes"]:
            assert exceed(box["hi"]["bias"], box["hi"]["std"]) <= 0.05, box
        q = os.path.join(out, "budgets.json")
        inside = run("calibrate", "--query", q, "bias=0.05", "std=0.05")
        assert inside.returncode == 0 and inside.stdout.strip() == "inside", (inside.stdout, inside.stderr)
        outside = run("calibrate", "--query", q, "bias=1.45", "std=0.95")
        assert outside.returncode == 3 and outside.stdout.strip() == "outside", (outside.stdout, outside.stderr)
        expect_error(run("calibrate", "--query", q, "bias=0.1", "sigma=0.1"), 2, "'sigma=0.1' is not NAME=VALUE",
                     "they are: bias, std")
        expect_error(run("calibrate", "--query", q, "bias=0.1"), 2, "no value for 'std'")


@test
def calibrate_resumes_after_kill_9_with_the_same_region():
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        exp = calibrate_experiment(tmp, points=20, pause="0.1")
        proc = subprocess.Popen([CALIPROX, "calibrate", exp, "-o", a, "-q"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1.2)
        proc.kill()
        proc.wait()
        with open(os.path.join(a, "records.jsonl")) as f:
            kept = len(f.read().splitlines()) - 1
        assert 0 < kept < 20, kept
        assert not os.path.exists(os.path.join(a, "budgets.json"))
        p = run("calibrate", exp, "-o", a, "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["runs"]["replayed"] == kept, p.stdout
        p = run("calibrate", exp, "-o", b)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(a, "budgets.json")) as f:
            resumed = json.load(f)
        with open(os.path.join(b, "budgets.json")) as f:
            whole = json.load(f)
        assert resumed["points"] == whole["points"] and resumed["region"] == whole["region"]


@test
def calibrate_in_parallel_rounds_finds_the_same_region_with_any_number_of_jobs():
    with tempfile.TemporaryDirectory() as tmp:
        docs, overlap = [], []
        for jobs in (1, 3):
            out, trace = os.path.join(tmp, f"out{jobs}"), os.path.join(tmp, f"trace{jobs}")
            p = run("calibrate", calibrate_experiment(tmp, points=12, pause="0.3", jobs=jobs, batch=3, trace=trace),
                    "-o", out)
            assert p.returncode == 0, p.stderr
            with open(os.path.join(out, "budgets.json")) as f:
                docs.append(json.load(f))
            with open(trace) as f:
                spans = [tuple(map(float, line.split()[:2])) for line in f]
            # The most runs alive at once (at some run's start).
            overlap.append(max(sum(1 for a, b in spans if a <= s < b) for s, _ in spans))
        assert docs[0]["points"] == docs[1]["points"] and docs[0]["region"] == docs[1]["region"]
        assert overlap[0] == 1 and overlap[1] >= 2, overlap


@test
def calibrate_needs_its_sections():
    with tempfile.TemporaryDirectory() as tmp:
        expect_error(run("calibrate", experiment(tmp)), 2, "calibrate needs an application section")
        exp = calibrate_experiment(tmp)
        with open(exp) as f:
            text = f.read().split("\ncalibrate:\n")[0] + "\n"
        expect_error(run("calibrate", write(exp, text)), 2, "calibrate needs a calibrate section")
        bad = write(exp, text + "calibrate:\n  axes: [{param: rate, lo: 0.5, hi: 0.2}]\n")
        expect_error(run("calibrate", bad), 2, "calibrate.axes[0].param: rate is not a parameter of gaussian",
                     "calibrate.axes[0]: the range [0.5, 0.2] is empty or reversed")


@test
def inject_measures_candidates_and_resumes():
    with tempfile.TemporaryDirectory() as tmp:
        exp, out = experiment(tmp), os.path.join(tmp, "out")
        cfg = write(os.path.join(tmp, "perf.json"), json.dumps({"knobs": {"/conv1/Conv": "perf-col-2-0"}}))
        p = run("inject", exp, "--config", cfg, "--each-knob", "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(out, "errors.json")) as f:
            doc = json.load(f)
        assert doc["split"] == "calibrate" and doc["samples"] == 1000 and doc["output"] == "logits"
        names = [c["name"] for c in doc["candidates"]]
        assert names[0] == "perf.json" and "/conv1/Conv int8" in names, names
        first = doc["candidates"][0]["errors"]
        # A classifier: the flip rate against the exact network is the fitted label_flip rate, and the
        # accuracies are the QoS values of the candidate and of the exact network.
        assert 0 < first["vs_exact"]["flip_rate"] < 0.5, first["vs_exact"]["flip_rate"]
        assert first["fitted"]["label_flip"]["rate"] == first["vs_exact"]["flip_rate"]
        assert abs(100 * first["vs_truth"]["accuracy"] - first["qos"]["value"]) < 1e-9
        assert abs(100 * first["vs_truth"]["accuracy_exact"] - first["qos"]["exact"]) < 1e-9
        assert first["vs_exact"]["abs_quantiles"]["p50"] <= first["vs_exact"]["abs_quantiles"]["max"]
        assert sum(map(sum, first["vs_exact"]["confusion"])) == 1000
        again = run("inject", exp, "--config", cfg, "--each-knob", "-o", out, "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["replayed"] == len(names), again.stdout
        with open(os.path.join(out, "errors.json")) as f:
            assert json.load(f) == doc
        expect_error(run("inject", exp, "--split", "nope", "-o", out), 2, "nope")
        expect_error(run("inject", exp, "--pareto", cfg, "-o", out), 2, "perf.json")


def start_serve(tmp, sock, *args, **popen):
    """`caliprox serve` on the LeNet experiment, once its socket exists."""
    return start_server([CALIPROX, "serve", experiment(tmp), "--socket", sock, "-q", *args], sock, **popen)


@test
def serve_answers_like_infer_refuses_bad_requests_and_stays_up():
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "net.sock")
        server = start_serve(tmp, sock, "--backend", "reference", stderr=subprocess.PIPE, text=True)
        try:
            reply, y = serve_request(sock, [2, 1, 28, 28])
            assert reply["outputs"][0]["shape"] == [2, 10], reply
            p = run("infer", LENET, "-i", lenet_input(tmp), "-o", os.path.join(tmp, "o"), "--backend", "reference",
                    "--json")
            with open(json.loads(p.stdout)["outputs"]["logits"], "rb") as f:
                expected = struct.unpack("<20f", f.read()[-80:])
            assert max(abs(a - b) for a, b in zip(y, expected)) < 1e-5, (y, expected)
            for shape, payload, header, needle in [
                    ([2, 3, 28, 28], None, None, "dimension 1"),
                    ([2, 1, 28, 28], b"\0" * 12, None, "needs 6272 payload bytes, found 12"),
                    ([1], None, {"inputs": [{"dtype": "int8", "shape": [1, 1, 28, 28]}]}, "expected float32"),
                    ([1], None, {"nothing": 1}, "\"inputs\"")]:
                reply, _ = serve_request(sock, shape, payload, header=header)
                assert needle in reply.get("error", ""), reply
            reply, _ = serve_request(sock, [1, 1, 28, 28])  # still up
            assert "outputs" in reply, reply
        finally:
            server.terminate()
            assert server.wait(timeout=20) == 0, server.stderr.read()
        assert not os.path.exists(sock)
        # A path that is not a socket is not touched.
        plain = write(os.path.join(tmp, "plain"), "keep me")
        expect_error(run("serve", experiment(tmp), "--socket", plain), 2, "exists and is not a socket")
        with open(plain) as f:
            assert f.read() == "keep me"


@test
def serve_perturbs_outputs_with_an_error_model():
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "net.sock")
        model = json.dumps({"kind": "gaussian", "bias": 10.0})
        server = start_serve(tmp, sock, "--error-model", model, "--max-requests", "1")
        reply, y = serve_request(sock, [1, 1, 28, 28])
        assert server.wait(timeout=20) == 0
        p = run("infer", LENET, "-i", lenet_input(tmp, batch=1), "-o", os.path.join(tmp, "o"), "--json")
        with open(json.loads(p.stdout)["outputs"]["logits"], "rb") as f:
            exact = struct.unpack("<10f", f.read()[-40:])
        assert all(abs(a - b - 10.0) < 1e-3 for a, b in zip(y, exact)), (y, exact)


@test
def serve_clients_in_python_and_cpp_get_what_infer_gets():
    system_python = "/usr/bin/python3"
    if subprocess.run([system_python, "-c", "import numpy"], capture_output=True).returncode != 0:
        raise SkipTest("Debian's python3-numpy is not installed (scripts/install-deps.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "net.sock")
        server = start_serve(tmp, sock, "--max-requests", "2", "--backend", "reference")
        py = subprocess.run([system_python, "-c",
                             "import sys, json, numpy as np; sys.path.insert(0, sys.argv[1]); import caliprox_client as c;"
                             "y = c.Client(sys.argv[2]).infer(np.zeros((2, 1, 28, 28), np.float32));"
                             "print(json.dumps([list(y.shape), y.ravel().tolist()]))",
                             os.path.join(ROOT, "clients", "python"), sock], capture_output=True, text=True)
        assert py.returncode == 0, py.stderr
        shape, y_py = json.loads(py.stdout)
        src = write(os.path.join(tmp, "client.cc"), """#include <cstdio>
#include "caliprox_client.h"
int main(int, char** argv) {
  caliprox::ServeClient c(argv[1]);
  std::vector<float> y = c.infer({2, 1, 28, 28}, std::vector<float>(2 * 28 * 28, 0.0f));
  for (float v : y) std::printf("%.9g\\n", v);
  return c.output_shape() == std::vector<int64_t>{2, 10} ? 0 : 1;
}
""")
        exe = os.path.join(tmp, "client")
        cc = subprocess.run(["c++", "-std=c++17", "-O1", "-I", os.path.join(ROOT, "clients", "cpp"), src, "-o", exe],
                            capture_output=True, text=True)
        assert cc.returncode == 0, cc.stderr
        cpp = subprocess.run([exe, sock], capture_output=True, text=True)
        assert cpp.returncode == 0, cpp.stderr
        y_cpp = [float(v) for v in cpp.stdout.split()]
        assert server.wait(timeout=20) == 0
        p = run("infer", LENET, "-i", lenet_input(tmp), "-o", os.path.join(tmp, "o"), "--backend", "reference",
                "--json")
        with open(json.loads(p.stdout)["outputs"]["logits"], "rb") as f:
            expected = struct.unpack("<20f", f.read()[-80:])
        assert shape == [2, 10]
        assert max(abs(a - b) for a, b in zip(y_py, expected)) < 1e-5
        assert max(abs(a - b) for a, b in zip(y_cpp, expected)) < 1e-5

SERVED_APP = os.path.join(ROOT, "tests", "data", "apps", "served.py")


def two_networks(tmp, goal="{metric: diff, max: 0.0001}", repeats=2):
    """The LeNet experiment with two copies of the network (a, b) and an application that asks serve."""
    with open(experiment(tmp)) as f:
        text = f.read()
    model = LENET
    net = text[text.index("network:"):text.index("dataset:")]
    text = text.replace(net, f"networks:\n  a: {{model: {model}}}\n  b: {{model: {model}}}\n")
    text += f"application:\n  command: [{SERVED_APP}]\n  repeats: {repeats}\n  jobs: 2\n  goal: [{goal}]\n"
    text += "  record: [a_mean, b_mean]\n"
    return write(os.path.join(tmp, "two.yaml"), text)


@test
def several_networks_check_serve_and_single_network_commands():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = two_networks(tmp)
        p = run("check", exp, "--json")
        assert p.returncode == 0, p.stderr
        assert [n["name"] for n in json.loads(p.stdout)["networks"]] == ["a", "b"], p.stdout
        expect_error(run("knobs", exp), 2, "names several networks (a, b); choose one with --network NAME")
        expect_error(run("knobs", exp, "--network", "c"), 2, "no network 'c'")
        assert run("knobs", exp, "--network", "b").returncode == 0
        cfg = write(os.path.join(tmp, "perf.json"), json.dumps({"knobs": {"/conv1/Conv": "perf-col-2-0"}}))
        expect_error(run("serve", exp, "--socket", os.path.join(tmp, "s"), "--config", cfg), 2,
                     "several networks (a, b); write NAME=")
        sock = os.path.join(tmp, "two.sock")
        server = start_server([CALIPROX, "serve", exp, "--socket", sock, "-q", "--config", "b=" + cfg], sock,
                              stderr=subprocess.PIPE, text=True)
        try:
            reply, _ = serve_request(sock, [1, 1, 28, 28])
            assert "which network? give \"network\": one of a, b" in reply.get("error", ""), reply
            image = struct.pack("<784f", *[((i * 7919) % 255) / 255.0 for i in range(784)])
            header = lambda n: {"network": n, "inputs": [{"dtype": "float32", "shape": [1, 1, 28, 28]}]}
            _, ya = serve_request(sock, [1, 1, 28, 28], image, header=header("a"))
            _, yb = serve_request(sock, [1, 1, 28, 28], image, header=header("b"))
            assert max(abs(x - y) for x, y in zip(ya, yb)) > 1e-3, (ya, yb)  # b is perforated
            reply, _ = serve_request(sock, [1, 1, 28, 28], image, header=header("c"))
            assert "no network 'c'" in reply.get("error", ""), reply
        finally:
            server.terminate()
            assert server.wait(timeout=20) == 0, server.stderr.read()


@test
def eval_application_runs_network_mode_with_a_server_and_replays():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp, out = two_networks(tmp), os.path.join(tmp, "out")
        # Both exact: the outputs agree, the goal holds (exit 0).
        p = run("eval", exp, "--application", "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["verdict"] == "valid", p.stdout
        with open(os.path.join(out, "application.json")) as f:
            doc = json.load(f)
        assert doc["mode"] == "network" and doc["passes"] == 2 and doc["requests_served"] == 4, doc
        run0 = doc["runs"][0]
        assert run0["request"]["serve"] is True and run0["request"]["mode"] == "network", run0
        assert run0["request"]["networks"] == {"a": {"config": None, "error_model": None},
                                               "b": {"config": None, "error_model": None}}, run0
        again = run("eval", exp, "--application", "-o", out, "--json")  # replayed from records, same answer
        with open(os.path.join(out, "application.json")) as f:
            assert json.load(f)["runs"] == doc["runs"]
        assert again.returncode == 0
        # b perforated: the outputs differ, the goal fails (exit 3), and the request carries the configuration.
        cfg = write(os.path.join(tmp, "perf.json"), json.dumps({"knobs": {"/conv1/Conv": "perf-col-2-0"}}))
        out2 = os.path.join(tmp, "out2")
        p = run("eval", exp, "--application", "--config", "b=" + cfg, "-o", out2)
        assert p.returncode == 3, (p.returncode, p.stderr)
        assert "repeat 0: FAIL" in p.stdout and "verdict: invalid (0/2 runs passed)" in p.stdout, p.stdout
        with open(os.path.join(out2, "application.json")) as f:
            doc = json.load(f)
        assert doc["runs"][0]["request"]["networks"]["b"]["config"] == {"/conv1/Conv": "perf-col-2-0"}
        expect_error(run("eval", exp, "--application", "--config", cfg, "-o", out2), 2, "write NAME=FILE")
        expect_error(run("eval", experiment(tmp), "--application"), 2, "needs an application section")


@test
def calibrate_serves_error_models_and_places_inject_candidates():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        # The exact network's mean output on the app's image, from a network-mode run.
        with open(experiment(tmp)) as f:
            base = f.read() + f"application:\n  command: [{SERVED_APP}]\n  goal: [{{metric: diff, max: 1}}]\n"
        base += "  record: [network_mean]\n"
        p = run("eval", write(os.path.join(tmp, "one.yaml"), base), "--application", "-o", os.path.join(tmp, "e"),
                "--json")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(tmp, "e", "application.json")) as f:
            exact_mean = json.load(f)["runs"][0]["metrics"]["network_mean"]
        # Valid while the served mean stays within exact + 1: a bias of at most 1 on every logit.
        text = base.replace("goal: [{metric: diff, max: 1}]", f"goal: [{{metric: network_mean, max: {exact_mean + 1}}}]")
        text = text.replace("  record: [network_mean]\n", "  record: [diff]\n  serve: true\n")
        text += "calibrate:\n  axes: [{param: bias, lo: 0, hi: 2.5}]\n  points: 12\n"
        exp, out = write(os.path.join(tmp, "cal.yaml"), text), os.path.join(tmp, "cal")
        p = run("calibrate", exp, "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(out, "budgets.json")) as f:
            budgets = json.load(f)
        assert budgets["networks"] == ["network"] and budgets["axes"][0]["network"] == "network"
        for pt in budgets["points"]:
            b = pt["values"]["bias"]
            assert pt["verdict"] == ("valid" if b <= 1 + 1e-6 else "invalid"), pt
        assert 0.35 < budgets["region"]["volume_fraction"] <= 0.42, budgets["region"]
        with open(os.path.join(out, "records.jsonl")) as f:
            rec = json.loads(f.readlines()[-1])
        assert rec["data"]["request"]["serve"] is True, rec
        # inject's candidates placed in the region: exact at |bias| 0 is inside.
        cfg = write(os.path.join(tmp, "perf.json"), json.dumps({"knobs": {"/conv1/Conv": "perf-col-2-0"}}))
        inj = os.path.join(tmp, "inj")
        assert run("inject", exp, "--config", cfg, "-o", inj).returncode == 0
        p = run("calibrate", "--query", os.path.join(out, "budgets.json"), "--errors",
                os.path.join(inj, "errors.json"), "--json")
        answers = json.loads(p.stdout)["answers"]
        assert [a["candidate"] for a in answers] == ["exact", "perf.json"], answers
        assert answers[0]["answer"] == "inside" and answers[0]["values"] == {"bias": 0.0}, answers
        with open(os.path.join(inj, "errors.json")) as f:
            measured = abs(json.load(f)["candidates"][0]["errors"]["vs_exact"]["bias"])
        assert abs(answers[1]["values"]["bias"] - measured) < 1e-12
        assert p.returncode == {"inside": 0, "outside": 3, "uncertain": 1}[answers[1]["answer"]], p
        expect_error(run("calibrate", "--query", os.path.join(out, "budgets.json"), "--errors", cfg), 2,
                     "not an errors.json")
        with open(os.path.join(inj, "errors.json")) as f:
            doc = json.load(f)
        for key, value, needle in [("experiment", "other", "measured for experiment 'other'"),
                                   ("network", "heading", "network 'heading' is not one of the budgets'")]:
            bad = write(os.path.join(tmp, "bad.json"), json.dumps(dict(doc, **{key: value})))
            expect_error(run("calibrate", "--query", os.path.join(out, "budgets.json"), "--errors", bad), 2, needle)


@test
def rowfollow_example_end_to_end():
    """The bundled row-following example, shrunk: 240 rendered frames, one episode per run."""
    if subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True).returncode != 0:
        raise SkipTest("Debian's python3-numpy is not installed (scripts/install-deps.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        exp = shrunk_experiment(tmp, episodes=1, points=16)
        p = run("check", exp, "--json")
        assert p.returncode == 0, p.stderr
        assert [n["name"] for n in json.loads(p.stdout)["networks"]] == ["distance", "heading"]
        # Calibrate in inject mode: the exact corner is valid, the most severe one is not.
        out = os.path.join(tmp, "run")
        p = run("calibrate", exp, "-o", out, "--json")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(out, "budgets.json")) as f:
            budgets = json.load(f)
        assert [a["name"] for a in budgets["axes"]] == ["heading.bias", "heading.std", "distance.bias", "distance.std"]
        assert 0 < budgets["region"]["volume_fraction"] < 1, budgets["region"]
        verdicts = {tuple(pt["values"].values()): pt["verdict"] for pt in budgets["points"]}
        assert "valid" in verdicts.values() and "invalid" in verdicts.values(), verdicts
        # inject places the exact heading network inside; the exact networks pass a network-mode run.
        p = run("inject", exp, "--network", "heading", "--config", write(os.path.join(tmp, "none.json"), '{"knobs": {}}'),
                "-o", os.path.join(tmp, "inj"))
        assert p.returncode == 0, p.stderr
        q = run("calibrate", "--query", os.path.join(out, "budgets.json"), "--errors",
                os.path.join(tmp, "inj", "errors.json"), "--json")
        answers = json.loads(q.stdout)["answers"]
        assert answers[0]["candidate"] == "exact" and answers[0]["answer"] == "inside", answers
        assert 0.005 < answers[0]["values"]["heading.std"] < 0.1, answers  # the network's own error, measured
        # Guided tuning of both networks against those budgets: few application runs, resumable.
        guided = os.path.join(tmp, "guided")
        args = ("tune", exp, "--guide", os.path.join(out, "budgets.json"), "--iterations", "16", "--checks", "2",
                "-o", guided, "--json")
        p = run(*args, timeout=900)
        assert p.returncode in (0, 3), p.stderr
        with open(os.path.join(guided, "joint.json")) as f:
            doc = json.load(f)
        conforms(doc, "joint-tune.schema.json")
        s, a = doc["search"], doc["application"]
        assert s["accepted"] + s["discarded"] + s["uncertain"] == s["distinct"] > 0, s
        assert 1 <= a["checks"] <= 2 and a["runs"] == 2 * a["checks"] == a["fresh_runs"], a
        assert all(f["placement"] in ("accepted", "uncertain") for f in doc["finalists"]), doc["finalists"]
        if p.returncode == 0:
            chosen = doc["chosen"]
            assert set(chosen["configs"]) == {"heading", "distance"} and chosen["speedup_measured"] > 0, chosen
            assert chosen["metrics"]["collisions"] == 0, chosen
            for network in ("heading", "distance"):
                with open(os.path.join(guided, network + ".json")) as f:
                    assert json.load(f)["knobs"] == chosen["configs"][network]
        again = run(*args, timeout=900)
        assert again.returncode == p.returncode, again.stderr
        assert json.loads(again.stdout)["application"]["fresh_runs"] == 0, again.stdout  # replayed
        # Bad guides: another experiment's budgets, an axis on a network this experiment lacks.
        for key, value, needle in [("experiment", "other", "calibrated for experiment 'other'"),
                                   ("axes", [dict(budgets["axes"][0], network="lidar")], "network 'lidar'")]:
            bad = write(os.path.join(tmp, "bad-budgets.json"), json.dumps(dict(budgets, **{key: value})))
            expect_error(run("tune", exp, "--guide", bad, "-o", os.path.join(tmp, "bad")), 2, needle)
        expect_error(run("tune", exp, "--guide", os.path.join(out, "budgets.json"), "--margin", "1.5", "-o",
                         os.path.join(tmp, "bad")), 2, "margin must be in [0, 1)")
        expect_error(run("tune", exp, "--guide", os.path.join(out, "budgets.json"), "--network", "heading", "-o",
                         os.path.join(tmp, "bad")), 2, "no --network")
        expect_error(run("tune", exp, "--joint", "--goal", "1 percent", "-o", os.path.join(tmp, "bad")), 2,
                     "--goal '1 percent'")
        expect_error(run("tune", exp, "--network", "heading", "--checks", "2", "-o", os.path.join(tmp, "bad")), 2,
                     "--checks goes with --guide or --joint")
        expect_error(run("tune", exp, "--joint", "--qos-mode", "p1", "-o", os.path.join(tmp, "bad")), 2,
                     "--qos-mode")
        # Unguided: the networks' QoS goal, the application checks the finalists (one here).
        p = run("tune", exp, "--joint", "--iterations", "8", "--checks", "1", "-o", os.path.join(tmp, "joint"),
                "--json", timeout=900)
        assert p.returncode in (0, 3), p.stderr
        with open(os.path.join(tmp, "joint", "joint.json")) as f:
            doc = json.load(f)
        conforms(doc, "joint-tune.schema.json")
        assert doc["mode"] == "unguided" and doc["search"]["accepted"] == 0, doc["search"]
        assert doc["application"]["checks"] <= 1, doc["application"]
        p = run("eval", exp, "--application", "--repeats", "1", "-o", os.path.join(tmp, "net"), "--json", timeout=600)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(tmp, "net", "application.json")) as f:
            doc = json.load(f)
        assert doc["runs"][0]["metrics"]["collisions"] == 0 and doc["requests_served"] > 100, doc


finish()
