"""Wide ResNets WRN-d-k for CIFAR (Zagoruyko & Komodakis, arXiv:1605.07146), as in the CRD / mdistiller benchmark.

Pre-activation blocks, n = (d-4)/6 per stage, channels 16 -> 16k / 32k / 64k, final BN-ReLU, global pool, fc.
Module names follow the released checkpoints: ``conv1``,
``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}``, ``bn1``, ``fc``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kit.rld.models.base import PooledClassifier, check_num_classes, global_pool, init_fan_out


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice; identity shortcut, or a 1x1 conv on the activated input when widths differ."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        if in_ch == out_ch and stride != 1:
            raise ValueError("a width-preserving WRN block must have stride 1")
        self.convShortcut = (
            nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False) if in_ch != out_ch else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        # The identity path adds the raw input; the projection path sees the activated one.
        skip = x if self.convShortcut is None else self.convShortcut(act)
        return skip + out


class WideStage(nn.Module):
    """``n`` PreActBlocks, the first one changing width/stride; held in ``.layer`` as in the checkpoints."""

    def __init__(self, n: int, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *[PreActBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(PooledClassifier):
    """WRN-``depth``-``widen``: ``features(x)`` is [B, 64 * widen]."""

    def __init__(self, depth: int, widen: int, num_classes: int = 100):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n+4 with n >= 1 (10, 16, 28, 40, ...), got {depth}")
        if isinstance(widen, bool) or not isinstance(widen, int) or widen < 1:
            raise ValueError(f"widen must be a positive int, got {widen!r}")
        check_num_classes(num_classes)
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.block1 = WideStage(n, widths[0], widths[1], 1)
        self.block2 = WideStage(n, widths[1], widths[2], 2)
        self.block3 = WideStage(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_fan_out(self, zero_linear_bias=True)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return global_pool(F.relu(self.bn1(x)))


def wrn_16_2(num_classes: int = 100) -> WideResNet:
    """Return WRN-16-2 (2 blocks per stage, 32/64/128 channels)."""
    return WideResNet(16, 2, num_classes)


def wrn_40_1(num_classes: int = 100) -> WideResNet:
    """Return WRN-40-1 (6 blocks per stage, 16/32/64 channels)."""
    return WideResNet(40, 1, num_classes)


def wrn_40_2(num_classes: int = 100) -> WideResNet:
    """Return WRN-40-2 (6 blocks per stage, 32/64/128 channels)."""
    return WideResNet(40, 2, num_classes)
