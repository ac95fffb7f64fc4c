"""Shared pieces of the CIFAR networks: a classifier base with ``features`` / ``forward`` and init helpers."""

from __future__ import annotations

import math

import torch
from torch import nn


def check_num_classes(num_classes: int) -> int:
    """Return ``num_classes`` after checking that it is a positive int."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


def check_images(x: torch.Tensor, min_size: int = 1) -> None:
    """Raise ValueError unless ``x`` is an image batch [B, 3, H, W] with H, W >= ``min_size``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be an image batch [B, 3, H, W], got {shape}")
    if min(x.shape[2], x.shape[3]) < min_size:
        raise ValueError(f"x must be at least {min_size}x{min_size} pixels, got {tuple(x.shape[2:])}")


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Return the spatial mean of ``x`` [B, C, H, W] as [B, C].

    On 32x32 CIFAR inputs every network here ends on a map that mdistiller averages with a pooling window of
    exactly its size (8, 4, 2 or adaptive), so the global mean gives the same numbers.
    """
    return x.mean(dim=(2, 3))


class PooledClassifier(nn.Module):
    """Base of all networks here: ``features(x)`` [B, D] is the pooled feature, a final Linear gives logits.

    Subclasses implement ``pooled(x)`` and name their final layer in ``head_name`` (the attribute name the
    released checkpoints use: ``fc``, ``linear`` or ``classifier``).
    """

    head_name = "fc"
    min_input_size = 1

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled feature before the classifier, [B, D] for an image batch ``x`` [B, 3, H, W]."""
        check_images(x, self.min_input_size)
        return self.pooled(x)

    @property
    def feature_dim(self) -> int:
        """Return D, the width of :meth:`features`."""
        head = getattr(self, self.head_name)
        linear = head[-1] if isinstance(head, nn.Sequential) else head
        return linear.in_features

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Return logits [B, num_classes]; with ``return_features`` the pair (logits, features [B, D])."""
        feats = self.features(x)
        logits = getattr(self, self.head_name)(feats)
        return (logits, feats) if return_features else logits


def init_fan_out(module: nn.Module, linear_std: float | None = None, zero_linear_bias: bool = False) -> None:
    """Initialise ``module`` in place the way the CRD/mdistiller CIFAR models do.

    Convs ~ N(0, 2 / (k*k*out_channels)) (He, fan-out) with zero bias; BatchNorm weight 1, bias 0;
    Linear weight ~ N(0, ``linear_std``) when given (else PyTorch's default) and bias 0 when
    ``linear_std`` is given or ``zero_linear_bias``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            if linear_std is not None or zero_linear_bias:
                nn.init.zeros_(m.bias)


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Return [Conv2d (no bias, 'same' padding), BatchNorm2d]: the conv-BN pair used throughout."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_ch)]
