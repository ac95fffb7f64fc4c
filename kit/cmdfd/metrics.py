"""Video-level detection metrics of the CMDFD series, as the authors' ``evaluate_network`` reports them: ACC, F1,
balanced ACC, real and fake recall, ROC-AUC, EER and HTER = (FAR + FRR) / 2 at the predicted labels, with the
confusion counts (label 1 = fake, the positive class). The authors' W2L result (trained on FakeAVCeleb, tested on
CMDFD-Wav2Lip) is ``PAPER_W2L``."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

__all__ = ["video_metrics", "eer", "PAPER_W2L"]

# final/MTL_DDF/FAV/result_W2L.txt of the authors' repository (percent; counts)
PAPER_W2L = {"acc": 82.03, "f1": 84.73, "bacc": 82.05, "recall_real": 64.3, "recall_fake": 99.8, "auc": 96.81,
             "eer": 8.70, "hter": 17.95, "tn": 643, "fp": 357, "fn": 2, "tp": 996}


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, float).ravel(), np.asarray(labels).astype(int).ravel()
    if s.shape != y.shape or len(s) == 0:
        raise ValueError(f"scores and labels must be non-empty and of one length, got {s.shape} and {y.shape}")
    if not np.isfinite(s).all() or not np.isin(y, (0, 1)).all():
        raise ValueError("scores must be finite and labels 0 (real) / 1 (fake)")
    return s, y


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """The equal error rate: where the ROC's false-positive rate meets its false-negative rate (linearly
    interpolated between the two ROC points that bracket it)."""
    s, y = _check(scores, labels)
    if len(np.unique(y)) < 2:
        raise ValueError("the EER needs real and fake clips")
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    k = int(np.argmax(fnr <= fpr))  # first point where the curves have crossed
    if k == 0:
        return float(fpr[0])
    d0, d1 = fnr[k - 1] - fpr[k - 1], fnr[k] - fpr[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


def video_metrics(scores: np.ndarray, labels: np.ndarray, predictions: np.ndarray | None = None
                  ) -> dict[str, float | int | None]:
    """{"acc", "f1", "bacc", "recall_real", "recall_fake", "auc", "eer", "hter", "tn", "fp", "fn", "tp", "n"} of
    per-clip fake ``scores`` against 0/1 ``labels``; ``predictions`` default to score > 0 (the sign of the averaged
    fake-minus-real logit). Fractions in [0, 1]; AUC and EER None with one class."""
    s, y = _check(scores, labels)
    pred = (s > 0).astype(int) if predictions is None else np.asarray(predictions).astype(int).ravel()
    if pred.shape != y.shape:
        raise ValueError(f"predictions must have one entry per clip, got {pred.shape} for {y.shape}")
    tp, tn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 0) & (y == 0)).sum())
    fp, fn = int(((pred == 1) & (y == 0)).sum()), int(((pred == 0) & (y == 1)).sum())
    rec_real = tn / (tn + fp) if tn + fp else None
    rec_fake = tp / (tp + fn) if tp + fn else None
    both = len(np.unique(y)) == 2
    far = fp / (tn + fp) if tn + fp else 0.0
    frr = fn / (tp + fn) if tp + fn else 0.0
    return {"acc": float((pred == y).mean()), "f1": float(f1_score(y, pred, zero_division=0)),
            "bacc": float(np.mean([r for r in (rec_real, rec_fake) if r is not None])),
            "recall_real": rec_real, "recall_fake": rec_fake,
            "auc": float(roc_auc_score(y, s)) if both else None, "eer": eer(s, y) if both else None,
            "hter": (far + frr) / 2, "tn": tn, "fp": fp, "fn": fn, "tp": tp, "n": int(len(y))}
