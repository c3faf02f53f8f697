"""Train the two perception CNNs (heading, distance) and export them to ONNX.

    /usr/bin/python3 examples/rowfollow/train.py [--train N] [--test N] [--epochs E]

Renders a training set (seed 1) and a held-out test set (seed 2) with
make_dataset.make, trains one small CNN per target on CPU, and writes
models/heading.onnx and models/distance.onnx (opset 13, input "frames"
[N,3,64,64], output "out" [N,1], dynamic batch) and models/metrics.json.
Targets: heading (rad), distance d1/(d1+d2) (see field.Field.pose_labels).
"""
import argparse
import json
import os
import re
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_dataset import make  # noqa: E402

ALLOWED_OPS = {"Conv", "Relu", "MaxPool", "AveragePool", "BatchNormalization", "GlobalAveragePool",
               "Flatten", "Gemm", "Add", "Mul", "Sub", "Tanh", "Sigmoid", "Reshape", "Concat", "Clip"}


def block(cin, cout, stride=1):
    """3x3 convolution, batch norm, ReLU."""
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Net(nn.Module):
    """Five 3x3 convolutions, then a two-layer head on a coarse 4x4 map (keeps
    where things are in the image, which the heading depends on)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *block(3, 16, 2),                        # 32x32
            *block(16, 24), nn.MaxPool2d(2),         # 16x16
            *block(24, 32), *block(32, 48), nn.MaxPool2d(2),  # 8x8
            *block(48, 64), nn.MaxPool2d(2))         # 4x4
        self.fc1 = nn.Linear(64 * 16, 64)
        self.fc2 = nn.Linear(64, 1)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(torch.relu(self.fc1(x)))


def fit(net, x, y, epochs, lr, batch, seed):
    """Adam with a cosine schedule on normalised targets; folds the scale into fc2."""
    mean, std = float(y.mean()), float(y.std())
    yn = (y - mean) / std
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for ep in range(epochs):
        net.train()
        perm, total = torch.randperm(len(x), generator=g), 0.0
        for b in range(len(x) // batch):
            i = perm[b * batch:(b + 1) * batch]
            loss = nn.functional.smooth_l1_loss(net(x[i]), yn[i], beta=0.5)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
        print(f"  epoch {ep + 1}/{epochs} loss {total / (len(x) // batch):.4f}", file=sys.stderr)
    with torch.no_grad():
        net.fc2.weight *= std
        net.fc2.bias.mul_(std).add_(mean)
    return net.eval()


def errors(net, x, y):
    """MAE, RMSE, bias and std of the error (prediction minus truth) on a set."""
    with torch.no_grad():
        e = torch.cat([net(x[i:i + 512]) for i in range(0, len(x), 512)]) - y
    e = e.numpy().ravel().astype(np.float64)
    return {"mae": float(np.abs(e).mean()), "rmse": float(np.sqrt((e ** 2).mean())),
            "bias": float(e.mean()), "std": float(e.std())}


def export(net, path):
    """ONNX opset 13 with a dynamic batch; checks the ops against the engine's set."""
    x = torch.zeros(1, 3, 64, 64)
    kw = dict(opset_version=13, input_names=["frames"], output_names=["out"],
              dynamic_axes={"frames": {0: "N"}, "out": {0: "N"}})
    text = torch.onnx.export_to_pretty_string(net, x, **kw)
    ops = set(re.findall(r"Node {type: \"(\w+)\"", text))
    if not ops <= ALLOWED_OPS:
        raise SystemExit(f"{path}: unsupported ONNX ops {sorted(ops - ALLOWED_OPS)}")
    torch.onnx.export(net, x, path, **kw)
    return sorted(ops)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=10000, help="training frames (seed 1)")
    ap.add_argument("--test", type=int, default=2000, help="held-out test frames (seed 2)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    train = [torch.from_numpy(v) for v in make(a.train, 1)]
    test = [torch.from_numpy(v) for v in make(a.test, 2)]
    print(f"rendered {a.train}+{a.test} frames in {time.time() - t0:.0f} s", file=sys.stderr)
    out = os.path.join(HERE, "models")
    os.makedirs(out, exist_ok=True)
    metrics = {"settings": dict(vars(a), train_seed=1, test_seed=2, torch_seeds={"heading": 0, "distance": 1}, opset=13,
                                input="frames", output="out", loss="smooth_l1(beta=0.5) on normalised targets",
                                optimizer="Adam, one-cycle lr, weight_decay 1e-5")}
    for k, name in enumerate(("heading", "distance")):
        torch.manual_seed(k)
        t1 = time.time()
        print(f"training {name}", file=sys.stderr)
        net = fit(Net(), train[0], train[1 + k], a.epochs, a.lr, a.batch, seed=k)
        path = os.path.join(out, f"{name}.onnx")
        ops = export(net, path)
        metrics[name] = dict(errors(net, test[0], test[1 + k]), train_seconds=round(time.time() - t1, 1),
                             params=sum(p.numel() for p in net.parameters()), ops=ops,
                             units="rad" if name == "heading" else "d1/(d1+d2)")
        print(f"{name}: {metrics[name]}", file=sys.stderr)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)


if __name__ == "__main__":
    main()
