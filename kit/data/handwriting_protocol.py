"""The CEDAR AND crops on disk and the writer-verification protocol of arXiv:2407.21788.

CEDAR AND holds crops of the handwritten word "and" cut from the CEDAR letter; every file is named
``XXXXy_numZ.<ext>``: the writer id (4 characters, digits in the release), the page letter ``y`` and the
sample number ``Z`` (e.g. ``0012a_num3.png``). ``CedarAndFolder(root)`` reads every image under ``root``
(sub-folders included) and keeps that naming.

The protocol (Sec. 3 of arXiv:2407.21788 and the authors' pair script) works on writer ids, real or synthetic:
``writer_split`` (writer-disjoint train/val/test), ``label_subset`` (10 % / 100 % of the training writers) and
``verification_pairs`` (every same-writer 2-combination plus one different-writer pair each: exactly 50/50).
"""

from __future__ import annotations

import os
import re
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
CEDAR_AND_PATTERN = re.compile(r"^(?P<writer>[0-9A-Za-z]{4})(?P<page>[A-Za-z])_num(?P<sample>\d+)$")
CEDAR_AND_LAYOUT = "image files named XXXXy_numZ.png (writer XXXX, page y, sample Z), e.g. 0012a_num3.png"


class CedarAndFolder:
    """CEDAR AND "and" crops: ``ds[i] = dict(image=uint8 [H, W] grey, writer=str, name=str)``.

    ``writer_ids`` lists the writers (sorted); ``writer_of`` [N] is each item's writer (for
    ``verification_pairs``); ``images_of(writer)`` returns that writer's images.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"CEDAR AND folder {self.root} does not exist; expected "
                                    f"{CEDAR_AND_LAYOUT}")
        self.files = sorted(p for p in self.root.rglob("*")
                            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise FileNotFoundError(f"no images found under {self.root}; expected {CEDAR_AND_LAYOUT}")
        writers = []
        for p in self.files:
            m = CEDAR_AND_PATTERN.match(p.stem)
            if m is None:
                raise ValueError(f"file {p} does not follow the CEDAR AND naming; expected "
                                 f"{CEDAR_AND_LAYOUT}")
            writers.append(m["writer"])
        self.writer_of = np.array(writers)
        self.writer_ids: list[str] = sorted(set(writers))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        p = self.files[i]
        with Image.open(p) as im:
            image = np.asarray(im.convert("L"))
        return dict(image=image, writer=str(self.writer_of[i]), name=p.stem)

    def indices_of(self, writer: str) -> np.ndarray:
        """Item indices int64 [n] of ``writer``'s images."""
        if writer not in self.writer_ids:
            raise ValueError(f"writer {writer!r} is not in {self.root} ({len(self.writer_ids)} writers)")
        return np.flatnonzero(self.writer_of == writer)

    def images_of(self, writer: str) -> list[np.ndarray]:
        """``writer``'s images, each uint8 [H, W] grey, in file-name order."""
        return [self[int(i)]["image"] for i in self.indices_of(writer)]


def writer_split(n_writers: int, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Writer-disjoint ids {"train", "val", "test"}: each int64 [n_k], sorted (writer-disjoint, as in
    arXiv:2407.21788); together they cover range(n_writers)."""
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f < 0).any() or abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    if int(n_writers) < 2:
        raise ValueError(f"n_writers must be >= 2, got {n_writers}")
    cuts = np.round(np.cumsum(f)[:2] * n_writers).astype(int)
    parts = np.split(np.random.default_rng(seed).permutation(int(n_writers)), cuts)
    for name, frac, part in zip(("train", "val", "test"), f, parts):
        if frac > 0 and len(part) == 0:
            raise ValueError(f"n_writers={n_writers} leaves the {name} split (fraction {frac}) empty")
    return {name: np.sort(part) for name, part in zip(("train", "val", "test"), parts)}


def label_subset(writers: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """The labelled writers: a seeded random ``fraction`` of ``writers`` (at least one), sorted [n].

    arXiv:2407.21788 trains its baselines on 10 % and 100 % of the training writers."""
    writers = np.asarray(writers)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if writers.ndim != 1 or len(writers) == 0:
        raise ValueError(f"writers must be a non-empty 1-D array, got shape {writers.shape}")
    k = max(1, int(round(fraction * len(writers))))
    return np.sort(np.random.default_rng(seed).choice(writers, size=k, replace=False))


def verification_pairs(writer_of: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pairs int64 [P, 3] of (i, j, label), label 1 = same writer, exactly half positive (arXiv:2407.21788).

    Every same-writer 2-combination (i, j) of the samples (``writer_of`` [N]: any hashable writer ids) is a
    positive; each is followed by a negative (i, k) with k a random sample of a random other writer.
    """
    writer_of = np.asarray(writer_of)
    if writer_of.ndim != 1:
        raise ValueError(f"writer_of must be 1-D [N], got shape {writer_of.shape}")
    ids, inverse = np.unique(writer_of, return_inverse=True)
    if len(ids) < 2:
        raise ValueError(f"writer_of must hold at least 2 writers, got {len(ids)}")
    members = [np.flatnonzero(inverse == k) for k in range(len(ids))]
    rng = np.random.default_rng(seed)
    rows = []
    for k, idx in enumerate(members):
        for i, j in combinations(idx.tolist(), 2):
            other = int(rng.integers(len(ids) - 1))
            other += other >= k
            rows += [(i, j, 1), (i, int(members[other][rng.integers(len(members[other]))]), 0)]
    if not rows:
        raise ValueError("writer_of has no writer with 2 or more samples, so there are no same-writer pairs")
    return np.asarray(rows, dtype=np.int64)
