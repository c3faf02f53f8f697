"""Closed-loop row following: the application evaluator caliprox runs.

CALIPROX_REQUEST names a JSON request (mode "inject" or "network", seed,
serve, networks {heading, distance}). Each of ROWFOLLOW_EPISODES (default 4)
episodes drives a seeded field for EPISODE_LENGTH m. Perception gives the
heading phi (rad) and the distance target d1/(d1+d2); in inject mode these are
the true values perturbed by the request's error models, in network mode the
served networks' predictions on rendered frames. Prints one JSON object:
{"metrics": {"collisions", "mean_deviation" (m), "completed" (fraction)}}.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from field import NOMINAL_SPACING, Field  # noqa: E402

NETWORKS = ("heading", "distance")
SPEED = 0.5               # m/s
DT = 0.1                  # s, control period
EPISODE_LENGTH = 15.0     # m driven per episode
START_S = 2.0             # m, where episodes start
HALF_WIDTH, HALF_LENGTH = 0.15, 0.25   # m, robot footprint
ROW_HALF_WIDTH = 0.05     # m, half-width of the stems' band a row occupies
K_LATERAL = 0.7           # 1/s, Stanley lateral gain
K_HEADING = 1.5           # 1/s, heading loop gain
MAX_RATE = 0.8            # rad/s, turn-rate limit
MAX_ACCEL = 3.0           # rad/s^2, turn-rate change limit
NOISE_TURN, NOISE_STEP = 0.03, 0.01    # rad/s, m/s: actuation noise std


class RequestError(Exception):
    """A request the evaluator cannot run (exit 2)."""


def fail(msg):
    print(f"rowfollow: {msg}", file=sys.stderr)
    sys.exit(2)


def scalar(v, name):
    """A number, or a one-element list of one."""
    a = np.ravel(np.asarray(v, dtype=np.float64))
    if a.size != 1:
        raise RequestError(f"{name} must be a number or a one-element list, got {v!r}")
    return float(a[0])


class Perturb:
    """An error model applied to one scalar per control step."""

    def __init__(self, model, rng):
        self.rng, self.last = rng, None
        self.kind = None if model is None else model.get("kind")
        if self.kind in ("gaussian", "relative_gaussian"):
            self.bias = scalar(model.get("bias", 0.0), "bias")
            self.std = scalar(model.get("std", 0.0), "std")
        elif self.kind == "hold_last":
            self.rate = scalar(model.get("rate", 0.0), "rate")
        elif self.kind == "label_flip":
            raise RequestError("label_flip is meaningless for regression outputs (heading, distance)")
        elif self.kind is not None:
            raise RequestError(f"unknown error model kind {self.kind!r}")

    def __call__(self, y):
        if self.kind == "gaussian":
            y = y + self.rng.normal(self.bias, self.std)
        elif self.kind == "relative_gaussian":
            y = y * (1 + self.rng.normal(self.bias, self.std))
        elif self.kind == "hold_last":
            if self.last is not None and self.rng.random() < self.rate:
                y = self.last
        self.last = y
        return y


class Controller:
    """Stanley-style: aim at heading -atan(k*y/v), turn-rate loop with limits."""

    def __init__(self):
        self.rate = 0.0

    def __call__(self, phi, dist):
        """Turn rate (rad/s) from estimated heading phi (rad) and d1/(d1+d2)."""
        y = (0.5 - dist) * NOMINAL_SPACING
        target = -np.arctan(K_LATERAL * y / SPEED)
        want = np.clip(K_HEADING * (target - phi), -MAX_RATE, MAX_RATE)
        step = MAX_ACCEL * DT
        self.rate += float(np.clip(want - self.rate, -step, step))
        return self.rate


def row_pose(field, x, y, a):
    """World (x, y m, heading a rad) -> (s, lateral offset m, theta rad) in the field."""
    return x, y - float(field.centre(x)), a - float(field.direction(x))


def collided(field, s, y, theta):
    """Whether the footprint reaches a row's stem band (perpendicular distances)."""
    lat = abs(y) * np.cos(float(field.direction(s)))
    reach = lat + HALF_WIDTH * abs(np.cos(theta)) + HALF_LENGTH * abs(np.sin(theta))
    return reach > field.spacing / 2 - ROW_HALF_WIDTH


def episode(seed, k, perceive):
    """Drive one episode; returns (collided, list of |lateral offset| m per step)."""
    seqs = np.random.SeedSequence([seed, k]).spawn(3)
    field, rng = Field(seqs[0]), np.random.default_rng(seqs[1])
    x, a = START_S, 0.0
    y = float(field.centre(x)) + rng.uniform(-0.08, 0.08)
    a = float(field.direction(x)) + rng.uniform(-0.1, 0.1)
    ctrl, devs = Controller(), []
    look = perceive.start(field, seqs[2])
    for _ in range(int(EPISODE_LENGTH / SPEED / DT)):
        s, off, theta = row_pose(field, x, y, a)
        if collided(field, s, off, theta):
            return True, devs
        devs.append(abs(off))
        phi, dist = look(field, (s, off, theta))
        w = ctrl(phi, dist) + rng.normal(0, NOISE_TURN)
        v = SPEED + rng.normal(0, NOISE_STEP)
        x, y, a = x + v * np.cos(a) * DT, y + v * np.sin(a) * DT, a + w * DT
    return False, devs


class Inject:
    """Perception = truth perturbed by the request's error models."""

    def __init__(self, networks):
        self.models = {n: (networks.get(n) or {}).get("error_model") for n in NETWORKS}
        for n in NETWORKS:
            Perturb(self.models[n], None)      # validate before driving

    def start(self, field, seq):
        p = [Perturb(self.models[n], np.random.default_rng(s)) for n, s in zip(NETWORKS, seq.spawn(2))]

        def look(field, pose):
            phi, dist = field.pose_labels(*pose)
            return p[0](phi), p[1](dist)
        return look


class Network:
    """Perception = the served networks on rendered frames (truth for absent ones)."""

    def __init__(self, serve, networks):
        sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
        from caliprox_client import Client
        from render import render
        self.client, self.render = Client(serve), render
        self.served = [n in networks for n in NETWORKS]
        self.count = 0

    def start(self, field, seq):
        rng = np.random.default_rng(seq)

        def look(field, pose):
            truth = field.pose_labels(*pose)
            frame = self.render(field, pose, rng)[None]
            out = [float(self.client.infer(frame, self.count, network=n).ravel()[0]) if on else t
                   for n, on, t in zip(NETWORKS, self.served, truth)]
            self.count += 1
            return out
        return look


def read_request():
    """The request dict, or exit 2 with a message."""
    path = os.environ.get("CALIPROX_REQUEST")
    if not path:
        fail("CALIPROX_REQUEST is not set")
    try:
        with open(path) as f:
            req = json.load(f)
        mode, seed = req["mode"], int(req["seed"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"unreadable request {path}: {e}")
    if mode not in ("inject", "network"):
        fail(f"unknown mode {mode!r} (inject or network)")
    if mode == "network" and not req.get("serve"):
        fail("network mode needs a server socket in \"serve\", got null")
    return req


def main():
    req = read_request()
    networks = req.get("networks") or {}
    try:
        perceive = Inject(networks) if req["mode"] == "inject" else Network(req["serve"], networks)
    except RequestError as e:
        fail(str(e))
    n = int(os.environ.get("ROWFOLLOW_EPISODES", "4"))
    hits, devs = 0, []
    for k in range(n):
        hit, d = episode(int(req["seed"]), k, perceive)
        hits += hit
        devs += d
        print(f"episode {k}: {'collision' if hit else 'completed'} after {len(d)} steps, "
              f"mean |offset| {np.mean(d) if d else 0:.3f} m", file=sys.stderr)
    print(json.dumps({"metrics": {"collisions": hits, "mean_deviation": float(np.mean(devs)) if devs else 0.0,
                                  "completed": (n - hits) / n}}))


if __name__ == "__main__":
    main()
