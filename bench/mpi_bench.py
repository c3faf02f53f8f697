#!/usr/bin/env python3
"""Application runs per second of `caliprox calibrate` with 1, 2 and 3 MPI
ranks on this machine, and the scheduling overhead per run.

    /usr/bin/python3 bench/mpi_bench.py [CALIPROX] [--points 24] [--rounds 3] [--episodes 4]

The row-following example (examples/rowfollow: sim.py, a CPU-bound
closed-loop simulation in numpy) calibrated in inject mode, as a user runs
it, through `mpirun --oversubscribe -n K caliprox calibrate` (K = 1 runs
locally, one application run at a time). The rank counts alternate within
each round, so that all of them see the same machine; medians over rounds.
  - runs/s: fresh application runs over the job's wall time (mpirun's start
    and the staging of the files included; the cache is warm after the
    first job);
  - start: the wall time of a one-point job (2 runs) less its runs: mpirun
    starting the ranks, the handshake, the (cached) staging, the network
    loads;
  - overhead per run: the wall time every rank had after the start, less
    the time the application runs took (their records' seconds), per run:
    what proposing, moving tasks and idle ranks at the end of a round cost
    each evaluation.
Every job must find the same region as the 1-rank one.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "rowfollow")
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_WAIT_POLICY="passive")


def experiment(tmp, points, episodes):
    """rowfollow.yaml with a small rendered dataset (the runs do not read it), one run at a time per rank."""
    sys.path.insert(0, EXAMPLE)
    from shrunk import shrunk_experiment
    return shrunk_experiment(tmp, episodes=episodes, points=points, batch=6, jobs=1)


def job(caliprox, ranks, exp, out, stage, points=None, start=0.0):
    env = dict(MPI_ENV, CALIPROX_STAGE_DIR=stage)
    extra = ["--points", str(points)] if points else []
    t0 = time.perf_counter()
    p = subprocess.run(["mpirun", "--oversubscribe", "-n", str(ranks), caliprox, "calibrate", exp, "-o", out, "-q",
                        "--json", *extra], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"mpi_bench: {ranks} rank(s) failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    with open(os.path.join(out, "records.jsonl")) as f:
        recs = [json.loads(line) for line in f.read().splitlines()[1:]]
    with open(os.path.join(out, "budgets.json")) as f:
        doc = json.load(f)
    busy = sum(r["seconds"] for r in recs)
    return {"wall": wall, "runs": len(recs), "runs_per_s": len(recs) / wall, "start_s": wall - busy / ranks,
            "overhead_ms": ((wall - start) * ranks - busy) / len(recs) * 1e3, "run_s": busy / len(recs),
            "region": (doc["points"], doc["region"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("caliprox", nargs="?", default=os.path.join(ROOT, "build", "src", "cli", "caliprox"))
    ap.add_argument("--points", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "mpi_bench.json"))
    a = ap.parse_args()
    if not shutil.which("mpirun"):
        sys.exit("mpi_bench: mpirun not found (scripts/install-deps.sh installs openmpi-bin)")
    if "mpi: not built in" in subprocess.run([a.caliprox, "--version"], capture_output=True, text=True).stdout:
        sys.exit("mpi_bench: this caliprox was built without MPI")
    counts = [1, 2, 3]
    results = {k: [] for k in counts}
    with tempfile.TemporaryDirectory() as tmp:
        exp, stage = experiment(tmp, a.points, a.episodes), os.path.join(tmp, "stage")
        job(a.caliprox, 2, exp, os.path.join(tmp, "warm"), stage)  # fills the stage cache
        for r in range(a.rounds):
            for k in (counts if r % 2 == 0 else counts[::-1]):
                one = job(a.caliprox, k, exp, os.path.join(tmp, f"r{r}-k{k}-start"), stage, points=1)
                x = job(a.caliprox, k, exp, os.path.join(tmp, f"r{r}-k{k}"), stage, start=one["start_s"])
                x["start"] = one["start_s"]
                results[k].append(x)
    base_region = results[1][0]["region"]
    same = all(x["region"] == base_region for k in counts for x in results[k])
    cores = os.cpu_count()
    print(f"calibrate, row-following example ({a.points} points x 2 repeats, {a.episodes} episodes per run), "
          f"{cores} CPU(s), medians of {a.rounds} rounds")
    print(f"{'ranks':>5} {'runs':>5} {'wall s':>8} {'runs/s':>8} {'vs 1':>6} {'run s':>7} {'start s':>8}"
          f" {'overhead ms/run':>16}")
    base = statistics.median(x["runs_per_s"] for x in results[1])
    summary = {}
    for k in counts:
        rs = results[k]
        med = {key: statistics.median(x[key] for x in rs)
               for key in ("wall", "runs_per_s", "overhead_ms", "run_s", "start")}
        summary[k] = dict(med, runs=rs[0]["runs"], ratio=med["runs_per_s"] / base)
        print(f"{k:>5} {rs[0]['runs']:>5} {med['wall']:>8.2f} {med['runs_per_s']:>8.2f} {med['runs_per_s'] / base:>5.2f}x"
              f" {med['run_s']:>7.3f} {med['start']:>8.2f} {med['overhead_ms']:>16.1f}")
    print(f"same region with every rank count: {'yes' if same else 'NO'}")
    with open(a.out, "w") as f:
        json.dump({"cpus": cores, "points": a.points, "episodes": a.episodes, "rounds": a.rounds,
                   "same_region": same, "ranks": summary}, f, indent=1)
    print(f"wrote {a.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
