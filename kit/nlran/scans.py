"""Reading real chest-CT scans from disk for the NL-RAN series: the CC-CCII folder tree of slice images and
NIfTI volumes, found by class folder, with errors that name the scan (the datasets are in :mod:`kit.nlran.data`)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.nlran.phantom import CLASSES

SLICE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class ScanRecord:
    """One scan: ``path`` (the scan folder, or a NIfTI file), ``label`` (0 NCP, 1 CP, 2 Normal), ``patient`` and
    ``scan`` ids (folder names; for NIfTI the file stem for both)."""

    path: Path
    label: int
    patient: str
    scan: str


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside a name by value: "2.png" < "10.png"."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


def slice_files(scan_dir: str | Path) -> list[Path]:
    """The slice images of ``scan_dir`` (extensions :data:`SLICE_EXTENSIONS`) in natural file-name order."""
    d = Path(scan_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"scan folder not found: {d}")
    files = [p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in SLICE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


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


def scan_tree(root: str | Path) -> tuple[list[ScanRecord], list[Path]]:
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
    records, empty = scan_tree(root)
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


def nifti_stem(p: Path) -> str:
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
        for p in sorted(files, key=lambda q: natural_key(q.name)):
            out.append(ScanRecord(p, CLASSES.index(c), nifti_stem(p), nifti_stem(p)))
    if not out:
        raise ValueError(f"no NIfTI file (*.nii, *.nii.gz) found under {r}/<class>/")
    return out
