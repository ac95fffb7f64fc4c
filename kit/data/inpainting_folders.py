"""Loaders for published inpainting-localisation data in their released layouts (used with arXiv:2408.02191).

Every loader is an ``InpaintingFolder``: ``len(ds)`` pairs, ``ds[i] = dict(image=uint8 [H, W, 3] RGB,
mask=bool [H, W] (True = manipulated), name=str)``. Masks are read as grey and binarised at 128 (JPEG masks
carry ringing), authentic images get an all-zero mask, and a mask whose size differs from its image raises
ValueError naming the file and both sizes (``resize_masks=True`` resizes it, nearest neighbour, instead).

Layouts, and where we checked them:

- **IID** (IID-Net / GIID-Net diverse inpainting set, HighwayWu/InpaintingForensics): the official repo only
  links a Google Drive archive and reads pairs from a saved file list. Third-party loaders of the archive
  (``DiverseInpaintingDataset``) show one folder per method, ``CA EC GC LB NS PM RN SG SH TE``, each holding
  images ``<name>.<ext>`` beside masks ``<name>_mask.<ext>``; we follow that (not verified on the archive).
- **DEFACTO** inpainting subset (defactodataset.github.io), as seen in third-party loaders:
  ``root/inpainting_img/img/<stem>.tif`` with masks ``root/inpainting_annotations/probe_mask/<stem>.jpg``.
  Those loaders warn that some probe masks differ in size from their images (hence ``resize_masks``).
- **IMDLBenCo** (scu-zjz/IMDLBenCo), verified in its source: ``ManiDataset`` pairs the sorted file names of
  ``root/Tp`` and ``root/Gt`` by position; ``JsonDataset`` reads ``[[image_path, mask_path], ...]`` where the
  mask path "Negative" marks an authentic image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
IID_METHODS = ("CA", "EC", "GC", "LB", "NS", "PM", "RN", "SG", "SH", "TE")
NEGATIVE = "Negative"
Path_ = str | os.PathLike


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS)


class InpaintingFolder:
    """Image/mask pairs on disk: ``ds[i] = dict(image=uint8 [H, W, 3], mask=bool [H, W], name=str)``.

    Subclasses set ``layout`` (said in errors) and fill ``self.pairs`` with ``(name, image_path, mask_path or
    None)``; None means authentic (an all-zero mask).
    """

    layout = "image/mask pairs"

    def __init__(self, root: Path_, resize_masks: bool = False) -> None:
        self.root = Path(root)
        self.resize_masks = resize_masks
        self.pairs: list[tuple[str, Path, Path | None]] = self._find_pairs()
        if not self.pairs:
            raise FileNotFoundError(f"no image/mask pairs found under {self.root}; expected layout: {self.layout}")

    def _find_pairs(self) -> list[tuple[str, Path, Path | None]]:
        raise NotImplementedError

    def _require_dir(self, path: Path) -> Path:
        if not path.is_dir():
            raise FileNotFoundError(f"folder {path} does not exist; expected layout: {self.layout}")
        return path

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        name, image_path, mask_path = self.pairs[i]
        with Image.open(image_path) as im:
            image = np.asarray(im.convert("RGB"))
        if mask_path is None:
            return dict(image=image, mask=np.zeros(image.shape[:2], dtype=bool), name=name)
        with Image.open(mask_path) as im:
            grey = im.convert("L")
            if grey.size != (image.shape[1], image.shape[0]):
                if not self.resize_masks:
                    raise ValueError(f"mask {mask_path} is {grey.size[1]}x{grey.size[0]} (HxW) but its image "
                                     f"{image_path} is {image.shape[0]}x{image.shape[1]}")
                grey = grey.resize((image.shape[1], image.shape[0]), Image.NEAREST)
            mask = np.asarray(grey) >= 128
        return dict(image=image, mask=mask, name=name)


class IIDFolder(InpaintingFolder):
    """The IID-Net diverse inpainting set: ``root/<method>/<name>.<ext>`` with ``<name>_mask.<ext>`` beside it.

    ``methods`` (default: every sub-folder of ``root``, e.g. ``IID_METHODS``) picks the method folders; the
    item name is ``"<method>/<name>"``. Layout from third-party loaders (see the module docstring).
    """

    layout = "root/<method>/<name>.png with root/<method>/<name>_mask.png (methods CA, EC, GC, ...)"

    def __init__(self, root: Path_, methods: tuple[str, ...] | None = None, resize_masks: bool = False) -> None:
        self.methods = methods
        super().__init__(root, resize_masks)

    def _find_pairs(self) -> list[tuple[str, Path, Path | None]]:
        root = self._require_dir(self.root)
        if self.methods is None:
            folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        else:
            folders = [self._require_dir(root / m) for m in self.methods]
        pairs = []
        for folder in folders:
            files = _images_in(folder)
            masks = {p.stem[:-len("_mask")]: p for p in files if p.stem.endswith("_mask")}
            for p in files:
                if p.stem.endswith("_mask"):
                    continue
                if p.stem not in masks:
                    raise FileNotFoundError(f"image {p} has no mask {p.stem}_mask.<ext> beside it; "
                                            f"expected layout: {self.layout}")
                pairs.append((f"{folder.name}/{p.stem}", p, masks[p.stem]))
        return pairs


class DefactoInpainting(InpaintingFolder):
    """DEFACTO's inpainting subset: ``root/inpainting_img/img/<stem>.tif`` and
    ``root/inpainting_annotations/probe_mask/<stem>.jpg``; the item name is ``<stem>``."""

    layout = "root/inpainting_img/img/<stem>.tif with root/inpainting_annotations/probe_mask/<stem>.jpg"

    def _find_pairs(self) -> list[tuple[str, Path, Path | None]]:
        images = self._require_dir(self.root / "inpainting_img" / "img")
        masks = self._require_dir(self.root / "inpainting_annotations" / "probe_mask")
        pairs = []
        for p in _images_in(images):
            m = masks / f"{p.stem}.jpg"
            if not m.is_file():
                raise FileNotFoundError(f"image {p} has no probe mask {m}; expected layout: {self.layout}")
            pairs.append((p.stem, p, m))
        return pairs


class ManiDataset(InpaintingFolder):
    """IMDLBenCo's ``ManiDataset`` layout: ``root/Tp/*`` images and ``root/Gt/*`` masks, paired by sorted name
    order (as IMDLBenCo does; hidden files are skipped). The item name is the image's file name."""

    layout = "root/Tp/<images> and root/Gt/<masks>, paired by sorted file name"

    def _find_pairs(self) -> list[tuple[str, Path, Path | None]]:
        tp = _images_in(self._require_dir(self.root / "Tp"))
        gt = _images_in(self._require_dir(self.root / "Gt"))
        if len(tp) != len(gt):
            raise ValueError(f"{self.root / 'Tp'} holds {len(tp)} images but {self.root / 'Gt'} holds {len(gt)} "
                             f"masks; IMDLBenCo pairs them by sorted order, so the counts must match")
        return [(t.name, t, g) for t, g in zip(tp, gt)]


class JsonDataset(InpaintingFolder):
    """IMDLBenCo's ``JsonDataset``: a JSON list ``[[image_path, mask_path], ...]``; mask "Negative" means an
    authentic image (all-zero mask). Relative paths are tried against the JSON file's folder, then the
    working directory (IMDLBenCo uses the working directory). The item name is the image path as written."""

    layout = 'a JSON list of [image_path, mask_path] pairs, mask_path "Negative" for authentic images'

    def _find_pairs(self) -> list[tuple[str, Path, Path | None]]:
        if not self.root.is_file():
            raise FileNotFoundError(f"JSON file {self.root} does not exist; expected {self.layout}")
        records = json.loads(self.root.read_text())
        if not isinstance(records, list):
            raise ValueError(f"{self.root} must hold a JSON list; expected {self.layout}")
        pairs = []
        for k, rec in enumerate(records):
            if not (isinstance(rec, list) and len(rec) == 2 and all(isinstance(v, str) for v in rec)):
                raise ValueError(f"entry {k} of {self.root} is {rec!r}; expected [image_path, mask_path]")
            image = self._resolve(rec[0])
            pairs.append((rec[0], image, None if rec[1] == NEGATIVE else self._resolve(rec[1])))
        return pairs

    def _resolve(self, path: str) -> Path:
        for p in (Path(path),) if Path(path).is_absolute() else (self.root.parent / path, Path(path)):
            if p.is_file():
                return p
        raise FileNotFoundError(f"{path} (listed in {self.root}) not found next to the JSON file or in the "
                                f"working directory")
