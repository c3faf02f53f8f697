#!/usr/bin/env python3
"""The row-following experiment shrunk for tests and benchmarks: a few rendered
frames (the dataset is not committed), the example's own files named by
absolute paths, so the experiment can live in any folder.

    from shrunk import shrunk_experiment   # with examples/rowfollow on sys.path
    path = shrunk_experiment(tmp, frames=240, splits=(80, 160), episodes=1, points=16)
"""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def shrunk_experiment(tmp, frames=240, splits=(80, 160), episodes=None, points=None, jobs=None, batch=None,
                      name="rowfollow.yaml"):
    """Renders `frames` frames into tmp/rowfollow-data and writes tmp/`name`: calibrate split
    [0, splits[0]), tune [splits[0], splits[1]), test the rest; optionally the episodes per
    application run, the calibration's points and batch, and the application's jobs."""
    data = os.path.join(tmp, "rowfollow-data")
    if not os.path.isdir(data):
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "make_dataset.py"), "--out", data, "--n", str(frames),
                        "--seed", "5"], check=True, capture_output=True)
    with open(os.path.join(HERE, "rowfollow.yaml")) as f:
        text = f.read()
    a, b = splits
    edits = [("models/", os.path.join(HERE, "models") + "/"), ("data/", data + "/"),
             ("[/usr/bin/python3, sim.py]", f"[/usr/bin/python3, {os.path.join(HERE, 'sim.py')}]"),
             ("[field.py, render.py, ../../clients/python/caliprox_client.py]",
              f"[{HERE}/field.py, {HERE}/render.py, {ROOT}/clients/python/caliprox_client.py]"),
             ("{calibrate: [0, 500], tune: [500, 1500], test: [1500, 2000]}",
              f"{{calibrate: [0, {a}], tune: [{a}, {b}], test: [{b}, {frames}]}}")]
    if episodes is not None:
        edits.append(('ROWFOLLOW_EPISODES: "4"', f'ROWFOLLOW_EPISODES: "{episodes}"'))
    if jobs is not None:
        edits.append(("  jobs: 2\n", f"  jobs: {jobs}\n"))
    if points is not None or batch is not None:
        edits.append(("points: 400", f"points: {points or 400}" + (f"\n  batch: {batch}" if batch else "")))
    for old, new in edits:
        assert old in text, f"rowfollow.yaml no longer contains {old!r}; update examples/rowfollow/shrunk.py"
        text = text.replace(old, new)
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path
