#!/usr/bin/python3
"""Train the caliprox example networks on Fashion-MNIST and export them to ONNX.

Run with Debian's interpreter (python3-torch 1.13, python3-numpy, python3-onnx):
    /usr/bin/python3 models/train.py --model resnet        # or lenet, mobilenet, all

Data: the Debian package dataset-fashion-mnist (gzip IDX files, read by fashion_data.py).
The last 5000 training images are held out for model selection / early stopping; the t10k
test set is evaluated once, after training, for the reported accuracy.

Outputs in the directory of this script:
    fashion_<model>.onnx     opset 13, input `input` [N,1,28,28] float32, output `logits` [N,10]
    accuracy.json            per model: test_top1, params, epochs, seed, versions, timings, ops
    reference_outputs.json   torch logits of every model for the first 8 test images
"""

import argparse
import copy
import json
import math
import os
import random
import subprocess
import sys
import time

# The machine is shared with compile jobs: with spinning OpenMP waits, two oversubscribed
# threads burn their time slices at barriers. Must be set before libgomp is loaded by torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

import export
from fashion_data import DATA_DIR, MEAN, STD, VAL_SIZE, augment, load_split, normalize
from nets import MODELS, count_params

OUT_DIR = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def evaluate(model, images_u8, labels, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            pred = model(normalize(images_u8[i:i + batch])).argmax(1)
            correct += (pred == labels[i:i + batch]).sum().item()
    return correct / len(labels)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(name, args, train_x, train_y, val_x, val_y):
    ctor, default_epochs, default_target, channels_last = MODELS[name]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    max_epochs = args.epochs or default_epochs
    target = args.val_target if args.val_target is not None else default_target
    seed_everything(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = ctor().to(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_y) / args.batch)
    total_steps = max_epochs * steps_per_epoch
    # cosine decay to zero over max_epochs, stepped per iteration
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    log(f"[{name}] params={count_params(model)} max_epochs={max_epochs} val_target={target} "
        f"seed={args.seed} threads={torch.get_num_threads()} batch={args.batch} lr={args.lr} "
        f"channels_last={channels_last}")

    best = (-1.0, 0, None)   # (val accuracy, epoch, state_dict)
    streak = 0
    epochs_run = 0
    t_start = time.time()
    for epoch in range(1, max_epochs + 1):
        t0 = time.time()
        model.train()
        perm = torch.randperm(len(train_y), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            x = augment(train_x[idx], gen) if args.augment else normalize(train_x[idx])
            x = x.contiguous(memory_format=layout)
            y = train_y[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        val_acc = evaluate(model, val_x, val_y)
        epochs_run = epoch
        if val_acc > best[0]:
            best = (val_acc, epoch, copy.deepcopy(model.state_dict()))
        streak = streak + 1 if val_acc >= target else 0
        log(f"[{name}] epoch {epoch:2d}/{max_epochs} loss={loss_sum / len(perm):.4f} "
            f"train_acc={correct / len(perm):.4f} val_acc={val_acc:.4f} "
            f"best={best[0]:.4f}@{best[1]} lr={sched.get_last_lr()[0]:.2e} "
            f"time={time.time() - t0:.0f}s")
        if streak >= args.stable_epochs:
            log(f"[{name}] validation accuracy >= {target} for {streak} epochs: stopping")
            break
    train_seconds = time.time() - t_start
    model = model.to(memory_format=torch.contiguous_format)
    model.load_state_dict(best[2])
    model.eval()
    return model, {"channels_last": channels_last, "epochs": epochs_run, "best_epoch": best[1],
                   "val_top1": round(best[0], 4),
                   "train_seconds": round(train_seconds, 1), "max_epochs": max_epochs,
                   "val_target": target}


def debian_package_version(package):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def update_json(path, key, value):
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data[key] = value
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return data


def write_reference(path, name, model, test_x, test_y, count):
    """Store torch logits of the first `count` test images for engine-vs-PyTorch tests."""
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    images = test_x[:count]
    with torch.no_grad():
        logits = model(normalize(images)).numpy()
    data["description"] = ("PyTorch logits of the caliprox example models for the first "
                           f"{count} Fashion-MNIST t10k test images; values rounded to 6 "
                           "significant digits. Input = (pixel/255 - mean)/std, NCHW [N,1,28,28].")
    data["source"] = os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")
    data["preprocessing"] = {"scale": "1/255", "mean": MEAN, "std": STD}
    data["count"] = count
    data["labels"] = test_y[:count].tolist()
    data["images_uint8"] = images.reshape(count, -1).tolist()
    data.setdefault("models", {})[f"fashion_{name}.onnx"] = {
        "logits": [[float(f"{v:.6g}") for v in row] for row in logits],
        "argmax": logits.argmax(1).tolist(),
        "torch_version": torch.__version__,
    }
    with open(path, "w") as f:
        f.write(export.compact_json(data))
    return logits


def run(name, args, splits):
    train_x, train_y, val_x, val_y, test_x, test_y = splits
    model, info = train(name, args, train_x, train_y, val_x, val_y)
    test_acc = evaluate(model, test_x, test_y)
    log(f"[{name}] best epoch {info['best_epoch']} val_top1={info['val_top1']:.4f} "
        f"test_top1={test_acc:.4f} train_seconds={info['train_seconds']:.0f}")
    onnx_path = os.path.join(args.out_dir, f"fashion_{name}.onnx")
    ops = export.export_onnx(model, onnx_path)
    logits = write_reference(os.path.join(args.out_dir, "reference_outputs.json"), name, model,
                             test_x, test_y, args.ref_count)
    max_diff = export.check_against_numpy(onnx_path, normalize(test_x[:args.ref_count]).numpy(),
                                          logits)
    log(f"[{name}] {onnx_path}: {os.path.getsize(onnx_path)} bytes, ops {ops}, "
        f"numpy evaluation of the ONNX graph vs torch: max |diff| = {max_diff:.2e}")
    entry = dict(info, test_top1=round(test_acc, 4), params=count_params(model),
                 seed=args.seed, torch_version=torch.__version__,
                 torch_debian_package=debian_package_version("python3-torch"),
                 onnx_file=os.path.basename(onnx_path), onnx_bytes=os.path.getsize(onnx_path),
                 opset=export.OPSET, ops=ops, threads=torch.get_num_threads(),
                 batch=args.batch, lr=args.lr, weight_decay=args.weight_decay,
                 augment=bool(args.augment), onnx_vs_torch_max_abs_diff=float(f"{max_diff:.3g}"))
    update_json(os.path.join(args.out_dir, "accuracy.json"), f"fashion_{name}", entry)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS) + ["all"])
    p.add_argument("--epochs", type=int, default=0,
                   help="maximum epochs = length of the cosine schedule (0: per-model default)")
    p.add_argument("--val-target", type=float, default=None,
                   help="stop early once validation top-1 reaches this (default: per model)")
    p.add_argument("--stable-epochs", type=int, default=2,
                   help="consecutive epochs at or above --val-target before stopping")
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ref-count", type=int, default=8)
    p.add_argument("--out-dir", default=OUT_DIR, help="where the .onnx and .json files go")
    p.add_argument("--train-limit", type=int, default=0,
                   help="train on only the first N training images (smoke tests)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    train_x, train_y = load_split("train")
    test_x, test_y = load_split("t10k")
    n_val = len(train_y) - VAL_SIZE
    n_train = min(n_val, args.train_limit) if args.train_limit > 0 else n_val
    splits = (train_x[:n_train], train_y[:n_train], train_x[n_val:], train_y[n_val:],
              test_x, test_y)
    os.makedirs(args.out_dir, exist_ok=True)
    log(f"data: train {n_train}, val {len(train_y) - n_val}, test {len(test_y)}; "
        f"torch {torch.__version__}")
    for name in (sorted(MODELS) if args.model == "all" else [args.model]):
        run(name, args, splits)


if __name__ == "__main__":
    main()
