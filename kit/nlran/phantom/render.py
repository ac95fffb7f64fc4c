"""Rendering a :class:`~kit.nlran.phantom.spec.PhantomSpec` to a volume in HU with its lesion and lung masks.
See :mod:`kit.nlran.phantom`."""

from __future__ import annotations

import math

import numpy as np

from kit.nlran.phantom.spec import _BLOB_CUTOFF, Lung, Phantom, PhantomSpec, _grid

# ----------------------------------------------------------------------------------------------------------------
# rendering


def _box(centre: tuple[float, float, float], half: float, size: int) -> tuple[tuple[slice, ...], list[np.ndarray]]:
    """Voxel box around normalised ``centre`` reaching ``half`` voxels; returns (slices, per-axis offsets in voxels)."""
    sl, offs = [], []
    for c in centre:
        cv = (c + 1.0) * size / 2.0 - 0.5  # centre in voxel index units
        a, b = max(0, int(math.floor(cv - half))), min(size, int(math.ceil(cv + half)) + 1)
        sl.append(slice(a, b))
        offs.append(np.arange(a, b, dtype=np.float32) - np.float32(cv))
    return tuple(sl), offs


def _blob_weight(offs: list[np.ndarray], radius: float) -> np.ndarray:
    """GGO blob weight 2^-(r / radius)^2 on a box (0 beyond the cutoff)."""
    r2 = offs[0][:, None, None] ** 2 + offs[1][None, :, None] ** 2 + offs[2][None, None, :] ** 2
    w = np.exp2(-r2 / np.float32(radius * radius)).astype(np.float32)
    w[r2 > (_BLOB_CUTOFF * radius) ** 2] = 0.0
    return w


def _lung_q(lung: Lung, g: np.ndarray) -> np.ndarray:
    """Squared normalised ellipsoid radius of every voxel [D, H, W]."""
    c, r = lung.centre, lung.radii
    return (((g - c[0]) / r[0]) ** 2)[:, None, None] + (((g - c[1]) / r[1]) ** 2)[None, :, None] \
        + (((g - c[2]) / r[2]) ** 2)[None, None, :]


def render(spec: PhantomSpec) -> Phantom:
    """Render ``spec`` to a :class:`Phantom`: ``hu`` float32 [D, H, W] (HU, noise included), ``lesion_mask`` and
    ``lung_mask`` bool [D, H, W]. Deterministic: the noise comes from ``spec.noise_seed``."""
    n = spec.size
    g = _grid(n)
    by, bx = spec.body_radii
    body2d = ((g / by) ** 2)[:, None] + ((g / bx) ** 2)[None, :] <= 1.0
    hu = np.full((n, n, n), spec.air_hu, dtype=np.float32)
    hu[:, body2d] = spec.body_hu
    side_masks = {lung.side: _lung_q(lung, g) <= 1.0 for lung in spec.lungs}
    lung = np.zeros((n, n, n), dtype=bool)
    for m in side_masks.values():
        lung |= m
    hu[lung] = spec.lung_hu
    # vessel specks: pull lung voxels towards vessel_hu with a Gaussian weight
    s = spec.vessel_sigma
    for p in spec.vessels:
        sl, offs = _box(p, 3.0 * s, n)
        r2 = offs[0][:, None, None] ** 2 + offs[1][None, :, None] ** 2 + offs[2][None, None, :] ** 2
        w = np.exp(-0.5 * r2 / np.float32(s * s)) * lung[sl]
        hu[sl] += w * (spec.vessel_hu - hu[sl])
    # lesions: a weight field per lesion; HU raised to lung_hu + w (lesion_hu - lung_hu) inside the lungs
    lesion = np.zeros((n, n, n), dtype=bool)
    for les in spec.lesions:
        if les.kind == "ggo":
            sl, offs = _box(les.centre, _BLOB_CUTOFF * les.radius, n)
            w = _blob_weight(offs, les.radius)
            inside = lung[sl]
        else:
            sl = (slice(None),) * 3
            nz, ny, nx = les.normal
            pz, py, px = les.centre
            d = ((g - pz) * nz)[:, None, None] + ((g - py) * ny)[None, :, None] + ((g - px) * nx)[None, None, :]
            d *= n / 2.0  # normalised -> voxel units (cubic grid)
            w = (0.5 * (1.0 + np.tanh(d / (2.0 * les.edge)))).astype(np.float32)  # = sigmoid(d / edge)
            inside = side_masks[les.side]
        raised = np.float32(spec.lung_hu) + w * np.float32(les.hu - spec.lung_hu)
        hu[sl] = np.where(inside, np.maximum(hu[sl], raised), hu[sl])
        lesion[sl] |= inside & (w > 0.5)
    if spec.noise_hu > 0:
        hu += np.random.default_rng(spec.noise_seed).standard_normal(hu.shape, dtype=np.float32) \
            * np.float32(spec.noise_hu)
    return Phantom(hu=hu, lesion_mask=lesion, lung_mask=lung, label=spec.label, spec=spec)
