"""The input checks of the RLD series, in one place: numbers, logit tensors and vectors, class labels and indices.

Each returns the checked value (converted where said) or raises ValueError naming the argument and what was
expected; `kit.rld.losses`, `kit.rld.explore` and `kit.rld.mistakes` all check their inputs here.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_logit_vector", "check_index", "check_label", "check_logits", "check_positive", "check_real",
           "check_target", "check_weight", "is_real"]


def is_real(value: Any) -> bool:
    """Returns True for a finite real number (bools excluded)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_real(name: str, value: Any) -> float:
    """Returns ``value`` as a float after checking it is a finite real number."""
    if not is_real(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """Returns ``value`` as a float after checking it is a finite number > 0 (a temperature, a step size)."""
    if not is_real(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_weight(name: str, value: Any) -> float:
    """Returns ``value`` as a float after checking it is a finite number >= 0 (a loss weight)."""
    if not is_real(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_index(name: str, value: Any, size: int, what: str = "items") -> int:
    """Returns ``value`` as an int after checking 0 <= value < size (``what``: the things indexed, for the message)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int index, got {value!r}")
    if size == 0:
        raise ValueError(f"{name}: there are no {what} to index (the set is empty)")
    if not 0 <= int(value) < size:
        raise ValueError(f"{name} must be in [0, {size}) ({size} {what}), got {value}")
    return int(value)


def check_label(label: Any, num_classes: int) -> int:
    """Returns the label as an int after checking 0 <= label < num_classes."""
    if isinstance(label, bool) or not isinstance(label, numbers.Integral):
        raise ValueError(f"label must be an int class index, got {label!r}")
    if not 0 <= int(label) < num_classes:
        raise ValueError(f"label must be in [0, {num_classes}), got {label}")
    return int(label)


def check_logits(name: str, logits: Any) -> None:
    """Checks a batch of logits: a finite floating-point torch.Tensor [B, C] with B >= 1 and C >= 2."""
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [B, C], got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"{name} must be 2-D [B, C], got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"{name} needs at least 1 row and 2 classes, got shape {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_target(target: Any, batch: int, num_classes: int) -> Tensor:
    """Returns ``target`` as int64 after checking it is a tensor [batch] of class indices in [0, num_classes)."""
    if not isinstance(target, Tensor):
        raise ValueError(f"target must be a torch.Tensor [B] of class indices, got {type(target).__name__}")
    if target.dim() != 1:
        raise ValueError(f"target must be 1-D [B], got shape {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must have an integer dtype (class indices), got {target.dtype}")
    if target.shape[0] != batch:
        raise ValueError(f"target has {target.shape[0]} entries but the logits have batch size {batch}")
    lo, hi = int(target.min()), int(target.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"target must lie in [0, {num_classes}), got values in [{lo}, {hi}]")
    return target.long()


def as_logit_vector(x: Any, name: str) -> Tensor:
    """Returns one logit vector as a finite float64 tensor [C], C >= 2."""
    try:
        t = torch.as_tensor(x.detach().cpu() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a vector of C real logits, got {type(x).__name__} ({err})") from err
    t = t.to(torch.float64)
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"{name}: expected a vector [C] with C >= 2 logits, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return t
