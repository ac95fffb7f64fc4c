"""Evaluation of text-image inconsistency localisation and detection (D-TIIL, arXiv:2404.18033).

D-TIIL is judged on three things per image-caption pair, reported separately for the image-edited, text-edited and
consistent subsets of TIIL (the region metrics and the word rule are ``[PROPOSED]`` here: the paper's tables were
not readable, so the metric set follows its captions "Comparison of text-image inconsistency localization" and
"Comparison of detection"):

- **region**: :func:`mask_iou` and :func:`mask_f1` (Dice) of the predicted mask against the ground-truth mask, both
  bool [H, W], with the convention that two empty masks agree perfectly (1.0); :func:`pixel_auc`, the ROC AUC of the
  float inconsistency map over every pixel, which needs no threshold (NaN when the ground truth holds one class);
  :func:`false_positive_area`, the fraction of the image flagged, for consistent pairs (where any flag is wrong).
- **word**: :func:`word_hit`, whether the predicted caption run contains the ground-truth word, both compared after
  :func:`normalize_word` (spaCy's lemma when ``en_core_web_sm`` loads, else a small rule: lowercase, strip
  punctuation, drop a plural ``-s`` / ``-es``).
- **detection**: the method outputs a consistency score r in [0, 100] (higher = more consistent), so the
  inconsistency score is ``100 - r``; :func:`detection_metrics` gives its ROC AUC against labels (1 = inconsistent)
  and, at a threshold (r < threshold means "inconsistent"), accuracy, F1 (inconsistent = positive class) and
  balanced accuracy; :func:`fit_threshold` picks that threshold on a validation split.

:func:`summarize` averages per-pair rows by subset (NaN-aware) into a table for metrics.json.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "mask_iou",
    "mask_f1",
    "pixel_auc",
    "false_positive_area",
    "normalize_word",
    "word_hit",
    "detection_metrics",
    "fit_threshold",
    "summarize",
]

SPACY_MODEL = "en_core_web_sm"


# ---------------------------------------------------------------- region


def _as_mask(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a bool [H, W] array; 0/1 integer or float arrays are accepted, anything else raises."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-d mask [H, W], got shape {a.shape}")
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf" or not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must be a bool mask [H, W] (or hold only 0 and 1), got dtype {a.dtype}; "
                         "binarize a float map first")
    return a.astype(bool)


def _pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    p, g = _as_mask(pred, "pred"), _as_mask(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have one shape, got {p.shape} (pred) and {g.shape} (gt)")
    return p, g


def mask_iou(pred: Any, gt: Any) -> float:
    """Return the intersection over union |pred and gt| / |pred or gt| of two bool masks [H, W]; 1.0 when both are
    empty (nothing to find and nothing flagged is a perfect answer), 0.0 when exactly one is."""
    p, g = _pair(pred, gt)
    union = int(np.logical_or(p, g).sum())
    return 1.0 if union == 0 else int(np.logical_and(p, g).sum()) / union


def mask_f1(pred: Any, gt: Any) -> float:
    """Return the pixel F1 (Dice) 2 |pred and gt| / (|pred| + |gt|) of two bool masks [H, W]; 1.0 when both are
    empty, 0.0 when exactly one is."""
    p, g = _pair(pred, gt)
    total = int(p.sum()) + int(g.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(p, g).sum()) / total


def pixel_auc(heatmap: Any, gt: Any) -> float:
    """Return the ROC AUC of the float map ``heatmap`` [H, W] (higher = more likely inconsistent) as a classifier of
    the pixels of the bool mask ``gt`` [H, W] (sklearn's ``roc_auc_score``: ties count one half). NaN when ``gt`` is
    all True or all False, where the AUC is undefined (e.g. every consistent pair)."""
    from sklearn.metrics import roc_auc_score

    if hasattr(heatmap, "detach"):
        heatmap = heatmap.detach().cpu().numpy()
    h = np.asarray(heatmap)
    g = _as_mask(gt, "gt")
    if h.ndim != 2 or h.dtype.kind not in "iuf":
        raise ValueError(f"heatmap must be a real 2-d map [H, W], got shape {h.shape} dtype {h.dtype}")
    if h.shape != g.shape:
        raise ValueError(f"heatmap and gt must have one shape, got {h.shape} (heatmap) and {g.shape} (gt)")
    if not np.isfinite(h).all():
        raise ValueError("heatmap holds NaN or infinite values")
    if g.all() or not g.any():
        return math.nan
    return float(roc_auc_score(g.ravel(), h.astype(np.float64).ravel()))


def false_positive_area(pred: Any) -> float:
    """Return the fraction of the image that the bool mask ``pred`` [H, W] flags, the error on a consistent pair."""
    p = _as_mask(pred, "pred")
    if p.size == 0:
        raise ValueError("pred is an empty [0, 0] mask")
    return float(p.mean())


# ---------------------------------------------------------------- word


@functools.lru_cache(maxsize=1)
def _spacy_nlp():
    """Return spaCy's ``en_core_web_sm`` pipeline (parser and NER disabled), or None when it does not load."""
    try:
        import spacy

        return spacy.load(SPACY_MODEL, disable=["parser", "ner"])
    except (ImportError, OSError):
        return None


_STRIP = string.punctuation + "\u2018\u2019\u201c\u201d"
_ES_ENDINGS = ("sses", "shes", "ches", "xes", "zzes")


def _rule_lemma(w: str) -> str:
    """The fallback lemma: lowercase, drop punctuation, then one plural ending: ``-ies`` -> ``-y`` (words of 5+
    letters), ``-sses``/``-shes``/``-ches``/``-xes``/``-zzes`` -> drop ``-es``, else a final ``-s`` is dropped from
    words of 4+ letters not ending in ``-ss``/``-us``/``-is`` ("circles" -> "circle", "crosses" -> "cross",
    "boxes" -> "box", "berries" -> "berry"; "cross", "bus", "this" stay)."""
    w = "".join(c for c in w.lower() if c not in _STRIP)
    if len(w) >= 5 and w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith(_ES_ENDINGS):
        return w[:-2]
    if len(w) >= 4 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def normalize_word(w: str, *, use_spacy: bool | None = None) -> str:
    """Return the comparison form of one word: spaCy's lemma (lowercased, punctuation dropped) when ``use_spacy``
    is True or None and ``en_core_web_sm`` loads, otherwise the rule of :func:`_rule_lemma` (lowercase, strip
    punctuation, drop a plural ``-s``/``-es``). ``use_spacy=True`` raises when the spaCy model is missing."""
    if not isinstance(w, str):
        raise ValueError(f"w must be a string, got {type(w).__name__}")
    if use_spacy is not False:
        nlp = _spacy_nlp()
        if nlp is None and use_spacy:
            raise ValueError(f"use_spacy=True but spaCy's {SPACY_MODEL} does not load (pip install spacy and "
                             f"python -m spacy download {SPACY_MODEL})")
        if nlp is not None:
            doc = nlp(w.strip())
            lemma = " ".join(t.lemma_ for t in doc if not t.is_punct)
            return "".join(c for c in lemma.lower() if c not in _STRIP)
    return _rule_lemma(w.strip())


def _words(x: str | Sequence[str], name: str) -> list[str]:
    if isinstance(x, str):
        return x.split()
    if not isinstance(x, Sequence) or not all(isinstance(w, str) for w in x):
        raise ValueError(f"{name} must be a string or a sequence of strings, got {type(x).__name__}")
    return [part for w in x for part in w.split()]


def word_hit(predicted_run_words: str | Sequence[str], gt_word: str, *, use_spacy: bool | None = None) -> bool:
    """Return whether the predicted caption run contains the ground-truth word, compared by :func:`normalize_word`;
    a multi-word ``gt_word`` ("left of") is a hit only when every one of its words is in the run. The run is a
    string (split on whitespace) or a sequence of words; an empty run is a miss. Words that normalise to nothing
    (punctuation) are ignored on both sides."""
    run = {n for n in (normalize_word(w, use_spacy=use_spacy) for w in _words(predicted_run_words,
                                                                               "predicted_run_words")) if n}
    if not isinstance(gt_word, str):
        raise ValueError(f"gt_word must be a string, got {type(gt_word).__name__}")
    gt = [n for n in (normalize_word(w, use_spacy=use_spacy) for w in gt_word.split()) if n]
    if not gt:
        raise ValueError(f"gt_word must hold at least one word, got {gt_word!r}")
    return all(g in run for g in gt)


# ---------------------------------------------------------------- detection


def _detection_inputs(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and labels must be 1-d, got shapes {s.shape} and {y.shape}")
    if len(s) != len(y):
        raise ValueError(f"scores and labels must have one length, got {len(s)} and {len(y)}")
    if len(s) == 0:
        raise ValueError("scores and labels are empty")
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 100:
        raise ValueError(f"scores must be consistency scores in [0, 100], got range [{s.min()}, {s.max()}]")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (consistent) or 1 (inconsistent), got values {np.unique(y)[:5]}")
    return s, y.astype(np.int64)


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Return the mean over the classes present in ``y`` of the fraction of that class predicted right."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def detection_metrics(scores: Any, labels: Any, threshold: float | None = None) -> dict[str, float]:
    """Return detection metrics of consistency scores ``scores`` [N] in [0, 100] against ``labels`` [N]
    (1 = inconsistent, 0 = consistent).

    Always: ``auc``, the ROC AUC of the inconsistency score ``100 - r`` (NaN when ``labels`` hold one class), ``n``
    and ``n_inconsistent``. With a ``threshold`` (a pair is called inconsistent when r < threshold) also
    ``threshold``, ``accuracy``, ``f1`` (inconsistent = positive; 0 when nothing is predicted or labelled positive)
    and ``balanced_accuracy`` (the mean of the per-class recalls over the classes present).
    """
    from sklearn.metrics import f1_score, roc_auc_score

    s, y = _detection_inputs(scores, labels)
    out: dict[str, float] = {"n": float(len(y)), "n_inconsistent": float(y.sum())}
    out["auc"] = float(roc_auc_score(y, 100.0 - s)) if 0 < y.sum() < len(y) else math.nan
    if threshold is not None:
        t = float(threshold)
        if not math.isfinite(t):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
        pred = (s < t).astype(np.int64)
        out["threshold"] = t
        out["accuracy"] = float(np.mean(pred == y))
        out["f1"] = float(f1_score(y, pred, zero_division=0))
        out["balanced_accuracy"] = _balanced_accuracy(y, pred)
    return out


def fit_threshold(scores: Any, labels: Any) -> float:
    """Return the threshold (r < threshold = inconsistent) that maximises balanced accuracy on a validation split.

    Candidates: the smallest score (nothing flagged), the midpoints between consecutive distinct scores, and the
    float just above the largest score (everything flagged). Ties: the smallest maximising threshold, i.e. the one
    that flags the fewest pairs. Both classes must be present.
    """
    s, y = _detection_inputs(scores, labels)
    if y.min() == y.max():
        raise ValueError("fit_threshold needs both consistent (0) and inconsistent (1) labels")
    u = np.unique(s)
    candidates = np.concatenate([[u[0]], (u[:-1] + u[1:]) / 2.0, [np.nextafter(u[-1], np.inf)]])
    best = [_balanced_accuracy(y, (s < t).astype(np.int64)) for t in candidates]
    return float(candidates[int(np.argmax(best))])  # argmax: the first (smallest) maximiser


# ---------------------------------------------------------------- tables


def _number(value: Any) -> float | None:
    """Return ``value`` as a float when it is a real number or bool (None -> NaN), else None (not a metric)."""
    if value is None:
        return math.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None


def summarize(rows: Iterable[Mapping[str, Any]], *, overall: bool = True) -> dict[str, dict[str, float]]:
    """Return ``{subset: {"n": count, metric: mean, ...}}`` over per-pair rows, for a table and metrics.json.

    Each row is a mapping with a ``"subset"`` ("text", "image", "consistent", ...) and numeric metrics (``iou``,
    ``f1``, ``pixel_auc``, ``word_hit``, ``fp_area``, ``score``...; bools count as 0/1). Means ignore NaN and
    None (a metric undefined for that pair, e.g. IoU of a consistent pair); a metric with no defined value in a
    subset is NaN there. Non-numeric fields (ids, captions) are skipped. Subsets keep their first-seen order;
    ``overall`` adds an ``"all"`` entry over every row.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: nothing to summarise")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or "subset" not in row:
            raise ValueError(f"rows[{i}] must be a mapping with a 'subset' key, got {row!r}")
        if not isinstance(row["subset"], str):
            raise ValueError(f"rows[{i}]['subset'] must be a string, got {row['subset']!r}")
        groups.setdefault(row["subset"], []).append(row)
    if overall:
        if "all" in groups:
            raise ValueError("a subset is named 'all', which overall=True reserves; pass overall=False")
        groups["all"] = rows
    keys = list(dict.fromkeys(k for row in rows for k, v in row.items() if k != "subset" and _number(v) is not None))
    table: dict[str, dict[str, float]] = {}
    for name, members in groups.items():
        entry: dict[str, float] = {"n": float(len(members))}
        for k in keys:
            vals = np.array([_number(r.get(k)) for r in members if _number(r.get(k)) is not None], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            entry[k] = float(vals.mean()) if len(vals) else math.nan
        table[name] = entry
    return table
