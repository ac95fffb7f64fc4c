"""CIFAR ResNets of the CRD / mdistiller benchmark: resnet20/32/56/110, resnet8x4/32x4 and ResNet50.

He et al., "Deep Residual Learning for Image Recognition", arXiv:1512.03385 (CIFAR variant, sec. 4.2); the "x4"
widths and the Bottleneck ResNet50 are those of the CRD benchmark (Tian et al., arXiv:1910.10699). Module
names follow the released teacher checkpoints, so their ``state_dict`` loads with ``strict=True``:
``conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}, fc`` for the 6n+2 nets and
``conv1, bn1, layer{1..4}.{i}.{conv1..3,bn1..3,shortcut.0,shortcut.1}, linear`` for ResNet50.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kit.rld.models.base import PooledClassifier, check_num_classes, conv_bn, global_pool, init_fan_out


class BasicBlock(nn.Module):
    """Post-activation residual block: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_ch, out_ch, 3, stride)
        self.conv2, self.bn2 = conv_bn(out_ch, out_ch, 3)
        # 1x1 conv + BN projection only where the shape changes, as in the CRD code ("option B").
        self.downsample = (
            nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride)) if stride != 1 or in_ch != out_ch else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class CifarResNet(PooledClassifier):
    """ResNet-(6n+2) for 32x32 inputs: 3x3 stem, three stages of n BasicBlocks (strides 1/2/2), pool, fc.

    ``widths`` = (stem, stage1, stage2, stage3), e.g. (16, 16, 32, 64) for resnet56, (32, 64, 128, 256) for
    resnet32x4. ``features(x)`` is [B, widths[3]].
    """

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 20, 32, 56, 110, ...), got {depth}")
        check_num_classes(num_classes)
        n = (depth - 2) // 6
        self.conv1, self.bn1 = conv_bn(3, widths[0], 3)
        in_ch = widths[0]
        for stage, (width, stride) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
            blocks = [
                BasicBlock(in_ch if i == 0 else width, width, stride if i == 0 else 1) for i in range(n)
            ]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            in_ch = width
        self.fc = nn.Linear(in_ch, num_classes)
        init_fan_out(self)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return global_pool(x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels) residual block; identity shortcut unless the shape changes."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1, self.bn1 = conv_bn(in_ch, width, 1)
        self.conv2, self.bn2 = conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = conv_bn(width, out_ch, 1)
        # An empty Sequential is the identity and adds no state_dict keys, matching the checkpoints.
        self.shortcut = (
            nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride))
            if stride != 1 or in_ch != out_ch
            else nn.Sequential()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarBottleneckResNet(PooledClassifier):
    """ImageNet-style ResNet with a 3x3 stride-1 stem and no max-pool, for 32x32 inputs (CRD's ResNet50).

    Stages of ``blocks`` Bottlenecks with widths 64/128/256/512 and strides 1/2/2/2; ``features(x)`` is [B, 2048].
    """

    head_name = "linear"

    def __init__(self, blocks: tuple[int, int, int, int] = (3, 4, 6, 3), num_classes: int = 100):
        super().__init__()
        check_num_classes(num_classes)
        if len(blocks) != 4 or any(int(b) < 1 for b in blocks):
            raise ValueError(f"blocks must be 4 positive ints, got {blocks!r}")
        self.conv1, self.bn1 = conv_bn(3, 64, 3)
        in_ch = 64
        for stage, (n, width, stride) in enumerate(zip(blocks, (64, 128, 256, 512), (1, 2, 2, 2)), start=1):
            layers = []
            for i in range(n):
                layers.append(Bottleneck(in_ch, width, stride if i == 0 else 1))
                in_ch = width * Bottleneck.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.linear = nn.Linear(in_ch, num_classes)
        init_fan_out(self)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return global_pool(x)


def resnet20(num_classes: int = 100) -> CifarResNet:
    """Return ResNet-20 (3 blocks per stage, 16/32/64 channels)."""
    return CifarResNet(20, (16, 16, 32, 64), num_classes)


def resnet32(num_classes: int = 100) -> CifarResNet:
    """Return ResNet-32 (5 blocks per stage, 16/32/64 channels)."""
    return CifarResNet(32, (16, 16, 32, 64), num_classes)


def resnet56(num_classes: int = 100) -> CifarResNet:
    """Return ResNet-56 (9 blocks per stage, 16/32/64 channels)."""
    return CifarResNet(56, (16, 16, 32, 64), num_classes)


def resnet110(num_classes: int = 100) -> CifarResNet:
    """Return ResNet-110 (18 blocks per stage, 16/32/64 channels)."""
    return CifarResNet(110, (16, 16, 32, 64), num_classes)


def resnet8x4(num_classes: int = 100) -> CifarResNet:
    """Return ResNet-8x4 (1 block per stage, stem 32, stages 64/128/256)."""
    return CifarResNet(8, (32, 64, 128, 256), num_classes)


def resnet32x4(num_classes: int = 100) -> CifarResNet:
    """Return ResNet-32x4 (5 blocks per stage, stem 32, stages 64/128/256)."""
    return CifarResNet(32, (32, 64, 128, 256), num_classes)


def resnet50(num_classes: int = 100) -> CifarBottleneckResNet:
    """Return the CIFAR ResNet50 of the CRD benchmark (Bottleneck [3, 4, 6, 3], 3x3 stem, no max-pool)."""
    return CifarBottleneckResNet((3, 4, 6, 3), num_classes)
