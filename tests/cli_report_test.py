#!/usr/bin/env python3
"""End-to-end tests of caliprox report: a real run folder made by tune, profile,
calibrate, inject and adapt-sim on the bundled LeNet; the page's embedded data
checked against the artifacts (golden checks, recomputed here); the page opened
in headless Chromium from a file:// URL (no console errors, no request leaving
the file, every plot drawn with the marks it should have; a screenshot kept in
meson-logs/); and bad run folders.

Usage: cli_report_test.py CALIPROX_BINARY SOURCE_ROOT
"""
import json
import math
import os
import shutil
import subprocess
import tempfile

from cli_support import CALIPROX, LENET, ROOT, SkipTest, expect_error, experiment, finish, run, test, write

SECTIONS = """tune:
  strategy: evolutionary
  qos_mode: p2
  iterations: 300
  seed: 1
  finalists: 6
  predictor_samples: 64
adapt:
  strategy: state
  streams:
    - {kind: persistent, mean_run: 20, length: 300, seed: 3}
application:
  command: [%s]
  env: {CALIPROX_TEST_PAUSE: '0'}
  goal: [{metric: exceed, max: 0.05}]
calibrate:
  axes: [{param: bias, lo: 0, hi: 1.5}, {param: std, lo: 0, hi: 1}]
  points: 20
"""

# Made once: the run folder every test reads (copies of it where a test spoils it).
_RUN = {}


def run_folder():
    if "dir" in _RUN:
        return _RUN["dir"]
    if not os.path.exists(LENET):
        raise SkipTest("LeNet not trained")
    tmp = tempfile.mkdtemp(prefix="caliprox-report-")
    exp = experiment(tmp)
    with open(exp, "a") as f:
        f.write(SECTIONS % os.path.join(ROOT, "tests", "data", "apps", "closed_form.py"))
    out = os.path.join(tmp, "run")
    cfg = write(os.path.join(tmp, "int8.json"), json.dumps({"knobs": {"/conv2/Conv": "int8"}}))
    for args in (["tune", exp], ["profile", exp, "--batch", "64", "--min-rounds", "3", "--min-seconds", "0"],
                 ["adapt-sim", exp, "--all-levels", "--min-rounds", "3", "--min-seconds", "0"],
                 ["inject", exp, "--config", cfg], ["calibrate", exp, "-o", os.path.join(out, "calibrate")]):
        # calibrate keeps records.jsonl of its own: a subfolder (as for a network's artifacts).
        p = run(*args, *([] if "-o" in args else ["-o", out]), "-q", timeout=600)
        assert p.returncode == 0, f"{args[0]}: {p.stderr}"
    _RUN.update(dir=out, tmp=tmp)
    return out


def load(path):
    with open(path) as f:
        return json.load(f)


def embedded(page):
    """The page's embedded data: the JSON of <script id="caliprox-report-data">."""
    with open(page, encoding="utf-8") as f:
        html = f.read()
    start = html.index('<script type="application/json" id="caliprox-report-data">')
    start = html.index(">", start) + 1
    return json.loads(html[start:html.index("</script>", start)]), html


def figures_by_id(doc):
    return {f["id"]: f for f in doc["figures"]}


def close(a, b):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9 * max(1, abs(b)))


@test
def report_draws_every_artifact_and_embeds_their_data():
    out = run_folder()
    page = os.path.join(out, "report.html")
    p = run("report", out, "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["report"] == page and summary["plots"] is True, summary
    assert summary["sections"] == ["Frontier", "Profile", "Error budget", "Output errors", "Run-time adaptation"], summary
    doc, html = embedded(page)
    assert doc["format"] == "caliprox-report" and doc["experiment"] == "fashion-lenet"
    figs = figures_by_id(doc)
    assert summary["figures"] == len(figs)
    assert "http://" not in html.split("<script>")[0] and "src=\"http" not in html  # nothing loaded from elsewhere

    # The frontier: every level at its measured speedup and tune / test losses; the goal.
    pareto = load(os.path.join(out, "pareto.json"))
    rows = figs["frontier"]["data"]
    tune = [r for r in rows if r["kind"] == "measured, tune split"]
    assert [r["id"] for r in tune] == [c["id"] for c in pareto["configurations"]]
    for r, c in zip(tune, pareto["configurations"]):
        assert close(r["speedup"], c["speedup"]["measured"]) and close(r["loss"], c["qos_loss"]["tune"]), (r, c)
        assert r["label"] == ("0 exact" if c["level"] == 0 else str(c["level"]))
    test_rows = [r for r in rows if r["kind"] == "measured, test split"]
    assert [r["loss"] for r in test_rows] == [c["qos_loss"]["test"] for c in pareto["configurations"]]
    assert [r["loss"] for r in rows if r["kind"] == "goal"] == [pareto["goal"]["max_loss"]]

    # The search's progress: one point per search evaluation, the best within the goal after each.
    with open(os.path.join(out, "records.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    limit = lines[0]["info"]["qos"]["max_loss"]
    search = [r for r in lines[1:] if r["phase"] == "search"]
    prog = figs["progress"]["data"]
    assert len(prog) == len(search) and figs["progress"]["marks"]["symbol"] == len(search)
    best = 0
    for r, rec in zip(prog, search):
        s = rec["speedup"]["measured"] or rec["speedup"]["predicted"]
        if rec["qos_loss"] <= limit:
            best = max(best, s)
        assert close(r["best"], best or None), (r, rec)

    # The profile: each (layer, knob) at exact latency over the knob's, against the catalogue's nominal.
    prof = load(os.path.join(out, "profile.json"))
    cells = {(r["layer"], r["knob"]): r for r in figs["profile-64"]["data"]}
    n = 0
    for layer in prof["layers"]:
        exact = layer["knobs"]["fp32"]["latency_ms"]["median"]
        for knob, m in layer["knobs"].items():
            if knob == "fp32":
                continue
            n += 1
            assert close(cells[(layer["node"], knob)]["speedup"], exact / m["latency_ms"]["median"])
    assert cells[("/conv1/Conv", "perf-row-2-0")]["nominal"] == 2.0 and cells[("/conv1/Conv", "int8")]["nominal"] == 4.0
    assert len(cells) == n + sum(len(k) for k in prof["reshape"].values())

    # The budget: one view of its two axes, every judged point, every box, inject's candidate placed in it.
    budgets = load(os.path.join(out, "calibrate", "budgets.json"))
    view = figs["budget-0-1"]["data"]
    points = [r for r in view if r["kind"] == "point"]
    assert [r["category"] for r in points] == [p["verdict"] for p in budgets["points"]]
    assert [(r["x"], r["y"]) for r in points] == [(p["values"]["bias"], p["values"]["std"]) for p in budgets["points"]]
    assert sum(r["kind"] == "region" for r in view) == len(budgets["region"]["boxes"])
    errors = load(os.path.join(out, "errors.json"))
    cands = [r for r in view if r["kind"] == "candidate"]
    assert [r["name"] for r in cands] == [c["name"] for c in errors["candidates"]]
    for r, c in zip(cands, errors["candidates"]):
        assert close(r["x"], abs(c["errors"]["vs_exact"]["bias"])) and close(r["y"], c["errors"]["vs_exact"]["std"])
        assert r["category"] in ("accepted", "discarded", "uncertain")

    # Output errors: one row per candidate, ordered by mean |error|.
    err = figs["errors-network"]["data"]
    assert sorted(r["name"] for r in err) == sorted(c["name"] for c in errors["candidates"])
    assert [r["mean_abs"] for r in err] == sorted(c["errors"]["vs_exact"]["mean_abs"] for c in errors["candidates"])

    # Adaptation: the levels; per strategy the simulation's accuracy and savings; the walks' levels and confidences.
    table = load(os.path.join(out, "adaptation.json"))
    levels = figs["adapt-levels"]["data"]
    assert [r["id"] for r in levels] == [l["id"] for l in table["levels"]]
    for r, l in zip(levels, table["levels"]):
        assert close(r["speedup"], 1 / l["time_proxy"]) and close(r["accuracy"], 100 * l["accuracy"]), (r, l)
    sim = load(os.path.join(out, "adapt-sim.json"))
    stream = sim["streams"][0]
    outcome = figs["adapt-outcomes-" + stream["name"]]["data"]
    assert [r["strategy"] for r in outcome] == [r["strategy"] for r in stream["results"]]
    for r, s in zip(outcome, stream["results"]):
        assert close(r["accuracy"], 100 * s["accuracy"]) and close(r["savings_vs_exact"], 100 * s["savings_vs_exact"])
    traces = load(os.path.join(out, "adapt-traces.json"))[stream["name"]]
    walk = figs["adapt-trace-" + stream["name"]]["data"]
    adaptive = [k for k in traces if not k.startswith("static-")]
    assert len(walk) == sum(len(traces[k]["levels"]) for k in adaptive)
    first = [r for r in walk if r["strategy"] == "state"]
    assert [r["level"] for r in first] == traces["state"]["levels"]
    assert [r["confidence"] for r in first] == traces["state"]["confidence"]
    assert figs["adapt-trace-" + stream["name"]]["marks"]["line"] == 2 * len(adaptive)


@test
def report_page_renders_in_headless_chromium():
    out = run_folder()
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    runner = os.path.join(ROOT, "tests", "report_browser.js")
    if not os.access(chromium, os.X_OK):
        raise SkipTest(f"no Chromium at {chromium} (Debian's chromium; scripts/install-deps.sh installs it)")
    if not os.path.exists(os.path.join(ROOT, "tests", "browser", "node_modules", "playwright-core")):
        raise SkipTest("playwright-core is not installed in tests/browser (npm ci there; scripts/run-tests.sh does)")
    if not shutil.which("node"):
        raise SkipTest("no node to drive Chromium with")
    page = os.path.join(out, "browser.html")
    assert run("report", out, "-o", page).returncode == 0
    # The screenshot is the test's artifact, kept beside the meson logs.
    logs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(CALIPROX))), "meson-logs")
    shot = os.path.join(logs if os.path.isdir(logs) else _RUN["tmp"], "report-screenshot.png")
    p = subprocess.run(["node", runner, page, shot], capture_output=True, text=True, timeout=180)
    if p.returncode != 0 and ("Failed to launch" in p.stderr or "error while loading shared" in p.stderr):
        raise SkipTest(f"Chromium cannot start here: {p.stderr.strip().splitlines()[0]}")
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout)
    assert seen["console_errors"] == [], seen["console_errors"]
    assert seen["requests"] == [], seen["requests"]
    doc, _ = embedded(page)
    assert [f["id"] for f in seen["figures"]] == [f["id"] for f in doc["figures"]]
    for f in seen["figures"]:
        assert f["drawn"], f
        assert f["width"] > 100 and f["height"] > 50, f
        assert f["counts"] == f["expected"], f
        assert all(v > 0 for v in f["expected"].values() if not f["id"].startswith("frontier")), f
    assert os.path.getsize(shot) > 20000
    print(f"     screenshot: {shot}")


@test
def report_without_plots_keeps_the_data_and_tables():
    out = run_folder()
    page = os.path.join(_RUN["tmp"], "tables.html")
    p = run("report", out, "--no-plots", "-o", page)
    assert p.returncode == 0, p.stderr
    assert "tables only" in p.stdout, p.stdout
    doc, html = embedded(page)
    assert "vega" not in html.lower().replace("vega-lite specification", "")  # no library inlined
    assert html.count("<table>") == len(doc["figures"]) and "Plot not drawn: the page was written with --no-plots" in html
    assert os.path.getsize(page) < os.path.getsize(os.path.join(out, "report.html"))


@test
def report_bad_run_folders():
    out = run_folder()
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        expect_error(run("report", empty), 2, "no caliprox artifact to draw", "the folder holds none", "pareto.json")
        assert not os.path.exists(os.path.join(empty, "report.html"))
        expect_error(run("report", os.path.join(tmp, "nope")), 2, "no such folder")

        # A truncated frontier and a foreign budgets.json: named (with the parse position); the rest still drawn.
        spoilt = os.path.join(tmp, "spoilt")
        shutil.copytree(out, spoilt)
        with open(os.path.join(spoilt, "pareto.json")) as f:
            text = f.read()
        write(os.path.join(spoilt, "pareto.json"), text[:len(text) // 2])
        lines = text[:len(text) // 2].split("\n")
        write(os.path.join(spoilt, "calibrate", "budgets.json"), json.dumps({"name": "left-pad", "version": "1.3.0"}))
        p = run("report", spoilt)
        expect_error(p, 2, "2 artifact problem(s)", "the rest is drawn in " + os.path.join(spoilt, "report.html"), "pareto.json: not valid JSON at line %d, column" % len(lines),
                     "calibrate/budgets.json: not error budgets written by caliprox calibrate (expected \"format\": "
                     "\"caliprox-budgets\", found no \"format\")")
        doc, html = embedded(os.path.join(spoilt, "report.html"))
        ids = {f["id"] for f in doc["figures"]}
        assert "frontier" not in ids and "progress" in ids and "profile-64" in ids, ids
        assert not any(i.startswith("budget-") for i in ids), ids
        assert "Not drawn" in html and "pareto.json</code>: not valid JSON" in html

        # Artifacts of two experiments in one folder: refused, both named, nothing written.
        mixed = os.path.join(tmp, "mixed")
        shutil.copytree(out, mixed)
        os.remove(os.path.join(mixed, "report.html"))
        prof = load(os.path.join(mixed, "profile.json"))
        prof["experiment"] = "another-experiment"
        write(os.path.join(mixed, "profile.json"), json.dumps(prof))
        expect_error(run("report", mixed), 2, "artifacts of 2 different experiments",
                     "experiment 'another-experiment': profile.json", "experiment 'fashion-lenet': adapt-sim.json")
        assert not os.path.exists(os.path.join(mixed, "report.html"))


if __name__ == "__main__":
    try:
        finish()
    finally:
        if "tmp" in _RUN:
            shutil.rmtree(_RUN["tmp"], ignore_errors=True)
