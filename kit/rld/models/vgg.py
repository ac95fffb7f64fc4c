"""CIFAR VGG-8 / VGG-13 with BatchNorm (Simonyan & Zisserman, arXiv:1409.1556), as in the CRD / mdistiller benchmark.

Five conv groups ``block0..block4`` (3x3 conv with bias, BN, ReLU; the group's last ReLU is applied outside it),
2x2 max-pool after the first three groups (and the fourth on 64x64 inputs), global average pool, Linear(512, C)
named ``classifier``. Inside a group the modules are numbered conv=3j, BN=3j+1, ReLU=3j+2, so the checkpoint keys
are ``block{g}.{3j}.weight/bias`` and ``block{g}.{3j+1}.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kit.rld.models.base import PooledClassifier, check_num_classes, global_pool, init_fan_out

VGG_GROUPS = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def conv_group(in_ch: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Return conv3x3(bias)-BN-ReLU for each width, without the trailing ReLU."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_ch = w
    return nn.Sequential(*layers[:-1])


class CifarVGG(PooledClassifier):
    """VGG with BN over 5 conv groups; ``features(x)`` is [B, 512]."""

    head_name = "classifier"
    min_input_size = 8

    def __init__(self, groups: tuple[tuple[int, ...], ...], num_classes: int = 100):
        super().__init__()
        check_num_classes(num_classes)
        if len(groups) != 5 or groups[-1][-1] != 512:
            raise ValueError(f"groups must be 5 tuples of widths ending in 512, got {groups!r}")
        in_ch = 3
        for g, widths in enumerate(groups):
            setattr(self, f"block{g}", conv_group(in_ch, widths))
            in_ch = widths[-1]
        self.classifier = nn.Linear(512, num_classes)
        init_fan_out(self, linear_std=0.01)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        # mdistiller pools after the fourth group only for 64x64 (Tiny-ImageNet) inputs.
        pool_fourth = x.shape[2] == 64
        for g in range(5):
            x = F.relu(getattr(self, f"block{g}")(x))
            if g < 3 or (g == 3 and pool_fourth):
                x = F.max_pool2d(x, 2)
        return global_pool(x)


def vgg8(num_classes: int = 100) -> CifarVGG:
    """Return VGG-8 with BN (one conv per group: 64/128/256/512/512); mdistiller's ``vgg8_bn``."""
    return CifarVGG(VGG_GROUPS["vgg8"], num_classes)


def vgg13(num_classes: int = 100) -> CifarVGG:
    """Return VGG-13 with BN (two convs per group: 64/128/256/512/512); mdistiller's ``vgg13_bn``."""
    return CifarVGG(VGG_GROUPS["vgg13"], num_classes)
