"""Phantom specs: tissue constants, the :class:`Lesion` / :class:`Lung` / :class:`PhantomSpec` / :class:`Phantom`
records, normalised coordinates, and lesion editing (the lesion painter's moves). See :mod:`kit.nlran.phantom`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

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
