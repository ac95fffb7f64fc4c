"""What the D-TIIL notebooks and views show, computed from a :class:`kit.dtiil.localize.LocalizeResult` or from the
rows of :func:`kit.dtiil.experiment.evaluate` (arXiv:2404.18033):

- the word scorer by name (:func:`build_word_scorer`: the ShapesWorld scorer, the oracle or CLIP);
- the caption with each run shaded by its score, the predicted run marked and the GT word underlined
  (:func:`caption_segments`, :func:`caption_html`);
- the mask re-binarised at any threshold and its agreement with the GT mask (:func:`region_readout`), a mask's
  outline (:func:`mask_outline`);
- the step strip I | D1 | M1 | I_edit | D_f | M | crop (:func:`step_strip`), the per-seed maps d_k against their mean
  (:func:`seed_map`, :func:`seed_agreement`), the token labels of the drift chart (:func:`token_labels`);
- dataset views: the ROC of the consistency score (:func:`roc_points`), the worst cases (:func:`worst_cases`) and the
  table of D-TIIL beside its baselines per subset (:func:`comparison_rows`, :func:`markdown_table`);
- ShapesWorld-TIIL written in the TIIL layout and read back (:func:`export_shapes_tiil`, :func:`tiil_round_trip`).

Nothing here draws: ``widgets/dtiil.py`` turns these into figures.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kit.dtiil import metrics
from kit.dtiil.localize import LocalizeResult, upsample

__all__ = ["WORD_SCORERS", "build_word_scorer", "CaptionSegment", "caption_segments", "caption_html",
           "predicted_index", "RegionReadout", "region_readout", "mask_outline", "StepPanel", "step_strip", "seed_map",
           "seed_agreement", "token_labels", "running_mean", "roc_points", "operating_point", "worst_cases", "METHODS", "COLUMNS", "comparison_rows", "subset_detection",
           "markdown_table", "export_shapes_tiil", "tiil_round_trip"]

WORD_SCORERS = ("shapes", "oracle", "clip")
_TOKEN_RE = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]|\s+")


# ------------------------------------------------------------------------------------------------ word scorer
def build_word_scorer(name: str, *, resolution: int = 32, clip_model: str = "openai/clip-vit-base-patch32",
                      device: str = "cpu"):
    """Return the image-text scorer called ``name``: "shapes" (the committed ShapesWorld scorer,
    :func:`kit.dtiil.scorer.load_shapes_scorer`), "oracle" (:class:`kit.dtiil.words.OracleScorer` on a
    ``resolution`` canvas, an oracle, not a learned model) or "clip" (:class:`kit.dtiil.words.ClipScorer` of
    ``clip_model``, the paper's CLIP ViT-B/32; downloads when not cached)."""
    if name == "shapes":
        from kit.dtiil.scorer import load_shapes_scorer

        return load_shapes_scorer(device=device)
    if name == "oracle":
        from kit.dtiil.words import OracleScorer

        return OracleScorer(canvas=int(resolution))
    if name == "clip":
        from kit.dtiil.words import ClipScorer

        return ClipScorer(clip_model, device=device)
    raise ValueError(f"word scorer must be one of {WORD_SCORERS}, got {name!r}")


# ------------------------------------------------------------------------------------------------ caption
@dataclass(frozen=True)
class CaptionSegment:
    """A piece of the caption: a token or the whitespace between tokens. ``run``: the index of the caption run it
    belongs to (None outside runs); ``shade``: that run's score min-max normalised over the runs (0..1; 0 outside
    runs); ``predicted``: in the predicted run; ``gt``: the token is the ground-truth word (lemma match)."""

    text: str
    run: int | None
    shade: float
    predicted: bool
    gt: bool


def predicted_index(run_scores: Sequence[float]) -> int | None:
    """Return the index of the best run (ties: the first, as :func:`kit.dtiil.words.predict_run`), None without
    scores."""
    s = np.asarray(run_scores, dtype=np.float64).ravel()
    return int(s.argmax()) if s.size else None


def _run_spans(caption: str, runs: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans [start, end) of each run in ``caption``, found word by word left to right."""
    spans, cursor = [], 0
    for r in runs:
        start = None
        for w in r.split():
            pattern = (r"(?<!\w)" if w[:1].isalnum() else "") + re.escape(w) + (r"(?!\w)" if w[-1:].isalnum() else "")
            m = re.compile(pattern).search(caption, cursor)
            if m is None:
                raise ValueError(f"run {r!r} is not in the caption {caption!r} (after character {cursor})")
            start = m.start() if start is None else start
            cursor = m.end()
        if start is None:
            raise ValueError(f"run {r!r} holds no word")
        spans.append((start, cursor))
    return spans


def caption_segments(caption: str, runs: Sequence[str] | None = None, scores: Sequence[float] | None = None,
                     predicted: int | None = None, gt_word: str | None = None) -> list[CaptionSegment]:
    """Return the caption cut into :class:`CaptionSegment` s (their texts concatenate to ``caption``).

    ``runs``: the run texts (``LocalizeResult.runs``; None: :func:`kit.dtiil.words.caption_runs` of the caption);
    ``scores``: one per run (``LocalizeResult.run_scores``; None: no shading); ``predicted``: the predicted run's
    index (None: the best score's); ``gt_word``: every caption token whose normalised form
    (:func:`kit.dtiil.metrics.normalize_word`) is one of its words is marked ``gt``."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"caption must be a non-empty string, got {caption!r}")
    if runs is None or len(runs) == 0:
        from kit.dtiil.words import caption_runs

        runs = [r.text for r in caption_runs(caption)]
    runs = list(runs)
    s = None if scores is None or len(scores) == 0 else np.asarray(scores, dtype=np.float64).ravel()
    if s is not None and len(s) != len(runs):
        raise ValueError(f"scores must hold one value per run ({len(runs)}), got {len(s)}")
    if predicted is None and s is not None:
        predicted = predicted_index(s)
    if predicted is not None and not 0 <= predicted < len(runs):
        raise ValueError(f"predicted must index the {len(runs)} runs, got {predicted}")
    if s is None:
        shades = np.zeros(len(runs))
    else:
        span = float(s.max() - s.min())
        shades = (s - s.min()) / span if span > 0 else np.ones(len(runs))
    spans = _run_spans(caption, runs)
    gt = set()
    if gt_word:
        gt = {metrics.normalize_word(w) for w in gt_word.split()} - {""}
    out = []
    for m in _TOKEN_RE.finditer(caption):
        text = m.group()
        run = next((i for i, (a, b) in enumerate(spans) if a <= m.start() and m.end() <= b), None)
        is_gt = bool(gt) and not text.isspace() and metrics.normalize_word(text) in gt
        out.append(CaptionSegment(text, run, float(shades[run]) if run is not None else 0.0,
                                  run is not None and run == predicted, is_gt))
    return out


def caption_html(caption: str, runs: Sequence[str] | None = None, scores: Sequence[float] | None = None,
                 predicted: int | None = None, gt_word: str | None = None) -> str:
    """Return the caption as HTML: each run on an orange background as strong as its score (its score in the
    tooltip), the predicted run in bold red with a red frame, the GT word underlined (:func:`caption_segments`)."""
    segs = caption_segments(caption, runs, scores, predicted, gt_word)
    s = None if scores is None or len(scores) == 0 else np.asarray(scores, dtype=np.float64).ravel()
    parts, open_run = [], None
    for seg in segs:   # whitespace inside a run carries the run's index, so a run is one span
        if seg.run != open_run and open_run is not None:
            parts.append("</span>")
            open_run = None
        if seg.run is not None and seg.run != open_run:
            style = f"background:rgba(255,140,0,{0.15 + 0.6 * seg.shade:.2f});padding:1px 3px;border-radius:3px"
            if seg.predicted:
                style += ";color:#c00;font-weight:bold;border:2px solid #c00"
            tip = f"run {seg.run}" + ("" if s is None else f": score {s[seg.run]:.3g}") + \
                (" (predicted)" if seg.predicted else "")
            parts.append(f"<span class='kit-run{' kit-predicted' if seg.predicted else ''}' data-run='{seg.run}' "
                         f"title='{html.escape(tip)}' style='{style}'>")
            open_run = seg.run
        text = html.escape(seg.text)
        parts.append(f"<u class='kit-gt'>{text}</u>" if seg.gt else text)
    if open_run is not None:
        parts.append("</span>")
    return "<span class='kit-caption' style='font-size:1.1em'>" + "".join(parts) + "</span>"



# ------------------------------------------------------------------------------------------------ region
@dataclass(frozen=True)
class RegionReadout:
    """The mask of a heat map at threshold ``tau`` (bool [H, W]), the fraction of the image it flags (``area``)
    and, against a non-empty GT mask, its ``iou`` and ``f1`` (None without one: then ``area`` is the
    false-positive area)."""

    mask: np.ndarray
    tau: float
    area: float
    iou: float | None
    f1: float | None


def region_readout(result: LocalizeResult, tau: float, gt: np.ndarray | None = None, *,
                   first: bool = False) -> RegionReadout:
    """Return the :class:`RegionReadout` of the final (or ``first``) heat map re-binarised at ``tau``
    (:meth:`LocalizeResult.rebinarize`: the localiser's blur, threshold and resize) against ``gt`` bool [H, W]."""
    mask = result.rebinarize(float(tau), first=first)
    if gt is not None and np.asarray(gt).any():
        gt = np.asarray(gt, dtype=bool)
        if gt.shape != mask.shape:
            raise ValueError(f"gt must have the mask's shape {mask.shape}, got {gt.shape}")
        return RegionReadout(mask, float(tau), float(mask.mean()), metrics.mask_iou(mask, gt),
                             metrics.mask_f1(mask, gt))
    return RegionReadout(mask, float(tau), float(mask.mean()), None, None)


def mask_outline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the outline (xs, ys) of a bool mask [H, W] for one line trace: the iso-line 0.5 of the mask padded
    with zeros (skimage ``find_contours``), half-way between inside and outside pixel centres (at integers);
    loops separated by NaN. An empty mask gives two empty arrays."""
    from skimage.measure import find_contours

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {m.shape}")
    if not m.any():
        return np.zeros(0), np.zeros(0)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for c in find_contours(np.pad(m.astype(np.float64), 1), 0.5):
        ys += [c[:, 0] - 1.0, np.array([np.nan])]
        xs += [c[:, 1] - 1.0, np.array([np.nan])]
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1])


# ------------------------------------------------------------------------------------------------ steps and seeds
@dataclass(frozen=True)
class StepPanel:
    """One panel of the step strip: ``title``, ``kind`` ("image" uint8 [H, W, 3], "map" float [H, W] in [0, 1],
    "mask" bool [H, W]) and the ``data``."""

    title: str
    kind: str
    data: np.ndarray


def _taus(result: LocalizeResult) -> tuple[float, float]:
    from kit.dtiil.localize import LocalizeOptions

    o = result.options or LocalizeOptions()
    return o.tau1, o.tau2


def step_strip(result: LocalizeResult, image: Any, *, crop: bool = True) -> list[StepPanel]:
    """Return the panels I | D1 | M1 | I_edit | D_f | M (and, with ``crop``, the crop of I_edit at M's largest
    region that the word step scores), the pipeline's steps in order (module docstring of
    :mod:`kit.dtiil.localize`)."""
    from kit.dtiil.words import crop as crop_box
    from kit.dtiil.words import largest_region

    tau1, tau2 = _taus(result)
    img = np.asarray(image)[..., :3].astype(np.uint8)
    edited = np.asarray(result.edited_image)[..., :3].astype(np.uint8)
    panels = [StepPanel("I", "image", img), StepPanel("D1", "map", np.asarray(result.first_heatmap, np.float32)),
              StepPanel(f"M1 (τ1 {tau1:g})", "mask", np.asarray(result.first_mask, bool)),
              StepPanel("I_edit", "image", edited), StepPanel("D_f", "map", np.asarray(result.heatmap, np.float32)),
              StepPanel(f"M (τ2 {tau2:g})", "mask", np.asarray(result.mask, bool))]
    if crop:
        _, box = largest_region(result.mask)
        panels.append(StepPanel("crop for the words", "image", crop_box(edited, box)))
    return panels


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def seed_map(result: LocalizeResult, k: int | None = None) -> np.ndarray:
    """Return float32 [H, W] in [0, 1]: the final map's seed ``k`` map d_k (None: their mean, which is the final
    heat map), min-max normalised at the latent grid and upsampled bilinearly to the image, as the localiser
    does."""
    d = result.per_seed
    if d is None or np.asarray(d).ndim != 3:
        raise ValueError("result has no per-seed maps [n, h, w]")
    d = np.asarray(d, dtype=np.float32)
    if k is not None and (isinstance(k, bool) or not 0 <= int(k) < len(d)):
        raise ValueError(f"k must be None (the mean) or a seed index in [0, {len(d) - 1}], got {k!r}")
    m = d.mean(0) if k is None else d[int(k)]
    return upsample(_minmax(m), result.heatmap.shape)


def seed_agreement(result: LocalizeResult) -> np.ndarray:
    """Return float [n]: the Pearson correlation of each seed's map d_k with their mean (1: the seed alone gives
    the same map; NaN for a constant map)."""
    d = np.asarray(result.per_seed, dtype=np.float64)
    mean = d.mean(0).ravel()
    out = []
    for dk in d:
        a, b = dk.ravel() - dk.mean(), mean - mean.mean()
        den = math.sqrt(float(a @ a) * float(b @ b))
        out.append(float(a @ b) / den if den > 0 else math.nan)
    return np.array(out)


def token_labels(tokenizer, caption: str) -> tuple[list[str], int]:
    """Return (the token of each position of the padded sequence, the number of non-padding positions): the x
    labels of the per-token drift chart ``LocalizeResult.embed_drift``."""
    ids = tokenizer(caption, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True)["input_ids"]
    n = min(len(tokenizer(caption)["input_ids"]), tokenizer.model_max_length)
    return list(tokenizer.convert_ids_to_tokens(ids)), n


# ------------------------------------------------------------------------------------------------ dataset views
def _labels(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    s = np.array([r["score"] for r in rows], dtype=np.float64)
    y = np.array([r["subset"] != "consistent" for r in rows], dtype=int)
    return s, y


def roc_points(rows: Sequence[dict]) -> dict[str, Any]:
    """Return the ROC of the consistency score r over ``rows`` (inconsistent = positive, flagged when r is below
    the threshold): ``fpr``, ``tpr``, the r ``thresholds`` (flag r < threshold; the first flags nothing) and
    ``auc``. Both classes must be present."""
    from sklearn.metrics import roc_auc_score, roc_curve

    s, y = _labels(rows)
    if y.min() == y.max():
        raise ValueError("the ROC needs both consistent and inconsistent rows")
    fpr, tpr, thr = roc_curve(y, 100.0 - s)
    # roc_curve flags "inconsistency >= thr", i.e. r <= 100 - thr: the next float up keeps "r < threshold"; its
    # first threshold (inf: nothing flagged) becomes r < 0
    r_thr = np.where(np.isfinite(thr), np.nextafter(100.0 - thr, np.inf), 0.0)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": r_thr.tolist(),
            "auc": float(roc_auc_score(y, 100.0 - s))}


def worst_cases(rows: Sequence[dict], k: int = 4, metric: str = "iou") -> list[dict]:
    """Return the ``k`` rows worst on ``metric``: the lowest "iou" (or "f1", "pixel_auc") of the inconsistent
    rows, or the highest "fp_area" of the consistent ones; rows without the metric (or NaN) are skipped."""
    higher_is_worse = {"fp_area": True, "iou": False, "f1": False, "pixel_auc": False}
    if metric not in higher_is_worse:
        raise ValueError(f"metric must be one of {sorted(higher_is_worse)}, got {metric!r}")
    have = [r for r in rows if isinstance(r.get(metric), int | float) and not math.isnan(r[metric])]
    return sorted(have, key=lambda r: r[metric], reverse=higher_is_worse[metric])[:k]


def operating_point(rows: Sequence[dict], threshold: float) -> tuple[float, float]:
    """Return (false-positive rate, true-positive rate) of flagging r < ``threshold`` over ``rows``."""
    s, y = _labels(rows)
    flagged = s < float(threshold)
    fpr = float(flagged[y == 0].mean()) if (y == 0).any() else math.nan
    tpr = float(flagged[y == 1].mean()) if (y == 1).any() else math.nan
    return fpr, tpr


def running_mean(values: Sequence[float], window: int = 10) -> np.ndarray:
    """Return the trailing mean of ``values`` over up to ``window`` steps (the first steps average fewer)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)

# method label -> summary column of each metric (kit.dtiil.experiment.score_pair's keys)
METHODS: dict[str, dict[str, str]] = {
    "D-TIIL": {"iou": "iou", "f1": "f1", "pixel_auc": "pixel_auc", "word_acc": "word_hit", "fp_area": "fp_area",
               "score": "score"},
    "D-TIIL first mask M1": {"iou": "first_iou"},
    "random mask, predicted area": {"iou": "random_iou"},
    "saliency, whole object": {"iou": "saliency_iou", "fp_area": "saliency_fp_area"},
    "cross-attention of the words": {"iou": "cross_attention_iou", "pixel_auc": "cross_attention_auc",
                                     "fp_area": "cross_attention_fp_area"},
}
COLUMNS = ("iou", "f1", "pixel_auc", "word_acc", "fp_area", "score")


def comparison_rows(table: dict[str, dict[str, float]],
                    subsets: Sequence[str] = ("text", "image", "relation", "inconsistent", "consistent")
                    ) -> list[dict[str, Any]]:
    """Return the comparison table of D-TIIL and its baselines per subset from
    :func:`kit.dtiil.experiment.summary`: rows {subset, method, n, iou, f1, pixel_auc, word_acc, fp_area, score}
    (NaN where a method has no such number), a method only where it has one number in that subset
    ("inconsistent": TIIL pairs whose edited side is not given)."""
    out = []
    for subset in subsets:
        if subset not in table:
            continue
        entry = table[subset]
        for method, cols in METHODS.items():
            values = {c: float(entry.get(cols[c], math.nan)) if c in cols else math.nan for c in COLUMNS}
            if all(math.isnan(v) for v in values.values()):
                continue
            out.append({"subset": subset, "method": method, "n": int(entry.get("n", 0)), **values})
    return out


def subset_detection(rows: Sequence[dict], val_rows: Sequence[dict] | None = None) -> dict[str, dict[str, Any]]:
    """Return :func:`kit.dtiil.experiment.detection` over all rows ("all") and per inconsistent subset against the
    consistent rows ("text", "image"), the threshold always fitted on all of ``val_rows``."""
    from kit.dtiil.experiment import detection

    out = {"all": detection(rows, val_rows)}
    for subset in sorted({r["subset"] for r in rows} - {"consistent"}):
        sub = [r for r in rows if r["subset"] in (subset, "consistent")]
        if 0 < sum(r["subset"] == "consistent" for r in sub) < len(sub):
            d = dict(metrics.detection_metrics(*_labels(sub), threshold=out["all"]["threshold"]))
            d["threshold_fitted_on"] = out["all"]["threshold_fitted_on"]
            out[subset] = d
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Return ``rows`` (dicts) as a Markdown table of ``columns`` (default: the first row's keys); floats with 3
    decimals, NaN as a dash."""
    if not rows:
        raise ValueError("rows is empty")
    cols = list(columns or rows[0])
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    return head + "\n" + "\n".join("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows)


# ------------------------------------------------------------------------------------------------ ShapesWorld-TIIL
def export_shapes_tiil(root: str | Path, n: int, seed: int = 0, n_objects: tuple[int, int] = (1, 2),
                       resolution: int = 32) -> list:
    """Return the ``n`` ShapesWorld-TIIL pairs (:class:`kit.data.shapes_export.TIILPair`; the same pairs as
    :func:`kit.dtiil.experiment.shapes_pairs` with this ``seed``) after writing them under ``root`` in the TIIL
    layout (:func:`kit.data.shapes_export.export_tiil`: consistent.json, inconsistent.json, images/)."""
    from kit.data.shapes_export import export_tiil, make_tiil_pairs

    pairs = make_tiil_pairs(n, np.random.default_rng(seed), resolution, n_objects)
    export_tiil(pairs, root)
    return pairs


def tiil_round_trip(pairs: Sequence[Any], root: str | Path) -> dict[str, Any]:
    """Return how the TIIL files under ``root`` read back (:func:`kit.data.benchmarks.load_tiil`) against the
    exported ``pairs``: counts, and per field (image pixels, caption, consistency, word, mask, edited side) the
    number of pairs that match; ``ok`` when all do."""
    from PIL import Image

    from kit.data.benchmarks import load_tiil

    examples = load_tiil(root)
    written = [p for p in pairs if p.consistent] + [p for p in pairs if not p.consistent]   # load_tiil's order
    if len(examples) != len(written):
        raise ValueError(f"{root} holds {len(examples)} pairs, {len(written)} were exported")
    same = {k: 0 for k in ("image", "caption", "consistent", "word", "mask", "side")}
    for p, e in zip(written, examples):
        with Image.open(e.image_path) as im:
            same["image"] += int(np.array_equal(np.asarray(im.convert("RGB")), p.image))
        same["caption"] += int(e.caption == p.caption)
        same["consistent"] += int(e.consistent == p.consistent)
        same["word"] += int(e.ori_word == p.word)
        same["mask"] += int((e.mask is None and p.mask is None) or
                            (e.mask is not None and p.mask is not None and np.array_equal(e.mask, p.mask)))
        same["side"] += int(e.side == p.side)
    n = len(written)
    return {"n": n, "n_consistent": sum(p.consistent for p in written),
            "n_inconsistent": sum(not p.consistent for p in written), "matches": same,
            "ok": all(v == n for v in same.values())}
