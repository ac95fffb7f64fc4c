"""Classification metrics for the 3-class CT task, and the numbers the NL-RAN paper reports.

The paper (arXiv:2408.04300) names AUC, precision and F1 [P] but its averaging could not be read. This module
computes every reasonable reading (spec §4) so a comparison can be made honestly:

- one-vs-rest AUC per class, their macro mean, and the micro AUC (one AUC over the flattened one-hot labels
  against the flattened probabilities);
- accuracy, precision / recall / F1 per class, macro (plain mean over classes) and weighted (by class support);
- the confusion matrix (rows: true class, columns: predicted class) and ROC curves (per class, micro, macro).

Deduction from the paper's numbers (spec §4): for single-label multiclass predictions, micro precision = micro
recall = micro F1 = accuracy. The paper's precision (0.9473) differs from its F1 (0.9462), so they are not micro
averages; macro or weighted are the likely readings.

Everything returned is plain Python (floats, ints, lists, dicts, None), so ``json.dumps`` works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score, roc_curve

from kit.nlran.phantom import CLASSES

PAPER: dict[str, float] = {"auc": 0.9903, "precision": 0.9473, "f1": 0.9462}
PAPER_SOURCE = ("Yang et al., 'An Explainable Non-local Network for COVID-19 Diagnosis', arXiv:2408.04300, "
                "abstract: NL-RAN test AUC 0.9903, precision 0.9473, F1 0.9462 on CC-CCII (4079 scans, 408 test). "
                "The averaging is not stated where we could read it; it is not micro (micro precision = micro F1 "
                "= accuracy, and the two numbers differ).")
# The paper says NL-RAN beats CovNet (COVNet), CBAM and ResNet "etc."; their numbers could not be read.
PAPER_BASELINES: dict[str, dict[str, float | None]] = {
    "COVNet": {"auc": None, "precision": None, "f1": None},  # TODO(paper)
    "CBAM": {"auc": None, "precision": None, "f1": None},  # TODO(paper)
    "ResNet": {"auc": None, "precision": None, "f1": None},  # TODO(paper)
}

REPORT_KEYS = ("auc_macro", "auc_micro", "accuracy", "precision_macro", "precision_weighted", "f1_macro",
               "f1_weighted")
"""The test numbers of a :func:`classification_report` that the series' tables and records keep."""


def _check_inputs(y_true: Any, probs: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray,
                                                                                         list[str]]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1D [N] class indices, got shape {y.shape}")
    if p.ndim != 2:
        raise ValueError(f"probs must be 2D [N, K], got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} labels but probs has {p.shape[0]} rows")
    n, k = p.shape
    if n == 0:
        raise ValueError("y_true and probs are empty")
    if k < 2:
        raise ValueError(f"probs needs at least 2 classes (columns), got {k}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y_true must be in [0, {k - 1}] (probs has {k} columns), got min {y.min()} max {y.max()}")
    if not np.isfinite(p).all():
        raise ValueError("probs contains NaN or infinite values")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs rows must be probabilities summing to 1 (apply softmax to logits first)")
    names = [f"class {i}" for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names but probs has {k} columns")
    return y.astype(np.int64), p, names


def _roc(y_bin: np.ndarray, score: np.ndarray) -> dict[str, list[float]]:
    fpr, tpr, _ = roc_curve(y_bin, score)
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def classification_report(y_true: Any, probs: Any, class_names: Sequence[str] | None = CLASSES) -> dict[str, Any]:
    """All test metrics of a K-class classifier.

    Args:
        y_true: true class indices [N] (ints in [0, K)).
        probs: predicted class probabilities [N, K] (rows sum to 1); the prediction is the argmax.
        class_names: K names (default ``kit.nlran.phantom.CLASSES``: NCP, CP, Normal); None = "class 0", ....

    Returns:
        A JSON-able dict:

        - ``n``, ``class_names``, ``support`` (true count per class), ``accuracy``;
        - ``auc_macro`` (mean of the one-vs-rest AUCs over ``auc_classes``), ``auc_micro``, ``auc_per_class``
          (name -> AUC, or None when undefined), ``auc_classes`` (names averaged in ``auc_macro``) and
          ``auc_skipped`` (names left out: a class absent from ``y_true``, or present in every sample, has no
          one-vs-rest AUC; it is skipped rather than made NaN) [C] our choice;
        - ``precision_macro`` / ``recall_macro`` / ``f1_macro``, the same ``_weighted`` (weights = support), and
          ``precision_per_class`` / ``recall_per_class`` / ``f1_per_class`` (name -> float); computed over all K
          classes with ``zero_division=0`` (sklearn's convention with explicit labels: an undefined ratio counts 0);
        - ``confusion_matrix``: K lists of K ints, rows true class, columns predicted class;
        - ``roc``: name -> {"fpr": [...], "tpr": [...]} (sklearn ``roc_curve``; None for skipped classes), plus
          "micro" (flattened one-hot vs flattened probs) and "macro" (the mean of the per-class TPRs interpolated
          on the union of their FPRs; its area is close to, not equal to, ``auc_macro``).

        When every class is present, ``auc_macro`` equals ``roc_auc_score(y, probs, multi_class="ovr")``.
        Bad shapes, labels out of range, non-probability rows, or a ``y_true`` holding a single class (no AUC is
        defined then) raise ValueError.
    """
    y, p, names = _check_inputs(y_true, probs, class_names)
    n, k = p.shape
    onehot = np.eye(k, dtype=np.int64)[y]
    pred = p.argmax(axis=1)
    support = onehot.sum(axis=0)

    auc_per_class: dict[str, float | None] = {}
    roc: dict[str, Any] = {}
    used: list[int] = []
    for c in range(k):
        if 0 < support[c] < n:
            auc_per_class[names[c]] = float(roc_auc_score(onehot[:, c], p[:, c]))
            roc[names[c]] = _roc(onehot[:, c], p[:, c])
            used.append(c)
        else:
            auc_per_class[names[c]] = None
            roc[names[c]] = None
    auc_micro = float(roc_auc_score(onehot.ravel(), p.ravel()))
    roc["micro"] = _roc(onehot.ravel(), p.ravel())
    if used:
        grid = np.unique(np.concatenate([roc[names[c]]["fpr"] for c in used]))
        mean_tpr = np.mean([np.interp(grid, roc[names[c]]["fpr"], roc[names[c]]["tpr"]) for c in used], axis=0)
        roc["macro"] = {"fpr": [float(v) for v in grid], "tpr": [float(v) for v in mean_tpr]}
    else:
        raise ValueError(f"y_true holds a single class ({names[int(y[0])]!r}): no one-vs-rest AUC is defined")
    auc_macro = float(np.mean([auc_per_class[names[c]] for c in used]))

    labels = list(range(k))
    out: dict[str, Any] = {
        "n": int(n),
        "class_names": names,
        "support": [int(s) for s in support],
        "accuracy": float(np.mean(pred == y)),
        "auc_macro": auc_macro,
        "auc_micro": auc_micro,
        "auc_per_class": auc_per_class,
        "auc_classes": [names[c] for c in used],
        "auc_skipped": [names[c] for c in range(k) if c not in used],
    }
    for avg in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(pr), float(rc), float(f1)
    pr, rc, f1, _ = precision_recall_fscore_support(y, pred, labels=labels, average=None, zero_division=0)
    out["precision_per_class"] = {names[c]: float(pr[c]) for c in range(k)}
    out["recall_per_class"] = {names[c]: float(rc[c]) for c in range(k)}
    out["f1_per_class"] = {names[c]: float(f1[c]) for c in range(k)}
    out["confusion_matrix"] = [[int(v) for v in row] for row in confusion_matrix(y, pred, labels=labels)]
    out["roc"] = roc
    return out


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def paper_table_markdown(ours: dict[str, Any] | None = None) -> str:
    """A markdown table of the paper's reported numbers next to ours.

    Args:
        ours: None (paper rows only); one :func:`classification_report` dict (shown as rows "ours"); or
            label -> report for several models (e.g. {"NL-RAN (phantoms)": rep, "ResNet-18 (phantoms)": rep2}).
            Each report gives two rows: macro precision / F1 and weighted precision / F1 (both with the macro AUC),
            because the paper's averaging is unknown.

    Returns:
        The table as a string; the paper's baselines are blank (numbers unknown, ``TODO(paper)``).
    """
    lines = ["| Model | AUC | Precision | F1 | Averaging | Source |", "|---|---|---|---|---|---|",
             f"| NL-RAN | {_fmt(PAPER['auc'])} | {_fmt(PAPER['precision'])} | {_fmt(PAPER['f1'])} "
             f"| unknown (not micro) | paper, CC-CCII test |"]
    for name, vals in PAPER_BASELINES.items():
        lines.append(f"| {name} | {_fmt(vals['auc'])} | {_fmt(vals['precision'])} | {_fmt(vals['f1'])} "
                     f"| unknown | paper (numbers not readable) |")
    if ours is None:
        return "\n".join(lines)
    if not isinstance(ours, dict):
        raise ValueError(f"ours must be a classification_report dict or label -> report, got {type(ours).__name__}")
    reports = {"ours": ours} if "auc_macro" in ours else ours
    for label, rep in reports.items():
        if not isinstance(rep, dict) or "auc_macro" not in rep:
            raise ValueError(f"ours[{label!r}] is not a classification_report dict (no 'auc_macro')")
        for avg in ("macro", "weighted"):
            lines.append(f"| {label} | {_fmt(rep['auc_macro'])} | {_fmt(rep[f'precision_{avg}'])} "
                         f"| {_fmt(rep[f'f1_{avg}'])} | AUC macro OvR, P/F1 {avg} | this run |")
    return "\n".join(lines)
