"""Loading the released CRD / mdistiller CIFAR teachers (``{"model": state_dict, ...}`` torch files)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from kit.core.checkpoint import load_checkpoint

_SHOW = 8  # how many offending keys an error message lists


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > _SHOW else shown


def extract_state_dict(
    obj: Any, path: str | os.PathLike = "<object>"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, rest)`` from a loaded teacher file: its ``"model"`` entry (or the object itself when
    it is already a flat tensor dict) with any ``module.`` (DataParallel) prefix removed, and the other entries."""
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    if "model" in obj:
        state, rest = obj["model"], {k: v for k, v in obj.items() if k != "model"}
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, rest = obj, {}
    else:
        raise ValueError(
            f"checkpoint {path} has no 'model' entry (keys: {_listing(sorted(map(str, obj)))}); expected the "
            "CRD/mdistiller layout {'model': state_dict, ...} or a bare state_dict"
        )
    if not isinstance(state, dict) or not state:
        raise ValueError(
            f"checkpoint {path}: 'model' must be a non-empty state_dict, got {type(state).__name__}"
        )
    clean: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"checkpoint {path}: entry {key!r} is a {type(value).__name__}, expected a tensor"
            )
        clean[key.removeprefix("module.")] = value
    if len(clean) != len(state):
        raise ValueError(f"checkpoint {path}: keys collide once the 'module.' prefix is removed")
    return clean, rest


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state_dict") -> None:
    """Raise ValueError naming the missing, unexpected and wrongly shaped keys of ``state`` for ``model``."""
    own = model.state_dict()
    # BatchNorm fills an absent ``num_batches_tracked`` (files from before PyTorch 0.4.1) with 0 by itself.
    missing = sorted(k for k in set(own) - set(state) if not k.endswith(".num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (file vs model): {_listing(shapes)}")
    if problems:
        raise ValueError(f"{source} does not match {type(model).__name__}: " + "; ".join(problems))


def load_mdistiller_checkpoint(
    model: nn.Module, path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Return the file's entries other than ``"model"`` (e.g. ``epoch``, ``accuracy``) after loading its weights
    into ``model`` with ``strict=True``.

    ``path`` is a teacher in the CRD / mdistiller release layout, ``{"model": state_dict, ...}`` (e.g.
    ``resnet32x4_vanilla/ckpt_epoch_240.pth``), or a bare state_dict. It is read through
    :func:`kit.core.checkpoint.load_checkpoint` (``torch.load(weights_only=True)``; unsafe pickles are refused).
    A ``module.`` prefix is stripped. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the missing / unexpected / mis-shaped keys when the weights do not fit ``model``.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    state, rest = extract_state_dict(ckpt.tensors, path)
    check_state_dict(model, state, source=f"checkpoint {path}")
    model.load_state_dict(state, strict=True)
    return rest
