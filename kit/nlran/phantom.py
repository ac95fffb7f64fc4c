"""Procedural 3D chest-CT phantoms with lesion masks: the offline stand-in for CC-CCII (spec §6) [C] our choice.

The idea: build a small CT-like volume directly in Hounsfield units (HU), so that the three classes of the paper
(COVID-19 "NCP", common pneumonia "CP", "Normal") differ only in their lesions and every lesion voxel is known.
The heat maps of the networks can then be scored against a true lesion mask, which real CC-CCII scans lack.

Geometry [C] (all our choice, see spec §6). Axis order is ``[D, H, W] = (z: slice, y: anterior -> posterior,
x: image left -> image right)``; positions are given in *normalised coordinates* in [-1, 1] per axis (voxel ``i``
of ``n`` has its centre at ``(i + 0.5) * 2 / n - 1``).

- air -1000 HU; body: an elliptic cylinder along z at +40 HU;
- two lung ellipsoids at -850 HU, centres at x ~ -0.4 ("left" = the image's left half, x < 0) and x ~ +0.4
  ("right"), radii ~ (0.9, 0.5, 0.3) of the half-size along (z, y, x), slightly jittered per phantom;
- vessel specks: small Gaussian blobs inside the lungs pulled towards +40 HU;
- Gaussian noise of standard deviation ``noise_hu`` (default 25 HU), drawn from ``spec.noise_seed``.

Lesions [C]:

- NCP (COVID-like): 4-8 soft Gaussian ground-glass (GGO) blobs with peak -600..-400 HU, peripheral (normalised
  ellipsoid radius 0.55-0.95 inside the lung), posterior-leaning (larger y), always in both lungs. A blob's
  ``radius`` is its half-maximum radius in voxels: the lesion mask is the ball where the blob weight exceeds 0.5
  (intersected with the lungs). Blob weight ``w = 2 ** -(r / radius) ** 2``, cut to 0 beyond ``3 * radius``.
- CP (common-pneumonia-like): one consolidation at -80..+40 HU filling one lung beyond a random oblique plane
  (lobar-like), with a soft edge ``w = sigmoid(d / edge)`` (``d``: signed distance to the plane in voxels); the
  lesion mask is ``w > 0.5`` inside that lung.
- Normal: no lesion.

The ``layout`` knob [C]. ``"texture"`` (the default above) lets the two pneumonias differ in *local* appearance
(ground glass vs consolidation), so a detector of local texture suffices. ``"arrangement"`` makes their lesions
look the same up close and lets only the arrangement differ, as in real CT: both classes get the same number of
the same GGO blobs (same HU range, same radii, same peripheral depth); NCP scatters them over both lungs
(bilateral, multifocal, as above), CP puts all of them in one lung, clustered around one peripheral direction
(unilateral, lobar-like). Telling them apart then needs context across the volume, which is what the non-local
block is for.

Lesions only ever *raise* the HU of lung voxels (``hu = max(hu, lung_hu + w * (lesion_hu - lung_hu))``), so they are
confined to the lungs, and a vessel inside a GGO stays visible.

Everything is vectorised numpy: a 32^3 phantom renders in a few milliseconds. Randomness only comes from the
``numpy.random.Generator`` passed to :func:`sample_spec`, and the noise from the integer ``spec.noise_seed``, so a
spec renders to the same volume every time and lesions can be edited (:func:`add_lesion`, :func:`move_lesion`,
:func:`remove_lesion`) with the noise held fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

CLASSES = ("NCP", "CP", "Normal")
"""Class names = CC-CCII folder names; label index = position (0: NCP, 1: CP, 2: Normal)."""
CLASS_TITLES = ("COVID-19 (NCP)", "common pneumonia (CP)", "normal")

AIR_HU = -1000.0
BODY_HU = 40.0
LUNG_HU = -850.0
VESSEL_HU = 40.0
GGO_HU = (-600.0, -400.0)  # peak HU range of a ground-glass blob [C]
CONSOLIDATION_HU = (-80.0, 40.0)  # HU range of a consolidation [C]
LESION_KINDS = ("ggo", "consolidation")
LAYOUTS = ("texture", "arrangement")
CLUSTER_SPREAD = 0.6  # arrangement layout, CP: spread of the blob directions around the cluster's direction [C]
CLUSTER_EXTRA = 0.4  # arrangement layout, CP: this fraction more blobs, so that, overlapping, they cover as much [C]
SIDES = ("left", "right")  # image halves: x < 0 and x > 0

KNOB_DEFAULTS: dict[str, Any] = {
    "blob_radius": (2.0, 4.0),  # GGO half-maximum radius range in voxels at size 32 (scaled by size / 32) [C]
    "n_blobs": (4, 8),  # number of GGO blobs per NCP phantom (inclusive range) [C]
    "contrast": 1.0,  # scales every lesion's HU difference to the lung (1: the ranges above) [C]
    "noise_hu": 25.0,  # Gaussian noise standard deviation in HU [C]
    "n_vessels": 12,  # vessel specks per lung [C]
    "layout": "texture",  # "texture": NCP and CP differ locally; "arrangement": only in where the blobs are [C]
}
"""The knobs of :func:`sample_spec` with their defaults."""

_BLOB_CUTOFF = 3.0  # blob weight is set to 0 beyond this many radii (w there < 0.002)
_VESSEL_SIGMA = 0.6  # vessel speck Gaussian sigma in voxels at size 32 [C]
_EDGE = 0.5  # consolidation soft-edge width in voxels at size 32 [C]
_MIN_SIZE = 16


# ----------------------------------------------------------------------------------------------------------------
# specs


@dataclass(frozen=True)
class Lesion:
    """One editable lesion.

    - ``kind``: "ggo" (a soft Gaussian ground-glass blob) or "consolidation".
    - ``centre``: (z, y, x) in normalised coordinates [-1, 1]. GGO: the blob centre. Consolidation: a point on its
      cutting plane (moving it moves the plane).
    - ``radius``: GGO half-maximum radius in voxels (the lesion mask is the ball of this radius); unused for
      consolidation.
    - ``hu``: GGO peak HU, or the consolidation HU.
    - ``side``: "left" (x < 0) or "right" (x > 0): the lung the lesion was drawn in; a consolidation fills only this
      lung, a GGO blob affects whichever lung voxels it covers.
    - ``normal``: consolidation only: unit normal (z, y, x) of the cutting plane; the lung is filled on the side the
      normal points to.
    - ``edge``: consolidation only: soft-edge width in voxels.
    """

    kind: str
    centre: tuple[float, float, float]
    radius: float = 3.0
    hu: float = -500.0
    side: str = "left"
    normal: tuple[float, float, float] = (0.0, 1.0, 0.0)
    edge: float = _EDGE

    def __post_init__(self) -> None:
        if self.kind not in LESION_KINDS:
            raise ValueError(f"Lesion kind must be one of {LESION_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "centre", _check_point(self.centre, "Lesion centre"))
        if self.side not in SIDES:
            raise ValueError(f"Lesion side must be one of {SIDES}, got {self.side!r}")
        if self.kind == "ggo" and not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"Lesion radius must be > 0 voxels for a ggo blob, got {self.radius}")
        if not math.isfinite(self.hu):
            raise ValueError(f"Lesion hu must be finite, got {self.hu}")
        n = np.asarray(self.normal, dtype=float)
        if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) == 0:
            raise ValueError(f"Lesion normal must be a non-zero (z, y, x) vector, got {self.normal}")
        object.__setattr__(self, "normal", tuple(float(v) for v in n / np.linalg.norm(n)))
        if not (math.isfinite(self.edge) and self.edge > 0):
            raise ValueError(f"Lesion edge must be > 0 voxels, got {self.edge}")
        object.__setattr__(self, "radius", float(self.radius))
        object.__setattr__(self, "hu", float(self.hu))
        object.__setattr__(self, "edge", float(self.edge))


@dataclass(frozen=True)
class Lung:
    """A lung ellipsoid: ``centre`` and ``radii`` (z, y, x) in normalised coordinates; ``side`` "left"/"right"."""

    side: str
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]


@dataclass(frozen=True)
class PhantomSpec:
    """Everything :func:`render` needs; immutable, so edits return new specs.

    - ``size``: the volume is ``[size, size, size]`` voxels ([D, H, W]).
    - ``label``: 0 NCP, 1 CP, 2 Normal (see :data:`CLASSES`); edits of the lesions do not change it.
    - ``body_radii``: (y, x) half-axes of the body's elliptic cylinder in normalised coordinates.
    - ``lungs``: the two :class:`Lung` ellipsoids (left, right).
    - ``vessels``: speck centres (z, y, x) in normalised coordinates; ``vessel_sigma`` their Gaussian sigma in voxels.
    - ``lesions``: tuple of :class:`Lesion`.
    - ``noise_hu``: noise standard deviation in HU; ``noise_seed``: integer seed of the noise.
    - ``air_hu``, ``body_hu``, ``lung_hu``, ``vessel_hu``: tissue values in HU.
    """

    size: int
    label: int
    body_radii: tuple[float, float]
    lungs: tuple[Lung, Lung]
    vessels: tuple[tuple[float, float, float], ...]
    vessel_sigma: float
    lesions: tuple[Lesion, ...] = ()
    noise_hu: float = 25.0
    noise_seed: int = 0
    air_hu: float = AIR_HU
    body_hu: float = BODY_HU
    lung_hu: float = LUNG_HU
    vessel_hu: float = VESSEL_HU


@dataclass
class Phantom:
    """A rendered phantom: ``hu`` float32 [D, H, W] in HU (with noise), ``lesion_mask`` bool [D, H, W],
    ``lung_mask`` bool [D, H, W], ``label`` int, and the ``spec`` it was rendered from."""

    hu: np.ndarray
    lesion_mask: np.ndarray
    lung_mask: np.ndarray
    label: int
    spec: PhantomSpec = field(repr=False)

    @property
    def class_name(self) -> str:
        """The CC-CCII folder name of the label ("NCP", "CP" or "Normal")."""
        return CLASSES[self.label]


# ----------------------------------------------------------------------------------------------------------------
# coordinates


def voxel_to_normalised(index: tuple[int, int, int] | np.ndarray, size: int) -> tuple[float, float, float]:
    """Return the normalised (z, y, x) coordinates in [-1, 1] of the centre of voxel ``index`` (d, h, w)."""
    i = np.asarray(index, dtype=float)
    return tuple(float(v) for v in (i + 0.5) * (2.0 / size) - 1.0)


def normalised_to_voxel(centre: tuple[float, float, float] | np.ndarray, size: int) -> tuple[int, int, int]:
    """Return the (d, h, w) index of the voxel whose centre is nearest to normalised point ``centre`` (clipped)."""
    c = np.asarray(centre, dtype=float)
    i = np.clip(np.rint((c + 1.0) * size / 2.0 - 0.5), 0, size - 1)
    return tuple(int(v) for v in i)


def _grid(size: int) -> np.ndarray:
    """Normalised voxel-centre coordinates [size] float32."""
    return ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)


def _check_point(p: Any, name: str) -> tuple[float, float, float]:
    a = np.asarray(p, dtype=float)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be three finite normalised coordinates (z, y, x), got {p!r}")
    if np.any(np.abs(a) > 1.0):
        raise ValueError(f"{name} must lie in [-1, 1] (normalised coordinates), got {tuple(a)}")
    return tuple(float(v) for v in a)


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


def make_phantom(label: int | str, rng: np.random.Generator, size: int = 32, **knobs: Any) -> Phantom:
    """``render(sample_spec(label, rng, size, **knobs))``: one random phantom of class ``label``."""
    return render(sample_spec(label, rng, size, **knobs))


# ----------------------------------------------------------------------------------------------------------------
# editing (for the lesion painter)


def _check_index(spec: PhantomSpec, index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
            or not -len(spec.lesions) <= index < len(spec.lesions):
        raise ValueError(f"index must address one of the spec's {len(spec.lesions)} lesions, got {index!r}")
    return int(index) % len(spec.lesions)


def add_lesion(spec: PhantomSpec, lesion: Lesion) -> PhantomSpec:
    """Return a copy of ``spec`` with ``lesion`` appended (label and noise unchanged)."""
    if not isinstance(lesion, Lesion):
        raise ValueError(f"lesion must be a Lesion, got {type(lesion).__name__}")
    return replace(spec, lesions=(*spec.lesions, lesion))


def move_lesion(spec: PhantomSpec, index: int, new_centre: tuple[float, float, float]) -> PhantomSpec:
    """Return a copy of ``spec`` whose lesion ``index`` has centre ``new_centre`` (z, y, x normalised); for a
    consolidation this moves its cutting plane (same normal)."""
    i = _check_index(spec, index)
    les = replace(spec.lesions[i], centre=_check_point(new_centre, "new_centre"))
    return replace(spec, lesions=spec.lesions[:i] + (les,) + spec.lesions[i + 1:])


def remove_lesion(spec: PhantomSpec, index: int) -> PhantomSpec:
    """Return a copy of ``spec`` without lesion ``index``."""
    i = _check_index(spec, index)
    return replace(spec, lesions=spec.lesions[:i] + spec.lesions[i + 1:])


# ----------------------------------------------------------------------------------------------------------------
# windowing and the dataset


def window(hu: np.ndarray | torch.Tensor, level: float = -600.0, width: float = 1500.0) -> np.ndarray | torch.Tensor:
    """CT windowing: clip HU to ``[level - width / 2, level + width / 2]`` and scale to [0, 1] (float32).

    Defaults: the lung window WL -600 / WW 1500 [C] (spec §2), i.e. [-1350, 150] HU, the same as MONAI's
    ``ScaleIntensityRange(a_min=level - width / 2, a_max=level + width / 2, b_min=0, b_max=1, clip=True)``.
    Works on numpy arrays (returns numpy) and torch tensors (returns a tensor) of any shape.
    """
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"width must be > 0 HU, got {width}")
    if not math.isfinite(level):
        raise ValueError(f"level must be finite HU, got {level}")
    lo = level - width / 2.0
    if isinstance(hu, torch.Tensor):
        return ((hu.to(torch.float32) - lo) / width).clamp_(0.0, 1.0)
    return np.clip((np.asarray(hu, dtype=np.float32) - np.float32(lo)) / np.float32(width), 0.0, 1.0)


class PhantomDataset(Dataset):
    """``n`` procedural phantoms of ``size``^3 as a torch Dataset; items ``(x float32 [1, D, H, W], y int64)``.

    Item ``i`` is drawn with ``np.random.default_rng([seed, i])``, so it does not depend on the order of access (or
    on other items). ``balanced=True``: label ``i % 3`` (NCP, CP, Normal in turn) [C]; ``balanced=False``: label drawn
    uniformly from the item's generator. ``x`` is :func:`window` of the HU volume (lung window). ``.phantom(i)`` gives
    the full :class:`Phantom` (HU, lesion and lung masks); ``.labels`` is the int array of labels. ``cache=True``
    keeps rendered phantoms in memory (about 0.2 MB per 32^3 phantom). ``knobs`` go to :func:`sample_spec`.
    """

    def __init__(self, n: int, seed: int = 0, size: int = 32, balanced: bool = True, cache: bool = False,
                 **knobs: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        check_knobs(size, **knobs)
        self.n, self.seed, self.size, self.balanced, self.knobs = int(n), int(seed), int(size), balanced, dict(knobs)
        self.cache = cache
        self._cache: dict[int, Phantom] = {}
        if balanced:
            self.labels = np.arange(self.n) % len(CLASSES)
        else:
            self.labels = np.array([int(self._rng(i).integers(0, len(CLASSES))) for i in range(self.n)])

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, i])

    def __len__(self) -> int:
        return self.n

    def _index(self, i: int) -> int:
        if not -self.n <= int(i) < self.n:
            raise IndexError(f"index {i} out of range for {self.n} phantoms")
        return int(i) % self.n

    def spec(self, i: int) -> PhantomSpec:
        """The :class:`PhantomSpec` of item ``i``."""
        i = self._index(i)
        rng = self._rng(i)
        if not self.balanced:
            rng.integers(0, len(CLASSES))  # the label draw (see __init__), so the stream stays aligned
        return sample_spec(int(self.labels[i]), rng, self.size, **self.knobs)

    def phantom(self, i: int) -> Phantom:
        """The rendered :class:`Phantom` of item ``i`` (from the cache when ``cache=True``)."""
        i = self._index(i)
        if i in self._cache:
            return self._cache[i]
        ph = render(self.spec(i))
        if self.cache:
            self._cache[i] = ph
        return ph

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ph = self.phantom(i)
        return torch.from_numpy(window(ph.hu))[None], torch.tensor(ph.label, dtype=torch.int64)
