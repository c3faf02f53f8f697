#!/usr/bin/env python3
"""End-to-end tests of fine-tuning through the experiment's hook (`export --finetune`,
`eval --finetune`; man caliprox-experiment, FINE-TUNING): a real fine-tune of a pruned LeNet by
models/finetune.py that wins back accuracy the prune lost, and hooks that fail, hang, write
nothing, write garbage or write another network, each rejected with its reason, exit 1, nothing
written and no temporary folder left behind; an interrupted fine-tune kills its hook (exit 130).

Usage: cli_finetune_test.py CALIPROX_BINARY SOURCE_ROOT
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import time

from cli_support import CALIPROX, ENV, LENET, ROOT, SkipTest, expect_error, experiment, finish, lenet_input, run, test, write

PRUNE = {"/conv1/Conv": "prune-0.5", "/conv2/Conv": "prune-0.5"}
COMMAND = re.compile(r"^    command: \[.*\]$", re.M)


def require_models():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")


def require_torch():
    p = subprocess.run(["/usr/bin/python3", "-c", "import torch, numpy"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SkipTest("Debian's python3-torch and python3-numpy are needed for models/finetune.py "
                       f"(scripts/install-deps.sh --train): {p.stderr.strip().splitlines()[-1:]}")


def lenet(tmp, command=None, timeout=None):
    """configs/fashion-lenet.yaml with a test split of 640 samples and, when given, another hook."""
    path = experiment(tmp, **{"test: [5000, 10000]": "test: [5000, 5640]"})
    with open(path) as f:
        text = f.read()
    if command is not None:
        assert COMMAND.search(text), text
        text = COMMAND.sub(lambda m: "    command: " + json.dumps(command), text)
    if timeout is not None:
        text = text.replace("    timeout: 900", f"    timeout: {timeout}")
    return write(path, text)


def config(tmp, knobs):
    return write(os.path.join(tmp, "config.json"), json.dumps({"knobs": knobs}))


def caliprox(tmpdir, *args):
    """caliprox with TMPDIR=tmpdir, where the hook's temporary folder goes."""
    return subprocess.run([CALIPROX, *args], capture_output=True, text=True, timeout=300,
                          env=dict(ENV, TMPDIR=tmpdir))


def sh(script):
    return ["/bin/sh", "-c", script, "hook", "{plan}", "{model}", "{out}"]


@test
def finetune_wins_back_accuracy_of_a_pruned_lenet():
    require_models()
    require_torch()
    with tempfile.TemporaryDirectory() as tmp:
        # One short epoch: the prune of both convolutions costs LeNet far more than that wins back.
        hook = ["/usr/bin/python3", os.path.join(ROOT, "models", "finetune.py"), "--plan", "{plan}", "--model",
                "{model}", "--out", "{out}", "--samples", "4000", "--lr", "3e-3"]
        exp = lenet(tmp, hook)
        model = os.path.join(tmp, "tuned.onnx")
        temp = os.path.join(tmp, "temp")
        os.makedirs(temp)
        t0 = time.time()
        p = caliprox(temp, "export", exp, "--config", config(tmp, PRUNE), "-o", model, "--finetune", "--json")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        ft = doc["finetune"]
        assert ft["split"] == "test" and ft["metric"] == "top1", ft
        assert 0 < ft["seconds"] < time.time() - t0, ft
        assert ft["after"]["top1"] > ft["before"]["top1"] + 2, ft
        assert doc["verified"]["max_rel_diff"] < 1e-4, doc["verified"]  # the file holds the fine-tuned network
        assert "validation top-1" in p.stderr, p.stderr  # the hook's own report, relayed
        assert os.listdir(temp) == [], os.listdir(temp)
        # The written network is what eval --finetune measures: run it in caliprox.
        inf = run("infer", model, "-i", lenet_input(tmp), "-o", os.path.join(tmp, "y"), "--json")
        assert inf.returncode == 0, inf.stderr
        plain = os.path.join(tmp, "plain.onnx")
        assert run("export", exp, "--config", config(tmp, PRUNE), "-o", plain).returncode == 0
        with open(plain, "rb") as a, open(model, "rb") as b:
            x, y = a.read(), b.read()
            assert len(x) == len(y) and x != y  # same structure, other weights
        # eval --finetune reports the same before and after (the hook is seeded).
        p = run("eval", exp, "--config", config(tmp, PRUNE), "--finetune", "-o", os.path.join(tmp, "run"), "--json")
        assert p.returncode == 0, p.stderr
        ev = json.loads(p.stdout)
        assert ev["finetune"]["before"] == ft["before"], (ev["finetune"], ft)
        assert ev["metrics"] == ev["finetune"]["after"], ev
        assert abs(ev["metrics"]["top1"] - ft["after"]["top1"]) < 1.0, (ev["metrics"], ft)


def expect_rejected(tmp, hook, *needles, timeout=None, subcommand="export"):
    """The hook's failure: exit 1 naming the reason, nothing written or left behind."""
    exp = lenet(tmp, hook, timeout)
    temp = os.path.join(tmp, "temp")
    os.makedirs(temp, exist_ok=True)
    model = os.path.join(tmp, "model.onnx")
    write(model, "keep")
    out = os.path.join(tmp, "run")
    if subcommand == "export":
        p = caliprox(temp, "export", exp, "--config", config(tmp, PRUNE), "-o", model, "--finetune")
    else:
        p = caliprox(temp, "eval", exp, "--config", config(tmp, PRUNE), "--finetune", "-o", out)
    expect_error(p, 1, "fine-tune hook of network 'network'", "the network stays as reshaped", *needles)
    with open(model) as f:
        assert f.read() == "keep"
    assert not os.path.exists(out)
    assert os.listdir(temp) == [], os.listdir(temp)
    return p


@test
def a_failing_hook_is_rejected_with_its_stderr():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        expect_rejected(tmp, sh('echo "loading $1" >&2; echo "cannot train: no GPU" >&2; exit 1'),
                        "failed: exit status 1", "its stderr ends:", "cannot train: no GPU")
        expect_rejected(tmp, sh("kill -9 $$"), "failed: killed by signal 9", subcommand="eval")


@test
def a_hanging_hook_is_killed_at_its_timeout_with_its_children():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        marker = os.path.join(tmp, "still-running")
        t0 = time.time()
        # A child of the hook that would outlive it, unless the whole group is killed.
        expect_rejected(tmp, sh(f"(sleep 3; touch {marker}) & sleep 60"), "timed out after 1.", timeout=1)
        assert time.time() - t0 < 30
        time.sleep(3.5)
        assert not os.path.exists(marker), "the hook's child outlived the timeout"


@test
def an_interrupted_finetune_kills_the_hook_and_exits_130():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        marker = os.path.join(tmp, "still-running")
        exp = lenet(tmp, sh(f"(sleep 4; touch {marker}) & sleep 60"))
        temp = os.path.join(tmp, "temp")
        os.makedirs(temp)
        model = os.path.join(tmp, "model.onnx")
        p = subprocess.Popen([CALIPROX, "export", exp, "--config", config(tmp, PRUNE), "-o", model, "--finetune"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(ENV, TMPDIR=temp))
        for _ in range(300):  # until the hook runs (its folder exists), at most 30 s
            if os.listdir(temp):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 130, (p.returncode, err)
        assert "interrupted" in err and out == "", (out, err)
        time.sleep(4.5)
        assert not os.path.exists(marker), "the hook's child outlived the interruption"
        assert not os.path.exists(model) and os.listdir(temp) == [], os.listdir(temp)


@test
def a_hook_that_writes_another_network_or_none_is_rejected():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        # The network as trained, not as pruned.
        expect_rejected(tmp, sh(f'cp {LENET} "$3"'), "rejected the model it wrote: not the structure of the network "
                        "it was given: initializer 'conv1.bias' is float32 [16], the network's is float32 [8]")
        expect_rejected(tmp, sh('echo garbage > "$3"'), "wrote a model caliprox cannot load")
        expect_rejected(tmp, sh("exit 0"), "exited 0 but wrote no model at {out}")
        # The plan names what it got: a hook that checks it sees the model's path and the pruned channels.
        check = ('import json, sys; p = json.load(open(sys.argv[1])); '
                 'assert p["model"] == sys.argv[2] and p["output"] == sys.argv[3], p; '
                 'assert [len(s["keep"]) for s in p["steps"]] == [8, 16], p; sys.exit(5)')
        expect_rejected(tmp, ["/usr/bin/python3", "-c", check, "{plan}", "{model}", "{out}"],
                        "failed: exit status 5")


@test
def finetune_needs_a_reshape_knob_a_hook_and_a_config():
    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        exp = lenet(tmp)
        model = os.path.join(tmp, "m.onnx")
        p = run("export", exp, "--config", config(tmp, {"/conv1/Conv": "samp-2-0"}), "-o", model, "--finetune")
        expect_error(p, 2, "the configuration has no reshape knob")
        with open(exp) as f:
            text = f.read()
        no_hook = write(os.path.join(tmp, "nohook.yaml"), re.sub(r"  finetune:\n(    .*\n)+", "", text))
        p = run("export", no_hook, "--config", config(tmp, PRUNE), "-o", model, "--finetune")
        expect_error(p, 2, "network 'network' of", "has no finetune hook")
        assert not os.path.exists(model)
        p = run("eval", exp, "--finetune", "-o", os.path.join(tmp, "run"))
        assert p.returncode == 2 and "--config" in p.stderr, p.stderr


finish()
