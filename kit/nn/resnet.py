"""ResNet-18 feature extractors for small images, in torchvision's module layout (He et al., arXiv:1512.03385)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

STEMS = ("imagenet", "small")


class ResNet18Features(nn.Module):
    """Pooled features [B, 8 * width] of ResNet-18's layers: 4 stages of 2 basic blocks at width, 2, 4, 8 x width.

    ``stem="imagenet"``: torchvision's 7x7 stride-2 convolution and 3x3 stride-2 max-pool (``width=64`` with 3 input
    channels is torchvision's ``resnet18`` without its classifier, module names included); ``stem="small"``: a 3x3
    stride-1 convolution and no max-pool, the usual stem for 32-64 px images.
    """

    def __init__(self, width: int = 64, in_channels: int = 1, stem: str = "imagenet") -> None:
        super().__init__()
        if width < 1 or in_channels < 1:
            raise ValueError(f"width and in_channels must be >= 1, got width={width}, in_channels={in_channels}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        self.in_channels, self.stem = int(in_channels), stem
        k, s, p = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
        self.conv1 = nn.Conv2d(in_channels, width, k, s, p, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        self._planes = width
        self.layer1 = self._stage(width, 1)
        self.layer2 = self._stage(2 * width, 2)
        self.layer3 = self._stage(4 * width, 2)
        self.layer4 = self._stage(8 * width, 2)
        self.out_features = 8 * width
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, planes: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self._planes != planes:
            down = nn.Sequential(nn.Conv2d(self._planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        blocks = nn.Sequential(BasicBlock(self._planes, planes, stride, down), BasicBlock(planes, planes))
        self._planes = planes
        return blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
