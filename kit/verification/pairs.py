"""Handwriting images and writer-disjoint verification pairs, as both handwriting series use them.

``load_pair_data(...)`` builds one run's images (synthetic writers of :mod:`kit.data.handwriting`, or CEDAR AND
crops under ``data_dir``), its writer-disjoint train / validation / test writers (the labelled share of the training
writers apart) and the paper's pairs of each split; ``to_input`` turns uint8 images into model inputs (ink = 1);
``RandomPairs`` draws fresh same / different pairs every training step; ``balanced_subset`` takes a half-positive
subset of pairs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from kit.data.handwriting import Writers, label_subset, verification_pairs, writer_split

INPUT_SIZE = 64
SOURCES = ("synthetic", "cedar")


def to_input(images: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """Model inputs float32 [N, 1, size, size] (ink = 1) of uint8 images [N, H, W] or [H, W] (dark ink on light paper).

    Any other size is resized with area averaging, keeping the aspect ratio (padded with paper), as the model expects.
    """
    import cv2

    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0 = ink, 255 = paper), got {a.dtype}")
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4) and min(a.shape[:2]) > 4):
        a = a[None]  # one grey image, or one RGB(A) image [H, W, 3]
    if a.ndim == 4 and a.shape[-1] in (3, 4):
        a = np.stack([cv2.cvtColor(x[..., :3], cv2.COLOR_RGB2GRAY) for x in a])
    if a.ndim != 3 or min(a.shape[1:]) < 1 or len(a) == 0:
        raise ValueError(f"images must be [N, H, W] or [H, W] grey (or [N, H, W, 3] RGB), got {np.shape(images)}")
    if a.shape[1:] != (size, size):
        out = np.full((len(a), size, size), 255, np.uint8)
        h, w = a.shape[1:]
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        y0, x0 = (size - nh) // 2, (size - nw) // 2
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        for k, x in enumerate(a):
            out[k, y0:y0 + nh, x0:x0 + nw] = cv2.resize(x, (nw, nh), interpolation=interp)
        a = out
    return torch.from_numpy(1.0 - a[:, None].astype(np.float32) / 255.0)


def fit_canvas(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [size, size]: ``image`` scaled to fit (aspect kept) on white paper."""
    x = to_input(image, size)
    return np.rint(255.0 * (1.0 - x[0, 0].numpy())).astype(np.uint8)


@dataclass
class PairData:
    """Images and writer-disjoint pairs of one run.

    ``images`` uint8 [N, S, S] (dark ink on light paper), ``x`` the model inputs [N, 1, S, S], ``writer_of`` [N];
    ``writers`` {"train" (labelled), "train_all", "val", "test"} -> writer ids; ``pairs`` {"train", "val", "test"} ->
    [P, 3] (i, j, label) in the paper's pairing, indices into ``images``; ``boxes`` [N, 3, 4] letter boxes and
    ``population`` the :class:`Writers` (synthetic data only).
    """

    images: np.ndarray
    x: torch.Tensor
    writer_of: np.ndarray
    writers: dict[str, np.ndarray]
    pairs: dict[str, np.ndarray]
    source: str
    boxes: np.ndarray | None = None
    population: Writers | None = None
    seconds: float = 0.0

    def indices(self, split: str) -> np.ndarray:
        """Image indices [n] of the writers of ``split``."""
        return np.flatnonzero(np.isin(self.writer_of, self.writers[split]))

    def pairs_of(self, writers: Sequence, seed: int = 0) -> np.ndarray:
        """The paper's pairs [P, 3] (i, j, label) among the images of ``writers``, indices into ``images``."""
        return pairs_among(self.writer_of, writers, seed)


def pairs_among(writer_of: np.ndarray, writers: Sequence, seed: int = 0) -> np.ndarray:
    """The paper's pairs [P, 3] (i, j, label) among the rows of ``writer_of`` [N] whose writer is in ``writers``."""
    writer_of = np.asarray(writer_of)
    idx = np.flatnonzero(np.isin(writer_of, np.asarray(writers)))
    if len(idx) == 0:
        raise ValueError("none of the given writers has images in this data")
    local = verification_pairs(writer_of[idx], seed=seed)
    return np.column_stack([idx[local[:, 0]], idx[local[:, 1]], local[:, 2]])


def _groups(ids: np.ndarray, split: tuple[float, float, float], split_seed: int, label_fraction: float,
            label_seed: int) -> dict[str, np.ndarray]:
    parts = {k: ids[v] for k, v in writer_split(len(ids), split, seed=split_seed).items()}
    labelled = label_subset(parts["train"], label_fraction, seed=label_seed)
    return {"train_all": parts["train"], "train": labelled, "val": parts["val"], "test": parts["test"]}


def load_pair_data(*, source: str = "synthetic", data_dir: str | None = None, n_writers: int = 1900,
                   writer_seed: int = 0, noise: float = 1.8, size: int = INPUT_SIZE, samples_per_writer: int = 8,
                   split: tuple[float, float, float] = (0.7, 0.1, 0.2), label_fraction: float = 1.0, seed: int = 0,
                   split_seed: int | None = None, unlabelled: bool = False, max_train_writers: int | None = None,
                   skip_val: bool = False, n_test_pairs: int | None = None, progress: bool = True) -> PairData:
    """Return one run's :class:`PairData`.

    Writers are split by ``split_seed`` (default ``seed``) into train / val / test; a ``label_fraction`` of the
    training writers (drawn with ``seed``) is labelled: its pairs are ``pairs["train"]``. Synthetic samples of
    writer w are drawn with the generator ``[seed, w, 1]``. Only the images a run needs are made: the labelled
    training writers (at most ``max_train_writers``), validation (unless ``skip_val``) and test writers, plus every
    training writer when ``unlabelled`` (self-supervised pre-training reads them without labels). CEDAR AND
    (``source="cedar"``) reads every crop under ``data_dir`` (writer = the file name's first 4 characters).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    t0 = time.perf_counter()
    split_seed = seed if split_seed is None else split_seed
    boxes = pop = None
    if source == "synthetic":
        pop = Writers(n_writers, seed=writer_seed, noise=noise, size=size)
        groups = _groups(np.arange(int(n_writers)), split, split_seed, label_fraction, seed)
        if max_train_writers is not None:
            groups["train"] = groups["train"][:max_train_writers]
        wanted = [groups["train"], groups["test"]] + ([] if skip_val else [groups["val"]])
        wanted = np.unique(np.concatenate(wanted + ([groups["train_all"]] if unlabelled else [])))
        images, box_list = [], []
        for w in tqdm(wanted, desc="writing samples", disable=not progress):
            im, bx = pop.sample_with_boxes(int(w), samples_per_writer, np.random.default_rng([seed, int(w), 1]))
            images.append(im)
            box_list.append(bx)
        images, boxes = np.concatenate(images), np.concatenate(box_list)
        writer_of = np.repeat(wanted, samples_per_writer)
    else:
        from kit.data.handwriting import CedarAndFolder

        if not data_dir:
            raise ValueError("source='cedar' needs data_dir= (a folder of CEDAR AND crops named XXXXy_numZ.png)")
        folder = CedarAndFolder(data_dir)
        ids = np.array(folder.writer_ids)
        if len(ids) < 6:
            raise ValueError(f"{data_dir} holds {len(ids)} writers; a writer-disjoint split needs at least 6")
        groups = _groups(ids, split, split_seed, label_fraction, seed)
        images = np.stack([fit_canvas(folder[i]["image"], size)
                           for i in tqdm(range(len(folder)), desc="reading CEDAR AND", disable=not progress)])
        writer_of = np.asarray(folder.writer_of)
    pairs = {}
    for k, name in enumerate(("train", "val", "test")):
        if len(groups[name]) and np.isin(writer_of, groups[name]).any():
            pairs[name] = pairs_among(writer_of, groups[name], seed + k)
    if n_test_pairs is not None and "test" in pairs and n_test_pairs < len(pairs["test"]):
        pairs["test"] = balanced_subset(pairs["test"], n_test_pairs, seed=seed)
    return PairData(images, to_input(images, size), np.asarray(writer_of), groups, pairs, source, boxes, pop,
                    time.perf_counter() - t0)


def balanced_subset(pairs: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of ``pairs`` [P, 3], half same-writer (as far as there are), in a seeded random order."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(pairs[:, 2] == 1), np.flatnonzero(pairs[:, 2] == 0)
    k = min(n // 2, len(pos))
    take = np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, min(n - k, len(neg)), replace=False)])
    return pairs[np.sort(take)]


class RandomPairs:
    """``batch(step)`` -> (a [B, 1, S, S], b [B, 1, S, S], label [B]): fresh pairs of labelled training images
    every step, half same-writer (two different samples of one writer), half two different writers [PROPOSED]."""

    def __init__(self, x: torch.Tensor, indices: np.ndarray, writer_of: np.ndarray, batch_size: int) -> None:
        """``indices`` [n]: the rows of ``x`` to draw from; ``writer_of`` [n]: their writers."""
        indices = np.asarray(indices)
        ids, inverse = np.unique(np.asarray(writer_of), return_inverse=True)
        members = [indices[inverse == k] for k in range(len(ids))]
        self.multi = [m for m in members if len(m) >= 2]
        if len(self.multi) == 0 or len(members) < 2:
            raise ValueError("training needs at least 2 writers, one with 2 or more samples")
        self.x, self.members, self.batch_size = x, members, int(batch_size)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, h = self.batch_size, self.batch_size // 2
        pick = lambda n: int(torch.randint(n, ()))  # the global torch RNG: its state is checkpointed
        ia, ib = [], []
        for _ in range(h):
            m = self.multi[pick(len(self.multi))]
            i = pick(len(m))
            j = (i + 1 + pick(len(m) - 1)) % len(m)
            ia.append(m[i])
            ib.append(m[j])
        n = len(self.members)
        for _ in range(b - h):
            w = pick(n)
            v = (w + 1 + pick(n - 1)) % n
            ia.append(self.members[w][pick(len(self.members[w]))])
            ib.append(self.members[v][pick(len(self.members[v]))])
        y = torch.zeros(b, dtype=torch.long)
        y[:h] = 1
        return self.x[ia], self.x[ib], y
