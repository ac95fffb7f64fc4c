"""Accuracy against the writers' variability, metrics against a threshold, and confusion matrices, for the views of
the hv_vlm series (arXiv:2407.21788); re-exported by :mod:`kit.hv_vlm.explore`.

- :func:`noise_sweep`: the Siamese model, HOG cosine and an examiner on fresh writers at growing noise;
- :func:`threshold_curve`: accuracy, precision, recall and F1 of a same-writer score at each threshold;
- :func:`confusion_matrix`, :func:`decision_confusion` (with the unknown / ambiguous replies the paper's parser
  drops) and :func:`confusion_from_metrics` (a matrix rebuilt from a reported row).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kit.data.handwriting import Writers, verification_pairs
from kit.hv_vlm.examiner import DECISIONS, ChatBackend, decision_metrics, verify
from kit.hv_vlm.metrics import pair_metrics
from kit.hv_vlm.offline_examiner import OfflineExaminer

__all__ = ["noise_sweep", "first_below", "threshold_curve", "confusion_matrix", "DECISION_COLUMNS",
           "decision_confusion", "confusion_from_metrics"]


def _population(n_writers: int, samples: int, seed: int, noise: float, offset: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    pop = Writers(2 * n_writers, seed=seed, noise=noise)
    ids = np.arange(offset, offset + n_writers)
    images = np.concatenate([pop.sample(int(w), samples, np.random.default_rng([seed, int(w), 1])) for w in ids])
    return images, np.repeat(ids, samples)


def noise_sweep(model: Any, examiner: ChatBackend | None, noises: Sequence[float] = (0.6, 1.0, 1.4, 1.8, 2.2, 2.6),
                n_writers: int = 24, samples_per_writer: int = 4, writer_seed: int = 7, n_examiner_pairs: int = 40,
                progress: bool = True) -> dict[str, Any]:
    """Accuracy and F1 [K] per method (the Siamese ``model``, HOG cosine, the ``examiner``) at each of K ``noises``.

    At each noise: ``n_writers`` test writers of a population the committed model never saw (``writer_seed``; the
    training population is seed 0) with ``samples_per_writer`` samples each, paired as arXiv:2407.21788 pairs
    them; HOG cosine's threshold is fitted on ``n_writers`` other writers at that same noise, while the model and
    the examiner stay as they are (an :class:`OfflineExaminer` keeps the thresholds it was fitted with: the point of
    the sweep); the examiner answers ``n_examiner_pairs`` balanced pairs. Each writer's samples reuse one random
    draw scaled by the noise, so the rows show the same writers growing more variable.

    Returns ``noises`` [K]; ``accuracy`` and ``f1`` {method: [K]} for the methods in ``labels`` (keys "siamese",
    "hog_cosine", "examiner"; a method given as None is left out), ``coverage`` {"examiner": [K]}, ``examples``
    uint8 [K, 4, H, W] (writer 0's samples 0 and 1, writer 1's samples 0 and 1) with ``example_titles``, the sizes
    and ``seconds``."""
    from tqdm.auto import tqdm

    from kit.hv_vlm.model import pair_logits, to_input
    from kit.verification.baselines import fit_baseline, hog_features
    from kit.verification.pairs import balanced_subset

    noises = [float(x) for x in noises]
    if not noises or min(noises) < 0:
        raise ValueError(f"noises must be a non-empty list of values >= 0, got {noises}")
    if n_writers < 2 or samples_per_writer < 2:
        raise ValueError(f"need n_writers >= 2 and samples_per_writer >= 2, got {n_writers}, {samples_per_writer}")
    labels = {"siamese": "Siamese ResNet-18", "hog_cosine": "HOG cosine"}
    if model is None:
        labels.pop("siamese")
    if examiner is not None:
        labels["examiner"] = f"examiner: {getattr(examiner, 'name', type(examiner).__name__)}"
    acc: dict[str, list[float]] = {k: [] for k in labels}
    f1: dict[str, list[float]] = {k: [] for k in labels}
    coverage: dict[str, list[float]] = {"examiner": []} if examiner is not None else {}
    examples = []
    t0 = time.perf_counter()
    for noise in tqdm(noises, desc="noise sweep", disable=not progress):
        images, writer_of = _population(n_writers, samples_per_writer, writer_seed, noise)
        fit_images, fit_writer_of = _population(n_writers, samples_per_writer, writer_seed, noise, n_writers)
        pairs = verification_pairs(writer_of, writer_seed)
        y = pairs[:, 2]
        examples.append(images[[0, 1, samples_per_writer, samples_per_writer + 1]])
        out = {}
        if model is not None:
            import torch

            p = torch.softmax(pair_logits(model, to_input(images), pairs), 1)[:, 1].numpy()
            out["siamese"] = pair_metrics(p, y, 0.5)
        hog = fit_baseline("hog_cosine", fit_images, verification_pairs(fit_writer_of, writer_seed),
                           features=hog_features(fit_images))
        out["hog_cosine"] = pair_metrics(hog.scores(images, pairs, hog_features(images)), y, hog.threshold)
        if examiner is not None:
            sub = balanced_subset(pairs, n_examiner_pairs, writer_seed)
            if isinstance(examiner, OfflineExaminer):
                decisions = examiner.predict(images[sub[:, 0]], images[sub[:, 1]])
            else:
                decisions = [verify(examiner, images[i], images[j]).decision for i, j, _ in sub]
            out["examiner"] = decision_metrics(decisions, sub[:, 2])
            coverage["examiner"].append(float(out["examiner"]["coverage"]))
        for k in labels:
            acc[k].append(float(out[k]["accuracy"]))
            f1[k].append(float(out[k]["f1"]))
    return {"noises": noises, "labels": labels, "accuracy": acc, "f1": f1, "coverage": coverage,
            "examples": np.stack(examples), "example_titles": ["writer 0, sample 0", "writer 0, sample 1",
                                                               "writer 1, sample 0", "writer 1, sample 1"],
            "n_writers": n_writers, "samples_per_writer": samples_per_writer, "writer_seed": writer_seed,
            "n_pairs": int(len(pairs)), "n_examiner_pairs": int(min(n_examiner_pairs, len(pairs))),
            "seconds": time.perf_counter() - t0}


def first_below(noises: Sequence[float], accuracy: Sequence[float], level: float = 0.7) -> float | None:
    """The first noise (in the given order) at which ``accuracy`` drops below ``level``; None if it never does."""
    for x, a in zip(noises, accuracy, strict=True):
        if a < level:
            return float(x)
    return None


def threshold_curve(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 [T] of deciding "same writer" at ``score >= t`` for each of ``thresholds``
    [T] (positive = same writer; a ratio with an empty denominator is 0, as :func:`pair_metrics`), and the
    ``thresholds``."""
    s, y = np.asarray(scores, float).ravel(), np.asarray(labels).astype(int).ravel()
    t = np.asarray(thresholds, float).ravel()
    if s.shape != y.shape or len(s) == 0 or len(t) == 0:
        raise ValueError(f"scores and labels must be non-empty and of one length, thresholds non-empty: got "
                         f"{s.shape}, {y.shape}, {t.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    pred = s[None, :] >= t[:, None]
    tp = (pred & (y == 1)).sum(1)
    fp = (pred & (y == 0)).sum(1)
    fn = (~pred & (y == 1)).sum(1)
    ratio = lambda a, b: np.divide(a, b, out=np.zeros(len(t)), where=b > 0)  # noqa: E731
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {"thresholds": t, "accuracy": (pred == (y == 1)).mean(1), "precision": precision, "recall": recall,
            "f1": ratio(2 * precision * recall, precision + recall)}


def confusion_matrix(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts int64 [2, 2] of 0/1 decisions ``pred`` [P] against ``labels`` [P]: rows the truth, columns the
    decision, each ordered (different writer, same writer)."""
    p, y = np.asarray(pred).astype(int).ravel(), np.asarray(labels).astype(int).ravel()
    if p.shape != y.shape:
        raise ValueError(f"pred and labels differ in length: {p.shape} vs {y.shape}")
    return np.array([[np.sum((y == t) & (p == d)) for d in (0, 1)] for t in (0, 1)], dtype=np.int64)


DECISION_COLUMNS = ("different", "same", "unknown", "both")


def decision_confusion(decisions: Sequence[str], labels: np.ndarray) -> np.ndarray:
    """Counts int64 [2, 4] of examiner ``decisions`` [P] against ``labels`` [P]: rows the truth (different, same),
    columns the decision (different, same, unknown, both), so unanswered and ambiguous replies stay visible."""
    d, y = list(decisions), np.asarray(labels).astype(int).ravel()
    if len(d) != len(y):
        raise ValueError(f"decisions and labels differ in length: {len(d)} vs {len(y)}")
    bad = sorted(set(d) - set(DECISIONS))
    if bad:
        raise ValueError(f"decisions must be in {DECISIONS}, got {bad}")
    dd = np.asarray(d)
    return np.array([[np.sum((y == t) & (dd == c)) for c in DECISION_COLUMNS] for t in (0, 1)], dtype=np.int64)


def confusion_from_metrics(metrics: Mapping[str, float], labels: np.ndarray) -> np.ndarray:
    """Counts int64 [2, 2] (as :func:`confusion_matrix`) rebuilt from a method's ``accuracy`` and ``recall`` on
    pairs with ``labels`` [P] (every pair decided): TP = recall x positives, TN = accuracy x P - TP."""
    y = np.asarray(labels).astype(int).ravel()
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    tp = int(round(float(metrics["recall"]) * pos))
    tn = int(round(float(metrics["accuracy"]) * len(y))) - tp
    if not (0 <= tp <= pos and 0 <= tn <= neg):
        raise ValueError(f"metrics {dict(metrics)} do not fit {pos} same-writer and {neg} different-writer pairs")
    return np.array([[tn, neg - tn], [pos - tp, tp]], dtype=np.int64)

