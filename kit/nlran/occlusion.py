"""Occlusion sensitivity for a 3D classifier: how much the class logit drops when a cube of the input is blanked
out, on a coarse grid of cubes (spec §7). A perturbation map beside the attention masks, CAM and Grad-CAM of
:mod:`kit.nlran.explain`; one forward pass per cube, so it is not part of :func:`kit.nlran.explain.heatmaps`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from kit.core import eval_mode
from kit.nlran.explain import check_input, class_indices, minmax_scale
from kit.nlran.models import as_triple


def _starts(length: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:  # cover the far edge too
        starts.append(length - patch)
    return starts


def occlusion_sensitivity(model: nn.Module, x: torch.Tensor, class_idx: Any = None, patch: int | Sequence[int] = 8,
                          stride: int | Sequence[int] = 8, fill: float | None = None, batch_size: int = 16,
                          raw: bool = False, progress: bool = False) -> torch.Tensor:
    """Occlusion sensitivity: how much the class logit drops when a cube of the input is blanked out.

    The cube (``patch`` voxels per side) slides over a coarse grid with step ``stride``; the last cube on each
    axis is shifted to touch the far edge so every voxel is covered. Each cube position costs one forward pass
    (batched ``batch_size`` at a time), which is why the grid is coarse (spec §7; 3D occlusion is slow).
    Drop = logit(x) - logit(x with the cube set to ``fill``); [C] our choices: the logit rather than the softmax
    probability (no saturation for confident models); ``fill`` None = the volume's mean intensity (MONAI's
    "mean_img"). The coarse grid is brought to the input grid by giving each voxel the mean drop of the cubes
    that contain it (exact block upsampling; a blocky map when patch == stride).

    Args:
        model: classifier ``model(x) -> logits [B, K]``.
        x: input [B, 1, D, H, W].
        class_idx: None (predicted class), one int, or one int per volume.
        patch, stride: cube side and grid step in voxels (int or (d, h, w)).
        fill: intensity put into the cube (input units, e.g. windowed [0, 1]); None = per-volume mean.
        batch_size: occluded volumes per forward pass.
        raw: True returns the mean drop per voxel (logit units) instead of the min-max scaled map.
        progress: show a tqdm bar over the cube positions.

    Returns:
        float32 CPU tensor [B, D, H, W] (in [0, 1] unless ``raw``).
    """
    check_input(x)
    size = tuple(x.shape[2:])
    p = as_triple(patch, "patch")
    s = as_triple(stride, "stride")
    if any(pi > di for pi, di in zip(p, size)):
        raise ValueError(f"patch {p} is larger than the volume {size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    positions = [(a, b, c) for a in _starts(size[0], p[0], s[0]) for b in _starts(size[1], p[1], s[1])
                 for c in _starts(size[2], p[2], s[2])]
    n_vol = x.shape[0]
    total = torch.zeros(n_vol, *size, dtype=torch.float64)
    count = torch.zeros(size, dtype=torch.float64)
    with eval_mode(model), torch.no_grad():
        logits = model(x)
        idx = class_indices(class_idx, logits)
        base = logits.gather(1, idx[:, None])[:, 0].double().cpu()  # [B]
        fills = x.mean(dim=(1, 2, 3, 4)) if fill is None else torch.full((n_vol,), float(fill), device=x.device)
        per_pass = max(1, batch_size // n_vol)
        bar = tqdm(total=len(positions), desc="occlusion", disable=not progress, leave=False)
        for start in range(0, len(positions), per_pass):
            chunk = positions[start:start + per_pass]
            xs = x.repeat(len(chunk), 1, 1, 1, 1)  # [len(chunk) * B, C, D, H, W], position-major
            for j, (a, b, c) in enumerate(chunk):
                sl = (slice(j * n_vol, (j + 1) * n_vol), slice(None), slice(a, a + p[0]), slice(b, b + p[1]),
                      slice(c, c + p[2]))
                xs[sl] = fills.view(n_vol, 1, 1, 1, 1).to(xs.dtype)
            out = model(xs).gather(1, idx.repeat(len(chunk))[:, None])[:, 0].double().cpu()
            for j, (a, b, c) in enumerate(chunk):
                drop = base - out[j * n_vol:(j + 1) * n_vol]
                total[:, a:a + p[0], b:b + p[1], c:c + p[2]] += drop.view(n_vol, 1, 1, 1)
                count[a:a + p[0], b:b + p[1], c:c + p[2]] += 1
            bar.update(len(chunk))
        bar.close()
    m = (total / count).float()
    return m if raw else minmax_scale(m)
