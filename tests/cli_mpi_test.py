#!/usr/bin/env python3
"""caliprox tune, calibrate and inject across the ranks of a real MPI job
(Open MPI's mpirun, --oversubscribe on this machine), against the same
commands run locally: same region, same search, same errors; the files
staged to the workers; a worker killed mid-job and the job resumed; and the
launches that must be refused (man caliprox-mpi).

Usage: cli_mpi_test.py CALIPROX_BINARY SOURCE_ROOT
"""
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time

from cli_support import (CALIPROX, ENV, ROOT, SSHD, SkipTest, Sshd, calibrate_experiment, expect_error, finish, run,
                         test, write)

sys.path.insert(0, os.path.join(ROOT, "examples", "rowfollow"))
from shrunk import shrunk_experiment  # noqa: E402

MPIRUN = shutil.which("mpirun")
# Root may run MPI here (CI machines run as root); no CMA single copy (it
# needs ptrace rights containers often lack); passive OpenMP waits.
MPI_ENV = dict(ENV, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")


def need_mpi():
    if not MPIRUN:
        raise SkipTest("mpirun not found (scripts/install-deps.sh installs Debian's openmpi-bin)")
    version = subprocess.run([CALIPROX, "--version"], capture_output=True, text=True).stdout
    if "mpi: not built in" in version:
        raise SkipTest("this caliprox was built without MPI (meson option mpi; libopenmpi-dev not found)")


def mpirun(n, *args, stage, timeout=600, extra=()):
    env = dict(MPI_ENV, CALIPROX_STAGE_DIR=stage)
    return subprocess.run([MPIRUN, "--oversubscribe", *extra, "-n", str(n), CALIPROX, *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def closed_form_experiment(tmp, points=12, pause="0.2", trace="", name="calibrate.yaml"):
    return calibrate_experiment(tmp, points=points, pause=pause, name=name, batch=3, trace=trace)


def records(folder, name="records.jsonl"):
    with open(os.path.join(folder, name)) as f:
        return [json.loads(line) for line in f.read().splitlines()[1:]]


def budgets(folder):
    with open(os.path.join(folder, "budgets.json")) as f:
        doc = json.load(f)
    return doc["points"], doc["region"]


def close(a, b, rel=1e-4):
    """QoS varies by up to about 1e-5 (relative) between any two runs, local ones too (oneDNN's float sums)."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


@test
def calibrate_across_three_ranks_finds_the_local_region():
    need_mpi()
    with tempfile.TemporaryDirectory() as tmp:
        stage, trace = os.path.join(tmp, "stage"), os.path.join(tmp, "trace")
        local, ranks = os.path.join(tmp, "local"), os.path.join(tmp, "ranks")
        p = run("calibrate", closed_form_experiment(tmp, name="local.yaml"), "-o", local)
        assert p.returncode == 0, p.stderr
        exp = closed_form_experiment(tmp, trace=trace)
        p = mpirun(3, "calibrate", exp, "-o", ranks, "--json", stage=stage)
        assert p.returncode == 0, p.stderr
        assert budgets(local) == budgets(ranks)
        assert "MPI: 3 ranks" in p.stderr and "5 file(s) to 2 worker(s): 10 sent" in p.stderr, p.stderr
        # Every record names its host; the runs ran on all three ranks: the
        # workers write their requests in their own folders under the stage.
        recs = records(ranks)
        assert len(recs) == 12 and {r["host"] for r in recs} == {socket.gethostname()}, recs[0]
        with open(trace) as f:
            spans = [line.split() for line in f]
        where = {"rank0" if path.startswith(ranks) else path.split("/work/")[1].split("-")[0] for _, _, path in spans}
        assert where == {"rank0", "rank1", "rank2"}, where
        times = [(float(a), float(b)) for a, b, _ in spans]
        assert max(sum(1 for a, b in times if a <= s < b) for s, _ in times) >= 2, "the ranks never ran at once"
        # The workers' copies: the experiment under the mirror of its path.
        trees = os.listdir(os.path.join(stage, "trees"))
        assert len(trees) == 1 and os.path.isfile(os.path.join(stage, "trees", trees[0]) + exp)
        # A second job finds them cached (hash-checked) and sends nothing.
        p = mpirun(3, "calibrate", exp, "-o", os.path.join(tmp, "again"), stage=stage)
        assert p.returncode == 0, p.stderr
        assert "5 file(s) to 2 worker(s): 0 sent (0.0 MiB), 10 already cached" in p.stderr, p.stderr
        assert budgets(os.path.join(tmp, "again")) == budgets(local)
        # A cached copy that no longer matches its hash is sent again (both
        # workers share this stage folder: both find it spoilt).
        obj = os.path.join(stage, "objects", os.listdir(os.path.join(stage, "objects"))[0])
        with open(obj, "ab") as f:
            f.write(b"x")
        p = mpirun(3, "calibrate", exp, "-o", os.path.join(tmp, "third"), stage=stage)
        assert p.returncode == 0, p.stderr
        assert "5 file(s) to 2 worker(s): 2 sent" in p.stderr, p.stderr


def rowfollow(tmp):
    """The bundled row-following example, shrunk as cli_app_test does: 240 frames, one episode per run."""
    if subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True).returncode != 0:
        raise SkipTest("Debian's python3-numpy is not installed (scripts/install-deps.sh installs it)")
    return shrunk_experiment(tmp, episodes=1, points=16)


def same_records(a, b, phases):
    ka = {(r["phase"], r["iteration"]): r for r in a if r["phase"] in phases}
    kb = {(r["phase"], r["iteration"]): r for r in b if r["phase"] in phases}
    assert set(ka) == set(kb), sorted(set(ka) ^ set(kb))[:5]
    for k, r in ka.items():
        s = kb[k]
        assert r["knobs"] == s["knobs"], (k, r["knobs"], s["knobs"])
        for split, v in r["qos"].items():
            assert close(v, s["qos"][split]), (k, split, v, s["qos"][split])
        assert close(r["qos_predicted"], s["qos_predicted"]), (k, r["qos_predicted"], s["qos_predicted"])
    return len(ka)


@test
def rowfollow_calibration_tune_and_inject_across_ranks_match_local_runs():
    need_mpi()
    with tempfile.TemporaryDirectory() as tmp:
        exp, stage = rowfollow(tmp), os.path.join(tmp, "stage")
        out = lambda name: os.path.join(tmp, name)
        # The example's calibration: the same region.
        p = run("calibrate", exp, "-o", out("cal-local"))
        assert p.returncode == 0, p.stderr
        p = mpirun(3, "calibrate", exp, "-o", out("cal-ranks"), stage=stage)
        assert p.returncode == 0, p.stderr
        assert budgets(out("cal-local")) == budgets(out("cal-ranks"))
        # Guided tuning of both networks against those budgets: the same
        # search; the candidates' runs and the checks' repeats on the ranks.
        # (Which finalist is checked first follows measured speedups, which
        # differ between any two runs: the pick is not compared.)
        for where in ("local", "ranks"):
            args = ("tune", exp, "--guide", os.path.join(out("cal-local"), "budgets.json"), "--iterations", "16",
                    "--checks", "2", "-o", out(f"guided-{where}"), "-q")
            p = run(*args) if where == "local" else mpirun(3, *args, stage=stage)
            assert p.returncode in (0, 3), p.stderr
        a, b = records(out("guided-local")), records(out("guided-ranks"))
        sa = {r["iteration"]: r for r in a if r["phase"] == "search"}
        sb = {r["iteration"]: r for r in b if r["phase"] == "search"}
        assert sorted(sa) == sorted(sb) == list(range(16)), (sorted(sa), sorted(sb))
        for it, x in sa.items():
            y = sb[it]
            assert x["knobs"] == y["knobs"] and close(x["qos_loss"], y["qos_loss"], 1e-3), (x, y)
        assert [r for r in b if r["phase"] == "check"], "no application check ran"
        # A short tune of one network, predicted (its single-knob runs and the
        # finalists' QoS on the ranks, the speedups on rank 0), then one that
        # runs every candidate: the same configurations with the same QoS.
        for mode, iterations in [("p2", "40"), ("empirical", "12")]:
            args = ("tune", exp, "--network", "heading", "--qos-mode", mode, "--iterations", iterations)
            p = run(*args, "-o", out(f"tune-{mode}-local"), "-q")
            assert p.returncode == 0, p.stderr
            p = mpirun(3, *args, "-o", out(f"tune-{mode}-ranks"), "-q", stage=stage)
            assert p.returncode == 0, p.stderr
            a, b = records(out(f"tune-{mode}-local")), records(out(f"tune-{mode}-ranks"))
            n = same_records(a, b, {"single", "search", "validate"})
            assert n >= int(iterations), n
            assert all(r["host"] == socket.gethostname() for r in b)
            with open(os.path.join(out(f"tune-{mode}-ranks"), "pareto.json")) as f:
                levels = json.load(f)["configurations"]
            validated = [r["knobs"] for r in b if r["phase"] == "validate"]
            assert all(c["knobs"] in validated for c in levels[1:]), "a level that was not validated"
        # inject: the same errors, candidate by candidate.
        configs = [write(out("c1.json"), '{"knobs": {"/features/features.3/Conv": "perf-col-3-2"}}'),
                   write(out("c2.json"), '{"knobs": {"/features/features.7/Conv": "prune-0.5"}}'),
                   write(out("c3.json"), '{"knobs": {"/features/features.0/Conv": "samp-4-3"}}')]
        args = ["inject", exp, "--network", "heading"] + [x for c in configs for x in ("--config", c)]
        p = run(*args, "-o", out("inj-local"))
        assert p.returncode == 0, p.stderr
        p = mpirun(3, *args, "-o", out("inj-ranks"), stage=stage)
        assert p.returncode == 0, p.stderr
        docs = []
        for name in ("inj-local", "inj-ranks"):
            with open(os.path.join(out(name), "errors.json")) as f:
                docs.append(json.load(f))
        assert [c["name"] for c in docs[0]["candidates"]] == [c["name"] for c in docs[1]["candidates"]]
        for x, y in zip(docs[0]["candidates"], docs[1]["candidates"]):
            assert close(x["errors"]["qos"]["value"], y["errors"]["qos"]["value"]), (x["name"], x, y)
        assert {r["host"] for r in records(out("inj-ranks"), "inject-records.jsonl")} == {socket.gethostname()}


def rank_pids(rank, marker):
    """caliprox processes of an MPI job whose command line has `marker`, by rank."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"caliprox") and marker.encode() in b" ".join(cmd) and \
                f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            pids.append(int(pid))
    return pids


@test
def workers_started_over_ssh_from_a_hostfile():
    """Two worker ranks on "another host": 127.0.0.2, which Open MPI does not take for this machine, so
    mpirun starts its daemon there through ssh (an sshd of the test's own), as on a cluster."""
    need_mpi()
    if not os.path.exists(SSHD):
        raise SkipTest(f"{SSHD} missing (Debian's openssh-server)")
    with tempfile.TemporaryDirectory() as tmp:
        sshd = Sshd(tmp, address="127.0.0.2")
        try:
            exp = closed_form_experiment(tmp, points=9, pause="0.1")
            hosts = write(os.path.join(tmp, "hosts"), "localhost slots=1\n127.0.0.2 slots=2\n")
            ssh = (f"-p {sshd.port} -i {sshd.dir}/user -l {Sshd.user()} -o StrictHostKeyChecking=accept-new "
                   f"-o UserKnownHostsFile={sshd.dir}/known_hosts")
            extra = ("--hostfile", hosts, "--mca", "plm_rsh_args", ssh, "-x", "CALIPROX_STAGE_DIR", "-x",
                     "OMPI_ALLOW_RUN_AS_ROOT", "-x", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")
            ranks = os.path.join(tmp, "ranks")
            p = mpirun(3, "calibrate", exp, "-o", ranks, stage=os.path.join(tmp, "stage"), extra=extra)
            assert p.returncode == 0, p.stderr
            with open(os.path.join(sshd.dir, "log")) as f:
                assert "Accepted publickey" in f.read(), "mpirun did not start the workers through ssh"
            p = run("calibrate", exp, "-o", os.path.join(tmp, "local"))
            assert p.returncode == 0, p.stderr
            assert budgets(ranks) == budgets(os.path.join(tmp, "local"))
        finally:
            sshd.stop()


@test
def a_killed_worker_ends_the_job_and_the_same_command_resumes():
    need_mpi()
    with tempfile.TemporaryDirectory() as tmp:
        stage, job = os.path.join(tmp, "stage"), os.path.join(tmp, "job")
        exp = closed_form_experiment(tmp, points=15, pause="0.4")
        env = dict(MPI_ENV, CALIPROX_STAGE_DIR=stage)
        proc = subprocess.Popen([MPIRUN, "--oversubscribe", "-n", "3", CALIPROX, "calibrate", exp, "-o", job],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            path = os.path.join(job, "records.jsonl")
            if os.path.exists(path) and len(records(job)) >= 4:
                break
            time.sleep(0.05)
        pids = rank_pids(1, job)
        assert pids, "rank 1 not found"
        os.kill(pids[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, err
        kept = len(records(job))
        assert 4 <= kept < 15, kept
        assert not os.path.exists(os.path.join(job, "budgets.json"))
        # The same command: what finished is replayed, the rest runs.
        p = mpirun(3, "calibrate", exp, "-o", job, "--json", stage=stage)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["runs"] == {"fresh": 15 - kept, "replayed": kept, "total": 15}, p.stdout
        p = run("calibrate", exp, "-o", os.path.join(tmp, "local"))
        assert p.returncode == 0, p.stderr
        assert budgets(job) == budgets(os.path.join(tmp, "local"))


@test
def a_hanging_application_run_on_a_worker_ends_at_its_timeout():
    need_mpi()
    with tempfile.TemporaryDirectory() as tmp:
        exp = closed_form_experiment(tmp, points=3, pause="30")
        with open(exp) as f:
            text = f.read()
        write(exp, text.replace("  goal: [{metric: exceed", "  timeout: 1\n  retries: 0\n  goal: [{metric: exceed"))
        t0 = time.time()
        p = mpirun(3, "calibrate", exp, "-o", os.path.join(tmp, "out"), "--json", stage=os.path.join(tmp, "stage"))
        assert p.returncode == 0, p.stderr
        assert time.time() - t0 < 25, "a run outlived its timeout"
        recs = records(os.path.join(tmp, "out"))
        assert len(recs) == 3 and all(not r["data"]["ok"] and "timed out" in r["data"]["failure"] for r in recs), recs


@test
def launches_that_are_refused_or_run_locally():
    need_mpi()
    with tempfile.TemporaryDirectory() as tmp:
        stage = os.path.join(tmp, "stage")
        exp = closed_form_experiment(tmp, points=3, pause="0")
        other = closed_form_experiment(tmp, points=4, pause="0", name="other.yaml")
        # One rank: a local run, said so.
        p = mpirun(1, "calibrate", exp, "-o", os.path.join(tmp, "one"), stage=stage)
        assert p.returncode == 0, p.stderr
        assert "started by mpirun with 1 rank: calibrate runs locally" in p.stderr, p.stderr
        assert not os.path.exists(stage)
        # Ranks on different command lines (another experiment): refused at
        # start, each named with its host; nothing written.
        bad = os.path.join(tmp, "bad")
        env = dict(MPI_ENV, CALIPROX_STAGE_DIR=stage)
        p = subprocess.run([MPIRUN, "--oversubscribe", "-n", "1", CALIPROX, "calibrate", exp, "-o", bad, ":",
                            "-n", "2", CALIPROX, "calibrate", other, "-o", bad], capture_output=True, text=True,
                           env=env, timeout=120)
        expect_error(p, 2, "the ranks of this MPI job differ", f"rank 1 ({socket.gethostname()})", "other.yaml")
        assert not os.path.exists(bad) and not os.path.exists(stage)
        # A subcommand that does not scale out.
        p = mpirun(2, "check", exp, stage=stage)
        expect_error(p, 2, "'check' does not run across MPI ranks")
        # Workers that cannot stage the files: a clear error naming them, and
        # nothing written by rank 0.
        p = mpirun(3, "calibrate", exp, "-o", bad, stage="/proc/caliprox-no-stage")
        expect_error(p, 1, "staging the experiment's files to the workers failed", "rank 1", "rank 2",
                     "/proc/caliprox-no-stage")
        assert not os.path.exists(bad)
        # A target that names its machine: a tune measures speed on rank 0, so
        # rank 0 must run there; elsewhere it is refused before anything is written.
        with open(exp) as f:
            text = f.read()
        assert "  - name: host\n" in text
        for host, code in [("caliprox-elsewhere", 2), (socket.gethostname(), 0)]:
            named = write(os.path.join(tmp, f"target-{code}.yaml"), text.replace("  - name: host\n",
                                                                                 f"  - name: host\n    host: {host}\n"))
            p = mpirun(2, "tune", named, "--iterations", "4", "-o", os.path.join(tmp, f"tune-{code}"), "-q",
                       stage=stage)
            if code:
                expect_error(p, 2, "target 'host' is host caliprox-elsewhere, and no rank of this MPI job runs there")
                assert not os.path.exists(os.path.join(tmp, f"tune-{code}"))
            else:  # 4 iterations may find nothing within the goal (exit 3): it ran and wrote its frontier
                assert p.returncode in (0, 3), p.stderr
                assert os.path.exists(os.path.join(tmp, f"tune-{code}", "pareto.json"))
        # A host that cannot be reached: MPI's own launch error; no rank starts.
        hostfile = write(os.path.join(tmp, "hosts"), "caliprox-unreachable.invalid slots=2\n")
        p = mpirun(2, "calibrate", exp, "-o", bad, stage=stage, extra=("--hostfile", hostfile))
        assert p.returncode != 0 and "caliprox-unreachable" in p.stdout + p.stderr, p.stderr
        assert not os.path.exists(bad)


finish()
