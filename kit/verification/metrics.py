"""Writer-verification metrics (accuracy, precision, recall, F1, AUC; positive = same writer), shared by the
handwriting series (arXiv:2407.21788, arXiv:2405.18320).

The authors' scripts compute precision and recall with the arguments swapped and average them per batch; here
every number is computed once over all pairs, with the true labels first.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def decisions_metrics(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{accuracy, precision, recall, f1} of 0/1 decisions ``pred`` [P] against ``labels`` [P] (1 = same writer).

    A score with an empty denominator (no predicted or no true positives) is 0.0, as sklearn's zero_division=0.
    """
    p, y = np.asarray(pred).astype(int).ravel(), np.asarray(labels).astype(int).ravel()
    if p.shape != y.shape or len(y) == 0:
        raise ValueError(f"pred and labels must be non-empty and of one length, got {p.shape} and {y.shape}")
    tp, fp, fn = int(((p == 1) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum()), int(((p == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float((p == y).mean()), "precision": precision, "recall": recall, "f1": f1}


def pair_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """{accuracy, precision, recall, f1, auc} of same-writer ``scores`` [P] decided at ``score >= threshold``
    (auc None when the labels hold one class only)."""
    s, y = np.asarray(scores, float).ravel(), np.asarray(labels).astype(int).ravel()
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    out = decisions_metrics(s >= threshold, y)
    out["auc"] = float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else None  # undefined on one class
    return out
