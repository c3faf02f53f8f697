"""Fashion-MNIST as the caliprox example networks see it: the IDX files of Debian's
dataset-fashion-mnist, the preprocessing of models/README.md, and the training augmentation.
Shared by train.py (training) and finetune.py (fine-tuning pruned networks).
"""

import gzip
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = 0.2860     # preprocessing: x = (pixel / 255 - MEAN) / STD
STD = 0.3530
VAL_SIZE = 5000   # last VAL_SIZE training images form the validation split
PAD = 2           # random-crop padding of the augmentation, in pixels


def read_idx(path):
    """Read an uint8 IDX file (LeCun's MNIST format), gzip-compressed."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: expected IDX magic 00 00 08 <ndim> (uint8 data), "
                         f"found {data[:4].hex()}")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != math.prod(dims):
        raise ValueError(f"{path}: header dims {dims} need {math.prod(dims)} bytes, "
                         f"file holds {payload.size}")
    return payload.reshape(dims)


def load_split(prefix, data_dir=DATA_DIR):
    """`train` or `t10k`: uint8 images [N,1,28,28] and int64 labels [N] as tensors."""
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"{prefix}: expected images [N,28,28] and labels [N], "
                         f"found {images.shape} and {labels.shape}")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def normalize(images_u8):
    """uint8 [N,1,28,28] -> float32 network input, exactly the preprocessing in the README."""
    return (images_u8.float() / 255.0 - MEAN) / STD


def augment(images_u8, gen):
    """Random crop with zero padding of PAD pixels (zero in pixel space) and horizontal flip."""
    n = images_u8.shape[0]
    x = F.pad(images_u8.float() / 255.0, (PAD, PAD, PAD, PAD))
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=gen)
    ar = torch.arange(28)
    rows = (dy[:, None] + ar[None, :])[:, :, None]          # [n,28,1]
    flip = torch.rand(n, generator=gen) < 0.5
    src_cols = torch.where(flip[:, None], 27 - ar[None, :], ar[None, :])   # mirrored if flipped
    cols = (dx[:, None] + src_cols)[:, None, :]             # [n,1,28]
    x = x[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)
    return (x - MEAN) / STD
