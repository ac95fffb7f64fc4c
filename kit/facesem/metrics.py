"""Detection metrics of arXiv:2405.08487: image-level AUC and ACC of P(fake), and the video-level AUC of its
cross-dataset tests (a video's score is the mean fake probability over its frames; the authors sample 32 frames)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["image_metrics", "video_scores", "video_auc"]


def _check(p_fake: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(p_fake, float).ravel(), np.asarray(labels).astype(int).ravel()
    if p.shape != y.shape or len(p) == 0:
        raise ValueError(f"p_fake and labels must be non-empty and of one length, got {p.shape} and {y.shape}")
    if not np.isfinite(p).all() or not np.isin(y, (0, 1)).all():
        raise ValueError("p_fake must be finite and labels 0 (real) / 1 (fake)")
    return p, y


def image_metrics(p_fake: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    """{"auc", "acc"} of per-image P(fake) against 0/1 labels (AUC None when one class only)."""
    p, y = _check(p_fake, labels)
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return {"auc": auc, "acc": float(((p >= threshold) == y).mean())}


def video_scores(p_fake: np.ndarray, labels: np.ndarray, videos: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(video ids, mean P(fake) per video, label per video) of frame scores; a video's frames must share a label."""
    p, y = _check(p_fake, labels)
    v = np.asarray(videos)
    if v.shape != p.shape:
        raise ValueError(f"videos must name each frame's video, got {v.shape} for {p.shape} frames")
    ids, inv = np.unique(v, return_inverse=True)
    score = np.bincount(inv, weights=p) / np.bincount(inv)
    lab_max = np.zeros(len(ids), int)
    lab_min = np.ones(len(ids), int)
    np.maximum.at(lab_max, inv, y)
    np.minimum.at(lab_min, inv, y)
    if (lab_max != lab_min).any():
        raise ValueError(f"video {ids[np.argmax(lab_max != lab_min)]!r} mixes real and fake frames")
    return ids, score, lab_max


def video_auc(p_fake: np.ndarray, labels: np.ndarray, videos: np.ndarray) -> float | None:
    """AUC over videos of the mean frame P(fake) (None when the videos hold one class only)."""
    _, score, lab = video_scores(p_fake, labels, videos)
    return float(roc_auc_score(lab, score)) if len(np.unique(lab)) == 2 else None
