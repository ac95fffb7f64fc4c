"""Drawing random phantom specs: the knobs, the lesions of each class and layout. See :mod:`kit.nlran.phantom`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kit.nlran.phantom.render import render
from kit.nlran.phantom.spec import (
    _EDGE,
    _MIN_SIZE,
    _VESSEL_SIGMA,
    CLASSES,
    CLUSTER_EXTRA,
    CLUSTER_SPREAD,
    CONSOLIDATION_HU,
    GGO_HU,
    KNOB_DEFAULTS,
    LAYOUTS,
    LUNG_HU,
    SIDES,
    Lesion,
    Lung,
    Phantom,
    PhantomSpec,
    normalised_to_voxel,
    voxel_to_normalised,
)

# ----------------------------------------------------------------------------------------------------------------
# sampling


def _label_index(label: int | str) -> int:
    if isinstance(label, str):
        if label not in CLASSES:
            raise ValueError(f"label must be one of {CLASSES} or 0..2, got {label!r}")
        return CLASSES.index(label)
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) < len(CLASSES):
        raise ValueError(f"label must be one of {CLASSES} or 0..2, got {label!r}")
    return int(label)


def _range(value: Any, name: str, integer: bool = False) -> tuple[float, float]:
    """A knob given as one number or a (low, high) pair -> (low, high)."""
    try:
        lo, hi = (value, value) if np.isscalar(value) else tuple(value)
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    if integer and (lo != int(lo) or hi != int(hi)):
        raise ValueError(f"{name} must be integers, got {value!r}")
    return lo, hi


def check_knobs(size: int = 32, **knobs: Any) -> dict[str, Any]:
    """Validate phantom knobs; return the full knob dict (defaults filled in).

    Raises ValueError naming the knob when a name is unknown or a value is out of range: ``size`` an integer >= 16
    (tested: 24, 32, 48, 64), ``blob_radius`` in (0, 12] voxels at size 32, ``n_blobs`` >= 2 (NCP is bilateral),
    ``contrast`` in (0, 2], ``noise_hu`` >= 0, ``n_vessels`` >= 0, ``layout`` one of :data:`LAYOUTS`.
    """
    unknown = sorted(set(knobs) - set(KNOB_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown phantom knob(s) {unknown}; valid knobs: size, {', '.join(KNOB_DEFAULTS)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _MIN_SIZE:
        raise ValueError(f"size must be an integer >= {_MIN_SIZE} (e.g. 24, 32, 48, 64), got {size!r}")
    k = {**KNOB_DEFAULTS, **knobs}
    lo, hi = _range(k["blob_radius"], "blob_radius")
    if lo <= 0 or hi > 12:
        raise ValueError(f"blob_radius must be in (0, 12] voxels (at size 32), got {k['blob_radius']!r}")
    lo, hi = _range(k["n_blobs"], "n_blobs", integer=True)
    if lo < 2:
        raise ValueError(f"n_blobs must be >= 2 (NCP lesions are in both lungs), got {k['n_blobs']!r}")
    c = k["contrast"]
    if not isinstance(c, (int, float, np.number)) or not 0 < float(c) <= 2:
        raise ValueError(f"contrast must be a number in (0, 2], got {c!r}")
    s = k["noise_hu"]
    if not isinstance(s, (int, float, np.number)) or not (math.isfinite(float(s)) and float(s) >= 0):
        raise ValueError(f"noise_hu must be a number >= 0, got {s!r}")
    v = k["n_vessels"]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"n_vessels must be an integer >= 0, got {v!r}")
    if k["layout"] not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {k['layout']!r}")
    return k


def _unit_ball(rng: np.random.Generator, n: int) -> np.ndarray:
    """n points uniform in the unit ball [n, 3]."""
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * rng.random((n, 1)) ** (1.0 / 3.0)


def _inside(lung: Lung, p: np.ndarray) -> bool:
    return float(np.sum(((p - np.asarray(lung.centre)) / np.asarray(lung.radii)) ** 2)) <= 1.0


def _posterior_direction(rng: np.random.Generator) -> np.ndarray:
    """A random unit direction (z, y, x), damped along z and leaning posterior (larger y)."""
    u = rng.standard_normal(3) * np.array([0.6, 1.0, 1.0]) + np.array([0.0, 0.9, 0.0])
    return u / np.linalg.norm(u)


def _sample_ggo(rng: np.random.Generator, lung: Lung, size: int, radius: tuple[float, float], contrast: float,
                lung_hu: float, around: np.ndarray | None = None) -> Lesion:
    """One peripheral GGO blob in ``lung`` whose nearest voxel centre lies in the lung: its direction from the lung
    centre is posterior-leaning (``around`` None) or within about :data:`CLUSTER_SPREAD` of the unit direction
    ``around`` (a cluster); its depth is 0.55-0.95 of the lung's radius either way."""
    c, r = np.asarray(lung.centre), np.asarray(lung.radii)
    rad = rng.uniform(*radius)
    peak = lung_hu + contrast * (rng.uniform(*GGO_HU) - lung_hu)
    for _ in range(200):
        if around is None:
            u = _posterior_direction(rng)
        else:
            u = around + CLUSTER_SPREAD * rng.standard_normal(3)
            u /= np.linalg.norm(u)
        p = c + rng.uniform(0.55, 0.95) * u * r
        v = np.asarray(voxel_to_normalised(normalised_to_voxel(p, size), size))
        if _inside(lung, v) and np.linalg.norm(v - p) * size / 2 < rad:
            break
    return Lesion("ggo", tuple(np.clip(p, -1, 1)), radius=rad, hu=peak, side=lung.side)


def _sample_consolidation(rng: np.random.Generator, lung: Lung, size: int, contrast: float,
                          lung_hu: float) -> Lesion:
    """A consolidation filling ``lung`` beyond a random oblique plane (about 20-65% of the lung)."""
    c, r = np.asarray(lung.centre), np.asarray(lung.radii)
    m = rng.standard_normal(3) + np.array([0.0, 0.5, 0.0])  # direction in the lung's unit-ball frame, posterior tilt
    m /= np.linalg.norm(m)
    t = rng.uniform(-0.2, 0.4)  # cap {u . m > t} of the unit ball: (1 - t)^2 (2 + t) / 4 of its volume
    point = c + t * r * m
    normal = m / r  # the plane u . m = t mapped back to normalised volume coordinates
    hu = lung_hu + contrast * (rng.uniform(*CONSOLIDATION_HU) - lung_hu)
    return Lesion("consolidation", tuple(np.clip(point, -1, 1)), radius=0.0, hu=hu, side=lung.side,
                  normal=tuple(normal), edge=_EDGE * size / 32)


def sample_spec(label: int | str, rng: np.random.Generator, size: int = 32, **knobs: Any) -> PhantomSpec:
    """Draw a random :class:`PhantomSpec` of class ``label`` (0/"NCP", 1/"CP", 2/"Normal") with ``rng``.

    The anatomy (body, lungs, vessels) is drawn the same way for every class, so only the lesions tell the classes
    apart. ``layout="arrangement"`` gives CP the same GGO blobs as NCP, all in one lung around one direction, so
    only the arrangement differs (see the module doc). Knobs (see :data:`KNOB_DEFAULTS`): ``blob_radius`` (float or (low, high), GGO half-maximum radius in voxels
    at size 32, scaled by ``size / 32``), ``n_blobs`` (int or inclusive (low, high)), ``contrast`` (scales the lesions'
    HU difference to the lung), ``noise_hu`` (noise sigma in HU), ``n_vessels`` (specks per lung). Bad knobs raise
    ValueError naming the knob.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    y = _label_index(label)
    k = check_knobs(size, **knobs)
    size = int(size)
    # anatomy [C]: small per-phantom jitter of the spec §6 geometry
    body = (0.70 * rng.uniform(0.95, 1.05), 0.88 * rng.uniform(0.97, 1.03))
    lungs = []
    for side, sx in zip(SIDES, (-1.0, 1.0)):
        centre = (rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0.05), sx * 0.4 + rng.uniform(-0.03, 0.03))
        radii = (0.9 * rng.uniform(0.94, 1.03), 0.5 * rng.uniform(0.92, 1.06), 0.3 * rng.uniform(0.92, 1.06))
        lungs.append(Lung(side, tuple(float(v) for v in centre), tuple(float(v) for v in radii)))
    vessels = []
    for lung in lungs:
        pts = np.asarray(lung.centre) + _unit_ball(rng, int(k["n_vessels"])) * np.asarray(lung.radii)
        vessels += [tuple(float(v) for v in p) for p in pts]
    noise_seed = int(rng.integers(0, 2**31 - 1))
    contrast = float(k["contrast"])
    lesions: list[Lesion] = []
    if y == 0:  # NCP: bilateral peripheral GGO blobs
        lo, hi = _range(k["n_blobs"], "n_blobs", integer=True)
        n = int(rng.integers(int(lo), int(hi) + 1))
        sides = [0, 1] + list(rng.integers(0, 2, n - 2))
        radius = tuple(v * size / 32 for v in _range(k["blob_radius"], "blob_radius"))
        lesions = [_sample_ggo(rng, lungs[s], size, radius, contrast, LUNG_HU) for s in sides]
    elif y == 1 and k["layout"] == "arrangement":  # CP: the same blobs as NCP, clustered in one lung
        lo, hi = _range(k["n_blobs"], "n_blobs", integer=True)
        n = int(rng.integers(int(lo), int(hi) + 1))
        n += int(rng.binomial(n, CLUSTER_EXTRA))  # clustered blobs overlap: a few more cover the same volume
        lung = lungs[int(rng.integers(0, 2))]
        radius = tuple(v * size / 32 for v in _range(k["blob_radius"], "blob_radius"))
        around = _posterior_direction(rng)
        lesions = [_sample_ggo(rng, lung, size, radius, contrast, LUNG_HU, around=around) for _ in range(n)]
    elif y == 1:  # CP: one unilateral consolidation
        lesions = [_sample_consolidation(rng, lungs[int(rng.integers(0, 2))], size, contrast, LUNG_HU)]
    return PhantomSpec(size=size, label=y, body_radii=tuple(float(v) for v in body), lungs=tuple(lungs),
                       vessels=tuple(vessels), vessel_sigma=_VESSEL_SIGMA * size / 32, lesions=tuple(lesions),
                       noise_hu=float(k["noise_hu"]), noise_seed=noise_seed)


def make_phantom(label: int | str, rng: np.random.Generator, size: int = 32, **knobs: Any) -> Phantom:
    """``render(sample_spec(label, rng, size, **knobs))``: one random phantom of class ``label``."""
    return render(sample_spec(label, rng, size, **knobs))
