#!/usr/bin/env python3
"""Guided against unguided and application-agnostic tuning on the row-following
example: application runs spent, measured speedup, weight size and the
application's own metrics, with a held-out validation of each pick.

    /usr/bin/python3 bench/guided_bench.py [CALIPROX] [--budgets budgets.json]
        [--max-deviation M] [--out DIR] [--holdout-seed 101] [--holdout-repeats 4]
        [--iterations N]

It runs the tool as a user would, on examples/rowfollow/rowfollow.yaml (both
networks, every kernel knob, pruning and low-rank):
  - budgets: `caliprox calibrate` (inject mode: the application with
    synthetic errors, no network), unless --budgets names a budgets.json of
    this experiment;
  - guided: `caliprox tune --guide budgets.json`: candidates placed in the
    budgets' space, the application run only on uncertain ones and to
    validate the pick;
  - unguided: `caliprox tune --joint`: the same joint search against the
    experiment's QoS goal, every finalist checked by the application;
  - agnostic: `caliprox tune --joint --goal 1% --checks 1`: the fastest
    configuration within 1 % of the exact networks' error, checked once;
  - held-out: each pick run again by `caliprox eval --application` on other
    seeds (other fields) with more repeats.
With --max-deviation M the application's goal also asks for a mean lateral
deviation of at most M metres (a tighter goal, so that the budget binds):
the experiment is written with that goal next to the bundled one for the
run, calibrated afresh, and the same three tunes run against it.
Speedups are the tunes' own: each pick timed against the exact networks in
one interleaved run, the two networks combined by their exact latencies.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "rowfollow")
EXP = os.path.join(EXAMPLE, "rowfollow.yaml")


def tighter(max_deviation):
    """rowfollow.yaml with mean_deviation <= max_deviation in the application's goal, beside it."""
    with open(EXP) as f:
        text = f.read()
    old = "  goal:\n    - {metric: collisions, max: 0}\n  record: [mean_deviation, completed]\n"
    new = (f"  goal:\n    - {{metric: collisions, max: 0}}\n    - {{metric: mean_deviation, max: {max_deviation}}}\n"
           "  record: [completed]\n")
    assert old in text, "rowfollow.yaml's application goal changed; update guided_bench.py"
    path = os.path.join(EXAMPLE, f".guided-bench-{os.getpid()}.yaml")
    with open(path, "w") as f:
        f.write(text.replace(old, new))
    return path


def run(caliprox, *args, ok=(0,)):
    p = subprocess.run([caliprox, *args], capture_output=True, text=True)
    if p.returncode not in ok:
        sys.exit(f"guided_bench: caliprox {' '.join(args)} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return p


def joint(caliprox, exp, out, name, *args):
    d = os.path.join(out, name)
    run(caliprox, "tune", exp, *args, "-o", d, "--json", ok=(0, 3))
    with open(os.path.join(d, "joint.json")) as f:
        return json.load(f)


def holdout(caliprox, exp, out, name, configs, seed, repeats):
    """eval --application of a pick on other seeds; (passes, runs, mean metrics)."""
    d = os.path.join(out, "holdout-" + name)
    os.makedirs(d, exist_ok=True)
    args = []
    for network, knobs in configs.items():
        path = os.path.join(d, network + ".json")
        with open(path, "w") as f:
            json.dump({"knobs": knobs}, f)
        args += ["--config", f"{network}={path}"]
    run(caliprox, "eval", exp, "--application", *args, "--seed", str(seed), "--repeats", str(repeats), "-o", d,
        "--json", ok=(0, 1, 3))
    with open(os.path.join(d, "application.json")) as f:
        doc = json.load(f)
    metrics = {}
    for r in doc["runs"]:
        for k, v in r["metrics"].items():
            metrics.setdefault(k, []).append(v)
    return doc["passes"], len(doc["runs"]), {k: sum(v) / len(v) for k, v in metrics.items()}


def pick_of(doc):
    """The chosen configuration, or (agnostic, when the application failed it) the one checked."""
    if doc["chosen"]:
        return doc["chosen"], True
    checked = [f for f in doc["finalists"] if "application" in f]
    return (checked[0] if checked else None), False


def scenario(a, exp, budgets, out, label):
    """Calibrate (unless budgets are given), the three tunes, held-out checks; prints one table."""
    os.makedirs(out, exist_ok=True)
    if not budgets:
        run(a.caliprox, "calibrate", exp, "-o", os.path.join(out, "calibrate"), "--json")
        budgets = os.path.join(out, "calibrate", "budgets.json")
    with open(budgets) as f:
        b = json.load(f)
    extra = ["--iterations", str(a.iterations)] if a.iterations else []
    modes = [("guided", joint(a.caliprox, exp, out, "guided", "--guide", budgets, *extra)),
             ("unguided", joint(a.caliprox, exp, out, "unguided", "--joint", *extra)),
             ("agnostic-1%", joint(a.caliprox, exp, out, "agnostic", "--joint", "--goal", "1%", "--checks", "1",
                                   *extra))]
    rows = []
    for name, doc in modes:
        pick, passed = pick_of(doc)
        row = {"mode": name, "checks": doc["application"]["checks"], "runs": doc["application"]["runs"],
               "search": doc["search"], "passed": passed}
        if pick:
            index = doc["finalists"].index(next(f for f in doc["finalists"] if f["configs"] == pick["configs"]))
            row.update(speedup=pick["speedup_measured"], configs=pick["configs"], rank=index + 1,
                       size=doc["chosen"]["size"]["reduction"] if doc["chosen"] else None,
                       metrics=doc["chosen"]["metrics"] if doc["chosen"] else None)
            row["holdout"] = holdout(a.caliprox, exp, out, name, pick["configs"], a.holdout_seed, a.holdout_repeats)
        rows.append(row)

    print(f"{label}; budgets: {budgets} ({b['runs']['total']} inject-mode runs, once; valid "
          f"{100 * b['region']['volume_fraction']:.1f} % of the box)")
    print(f"{'tuning':<12} {'accepted/discarded/uncertain':>28} {'checks':>6} {'app runs':>8} {'speedup':>8} "
          f"{'weights':>8} {'deviation':>9}  held-out ({a.holdout_repeats} x 4 episodes, seed {a.holdout_seed})")
    for r in rows:
        s = r["search"]
        counts = f"{s['accepted']}/{s['discarded']}/{s['uncertain']}"
        if "speedup" not in r:
            print(f"{r['mode']:<12} {counts:>28} {r['checks']:>6} {r['runs']:>8}  no finalist")
            continue
        m = r["metrics"] or {}
        passes, n, hm = r["holdout"]
        print(f"{r['mode']:<12} {counts:>28} {r['checks']:>6} {r['runs']:>8} {r['speedup']:>7.2f}x "
              f"{(str(round(r['size'], 2)) + 'x') if r['size'] else '-':>8} "
              f"{m.get('mean_deviation', float('nan')):>9.4f}  "
              f"{passes}/{n} runs passed, collisions {hm.get('collisions', float('nan')):.2f}/run, "
              f"deviation {hm.get('mean_deviation', float('nan')):.4f} m"
              + ("" if r["passed"] else "  (the application failed it in the tune)"))
    g, u, ag = (next((r for r in rows if r["mode"] == k), {}) for k in ("guided", "unguided", "agnostic-1%"))
    if "speedup" in g and "speedup" in u:
        print(f"guided / unguided: {g['runs']} against {u['runs']} application runs; speedup {g['speedup']:.2f}x "
              f"against {u['speedup']:.2f}x (unguided found its pick at finalist {u['rank']})")
    if "speedup" in g and "speedup" in ag:
        print(f"application-aware / agnostic (within 1 %): {g['speedup'] / ag['speedup']:.2f}x the speedup")
    return {"label": label, "budgets": budgets, "calibration_runs": b["runs"]["total"], "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("caliprox", nargs="?", default=os.path.join(ROOT, "build", "src", "cli", "caliprox"))
    ap.add_argument("--budgets", help="a budgets.json of the bundled rowfollow (default: calibrate afresh)")
    ap.add_argument("--max-deviation", type=float, help="also the scenario with this mean-deviation goal (m)")
    ap.add_argument("--out", default=None, help="keep the runs here")
    ap.add_argument("--holdout-seed", type=int, default=101)
    ap.add_argument("--holdout-repeats", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=None, help="search budget of each tune (default: tune.iterations)")
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="caliprox-guided-bench.")
    if not os.path.exists(os.path.join(EXAMPLE, "data", "frames.npy")):
        subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLE, "make_dataset.py"), "--out",
                        os.path.join(EXAMPLE, "data"), "--n", "2000", "--seed", "3"], check=True)
    results = [scenario(a, EXP, a.budgets, os.path.join(out, "collisions"), "row following, goal: no collision")]
    if a.max_deviation:
        exp = tighter(a.max_deviation)
        try:
            print()
            results.append(scenario(a, exp, None, os.path.join(out, "deviation"),
                                    f"row following, goal: no collision and mean deviation <= {a.max_deviation} m"))
        finally:
            os.remove(exp)
    with open(os.path.join(out, "guided_bench.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"written: {os.path.join(out, 'guided_bench.json')}")


if __name__ == "__main__":
    main()
