"""The D-TIIL experiment: ShapesWorld-TIIL (or TIIL) pairs, the localiser and its baselines, scored per pair.

Pairs (:func:`shapes_pairs`, :class:`kit.data.shapes_export.TIILPair`) cycle consistent, text-side (a caption word
swapped: GT word = the new word, GT mask = that object), consistent, image-side (an object re-rendered: GT word = the
caption's word, GT mask = the old and new object). :func:`tiil_pairs` reads the real TIIL files into the same form.

:func:`evaluate` runs :func:`kit.dtiil.localize.localize` on each pair and records, per pair:

- region: IoU / F1 of the final mask (and of the first), pixel AUC of the final heat map against the GT mask;
- consistent pairs: the flagged area (false-positive area);
- words: whether the predicted caption run holds the GT word (on lemmas);
- detection: the consistency score r (the decision threshold is fitted on a separate validation split);
- baselines, at the same image: a random mask of the predicted mask's area (the same mask at a random place: the
  IoU averaged exactly over every cyclic placement), the most salient whole object of a text-free saliency map, and the cross-attention
  map of the caption's content words binarised like the final map (``tau2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kit.dtiil import metrics
from kit.dtiil.localize import LocalizeOptions, LocalizeResult, binarize, localize

__all__ = ["Pair", "SUBSETS", "shapes_pairs", "relation_pairs", "tiil_pairs", "evaluate", "score_pair", "summary", "detection",
           "BASELINES"]

SUBSETS = ("text", "image", "consistent", "relation")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
BASELINES = ("random", "saliency", "cross_attention")


@dataclass
class Pair:
    """One image-caption pair: ``image`` uint8 [H, W, 3], ``caption``, ``subset`` ("text" | "image" |
    "consistent"; "inconsistent" when TIIL does not say which side was edited), the GT ``word`` and ``mask``
    (bool [H, W]; None for consistent pairs), ``kind`` of edit (colour / shape / size where known) and ``id``."""

    image: np.ndarray
    caption: str
    subset: str
    word: str | None
    mask: np.ndarray | None
    kind: str | None = None
    id: str = ""


def shapes_pairs(n: int, seed: int = 0, n_objects: tuple[int, int] = (1, 2), resolution: int = 32) -> list[Pair]:
    """Return ``n`` ShapesWorld-TIIL pairs (consistent, text-side, consistent, image-side, ...) from ``seed``."""
    from kit.data.shapes_export import make_tiil_pairs

    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(make_tiil_pairs(n, rng, resolution, n_objects)):
        subset = "consistent" if p.consistent else p.side
        out.append(Pair(p.image, p.caption, subset, p.word, p.mask, p.edit.kind if p.edit is not None else None,
                        f"shapes/{seed}/{i}"))
    return out


def relation_pairs(n: int, seed: int = 0, resolution: int = 32) -> list[Pair]:
    """Return ``n`` text-side pairs whose caption swaps the relation of two objects ("left of" <-> "right of",
    "above" <-> "below"): subset "relation", GT word = the new relation's first word, GT mask = both objects (the
    relation is between them). D-TIIL's word step cannot name a relation (relation words are never a caption run),
    and the paper's reviewers expect predicates to be hard: these pairs measure where it fails."""
    from kit.data.shapes import caption, relation_of, render, sample_scene

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scene = sample_scene(rng, 2)
        rel = relation_of(scene.objects[0], scene.objects[1])
        image, masks = render(scene, resolution)
        text = caption(scene).replace(f" {rel} ", f" {OPPOSITE[rel]} ", 1)
        out.append(Pair(image, text, "relation", OPPOSITE[rel].split()[0], masks[0] | masks[1], "relation",
                        f"relation/{seed}/{i}"))
    return out


def tiil_pairs(root: str | Path, n: int | None = None) -> list[Pair]:
    """Return the pairs of a TIIL folder (``kit.data.benchmarks.load_tiil``), consistent and inconsistent
    interleaved so that a prefix of ``n`` holds both."""
    from PIL import Image

    from kit.data.benchmarks import load_tiil

    examples = load_tiil(root)
    cons = [e for e in examples if e.consistent]
    inc = [e for e in examples if not e.consistent]
    order = [e for pair in zip(cons, inc, strict=False) for e in pair]
    order += cons[len(inc):] + inc[len(cons):]
    out = []
    for e in order[:n]:
        with Image.open(e.image_path) as im:
            image = np.asarray(im.convert("RGB"))
        subset = "consistent" if e.consistent else (e.side or "inconsistent")
        out.append(Pair(image, e.caption, subset, e.ori_word, e.mask, None, e.id))
    return out


def score_pair(pair: Pair, result: LocalizeResult, *, tau: float, pipe=None, baselines: Sequence[str] = BASELINES,
               seed: int = 0) -> dict[str, Any]:
    """Return the row of one localised pair (module docstring); the baselines run here (cross-attention needs
    ``pipe``)."""
    from kit.dtiil import baselines as bl

    h, w = pair.image.shape[:2]
    gt = pair.mask if pair.mask is not None else np.zeros((h, w), bool)
    if gt.shape != (h, w):
        raise ValueError(f"pair {pair.id}: mask {gt.shape} and image {(h, w)} differ in size")
    row: dict[str, Any] = {"id": pair.id, "subset": pair.subset, "kind": pair.kind, "caption": pair.caption,
                           "word": pair.word, "score": result.score, "seconds": result.seconds,
                           "area": float(result.mask.mean()), "predicted_words": " ".join(result.words),
                           **{f"seconds_{k}": v for k, v in result.stage_seconds.items()}}
    inconsistent = pair.subset != "consistent"   # text, image, relation (or TIIL's unlabelled "inconsistent")
    if inconsistent:
        row.update(iou=metrics.mask_iou(result.mask, gt), f1=metrics.mask_f1(result.mask, gt),
                   first_iou=metrics.mask_iou(result.first_mask, gt), pixel_auc=metrics.pixel_auc(result.heatmap, gt),
                   word_hit=float(metrics.word_hit(result.words, pair.word)) if result.words and pair.word else np.nan)
    else:
        row.update(fp_area=metrics.false_positive_area(result.mask))
    if "random" in baselines and inconsistent:
        row["random_iou"] = bl.expected_random_iou(result.mask, gt, n=None)
    if "saliency" in baselines:
        sal = bl.saliency_object_mask(pair.image)
        row["saliency_iou" if inconsistent else "saliency_fp_area"] = (
            metrics.mask_iou(sal, gt) if inconsistent else metrics.false_positive_area(sal))
    if "cross_attention" in baselines and pipe is not None:
        cam = bl.cross_attention_map(pipe, pair.image, pair.caption, seed=seed)
        cmask = binarize(cam, tau)
        if inconsistent:
            row.update(cross_attention_iou=metrics.mask_iou(cmask, gt), cross_attention_auc=metrics.pixel_auc(cam, gt))
        else:
            row["cross_attention_fp_area"] = metrics.false_positive_area(cmask)
    return row


def evaluate(pipe, pairs: Sequence[Pair], *, seed: int = 0, options: LocalizeOptions | None = None,
             word_scorer: Callable | None = None, score_scorer: Callable | None = None, inpainter=None,
             baselines: Sequence[str] = BASELINES, keep: bool = False, progress: bool = True) -> list[dict]:
    """Return one row per pair (:func:`score_pair`); ``keep=True`` adds each :class:`LocalizeResult` as
    ``row["result"]`` (for galleries)."""
    opts = options or LocalizeOptions()
    bad = sorted(set(baselines) - set(BASELINES))
    if bad:
        raise ValueError(f"unknown baselines {bad}; valid: {BASELINES}")
    rows = []
    bar = {} if progress else {"disable": True}   # TQDM_DISABLE still applies
    for i, pair in enumerate(tqdm(pairs, desc="D-TIIL pairs", **bar)):
        res = localize(pipe, pair.image, pair.caption, seed=seed + i, word_scorer=word_scorer,
                       score_scorer=score_scorer, inpainter=inpainter, options=opts)
        row = score_pair(pair, res, tau=opts.tau2, pipe=pipe, baselines=baselines, seed=seed + i)
        if keep:
            row["result"] = res
        rows.append(row)
    return rows


def detection(rows: Sequence[dict], val_rows: Sequence[dict] | None = None) -> dict[str, float]:
    """Return the detection scores of the consistency r (inconsistent = positive; low r = inconsistent): AUC, and
    accuracy / F1 / balanced accuracy at the threshold fitted on ``val_rows`` (else on ``rows`` themselves, marked
    ``threshold_fitted_on="test"``)."""
    def split(rs):
        return np.array([r["score"] for r in rs], float), np.array([r["subset"] != "consistent" for r in rs], int)

    s, y = split(rows)
    fit_on = val_rows if val_rows else rows
    vs, vy = split(fit_on)
    thr = metrics.fit_threshold(vs, vy)
    out = dict(metrics.detection_metrics(s, y, threshold=thr))
    out.update(threshold=float(thr), threshold_fitted_on="validation" if val_rows else "test")
    return out


def summary(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Return per-subset means of every numeric column (NaN-aware) and the pair counts."""
    text = {k for r in rows for k, v in r.items() if isinstance(v, str) and k != "subset"} | {"result"}
    return metrics.summarize([{k: v for k, v in r.items() if k not in text} for r in rows])
