"""Real chest-CT data for the NL-RAN series: CC-CCII slice folders and NIfTI volumes, windowed and resized.

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

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kit.nlran.phantom import CLASSES

SLICE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
PAPER_SPLIT = (3263, 408, 408)  # [P] train / val / test scan counts, used as proportions
LUNG_WINDOW = (-600.0, 1500.0)  # [C] (level, width) in HU
SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class ScanRecord:
    """One scan: ``path`` (the scan folder, or a NIfTI file), ``label`` (0 NCP, 1 CP, 2 Normal), ``patient`` and
    ``scan`` ids (folder names; for NIfTI the file stem for both)."""

    path: Path
    label: int
    patient: str
    scan: str


def _natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside a name by value: "2.png" < "10.png"."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: _natural_key(p.name))


def slice_files(scan_dir: str | Path) -> list[Path]:
    """The slice images of ``scan_dir`` (extensions :data:`SLICE_EXTENSIONS`) in natural file-name order."""
    d = Path(scan_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"scan folder not found: {d}")
    files = [p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in SLICE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _check_root(root: str | Path) -> tuple[Path, list[str]]:
    r = Path(root)
    if not r.exists():
        raise FileNotFoundError(f"data root not found: {r}")
    if not r.is_dir():
        raise ValueError(f"data root must be a folder, got the file {r}")
    present = [c for c in CLASSES if (r / c).is_dir()]
    if not present:
        raise ValueError(f"data root {r} has none of the class folders {CLASSES} (expected root/NCP, root/CP, "
                         f"root/Normal)")
    return r, present


def _scan_tree(root: str | Path) -> tuple[list[ScanRecord], list[Path]]:
    """All scans under a CC-CCII root, plus the scan folders that hold no slice image."""
    r, present = _check_root(root)
    records, empty = [], []
    for c in present:
        for patient in _visible_dirs(r / c):
            for scan in _visible_dirs(patient):
                if slice_files(scan):
                    records.append(ScanRecord(scan, CLASSES.index(c), patient.name, scan.name))
                else:
                    empty.append(scan)
    return records, empty


def find_scans(root: str | Path, skip_bad: bool = False) -> list[ScanRecord]:
    """List the scans of a CC-CCII tree ``root/{NCP,CP,Normal}/<patient>/<scan>/<slices>``.

    Raises FileNotFoundError naming ``root`` when it is missing, ValueError naming ``root`` when none of the class
    folders exists or no scan is found, and ValueError naming the folder when a scan folder holds no slice image
    (with ``skip_bad=True``: a warning naming it instead, and the folder is left out).
    """
    records, empty = _scan_tree(root)
    if empty and not skip_bad:
        raise ValueError(f"scan folder {empty[0]} holds no slice image ({'/'.join(SLICE_EXTENSIONS)}); "
                         f"pass skip_bad=True to skip such folders" + (f" ({len(empty)} in all)" if len(empty) > 1 else ""))
    for e in empty:
        warnings.warn(f"skipping scan folder {e}: no slice image", stacklevel=2)
    if not records:
        raise ValueError(f"no scan found under {root} (expected root/<class>/<patient>/<scan>/<slice images>)")
    return records


def load_slices(scan_dir: str | Path) -> np.ndarray:
    """Stack the 8-bit slice images of ``scan_dir`` (natural order) into float32 ``[S, H, W]`` in [0, 1].

    Colour images are converted to grey; 16-bit images are scaled by 1/65535. Raises FileNotFoundError for a missing
    folder, and ValueError naming the folder (no slice image) or the file (cannot be decoded, or a different shape).
    """
    from PIL import Image, UnidentifiedImageError

    files = slice_files(scan_dir)
    if not files:
        raise ValueError(f"scan folder {scan_dir} holds no slice image ({'/'.join(SLICE_EXTENSIONS)})")
    out = None
    for k, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img.load()
                if img.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "F"):
                    img = img.convert("L")
                a = np.asarray(img)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"could not decode slice image {f}: {e}") from e
        if a.ndim != 2:
            raise ValueError(f"slice image {f} is not a 2D grey image (shape {a.shape})")
        scale = 255.0 if a.dtype == np.uint8 else 65535.0 if a.dtype == np.uint16 else 1.0
        if out is None:
            out = np.empty((len(files), *a.shape), dtype=np.float32)
        elif a.shape != out.shape[1:]:
            raise ValueError(f"slice image {f} has shape {a.shape}, the scan's first slice {files[0].name} has "
                             f"{out.shape[1:]}")
        out[k] = a.astype(np.float32) / np.float32(scale)
    return np.clip(out, 0.0, 1.0)


def load_nifti(path: str | Path, canonical: bool = False) -> np.ndarray:
    """Load a 3D NIfTI volume (nibabel) as float32 ``[D, H, W]`` in the file's units (HU for CT).

    Axis order: NIfTI stores voxels as (i, j, k) with k the slice index; we return ``data.transpose(2, 1, 0)``, i.e.
    ``[D, H, W] = (k, j, i)``, slices first. ``canonical=True`` first reorients to nibabel's closest RAS+ canonical
    orientation (``nibabel.as_closest_canonical``), so volumes from different scanners share an orientation; the
    default keeps the stored voxel order. A trailing singleton 4th axis is dropped. Raises FileNotFoundError naming
    a missing path, ValueError naming a file that cannot be read or is not 3D.
    """
    import nibabel as nib

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NIfTI file not found: {p}")
    try:
        img = nib.load(str(p))
        if canonical:
            img = nib.as_closest_canonical(img)
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as e:  # nibabel raises many kinds (ImageFileError, EOFError, zlib.error, ...)
        raise ValueError(f"could not read NIfTI file {p}: {e}") from e
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"NIfTI file {p} is not a 3D volume (shape {data.shape})")
    return np.ascontiguousarray(data.transpose(2, 1, 0))


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
    keys = sorted(groups, key=_natural_key)
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
        records, empty = _scan_tree(root)
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


def _nifti_stem(p: Path) -> str:
    name = p.name
    for suf in (".nii.gz", ".nii"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return p.stem


def find_nifti(root: str | Path) -> list[ScanRecord]:
    """List ``root/<class>/*.nii`` and ``*.nii.gz`` as records (patient = scan = the file stem [C])."""
    r, present = _check_root(root)
    out = []
    for c in present:
        files = [p for p in (r / c).iterdir() if p.is_file() and p.name.lower().endswith(NIFTI_SUFFIXES)]
        for p in sorted(files, key=lambda q: _natural_key(q.name)):
            out.append(ScanRecord(p, CLASSES.index(c), _nifti_stem(p), _nifti_stem(p)))
    if not out:
        raise ValueError(f"no NIfTI file (*.nii, *.nii.gz) found under {r}/<class>/")
    return out


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
                records.append(ScanRecord(p, int(label), _nifti_stem(p), _nifti_stem(p)))
            if not records:
                raise ValueError("root_or_items is an empty list of (path, label)")
            self.root = None
        super().__init__(_select(records, split, fractions, seed), size, seed, skip_bad, augment)
        self.split, self.canonical = split, canonical

    def _load(self, record: ScanRecord) -> torch.Tensor:
        if not record.path.is_file():
            raise FileNotFoundError(f"NIfTI file not found: {record.path}")
        return preprocess(load_nifti(record.path, self.canonical), self.size, hu=True)
