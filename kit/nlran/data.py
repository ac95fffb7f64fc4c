"""The datasets of the NL-RAN series: procedural phantoms (:class:`PhantomDataset`) and real chest CT (CC-CCII slice
folders and NIfTI volumes, read by :mod:`kit.nlran.scans`), windowed (:func:`window`, :func:`preprocess`) and resized.

The paper [P] trains on 4,079 labelled CT scans split 3263 / 408 / 408 (train / val / test), from CC-CCII according to
a summary. Everything about the preprocessing is our choice [C] (spec §2), because the paper's text was not readable:

- CC-CCII layout: ``root/{NCP,CP,Normal}/<patient_id>/<scan_id>/<slice images>``. The slices are 8-bit images that
  are already windowed; they are stacked in natural file-name order (``2.png`` before ``10.png``) and scaled to
  [0, 1]. NIfTI volumes (``root/<class>/*.nii[.gz]``) are in HU and get the lung window WL -600 / WW 1500, i.e. MONAI
  ``ScaleIntensityRange(a_min=-1350, a_max=150, b_min=0, b_max=1, clip=True)``.
- Every volume is then resized to a fixed grid (default 64 x 128 x 128, trilinear, MONAI ``Resize``).
- Splits follow the paper's proportions but are made by patient [C] our choice, so no patient is in two splits.
- Unreadable scans either stop with an error naming them (default) or, with ``skip_bad=True``, are reported once with
  ``warnings.warn``, listed in ``dataset.skipped`` and replaced by the next readable scan.

Volumes are ``[D, H, W]`` = (slices, rows, columns); dataset items are ``(x float32 [1, D, H, W], y int64)`` with
labels 0 NCP, 1 CP, 2 Normal (:data:`kit.nlran.phantom.CLASSES`). MONAI is imported lazily (it is slow to import).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kit.nlran.phantom import CLASSES, Phantom, PhantomSpec, check_knobs, render, sample_spec
from kit.nlran.scans import (
    ScanRecord,
    find_nifti,
    load_nifti,
    load_slices,
    natural_key,
    nifti_stem,
    scan_tree,
)

PAPER_SPLIT = (3263, 408, 408)  # [P] train / val / test scan counts, used as proportions
LUNG_WINDOW = (-600.0, 1500.0)  # [C] (level, width) in HU
SPLITS = ("train", "val", "test", "all")


@lru_cache(maxsize=8)
def _scaler(level: float, width: float) -> Any:
    from monai.transforms import ScaleIntensityRange

    return ScaleIntensityRange(a_min=level - width / 2, a_max=level + width / 2, b_min=0.0, b_max=1.0, clip=True)


@lru_cache(maxsize=8)
def _resizer(size: tuple[int, int, int]) -> Any:
    from monai.transforms import Resize

    return Resize(spatial_size=size, mode="trilinear", align_corners=False)


def _check_size(size: Sequence[int]) -> tuple[int, int, int]:
    try:
        s = tuple(int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be three positive integers (D, H, W), got {size!r}") from None
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"size must be three positive integers (D, H, W), got {size!r}")
    return s


def preprocess(volume: np.ndarray | torch.Tensor, size: Sequence[int] = (64, 128, 128), hu: bool = True,
               level: float = LUNG_WINDOW[0], width: float = LUNG_WINDOW[1]) -> torch.Tensor:
    """Window and resize one volume ``[D, H, W]`` (or ``[1, D, H, W]``) to a float32 tensor ``[1, *size]`` in [0, 1].

    ``hu=True``: the volume is in HU; MONAI ``ScaleIntensityRange(a_min=level - width/2, a_max=level + width/2,
    b_min=0, b_max=1, clip=True)`` with the lung window WL -600 / WW 1500 by default [C]. ``hu=False``: the volume is
    already windowed (8-bit slices): uint8 is divided by 255, anything else is taken as [0, 1] and clipped. Then MONAI
    ``Resize(size, mode="trilinear")``.
    """
    s = _check_size(size)
    x = torch.as_tensor(np.asarray(volume) if not isinstance(volume, torch.Tensor) else volume)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1 or min(x.shape) < 1:
        raise ValueError(f"volume must be [D, H, W] or [1, D, H, W], got shape {tuple(x.shape)}")
    if hu:
        if not width > 0:
            raise ValueError(f"width must be > 0 HU, got {width}")
        x = _scaler(float(level), float(width))(x.to(torch.float32))
    elif x.dtype == torch.uint8:
        x = x.to(torch.float32) / 255.0
    else:
        x = x.to(torch.float32).clamp(0.0, 1.0)
    if tuple(x.shape[1:]) != s:
        x = _resizer(s)(x)
    x = x.as_tensor() if hasattr(x, "as_tensor") else x  # MONAI MetaTensor -> plain tensor
    return x.to(torch.float32).contiguous()


def split_records(records: Sequence[ScanRecord], fractions: Sequence[float] = PAPER_SPLIT,
                  seed: int = 0) -> dict[str, list[ScanRecord]]:
    """Split scans into ``dict(train=..., val=..., test=...)`` in the proportions ``fractions`` (default: the paper's
    3263 / 408 / 408 [P]), by patient [C] our choice.

    Scans are grouped by their ``patient`` id alone (the conservative reading: an id seen under two class folders
    stays in one split); the groups are shuffled with ``np.random.default_rng(seed)`` and each goes to the split that
    is furthest below its target share of scans. Deterministic for a seed; with at least 3 patients every split gets
    one. Within a split, records keep their input order.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or f.sum() <= 0:
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test), got {fractions!r}")
    if not records:
        raise ValueError("records is empty: nothing to split")
    f = f / f.sum()
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r.patient, []).append(i)
    keys = sorted(groups, key=natural_key)
    order = np.random.default_rng(seed).permutation(len(keys))
    target = f * len(records)
    counts = np.zeros(3)
    where = {}
    for k in order:
        deficit = np.where(target > 0, (target - counts) / np.maximum(target, 1e-12), -np.inf)
        j = int(np.argmax(deficit))
        where[keys[k]] = j
        counts[j] += len(groups[keys[k]])
    out: dict[str, list[ScanRecord]] = {"train": [], "val": [], "test": []}
    names = list(out)
    for r in records:
        out[names[where[r.patient]]].append(r)
    return out


def _select(records: list[ScanRecord], split: str, fractions: Sequence[float], seed: int) -> list[ScanRecord]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return list(records) if split == "all" else split_records(records, fractions, seed)[split]


class _ScanDataset(Dataset):
    """Shared machinery: records, bad-scan handling (``skip_bad``) and the optional augmentation."""

    def __init__(self, records: list[ScanRecord], size: Sequence[int], seed: int, skip_bad: bool,
                 augment: bool) -> None:
        if not records:
            raise ValueError("this split holds no scan (too few patients for the split fractions?)")
        self.records = records
        self.size = _check_size(size)
        self.seed, self.skip_bad, self.augment = int(seed), bool(skip_bad), bool(augment)
        self.skipped: list[Path] = []
        self._bad: set[int] = set()
        self.epoch = 0
        self._aug = _augmentation() if augment else None

    @property
    def labels(self) -> np.ndarray:
        """Labels of the records (int array [N]); a skipped scan's substitute may carry another label."""
        return np.array([r.label for r in self.records], dtype=int)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws: item i's augmentation is seeded by (seed, epoch, i) [C]."""
        self.epoch = int(epoch)

    def _load(self, record: ScanRecord) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.records)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} scans")
        i %= n
        for j in [(i + k) % n for k in range(n)]:
            if j in self._bad:
                continue
            rec = self.records[j]
            try:
                x = self._load(rec)
            except (ValueError, OSError) as e:
                if not self.skip_bad:
                    raise ValueError(f"cannot load scan {rec.path}: {e} (pass skip_bad=True to skip bad scans)") from e
                self._bad.add(j)
                self.skipped.append(rec.path)
                warnings.warn(f"skipping unreadable scan {rec.path}: {e}", stacklevel=2)
                continue
            if self._aug is not None:
                self._aug.set_random_state(seed=int(np.random.SeedSequence([self.seed, self.epoch, i])
                                                    .generate_state(1)[0]))
                x = self._aug(x)
                x = (x.as_tensor() if hasattr(x, "as_tensor") else x).clamp(0.0, 1.0).contiguous()
            return x, torch.tensor(rec.label, dtype=torch.int64)
        raise ValueError(f"no readable scan left: all {n} scans failed ({self.skipped[:3]} ...)")


def _augmentation() -> Any:
    """[C] our choice (spec §3): left-right flip (W axis), in-plane rotation +-10 deg, scaling +-5%, intensity
    jitter +-5%, as MONAI Rand* transforms on ``[1, D, H, W]`` (seeded per item by the dataset)."""
    from monai.transforms import Compose, RandAffine, RandFlip, RandScaleIntensity

    return Compose([
        RandFlip(prob=0.5, spatial_axis=2),
        RandAffine(prob=1.0, rotate_range=(np.deg2rad(10.0), 0.0, 0.0), scale_range=(0.05, 0.05, 0.05),
                   mode="bilinear", padding_mode="border"),
        RandScaleIntensity(factors=0.05, prob=1.0),
    ])


class CCCIIDataset(_ScanDataset):
    """CC-CCII slice folders as a torch Dataset; items ``(x float32 [1, *size], y int64)``.

    ``root/{NCP,CP,Normal}/<patient>/<scan>/<slices>`` (see :func:`find_scans`); ``split`` "train" / "val" / "test"
    (:func:`split_records` with ``fractions`` and ``seed``) or "all". Slices are stacked (:func:`load_slices`) and
    resized (:func:`preprocess` with ``hu=False``). ``skip_bad=False``: a bad scan raises ValueError naming it;
    ``skip_bad=True``: empty scan folders are left out with a warning, and a scan that fails to load is reported once
    (``warnings.warn``, kept in ``.skipped``) and replaced by the next readable one. ``augment=True`` [C]: see
    :func:`_augmentation`; call ``set_epoch(e)`` to change the draws between epochs.
    """

    def __init__(self, root: str | Path, split: str = "train", size: Sequence[int] = (64, 128, 128), seed: int = 0,
                 skip_bad: bool = False, augment: bool = False, fractions: Sequence[float] = PAPER_SPLIT) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        records, empty = scan_tree(root)
        if empty and not skip_bad:
            raise ValueError(f"scan folder {empty[0]} holds no slice image; pass skip_bad=True to skip such folders")
        if not records:
            raise ValueError(f"no scan found under {root} (expected root/<class>/<patient>/<scan>/<slice images>)")
        super().__init__(_select(records, split, fractions, seed), size, seed, skip_bad, augment)
        self.root, self.split = Path(root), split
        for e in empty:
            self.skipped.append(e)
            warnings.warn(f"skipping scan folder {e}: no slice image", stacklevel=2)

    def _load(self, record: ScanRecord) -> torch.Tensor:
        return preprocess(load_slices(record.path), self.size, hu=False)


class NiftiDataset(_ScanDataset):
    """NIfTI CT volumes in HU as a torch Dataset; items ``(x float32 [1, *size], y int64)``.

    ``root_or_items``: a folder ``root/<class>/*.nii[.gz]`` (class folders named as in :data:`CLASSES`) or a list
    of ``(path, label)`` with label an index 0..2 or a class name. Volumes go through :func:`load_nifti`
    (``canonical``) and :func:`preprocess` (lung window, resize to ``size``). ``split`` "all" (default) or "train" /
    "val" / "test" (:func:`split_records`, each file its own patient [C]); ``skip_bad`` and ``augment`` as in
    :class:`CCCIIDataset`.
    """

    def __init__(self, root_or_items: str | Path | Iterable[tuple[str | Path, int | str]],
                 size: Sequence[int] = (64, 128, 128), skip_bad: bool = False, split: str = "all", seed: int = 0,
                 augment: bool = False, fractions: Sequence[float] = PAPER_SPLIT, canonical: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if isinstance(root_or_items, (str, Path)):
            records = find_nifti(root_or_items)
            self.root: Path | None = Path(root_or_items)
        else:
            records = []
            for item in root_or_items:
                try:
                    path, label = item
                except (TypeError, ValueError):
                    raise ValueError(f"items must be (path, label) pairs, got {item!r}") from None
                if isinstance(label, str):
                    if label not in CLASSES:
                        raise ValueError(f"label must be one of {CLASSES} or 0..2, got {label!r} for {path}")
                    label = CLASSES.index(label)
                if not 0 <= int(label) < len(CLASSES):
                    raise ValueError(f"label must be one of {CLASSES} or 0..2, got {label!r} for {path}")
                p = Path(path)
                records.append(ScanRecord(p, int(label), nifti_stem(p), nifti_stem(p)))
            if not records:
                raise ValueError("root_or_items is an empty list of (path, label)")
            self.root = None
        super().__init__(_select(records, split, fractions, seed), size, seed, skip_bad, augment)
        self.split, self.canonical = split, canonical

    def _load(self, record: ScanRecord) -> torch.Tensor:
        if not record.path.is_file():
            raise FileNotFoundError(f"NIfTI file not found: {record.path}")
        return preprocess(load_nifti(record.path, self.canonical), self.size, hu=True)


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
