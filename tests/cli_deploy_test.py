#!/usr/bin/env python3
"""End-to-end tests of `caliprox deploy` against real transports: an sshd of
its own on 127.0.0.1 (Debian's openssh-server, a throwaway host key, user key
and port, stopped afterwards), a local folder, and tests/fake_adb.py standing
in for adb (no Android device or emulator can be reached here).

Usage: cli_deploy_test.py CALIPROX_BINARY SOURCE_ROOT [AARCH64_BINARY QEMU_SYSROOT]
With an aarch64 build, it also deploys to an "aarch64 target": the same sshd,
the aarch64 binary pushed and run under qemu-aarch64 through the target's
command prefix.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from cli_support import (CALIPROX, ENV, LENET, ROOT, SSHD, SkipTest, Sshd, expect_error, finish, free_port, lenet_input,
                         run, test, write)

AARCH64 = sys.argv[3] if len(sys.argv) > 4 else None
SYSROOT = sys.argv[4] if len(sys.argv) > 4 else None
def deploy_experiment(tmp, targets, test_split="test: [5000, 5320]", name="exp.yaml"):
    """configs/fashion-lenet.yaml with absolute paths, a short test split and `targets` first."""
    with open(os.path.join(ROOT, "configs", "fashion-lenet.yaml")) as f:
        text = f.read().replace("../models/", os.path.join(ROOT, "models") + "/")
    text = text.replace("test: [5000, 10000]", test_split).replace("tune: [1000, 5000]", "tune: [1000, 1640]")
    text = text.replace("targets:\n", "targets:\n" + targets)
    return write(os.path.join(tmp, name), text)


def deploy(exp, target, *command, out=None, timeout=600, env=None):
    args = ["deploy", exp, "--target", target]
    if out:
        args += ["-o", out]
    return subprocess.run([CALIPROX, *args, "--", *command], capture_output=True, text=True, timeout=timeout,
                          env=env or ENV)


def needs_sshd():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    if not os.path.exists(SSHD):
        raise SkipTest(f"{SSHD} missing (Debian's openssh-server)")


@test
def ssh_deploy_pushes_once_runs_quoted_paths_and_pulls_artifacts():
    needs_sshd()
    with tempfile.TemporaryDirectory() as tmp:
        sshd = Sshd(tmp)
        try:
            # Spaces, quotes and shell metacharacters in the remote folder: quoted, never run.
            workdir = os.path.join(tmp, "remote dir $(touch PWNED) `touch PWNED` 'q' \"d\";x")
            exp = deploy_experiment(tmp, sshd.target("board", workdir, cpus="0"))
            out = os.path.join(tmp, "local out")
            p = deploy(exp, "board", "eval", "--json", out=out)
            assert p.returncode == 0, p.stderr
            assert "pushed 5 file(s)" in p.stderr, p.stderr
            summary = json.loads(p.stdout)  # the remote eval's own summary, streamed
            assert summary["metrics"]["top1"] > 80 and summary["target"]["name"] == "board", p.stdout
            with open(os.path.join(out, "eval.json")) as f:
                assert json.load(f)["metrics"] == summary["metrics"]
            assert not glob.glob(os.path.join(tmp, "**", "PWNED"), recursive=True) and not os.path.exists("PWNED")
            # Again: everything is there already, checked by hash.
            p = deploy(exp, "board", "profile", "--batch", "64", out=out)
            assert p.returncode == 0, p.stderr
            assert "pushed 0 file(s) (0.0 MiB); 5 already on the target" in p.stderr, p.stderr
            assert os.path.exists(os.path.join(out, "profile.json")) and os.path.exists(os.path.join(out, "eval.json"))
            assert not [f for f in os.listdir(tmp) if ".pulling-" in f]
        finally:
            sshd.stop()


@test
def ssh_deploy_bad_targets():
    needs_sshd()
    with tempfile.TemporaryDirectory() as tmp:
        sshd = Sshd(tmp)
        try:
            closed = free_port()
            targets = (sshd.target("down", os.path.join(tmp, "w"), port=closed) +
                       sshd.target("arm", os.path.join(tmp, "w"), abi="arm64-v8a") +
                       sshd.target("nokey", os.path.join(tmp, "w"), identity=os.path.join(tmp, "sshd", "host")))
            exp = deploy_experiment(tmp, targets)
            out = os.path.join(tmp, "out")
            expect_error(deploy(exp, "down", "eval", out=out), 4, "unreachable", "Connection refused")
            expect_error(deploy(exp, "nokey", "eval", out=out), 4, "unreachable", "Permission denied")
            expect_error(deploy(exp, "arm", "eval", out=out), 2, "arm64-v8a", "x86_64")
            expect_error(deploy(exp, "board", "eval", out=out), 2, "no target 'board'", "down, arm, nokey")
            expect_error(deploy(exp, "down", "serve", out=out), 2, "deploy runs one of", "'serve'")
            assert not os.path.exists(out)
        finally:
            sshd.stop()


@test
def ssh_deploy_remote_disk_full_leaves_nothing_half_written():
    needs_sshd()
    if os.geteuid() != 0:
        raise SkipTest("mounting a small tmpfs as the full remote disk needs root")
    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk")
        os.makedirs(disk)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk]).returncode != 0:
            raise SkipTest("cannot mount a tmpfs here")
        sshd = Sshd(tmp)
        try:
            exp = deploy_experiment(tmp, sshd.target("board", os.path.join(disk, "w")))
            out = os.path.join(tmp, "out")
            expect_error(deploy(exp, "board", "eval", out=out), 1, "No space left on device")
            assert not os.path.exists(out)
            leftovers = glob.glob(os.path.join(disk, "w", "store", "*", "*"))
            assert not [f for f in leftovers if f.endswith(".part")], leftovers
        finally:
            sshd.stop()
            subprocess.run(["umount", disk])


@test
def ssh_deploy_killed_remote_run_resumes():
    needs_sshd()
    with tempfile.TemporaryDirectory() as tmp:
        sshd = Sshd(tmp)
        try:
            workdir = os.path.join(tmp, "w")
            exp = deploy_experiment(tmp, sshd.target("board", workdir))
            with open(exp, "a") as f:
                f.write("knobs:\n  include: [\"perf-*-2-*\", \"samp-2-*\"]\ntune:\n  iterations: 60\n"
                        "  finalists: 2\n  predictor_samples: 128\n")
            out = os.path.join(tmp, "out")
            proc = subprocess.Popen([CALIPROX, "deploy", exp, "--target", "board", "-o", out, "--", "tune", "--quiet"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
            records = os.path.join(workdir, "runs", "fashion-lenet-board", "records.jsonl")
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None:
                if os.path.exists(records) and '"phase":"search"' in open(records).read():
                    break
                time.sleep(0.01)
            # Kill the remote run (not the local deploy): its records stay on the target.
            subprocess.run(["pkill", "-9", "-f", os.path.join(workdir, "store")])
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 1, err
            assert "the same deploy resumes it" in err, err
            assert not os.path.exists(out)
            kept = len(open(records).read().splitlines())
            p = deploy(exp, "board", "tune", "--json", out=out)
            assert p.returncode in (0, 3), p.stderr
            assert "resum" in p.stderr.lower(), p.stderr
            assert len(open(os.path.join(out, "records.jsonl")).read().splitlines()) >= kept
            assert json.loads(open(os.path.join(out, "pareto.json")).read())["configurations"]
        finally:
            sshd.stop()


@test
def ssh_deploy_aarch64_binary_under_qemu():
    needs_sshd()
    if not AARCH64:
        raise SkipTest("no aarch64 build given (scripts/test-aarch64.sh runs this case with one)")
    with tempfile.TemporaryDirectory() as tmp:
        sshd = Sshd(tmp)
        try:
            qemu = shutil.which("qemu-aarch64")
            exp = deploy_experiment(tmp, sshd.target("arm", os.path.join(tmp, "w"), abi="arm64-v8a", binary=AARCH64,
                                                     prefix=[qemu, "-L", SYSROOT]), test_split="test: [5000, 5128]")
            out = os.path.join(tmp, "out")
            p = deploy(exp, "arm", "eval", "--json", out=out, timeout=1200)
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["metrics"]["top1"] > 80, p.stdout
            assert os.path.exists(os.path.join(out, "eval.json"))
            # The x86-64 binary on an arm64 target is refused before anything is pushed.
            exp2 = deploy_experiment(tmp, sshd.target("arm2", os.path.join(tmp, "w2"), abi="arm64-v8a"), name="exp2.yaml")
            expect_error(deploy(exp2, "arm2", "eval"), 2, "arm64-v8a", "x86_64")
            assert not os.path.exists(os.path.join(tmp, "w2"))
        finally:
            sshd.stop()


@test
def adb_deploy_through_a_stand_in():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = os.path.join(tmp, "bin")
        os.makedirs(bin_dir)
        os.symlink(os.path.join(ROOT, "tests", "fake_adb.py"), os.path.join(bin_dir, "adb"))
        env = dict(ENV, PATH=bin_dir + ":" + ENV.get("PATH", "/usr/bin:/bin"))
        conf = os.path.join(bin_dir, "fake_adb.json")
        write(conf, json.dumps({"serial": "0123abcd"}))
        workdir = os.path.join(tmp, "data local tmp")
        targets = ("  - name: phone\n    transport: adb\n    serial: 0123abcd\n"
                   f"    workdir: {json.dumps(workdir)}\n"
                   "  - name: other\n    transport: adb\n    serial: '9999'\n"
                   f"    workdir: {json.dumps(workdir)}\n")
        exp = deploy_experiment(tmp, targets)
        out = os.path.join(tmp, "out")
        p = deploy(exp, "phone", "eval", out=out, env=env)
        assert p.returncode == 0, p.stderr
        assert os.path.exists(os.path.join(out, "eval.json"))
        expect_error(deploy(exp, "other", "eval", out=os.path.join(tmp, "o2"), env=env), 4, "unreachable",
                     "device '9999' not found")
        write(conf, json.dumps({"serial": "0123abcd", "offline": True}))
        expect_error(deploy(exp, "phone", "eval", out=os.path.join(tmp, "o3"), env=env), 4, "device offline")
        assert not os.path.exists(os.path.join(tmp, "o2")) and not os.path.exists(os.path.join(tmp, "o3"))


@test
def local_deploy_and_bad_experiment_keys():
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    with tempfile.TemporaryDirectory() as tmp:
        exp = deploy_experiment(tmp, "  - name: box\n    transport: local\n"
                                     f"    workdir: {json.dumps(os.path.join(tmp, 'box'))}\n")
        p = deploy(exp, "box", "check")
        assert p.returncode == 0 and "ok" in p.stdout, p.stderr
        # File arguments (infer's model and NAME=FILE input) are pushed and renamed.
        x = lenet_input(tmp)
        out = os.path.join(tmp, "inferred")
        p = deploy(exp, "box", "infer", LENET, "-i", f"input={x}", "--json", out=out)
        assert p.returncode == 0, p.stderr
        assert "pushed 1 file(s)" in p.stderr, p.stderr  # the input; the model is the network's
        assert os.path.exists(os.path.join(out, "logits.npy")), os.listdir(out)
        bad = deploy_experiment(tmp, "  - name: box\n    transport: ssh\n    workdir: relative/dir\n", name="bad.yaml")
        expect_error(run("check", bad), 2, "targets[0]", "host")
        expect_error(run("check", bad), 2, "workdir", "absolute")
        expect_error(deploy(exp, "host", "eval"), 2, "target 'host' has no transport")


finish()
