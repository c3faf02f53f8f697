#!/usr/bin/python3
"""Fine-tune hook of the Fashion-MNIST networks (man caliprox-experiment, FINE-TUNING).

    finetune.py --plan PLAN.json --model PRUNED.onnx --out OUT.onnx [options]

caliprox runs this with the plan of a pruned configuration (schemas/prune-plan.schema.json) and
the pruned, least-squares-repaired network; it answers with OUT.onnx, the same network with
trained weights. The network is run as it is in the ONNX file (onnx_torch.OnnxModule), so the
structure cannot change; BatchNormalization re-estimates its statistics while training (or keeps
them with --bn frozen). Training data: the first 55 000 Fashion-MNIST training images (with
train.py's augmentation if asked); the last 5 000 (train.py's validation split) report accuracy
before and after on stderr. The t10k set, from which the experiments draw their
calibrate/tune/test splits, is never read. Exit status: 0 written, 1 failed, 2 bad arguments or a plan that does not match
the model.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_torch  # noqa: E402
from fashion_data import VAL_SIZE, augment, load_split, normalize  # noqa: E402


def accuracy(module, images, labels, batch=1000):
    module.eval()
    with torch.no_grad():
        hits = sum(int((module(normalize(images[i:i + batch])).argmax(1) == labels[i:i + batch]).sum())
                   for i in range(0, len(labels), batch))
    return hits / len(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    onnx_torch.add_hook_arguments(ap)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--samples", type=int, default=0,
                    help="training images per epoch, drawn from the 55 000 (0: all of them)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (cosine decay to 0)")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--bn", choices=["train", "frozen"], default="train",
                    help="BatchNormalization: re-estimate statistics while training, or keep them")
    ap.add_argument("--augment", action="store_true",
                    help="train.py's random crops and flips (for longer runs; one epoch learns more without)")
    a = ap.parse_args()
    loaded = onnx_torch.load_checked(a, a.bn)
    if loaded is None:
        return 2
    plan, model, module = loaded
    if model.inputs[0][1][1:] != [1, 28, 28]:
        print(f"finetune.py: {a.model}: input {model.inputs[0]} is not a Fashion-MNIST image [N,1,28,28]",
              file=sys.stderr)
        return 2
    t0 = time.time()
    images, labels = load_split("train")
    n_train = len(labels) - VAL_SIZE
    val_x, val_y = images[n_train:], labels[n_train:]
    samples = min(a.samples, n_train) if a.samples > 0 else n_train
    gen = torch.Generator().manual_seed(a.seed)

    def batches(epoch):
        order = torch.randperm(n_train, generator=gen)[:samples]
        for i in range(0, samples, a.batch):
            idx = order[i:i + a.batch]
            yield augment(images[idx], gen) if a.augment else normalize(images[idx]), labels[idx]

    before = accuracy(module, val_x, val_y)
    onnx_torch.log(f"finetune.py: {plan['network']} of {plan['experiment']}, {len(plan['steps'])} reshape step(s); "
                   f"{a.epochs} epoch(s) of {samples} images, lr {a.lr}, BatchNormalization {a.bn}; "
                   f"validation top-1 before {before:.4f}")
    onnx_torch.fit(module, batches, -(-samples // a.batch), F.cross_entropy, a.epochs, a.lr, a.weight_decay)
    after = accuracy(module, val_x, val_y)
    onnx_torch.save_checked(module, model, a.out, normalize(val_x[:64]))
    onnx_torch.log(f"finetune.py: validation top-1 {before:.4f} -> {after:.4f} in {time.time() - t0:.0f} s; "
                   f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
