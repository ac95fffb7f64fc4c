"""Geometry of sampling trajectories shared by the diffusion series: distance of points to a trajectory's chord
(arXiv:2405.11326, Sec. 3)."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def _as_float64(name: str, t: Tensor) -> Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t


def chord_deviation(points: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Return dev [T, B]: the perpendicular L2 distance of each point to the line through ``start`` and ``end``.

    points [T, B, ...], start [B, ...], end [B, ...] (trailing dims are flattened). The line is the *chord* of
    each trajectory; a point on the chord has deviation 0 (Sec. 3 of arXiv:2405.11326). Raises ValueError when a
    chord has zero length.
    """
    points = _as_float64("points", points)
    start = _as_float64("start", start)
    end = _as_float64("end", end)
    if points.ndim < 3:
        raise ValueError(f"points must have shape [T, B, ...], got {tuple(points.shape)}")
    if start.shape != points.shape[1:] or end.shape != points.shape[1:]:
        raise ValueError(
            f"start and end must have shape {tuple(points.shape[1:])} (points [T, B, ...] without T), "
            f"got start {tuple(start.shape)} and end {tuple(end.shape)}"
        )
    T, B = points.shape[:2]
    p = points.reshape(T, B, -1)
    s = start.reshape(B, -1)
    chord = end.reshape(B, -1) - s
    length = chord.norm(dim=-1)
    if (length <= 0).any():
        raise ValueError("start and end coincide for some sample: the chord has zero length")
    u = chord / length[:, None]
    r = p - s[None]
    along = (r * u[None]).sum(-1, keepdim=True)
    return (r - along * u[None]).norm(dim=-1)
