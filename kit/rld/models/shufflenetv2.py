"""CIFAR ShuffleNetV2 (Ma et al., arXiv:1807.11164), size 1 (116/232/464 channels), as in the CRD / mdistiller benchmark.

1x1 stem (no stride, no max-pool), three stages of one stride-2 down-sampling unit plus 3/7/3 basic units,
1x1 conv to 1024, global pool, ``linear``. Module names follow mdistiller: ``conv1, bn1,
layer{1,2,3}.0.{conv1..5,bn1..5}`` (down unit), ``layer{s}.{i>=1}.{conv1..3,bn1..3}`` (basic units),
``conv2, bn2, linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kit.rld.models.base import PooledClassifier, check_num_classes, global_pool

SIZES = {1: ((116, 232, 464, 1024), (3, 7, 3))}


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Return ``x`` [B, C, H, W] with channels reordered as (C/g, g) -> (g, C/g) transposed (channel shuffle)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)


class ShuffleUnit(nn.Module):
    """Basic unit: split channels in half, keep the first, 1x1-dw3x3-1x1 on the second, concat, shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1, self.bn1 = _conv(half, half, 1), nn.BatchNorm2d(half)
        self.conv2, self.bn2 = _conv(half, half, 3, groups=half), nn.BatchNorm2d(half)
        self.conv3, self.bn3 = _conv(half, half, 1), nn.BatchNorm2d(half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[1] // 2
        keep, work = x[:, :half], x[:, half:]
        out = F.relu(self.bn1(self.conv1(work)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([keep, out], dim=1))


class ShuffleDownUnit(nn.Module):
    """Stride-2 unit: left branch dw3x3/2-1x1, right branch 1x1-dw3x3/2-1x1, concat (out_ch), shuffle."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        mid = out_ch // 2
        self.conv1, self.bn1 = _conv(in_ch, in_ch, 3, 2, groups=in_ch), nn.BatchNorm2d(in_ch)
        self.conv2, self.bn2 = _conv(in_ch, mid, 1), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = _conv(in_ch, mid, 1), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = _conv(mid, mid, 3, 2, groups=mid), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = _conv(mid, mid, 1), nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], dim=1))


class CifarShuffleNetV2(PooledClassifier):
    """ShuffleNetV2 for 32x32 inputs; ``features(x)`` is [B, 1024]. PyTorch's default init, as in mdistiller."""

    head_name = "linear"

    def __init__(self, size: int = 1, num_classes: int = 100):
        super().__init__()
        check_num_classes(num_classes)
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
        widths, repeats = SIZES[size]
        self.conv1, self.bn1 = _conv(3, 24, 1), nn.BatchNorm2d(24)
        in_ch = 24
        for stage, (width, n) in enumerate(zip(widths[:3], repeats), start=1):
            units = [ShuffleDownUnit(in_ch, width)] + [ShuffleUnit(width) for _ in range(n)]
            setattr(self, f"layer{stage}", nn.Sequential(*units))
            in_ch = width
        self.conv2, self.bn2 = _conv(in_ch, widths[3], 1), nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return global_pool(F.relu(self.bn2(self.conv2(x))))


def shufflenet_v2(num_classes: int = 100) -> CifarShuffleNetV2:
    """Return ShuffleNetV2 size 1 (mdistiller's ``ShuffleV2``)."""
    return CifarShuffleNetV2(1, num_classes)
