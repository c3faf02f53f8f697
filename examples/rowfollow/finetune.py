#!/usr/bin/python3
"""Fine-tune hook of the row-following networks (man caliprox-experiment, FINE-TUNING).

    finetune.py --target heading|distance --plan PLAN.json --model PRUNED.onnx --out OUT.onnx [options]

caliprox runs this with the plan of a pruned configuration of network `heading` or `distance`
and the pruned, least-squares-repaired network; it answers with OUT.onnx, the same network with
trained weights (the graph is run as it is in the ONNX file: ../../models/onnx_torch.py).
Training frames: rendered by make_dataset.make with train.py's training seed (1), never the
experiment's frames (data/, seed 3); validation frames with train.py's test seed (2) report the
mean absolute error before and after on stderr. The loss is train.py's: smooth L1 (beta 0.5) on
targets scaled by their standard deviation. Exit status: 0 written, 1 failed, 2 bad arguments
or a plan that does not match the model.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import onnx_torch  # noqa: E402
from make_dataset import make  # noqa: E402

TARGETS = ("heading", "distance")   # the order of make()'s label arrays


def mae(module, x, y, batch=500):
    module.eval()
    with torch.no_grad():
        e = torch.cat([module(x[i:i + batch]) for i in range(0, len(x), batch)]) - y
    return float(e.abs().mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, choices=TARGETS, help="what the network estimates")
    onnx_torch.add_hook_arguments(ap)
    ap.add_argument("--frames", type=int, default=4000, help="training frames (seed --seed)")
    ap.add_argument("--val-frames", type=int, default=500, help="validation frames (seed --val-seed)")
    ap.add_argument("--val-seed", type=int, default=2, help="of the validation frames (train.py's test seed: 2)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (cosine decay to 0)")
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    if a.seed == 3 or a.val_seed == 3:
        print("finetune.py: seed 3 renders the experiment's own frames (data/), which must not train", file=sys.stderr)
        return 2
    loaded = onnx_torch.load_checked(a)
    if loaded is None:
        return 2
    plan, model, module = loaded
    if model.inputs[0][1][1:] != [3, 64, 64] or model.outputs[0][1][1:] != [1]:
        print(f"finetune.py: {a.model}: expected frames [N,3,64,64] -> [N,1], found {model.inputs[0]} -> "
              f"{model.outputs[0]}", file=sys.stderr)
        return 2
    t0 = time.time()
    k = 1 + TARGETS.index(a.target)
    train = make(a.frames, a.seed)
    val = make(a.val_frames, a.val_seed)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[k])
    val_x, val_y = torch.from_numpy(val[0]), torch.from_numpy(val[k])
    scale = float(y.std())
    onnx_torch.log(f"finetune.py: rendered {a.frames}+{a.val_frames} frames in {time.time() - t0:.0f} s")
    gen = torch.Generator().manual_seed(a.seed)
    steps = a.frames // a.batch

    def batches(epoch):
        order = torch.randperm(a.frames, generator=gen)
        for b in range(steps):
            idx = order[b * a.batch:(b + 1) * a.batch]
            yield x[idx], y[idx]

    def loss(pred, target):
        return nn.functional.smooth_l1_loss(pred / scale, target / scale, beta=0.5)

    before = mae(module, val_x, val_y)
    onnx_torch.log(f"finetune.py: {a.target} ({plan['network']} of {plan['experiment']}), "
                   f"{len(plan['steps'])} reshape step(s); {a.epochs} epoch(s) of {a.frames} frames, lr {a.lr}; "
                   f"validation MAE before {before:.4f}")
    onnx_torch.fit(module, batches, steps, loss, a.epochs, a.lr)
    after = mae(module, val_x, val_y)
    onnx_torch.save_checked(module, model, a.out, val_x[:32])
    onnx_torch.log(f"finetune.py: validation MAE {before:.4f} -> {after:.4f} in {time.time() - t0:.0f} s; "
                   f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
