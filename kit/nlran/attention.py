"""The non-local block's attention of NL-RAN (arXiv:2408.04300), read out: the softmax weights A[i, :] of one
query cell over the key grid, the mapping between input voxels and the coarse grids, and where lesions look
(:func:`lesion_affinity`: lesion-to-lesion weight against uniform; :func:`lesion_links`: split by lung).
Everything returns numpy; the view is ``widgets.nlran.NonLocalView``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kit.core import eval_mode


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def nonlocal_attention(model: nn.Module, x: torch.Tensor
                       ) -> tuple[np.ndarray, tuple[int, int, int], tuple[int, int, int]]:
    """Attention matrix of the model's non-local block for one input volume.

    A forward hook on ``model.nonlocal_block`` captures the block's input [1, C, d, h, w] during one forward pass
    (eval mode, no gradients; the model's mode is restored); then the block is called on it with
    ``return_attention=True``, giving A = softmax_j(theta_i . phi_j).

    Args:
        model: a network with a ``nonlocal_block`` attribute (NLRAN3d); None (the "nlran_no_nl" ablation) or a
            missing attribute raises ValueError.
        x: input [1, 1, D, H, W] (windowed to [0, 1]); exactly one volume.

    Returns:
        (attn float32 [N, N_kv] (rows sum to 1; row i = query position i in (z, y, x) C order on ``grid``),
        grid (d, h, w) of the queries (N = d h w), kv_grid (d', h', w') of the keys (N_kv = d' h' w'; half of
        ``grid``, rounded down, when the block max-pools phi and g)).
    """
    block = getattr(model, "nonlocal_block", None)
    if block is None:
        raise ValueError(f"{type(model).__name__} has no non-local block (model.nonlocal_block is missing or None, "
                         "as in the 'nlran_no_nl' ablation): there is no non-local attention to show")
    if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected one volume [1, C, D, H, W], got {shape}")
    captured: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, inputs: tuple[Any, ...], _out: Any) -> None:
        captured["x"] = inputs[0].detach()

    handle = block.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.no_grad():
            model(x.to(_device(model)))
            if "x" not in captured:
                raise ValueError(f"model.nonlocal_block of {type(model).__name__} was not called during the forward "
                                 "pass; there is no attention to show")
            _, attn = block(captured["x"], return_attention=True)
    finally:
        handle.remove()
    grid = tuple(int(s) for s in captured["x"].shape[2:])
    kv_grid = tuple(s // 2 for s in grid) if getattr(block, "sub_sample", False) else grid
    a = attn[0].float().cpu().numpy()
    if a.shape != (math.prod(grid), math.prod(kv_grid)):
        raise ValueError(f"attention has shape {a.shape}; expected ({math.prod(grid)}, {math.prod(kv_grid)}) for "
                         f"query grid {grid} and key grid {kv_grid}")
    return a, grid, kv_grid  # type: ignore[return-value]


def _check_voxel(voxel: Sequence[int], shape: Sequence[int], name: str) -> tuple[int, int, int]:
    try:
        v = tuple(int(i) for i in voxel)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected three ints (z, y, x), got {voxel!r}") from None
    if len(v) != 3 or any(not 0 <= i < s for i, s in zip(v, shape)):
        raise ValueError(f"{name}: expected (z, y, x) inside the grid {tuple(shape)}, got {voxel!r}")
    return v  # type: ignore[return-value]


def attention_for_voxel(attn: np.ndarray, grid: Sequence[int], kv_grid: Sequence[int],
                        voxel: Sequence[int]) -> np.ndarray:
    """The attention weights of query ``voxel`` (z, y, x) on ``grid`` over the key grid: ``attn[i]`` with
    i = ravel(voxel), reshaped to ``kv_grid`` [d', h', w']; the weights sum to 1."""
    attn = np.asarray(attn)
    grid, kv_grid = tuple(int(s) for s in grid), tuple(int(s) for s in kv_grid)
    if attn.shape != (math.prod(grid), math.prod(kv_grid)):
        raise ValueError(f"attn: expected shape ({math.prod(grid)}, {math.prod(kv_grid)}) for grid {grid} and "
                         f"kv_grid {kv_grid}, got {attn.shape}")
    v = _check_voxel(voxel, grid, "voxel")
    return attn[int(np.ravel_multi_index(v, grid))].reshape(kv_grid)


def input_voxel_to_grid(voxel: Sequence[int], input_size: Sequence[int], grid: Sequence[int]) -> tuple[int, int, int]:
    """The cell (z, y, x) of a coarser ``grid`` (d, h, w) that holds input voxel ``voxel`` of an input of
    ``input_size`` (D, H, W): per axis floor((v + 0.5) * g / S), i.e. v // (S / g) when g divides S (the strided
    convs and pools of NLRAN3d halve each size). Also maps a query cell to the key grid."""
    size = tuple(int(s) for s in input_size)
    g = tuple(int(s) for s in grid)
    if len(size) != 3 or len(g) != 3 or min(size) < 1 or min(g) < 1:
        raise ValueError(f"input_size and grid: expected three positive ints each, got {input_size!r}, {grid!r}")
    v = _check_voxel(voxel, size, "voxel")
    return tuple(min(n - 1, int(math.floor((i + 0.5) * n / s))) for i, n, s in zip(v, g, size))  # type: ignore


def grid_to_input(cell: Sequence[float], input_size: Sequence[int], grid: Sequence[int]) -> tuple[float, ...]:
    """Input-voxel coordinates (z, y, x) of the centre of ``cell`` of a coarser ``grid``: (c + 0.5) S / g - 0.5
    per axis (the inverse of :func:`input_voxel_to_grid` for cell centres). Also gives the geometry used to draw a
    coarse map over the input: cell c spans S / g input voxels."""
    return tuple((float(c) + 0.5) * int(s) / int(n) - 0.5 for c, s, n in zip(cell, input_size, grid))


def lesion_affinity(model: nn.Module, x: torch.Tensor, lesion_mask: np.ndarray, threshold: float = 0.5
                    ) -> dict[str, float]:
    """How much the non-local block's lesion queries look at lesions: the mean, over query cells that are mostly
    lesion, of the attention weight landing on lesion key cells, beside that share under uniform attention (the
    lesion fraction of the key grid). A ratio above 1 means lesion voxels gather evidence from other lesion
    voxels, e.g. across the two lungs (the motivation of the non-local block, spec §1).

    lesion_mask: bool [D, H, W] on the input grid; a cell is "lesion" when at least ``threshold`` of its voxels
    are. Returns {"on_lesion", "uniform", "ratio", "query_cells", "key_cells"}; ValueError without lesion cells.
    """
    attn, grid, kv_grid = nonlocal_attention(model, x)
    mask = torch.as_tensor(np.asarray(lesion_mask, dtype=np.float32))[None, None]
    if mask.shape[2:] != tuple(x.shape[2:]):
        raise ValueError(f"lesion_mask: expected the input grid {tuple(x.shape[2:])}, got {tuple(mask.shape[2:])}")
    q = torch.nn.functional.adaptive_avg_pool3d(mask, grid)[0, 0].numpy().ravel() >= threshold
    k = torch.nn.functional.adaptive_avg_pool3d(mask, kv_grid)[0, 0].numpy().ravel() >= threshold
    if not q.any() or not k.any():
        raise ValueError("no non-local grid cell is mostly lesion: use a larger lesion or a lower threshold")
    on = float(attn[q][:, k].sum(1).mean())
    uniform = float(k.mean())
    return {"on_lesion": on, "uniform": uniform, "ratio": on / uniform, "query_cells": int(q.sum()),
            "key_cells": int(k.sum())}


def lesion_links(model: nn.Module, x: torch.Tensor, lesion_mask: np.ndarray, threshold: float = 0.25
                 ) -> dict[str, float]:
    """Where the non-local block's lesion queries look, split by lung: of the attention of query cells that are
    lesion (at least ``threshold`` of their voxels), the share landing on lesion key cells of the *same* image half
    (x < 0 or x > 0, i.e. the same lung) and of the *other* half, each divided by that share under uniform attention
    (the lesion fraction of the key grid in that half). ``other_ratio`` > 1 means lesions gather evidence from the
    lesions of the other lung: the bilateral pattern that tells NCP from CP in the arrangement layout.

    Returns {"same_ratio", "other_ratio", "on_lesion", "query_cells"}; a ratio is NaN when that half has no lesion key
    cell. ValueError when no query cell is lesion.
    """
    attn, grid, kv_grid = nonlocal_attention(model, x)
    mask = torch.as_tensor(np.asarray(lesion_mask, dtype=np.float32))[None, None]
    if mask.shape[2:] != tuple(x.shape[2:]):
        raise ValueError(f"lesion_mask: expected the input grid {tuple(x.shape[2:])}, got {tuple(mask.shape[2:])}")
    q = torch.nn.functional.adaptive_avg_pool3d(mask, grid)[0, 0].numpy() >= threshold
    k = torch.nn.functional.adaptive_avg_pool3d(mask, kv_grid)[0, 0].numpy() >= threshold
    if not q.any():
        raise ValueError("no non-local grid cell is mostly lesion: use a larger lesion or a lower threshold")
    q_right = np.broadcast_to(np.arange(grid[2]) >= grid[2] / 2, grid)
    k_right = np.broadcast_to(np.arange(kv_grid[2]) >= kv_grid[2] / 2, kv_grid).ravel()
    k = k.ravel()
    same, other = [], []
    for side in (False, True):
        rows = attn[(q & (q_right == side)).ravel()]
        if not len(rows):
            continue
        for keys, out in ((k & (k_right == side), same), (k & (k_right != side), other)):
            if keys.any():
                out.append((rows[:, keys].sum(1) / keys.mean()).tolist())
    ratio = lambda parts: float(np.mean(sum(parts, []))) if parts else float("nan")  # noqa: E731
    return {"same_ratio": ratio(same), "other_ratio": ratio(other), "on_lesion": float(attn[q.ravel()][:, k].sum(1).mean()),
            "query_cells": int(q.sum())}
