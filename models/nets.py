"""Network definitions for the caliprox example models (Fashion-MNIST, NCHW [N,1,28,28]).

The three networks deliberately cover different operator mixes, so the engine, the knob
catalogue and the tuner are exercised on plain conv/fc stacks (LeNet), on residual graphs with
BatchNormalization and projection shortcuts (ResNet) and on depthwise convolutions with
HardSwish (MobileNet).
"""

import torch
import torch.nn as nn


class LeNet(nn.Module):
    """conv5x5 -> relu -> maxpool -> conv5x5 -> relu -> maxpool -> fc -> relu -> fc -> relu -> fc.

    Wider than the 1998 LeNet-5 (16/32 channels instead of 6/16) so that it is a competitive
    baseline on Fashion-MNIST while staying a pure conv/fc network without normalisation.
    """

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)   # 28x28
        self.pool1 = nn.MaxPool2d(2)                  # 14x14
        self.conv2 = nn.Conv2d(16, 32, 5)             # 10x10
        self.pool2 = nn.MaxPool2d(2)                  # 5x5
        self.fc1 = nn.Linear(32 * 5 * 5, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.pool1(self.relu(self.conv1(x)))
        x = self.pool2(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU (He et al. 2016, v1 block).

    The shortcut is the identity when shape is preserved and a 1x1 conv + BN projection when
    the block changes width or stride.
    """

    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch))

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class ResNet(nn.Module):
    """Stem conv3x3(32) at 28x28, then basic blocks 32 (28x28) -> 64/2 (14x14) -> 128/2 (7x7),
    global average pool and one fc layer."""

    def __init__(self, widths=(32, 64, 128), blocks_per_stage=(1, 1, 1), num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU())
        layers = []
        in_ch = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks_per_stage)):
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(BasicBlock(in_ch, width, stride))
                in_ch = width
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


def conv_bn_hswish(in_ch, out_ch, kernel, stride, groups):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.Hardswish())


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv-BN-HardSwish followed by pointwise 1x1 conv-BN-HardSwish."""

    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.depthwise = conv_bn_hswish(in_ch, in_ch, 3, stride, groups=in_ch)
        self.pointwise = conv_bn_hswish(in_ch, out_ch, 1, 1, groups=1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNet(nn.Module):
    """Stem conv3x3(16) at 28x28, depthwise-separable blocks with two stride-2 steps
    (28 -> 14 -> 7), global average pool and one fc layer.

    The first block already downsamples: depthwise convolutions and elementwise HardSwish at
    28x28 dominate CPU training time while adding little accuracy on 28x28 inputs.
    """

    # (out_channels, stride) of each depthwise-separable block
    CONFIG = ((32, 2), (64, 1), (128, 2), (128, 1), (256, 1))

    def __init__(self, stem_width=16, num_classes=10):
        super().__init__()
        self.stem = conv_bn_hswish(1, stem_width, 3, 1, groups=1)
        layers = []
        in_ch = stem_width
        for out_ch, stride in self.CONFIG:
            layers.append(DepthwiseSeparable(in_ch, out_ch, stride))
            in_ch = out_ch
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


# name -> (constructor, default max epochs, default validation target for early stopping,
#          train in channels_last memory format). channels_last makes oneDNN's convolutions and
# BatchNorm about 1.3-1.8x cheaper in CPU time for the BN networks; LeNet's time goes to its
# fc layers (netlib BLAS), where it would only add layout copies.
MODELS = {
    "lenet": (LeNet, 20, 0.92, False),
    "resnet": (ResNet, 15, 0.94, True),
    "mobilenet": (MobileNet, 15, 0.93, True),
}


def count_params(model):
    return sum(p.numel() for p in model.parameters())
