"""Render a labelled dataset of camera frames over seeded fields.

    make_dataset.py --out DIR [--n N] [--seed S]

Writes DIR/frames.npy float32 [N,3,64,64], DIR/heading.npy float32 [N,1]
(rad, robot heading minus row direction) and DIR/distance.npy float32 [N,1]
(d1/(d1+d2), see field.Field.pose_labels). Deterministic for a seed.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from field import Field  # noqa: E402
from render import SIZE, render  # noqa: E402

MAX_HEADING = 0.35        # rad, poses drawn uniformly within +/- this
MAX_OFFSET = 0.2          # m, lateral offsets within +/- this of the gap centre
FRAMES_PER_FIELD = 8


def sample_pose(field, rng):
    """A random pose (s m, y m, theta rad) in the field."""
    s = rng.uniform(2.0, field.length - 10.0)
    return s, rng.uniform(-MAX_OFFSET, MAX_OFFSET), rng.uniform(-MAX_HEADING, MAX_HEADING)


def make(n, seed):
    """(frames [n,3,S,S], heading [n,1], distance [n,1]) as float32 arrays."""
    frames = np.empty((n, 3, SIZE, SIZE), np.float32)
    heading = np.empty((n, 1), np.float32)
    distance = np.empty((n, 1), np.float32)
    seqs = np.random.SeedSequence(seed).spawn((n + FRAMES_PER_FIELD - 1) // FRAMES_PER_FIELD)
    for f, seq in enumerate(seqs):
        fseq, pseq = seq.spawn(2)
        field, rng = Field(fseq), np.random.default_rng(pseq)
        for i in range(f * FRAMES_PER_FIELD, min(n, (f + 1) * FRAMES_PER_FIELD)):
            pose = sample_pose(field, rng)
            frames[i] = render(field, pose, rng)
            heading[i, 0], distance[i, 0] = field.pose_labels(*pose)
    return frames, heading, distance


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--n", type=int, default=2000, help="number of frames")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    frames, heading, distance = make(a.n, a.seed)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "frames.npy"), frames)
    np.save(os.path.join(a.out, "heading.npy"), heading)
    np.save(os.path.join(a.out, "distance.npy"), distance)
    print(f"wrote {a.n} frames to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
