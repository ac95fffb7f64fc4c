"""CIFAR MobileNetV2 (Sandler et al., arXiv:1801.04381), the ``mobile_half`` student of the CRD / mdistiller benchmark.

Expansion 6, width 0.5 (the 1280-wide last conv is kept), stride-2 stem and the CIFAR stage strides
1,1,2,2,1,2,1, so a 32x32 image ends on a 2x2 map. Module names follow mdistiller: ``conv1.{0,1}``,
``blocks.{stage}.{i}.conv.{0,1,3,4,6,7}``, ``conv2.{0,1}``, ``classifier.0``.
"""

from __future__ import annotations

import torch
from torch import nn

from kit.rld.models.base import PooledClassifier, check_num_classes, conv_bn, global_pool, init_fan_out

# (expansion t, output channels c, repeats n, first stride s) per stage, before width scaling; t=None -> 1.
STAGES = (
    (None, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expand - BN - ReLU - 3x3 depthwise - BN - ReLU - 1x1 project - BN, residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        # The expand conv is kept even for expansion 1, as in the benchmark code (indices 0..7 in ``conv``).
        self.conv = nn.Sequential(
            *conv_bn(in_ch, hidden, 1),
            nn.ReLU(inplace=True),
            *conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.ReLU(inplace=True),
            *conv_bn(hidden, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class CifarMobileNetV2(PooledClassifier):
    """MobileNetV2 for 32x32 inputs; ``features(x)`` is [B, 1280] (or [B, 1280*width] for width > 1)."""

    head_name = "classifier"

    def __init__(self, expansion: int = 6, width: float = 0.5, num_classes: int = 100):
        super().__init__()
        check_num_classes(num_classes)
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        in_ch = int(32 * width)
        self.conv1 = nn.Sequential(*conv_bn(3, in_ch, 3, 2), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList()
        for t, c, n, s in STAGES:
            out_ch = int(c * width)
            layers = []
            for i in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, expansion if t else 1))
                in_ch = out_ch
            self.blocks.append(nn.Sequential(*layers))
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*conv_bn(in_ch, last, 1), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        init_fan_out(self, linear_std=0.01)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for stage in self.blocks:
            x = stage(x)
        return global_pool(self.conv2(x))


def mobile_half(num_classes: int = 100) -> CifarMobileNetV2:
    """Return MobileNetV2 with expansion 6 and width 0.5 (mdistiller's ``mobile_half`` / "MobileNetV2")."""
    return CifarMobileNetV2(6, 0.5, num_classes)
