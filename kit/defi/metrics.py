"""Pixel-level scores of inpainting localisation maps, under two protocols, for DeFI-Net (arXiv:2408.02191).

Inputs are per-image probability maps [H, W] (float in [0, 1], higher = more likely inpainted) and
ground-truth masks [H, W] (bool, True = inpainted; 0/1 arrays are accepted), as numpy arrays or torch tensors;
a data set is a list of them (images may differ in size) or a stacked [N, H, W] array.

Two protocols, always reported side by side and labelled by the ``"protocol"`` key of their result:

- **official** (:func:`official_scores`), the DeFI-Net authors' evaluation code (arXiv:2408.02191): per image
  the map is min-max normalised, the AUC is taken on its pixels (0 for an image whose mask holds one class,
  which still counts in the mean), the normalised map is binarised at 0.5 and scored by *macro* F1 (the mean
  of the authentic-class and inpainted-class F1, sklearn's ``f1_score(average="macro")``) and the
  inpainted-class IoU; every score is averaged over all images.
- **standard** (:func:`standard_scores`), the forensic convention of IMDLBenCo (scu-zjz/IMDLBenCo): the *raw*
  probabilities are binarised at a fixed threshold and scored by the *inpainted-class* F1 and IoU, averaged
  over the manipulated images only (a perfect answer on an authentic image has no positive class to score);
  authentic images are counted apart and given their false-positive rate.

Both protocols report values in [0, 1]; the paper's tables are x100. Min-max scaling (a map that never exceeds
0.1 still flags half the image) and macro-F1 (the large authentic class scores ~0.9 for free) both inflate the
official numbers: :func:`protocol_inflation` puts the four combinations beside each other, and
:func:`threshold_scores` gives the live numbers of one image with the two toggles.

Binarisation is strict everywhere: a pixel is called inpainted when its score is *above* the threshold
(IMDLBenCo's ``predict > threshold``). F1 and IoU come from numpy confusion counts; they equal sklearn's
``f1_score`` / ``jaccard_score`` with ``zero_division=0`` (the tests check this). AUCs and curves are
sklearn's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "PROTOCOLS",
    "official_scores",
    "standard_scores",
    "threshold_scores",
    "roc_pr_curves",
    "protocol_inflation",
    "per_method",
]

PROTOCOLS = ("standard", "official")


# ---------------------------------------------------------------- inputs


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_prob(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a float64 [H, W] map of values in [0, 1]; anything else raises, naming ``name``."""
    a = _numpy(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a probability map [H, W], got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1], got range [{lo:g}, {hi:g}]; apply a "
                         "sigmoid to logits first")
    return a


def _as_mask(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a bool [H, W] mask (True = inpainted); 0/1 numbers are accepted, others raise."""
    a = _numpy(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a mask [H, W], got shape {a.shape}")
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf" or not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must be a bool mask [H, W] (or hold only 0 and 1), got dtype {a.dtype}")
    return a.astype(bool)


def _pair(prob: Any, mask: Any, names: tuple[str, str] = ("prob", "mask")) -> tuple[np.ndarray, np.ndarray]:
    p, m = _as_prob(prob, names[0]), _as_mask(mask, names[1])
    if p.shape != m.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one shape, got {p.shape} ({names[0]}) and "
                         f"{m.shape} ({names[1]})")
    return p, m


def _as_list(x: Any, name: str) -> list[Any]:
    if hasattr(x, "detach") or isinstance(x, np.ndarray):
        a = _numpy(x)
        if a.ndim == 3:
            return list(a)
        raise ValueError(f"{name} must be a list of [H, W] maps or a stacked [N, H, W] array, got an array "
                         f"of shape {a.shape}" + ("; wrap a single image in a list" if a.ndim == 2 else ""))
    if isinstance(x, str | bytes) or not isinstance(x, Sequence):
        raise ValueError(f"{name} must be a list of [H, W] maps, got {type(x).__name__}")
    return list(x)


def _dataset(probs: Any, masks: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the validated (prob float64 [H, W], mask bool [H, W]) pairs of a data set."""
    ps, ms = _as_list(probs, "probs"), _as_list(masks, "masks")
    if len(ps) != len(ms):
        raise ValueError(f"probs and masks must have one length, got {len(ps)} and {len(ms)}")
    if not ps:
        raise ValueError("probs and masks are empty: nothing to score")
    return [_pair(p, m, (f"probs[{i}]", f"masks[{i}]")) for i, (p, m) in enumerate(zip(ps, ms))]


def _threshold(t: Any) -> float:
    t = float(t)
    if not math.isfinite(t):
        raise ValueError(f"threshold must be finite, got {t!r}")
    return t


# ---------------------------------------------------------------- per-image arithmetic


def _minmax(p: np.ndarray) -> np.ndarray:
    """Return (p - min) / (max - min) [H, W]; a constant map becomes all zeros."""
    lo, hi = p.min(), p.max()
    return np.zeros_like(p) if hi == lo else (p - lo) / (hi - lo)


def _counts(pred: np.ndarray, m: np.ndarray) -> tuple[int, int, int, int]:
    """Return (TP, FP, FN, TN) of the inpainted class for bool [H, W] prediction and mask."""
    tp = int(np.count_nonzero(pred & m))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(m)) - tp
    return tp, fp, fn, m.size - tp - fp - fn


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _class_scores(tp: int, fp: int, fn: int) -> tuple[float, float, float, float]:
    """Return precision, recall, F1, IoU of one class from its counts, each 0 when its denominator is 0."""
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return precision, recall, _ratio(2 * tp, 2 * tp + fp + fn), _ratio(tp, tp + fp + fn)


def _scores(pred: np.ndarray, m: np.ndarray, macro: bool) -> dict[str, float]:
    """Return precision, recall, F1 (inpainted class, or macro over the classes present in mask or prediction,
    as sklearn's ``average="macro"`` does) and the inpainted-class IoU (0 when mask and prediction are both
    empty)."""
    tp, fp, fn, tn = _counts(pred, m)
    pos = _class_scores(tp, fp, fn)
    out = dict(zip(("precision", "recall", "f1"), pos[:3]))
    if macro:
        neg = _class_scores(tn, fn, fp)  # the authentic class: its TP are the true negatives
        present = [s for s, here in ((pos, tp + fp + fn > 0), (neg, tn + fp + fn > 0)) if here]
        keys = ("precision", "recall", "f1")
        out = {k: float(np.mean([s[j] for s in present])) for j, k in enumerate(keys)}
    out["iou"] = pos[3]
    return out


def _auc(p: np.ndarray, m: np.ndarray) -> float:
    """Return sklearn's ROC AUC of the map's pixels, or NaN when the mask holds one class."""
    from sklearn.metrics import roc_auc_score

    if m.all() or not m.any():
        return math.nan
    return float(roc_auc_score(m.ravel(), p.ravel()))


def _oracle_f1(p: np.ndarray, m: np.ndarray) -> float:
    """Return the best inpainted-class F1 over all thresholds, from sklearn's precision-recall curve."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(m.ravel(), p.ravel())
    s = precision + recall
    f1 = np.divide(2 * precision * recall, s, out=np.zeros_like(s), where=s > 0)
    return float(f1.max())


def _mean(values: list[float]) -> float:
    """Return the mean of the defined (non-NaN) values; NaN when none is defined."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else math.nan


# ---------------------------------------------------------------- protocols


def official_scores(probs: Any, masks: Any) -> dict[str, Any]:
    """Return the authors' scores ``{"protocol": "official", "auc", "f1", "iou", "n_images"}`` in [0, 1] of
    maps [H, W] against masks [H, W] (arXiv:2408.02191, official evaluation code; the paper shows x100).

    Per image: the map is min-max normalised (a constant map becomes zeros); ``auc`` is sklearn's
    ``roc_auc_score`` on the pixels, 0 where the mask holds a single class (such images still count in the
    mean); the normalised map is binarised above 0.5; ``f1`` is sklearn's
    ``f1_score(average="macro", zero_division=0)``, the mean F1 of the classes present in mask or prediction
    (both classes on a manipulated image; an authentic image predicted all authentic scores 1); ``iou`` is
    TP / (TP + FP + FN) of the inpainted class, 0 when the union is empty (an authentic image predicted all
    authentic scores 0). Each is averaged over all images, with no threshold search.
    """
    pairs = _dataset(probs, masks)
    auc, f1, iou = [], [], []
    for p, m in pairs:
        pn = _minmax(p)
        a = _auc(pn, m)
        auc.append(0.0 if math.isnan(a) else a)
        s = _scores(pn > 0.5, m, macro=True)
        f1.append(s["f1"])
        iou.append(s["iou"])
    return {"protocol": "official", "auc": float(np.mean(auc)), "f1": float(np.mean(f1)),
            "iou": float(np.mean(iou)), "n_images": len(pairs)}


def standard_scores(probs: Any, masks: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Return the standard (IMDLBenCo) forensic scores in [0, 1] of raw maps [H, W] against masks [H, W].

    Keys: ``protocol`` ("standard"), ``threshold``; over the manipulated images (mask not empty): ``f1`` and
    ``iou`` of the inpainted class with pixels above ``threshold`` called inpainted, ``auc`` the mean
    per-image pixel ROC AUC (images whose mask is all inpainted have none and are left out of it),
    ``oracle_f1`` the mean of each image's best F1 over all thresholds (an upper bound: no fixed threshold beats
    it); ``auc_pooled``, the pixel AUC over every pixel of every image, authentic ones included (exact:
    it holds all pixels in memory); ``authentic_fpr``, the mean over authentic images (empty mask) of the
    fraction of pixels flagged; ``n_images``, ``n_manipulated``, ``n_authentic``. A score with no image to
    average over (no manipulated or no authentic image; one class overall for ``auc_pooled``) is NaN. Unlike
    :func:`official_scores`, nothing is min-max normalised and F1 is not macro-averaged. The paper's tables
    are x100.
    """
    t = _threshold(threshold)
    pairs = _dataset(probs, masks)
    f1, iou, auc, oracle, fpr = [], [], [], [], []
    for p, m in pairs:
        pred = p > t
        if m.any():
            s = _scores(pred, m, macro=False)
            f1.append(s["f1"])
            iou.append(s["iou"])
            auc.append(_auc(p, m))
            oracle.append(_oracle_f1(p, m))
        else:
            fpr.append(float(np.count_nonzero(pred)) / pred.size)
    all_p = np.concatenate([p.ravel() for p, _ in pairs])
    all_m = np.concatenate([m.ravel() for _, m in pairs])
    return {"protocol": "standard", "threshold": t, "f1": _mean(f1), "iou": _mean(iou), "auc": _mean(auc),
            "auc_pooled": _auc(all_p, all_m), "oracle_f1": _mean(oracle), "authentic_fpr": _mean(fpr),
            "n_images": len(pairs), "n_manipulated": len(f1), "n_authentic": len(fpr)}


# ---------------------------------------------------------------- one image, for widgets


def threshold_scores(prob: Any, mask: Any, threshold: float, minmax: bool = False,
                     macro: bool = False) -> dict[str, float]:
    """Return ``{"precision", "recall", "f1", "iou"}`` of one map [H, W] binarised above ``threshold`` against
    its mask [H, W]: the widget's live numbers.

    ``minmax`` first min-max normalises the map as the official protocol does (a constant map becomes zeros);
    ``macro`` averages precision, recall and F1 over the classes present in mask or prediction (sklearn's
    ``average="macro"``) instead of scoring the inpainted class. ``iou`` is always the inpainted class's, as
    in both protocols (0 when mask and prediction are both empty); other empty denominators give 0.
    """
    t = _threshold(threshold)
    p, m = _pair(prob, mask)
    if minmax:
        p = _minmax(p)
    return _scores(p > t, m, macro=bool(macro))


def roc_pr_curves(prob: Any, mask: Any) -> dict[str, np.ndarray]:
    """Return sklearn's ROC curve (``fpr``, ``tpr``, ``roc_thresholds`` [K]) and precision-recall curve
    (``precision``, ``recall`` [J], ``pr_thresholds`` [J - 1]) of one map [H, W] against its mask [H, W].

    sklearn calls a pixel positive when its score is >= the threshold; ``roc_thresholds[0]`` is +inf (nothing
    flagged). The mask must hold both classes.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    p, m = _pair(prob, mask)
    if m.all() or not m.any():
        raise ValueError("mask holds a single class: ROC and PR curves need inpainted and authentic pixels")
    fpr, tpr, roc_t = roc_curve(m.ravel(), p.ravel())
    precision, recall, pr_t = precision_recall_curve(m.ravel(), p.ravel())
    return {"fpr": fpr, "tpr": tpr, "roc_thresholds": roc_t, "precision": precision, "recall": recall,
            "pr_thresholds": pr_t}


# ---------------------------------------------------------------- comparisons


def protocol_inflation(probs: Any, masks: Any, threshold: float = 0.5) -> dict[str, float]:
    """Return the mean F1 over manipulated images of the same maps [H, W] under {raw, min-max normalised} x
    {inpainted-class, macro} F1 at ``threshold``: ``raw_positive_f1`` (the standard protocol),
    ``raw_macro_f1``, ``minmax_positive_f1``, ``minmax_macro_f1`` (the official one, arXiv:2408.02191), with
    ``auc`` (mean per-image pixel AUC, unchanged by min-max) and ``n_manipulated``.

    A useless map shows the inflation: noise scores chance AUC and a small positive F1, yet ~0.45 macro F1,
    since the large authentic class is mostly called authentic; min-max lifts a low-confidence map over the
    threshold.
    """
    t = _threshold(threshold)
    rows = []
    for p, m in _dataset(probs, masks):
        if not m.any():
            continue
        pn = _minmax(p)
        rows.append([_scores(p > t, m, False)["f1"], _scores(p > t, m, True)["f1"],
                     _scores(pn > t, m, False)["f1"], _scores(pn > t, m, True)["f1"], _auc(p, m)])
    if not rows:
        raise ValueError("no manipulated image (every mask is empty): nothing to compare")
    r = np.asarray(rows, dtype=np.float64)
    out = dict(zip(("raw_positive_f1", "raw_macro_f1", "minmax_positive_f1", "minmax_macro_f1"),
                   (float(v) for v in r[:, :4].mean(axis=0))))
    out["auc"] = _mean(list(r[:, 4]))
    out["n_manipulated"] = len(rows)
    return out


def per_method(probs: Any, masks: Any, methods: Sequence[str], protocol: str = "standard",
               threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """Return ``{method: scores, ..., "all": scores}``: the images grouped by the fill method that made them
    (``methods`` [N], one name per image, e.g. "telea", "ns", "biharmonic", "authentic") and each group scored
    by :func:`standard_scores` (at ``threshold``) or :func:`official_scores`. Groups keep their first-seen
    order."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    pairs = _dataset(probs, masks)  # validated first, so errors name the index in the whole data set
    if isinstance(methods, str) or not isinstance(methods, Sequence):
        raise ValueError(f"methods must be a list of names, one per image, got {type(methods).__name__}")
    if len(methods) != len(pairs):
        raise ValueError(f"methods and probs must have one length, got {len(methods)} and {len(pairs)}")
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(methods):
        if not isinstance(name, str):
            raise ValueError(f"methods[{i}] must be a string, got {name!r}")
        if name == "all":
            raise ValueError("a method is named 'all', which per_method reserves for the whole data set")
        groups.setdefault(name, []).append(i)
    groups["all"] = list(range(len(methods)))

    def score(idx: list[int]) -> dict[str, Any]:
        p, m = [pairs[i][0] for i in idx], [pairs[i][1] for i in idx]
        return standard_scores(p, m, threshold) if protocol == "standard" else official_scores(p, m)

    return {name: score(idx) for name, idx in groups.items()}
