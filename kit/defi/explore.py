"""What the DeFI-Net notebooks and views show (arXiv:2408.02191), computed without drawing:

- "inpaint it yourself": a crop of a bundled photo, a mask placed by the learner (strokes, a box or a disc at a
  centre and radius) and a classical fill (:func:`place_mask`, :func:`inpaint_yourself`);
- one image opened up (:func:`explain`): the probability and edge maps, REAM's reverse map r, SAFF's per-pixel
  weights (the share of the high-level source), the DFPL energy per level, the SRM residual the model sees and
  the training-free Laplacian floor;
- a map binarised at any threshold under either protocol's conventions (:func:`overlay_scores`), its ROC / PR
  curves and operating point (:func:`curves`, :func:`operating_point`), the ground-truth edge band
  (:func:`edge_band`, :func:`edge_scores`);
- tables: test items by fill (:func:`pick_items`), models side by side (:func:`compare_models`), per-fill rows
  (:func:`fill_rows`), useless maps for the inflation demo (:func:`random_maps`), the committed study
  (:func:`committed_study`) and :func:`markdown_table`.

Nothing here draws: ``widgets/defi.py`` turns these into figures.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kit.core.tables import markdown_table  # noqa: F401  (re-exported: the notebooks import it from here)
from kit.data.inpainting import inpaint, photo_split, random_crop
from kit.defi.baselines import laplacian_energy_map
from kit.defi.blocks import FixedResidual
from kit.defi.losses import edge_target
from kit.defi.metrics import official_scores, roc_pr_curves, standard_scores, threshold_scores

__all__ = ["MASK_KINDS", "LEVELS", "Inpainted", "place_mask", "inpaint_yourself", "Explanation", "explain",
           "residual_magnitude", "binarise", "OverlayScores", "overlay_scores", "operating_point", "curves",
           "pixel_auc", "edge_band", "edge_scores", "Item", "pick_items", "compare_models", "fill_rows", "random_maps",
           "committed_study", "markdown_table", "held_out_photos"]

MASK_KINDS = ("strokes", "box", "disc")
LEVELS = ("low1 (1/1)", "low2 (1/2)", "mid (1/4)", "high (1/8)")


# ------------------------------------------------------------------------------------------ inpaint it yourself
@functools.lru_cache(maxsize=32)
def _crop(photo: str, size: int, crop_seed: int) -> np.ndarray:
    crop = random_crop(photo, size, np.random.default_rng(crop_seed))
    crop.flags.writeable = False
    return crop


def held_out_photos() -> tuple[str, ...]:
    """Return the test photos of :func:`kit.data.inpainting.photo_split` (never seen in training)."""
    return photo_split()["test"]


def place_mask(kind: str, size: int, center: tuple[int, int] | None = None, radius: int | None = None,
               seed: int = 0) -> np.ndarray:
    """Return a mask bool [size, size] of ``kind`` centred at ``center`` = (x, y) pixels (None: the middle).

    "box": a square of side 2 * radius + 1; "disc": the pixels within ``radius``; "strokes": DeepFill-v2-style
    free-form strokes (:func:`kit.data.inpainting.free_form_mask`, drawn from ``seed``, covering 15-45 % of it) in
    a window of side 2 * radius. Parts outside the image are cut. ``radius`` (None: size // 5) lies in [3, size // 2 - 1], so the
    mask never covers the whole image.
    """
    from kit.data.inpainting import free_form_mask

    if kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {kind!r}")
    if not isinstance(size, int | np.integer) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    r = size // 5 if radius is None else int(radius)
    if not 3 <= r <= size // 2 - 1:
        raise ValueError(f"radius must be in [3, {size // 2 - 1}] for size {size}, got {radius!r}")
    cx, cy = (size // 2, size // 2) if center is None else (int(center[0]), int(center[1]))
    if not (0 <= cx < size and 0 <= cy < size):
        raise ValueError(f"center must be (x, y) inside the {size} x {size} image, got {center!r}")
    if kind == "disc":
        yy, xx = np.mgrid[:size, :size]
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    mask = np.zeros((size, size), bool)
    if kind == "box":
        mask[max(0, cy - r):cy + r + 1, max(0, cx - r):cx + r + 1] = True
        return mask
    window = free_form_mask(2 * r, 2 * r, np.random.default_rng(seed), area=(0.15, 0.45))
    top, left = cy - r, cx - r
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(size, top + 2 * r), min(size, left + 2 * r)
    mask[y0:y1, x0:x1] = window[y0 - top:y1 - top, x0 - left:x1 - left]
    return mask


@dataclass(frozen=True)
class Inpainted:
    """A crop ``original`` uint8 [S, S, 3], the ``mask`` bool [S, S] and the filled ``image`` uint8 [S, S, 3]
    (identical to ``original`` outside the mask); ``seconds``: the time the fill took."""

    image: np.ndarray
    original: np.ndarray
    mask: np.ndarray
    photo: str
    fill: str
    seconds: float


def inpaint_yourself(photo: str, fill: str, mask_kind: str = "strokes", size: int = 128, seed: int = 0,
                     center: tuple[int, int] | None = None, radius: int | None = None,
                     crop_seed: int = 0) -> Inpainted:
    """Return an :class:`Inpainted` [size, size]: the crop of ``photo`` drawn from ``crop_seed``, the mask of
    :func:`place_mask` and the ``fill`` ("telea", "ns", "biharmonic", "patch"; the patch fill is seeded by
    ``seed``). Crops are cached, so moving the mask recomputes only the mask and the fill."""
    original = _crop(photo, int(size), int(crop_seed))
    mask = place_mask(mask_kind, int(size), center, radius, seed)
    t0 = time.perf_counter()
    image = inpaint(original, mask, fill, rng=int(seed))
    return Inpainted(image, original, mask, photo, fill, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ one image opened up
@dataclass(frozen=True)
class Explanation:
    """Every map of DeFI-Net on one image [H, W]; ``energy``: the DFPL outputs' mean squared activation per
    level (:data:`LEVELS`)."""

    prob: np.ndarray  # [H, W] the inpainting probability (sigmoid of the mask logits)
    edge: np.ndarray  # [H, W] the edge probability (sigmoid of REAM's edge logits)
    reverse: np.ndarray  # [H, W] REAM's r = 1 - s: where the mid level does not fire
    saff_weights: np.ndarray  # [2, 2, H, W] SAFF's w: (map k, source: high, low/mid)
    high_share: np.ndarray  # [H, W] |w_high| / (|w_high| + |w_low/mid|), mean over the two maps
    energy: dict[str, float]
    residual: np.ndarray  # [3, H, W] the SRM residuals of the luminance (what the srm input filter adds)
    floor: np.ndarray  # [H, W] the Laplacian-energy floor's suspicion map

    @property
    def high_fraction(self) -> float:
        """Return the fraction of pixels where SAFF weighs the high-level source more than the low/mid one."""
        return float((self.high_share > 0.5).mean())


def _check_image(image: Any) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be uint8 RGB [H, W, 3], got dtype {a.dtype} and shape {a.shape}")
    return a


@torch.no_grad()
def explain(model: torch.nn.Module, image: np.ndarray) -> Explanation:
    """Return the :class:`Explanation` of ``model`` (a DeFINet, run at the image's size in eval mode) on one
    uint8 RGB image [H, W, 3]."""
    a = _check_image(image)
    model.eval()
    device = next(model.parameters()).device
    x = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float().div_(255.0)
    out = model.forward_maps(x.to(device))
    w = out.saff_weights[0].float().cpu().numpy()
    mag = np.abs(w)
    share = (mag[:, 0] / np.maximum(mag[:, 0] + mag[:, 1], 1e-12)).mean(0)
    residual = FixedResidual("srm")(x)[0].numpy()
    return Explanation(
        prob=torch.sigmoid(out.mask_logits[0, 0]).float().cpu().numpy(),
        edge=torch.sigmoid(out.edge_logits[0, 0]).float().cpu().numpy(),
        reverse=out.reverse[0, 0].float().cpu().numpy(), saff_weights=w, high_share=share.astype(np.float32),
        energy={k: float(e[0]) for k, e in zip(LEVELS, out.energy)}, residual=residual,
        floor=laplacian_energy_map(a))


def residual_magnitude(residual: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Return the mean |residual| over the kernels of ``residual`` [K, H, W], scaled to [0, 1] by its
    ``percentile`` (clipped above): a display of where the image holds fine texture and noise."""
    r = np.abs(np.asarray(residual, np.float64))
    if r.ndim != 3:
        raise ValueError(f"residual must be [K, H, W], got shape {r.shape}")
    m = r.mean(0)
    top = float(np.percentile(m, percentile))
    return np.clip(m / top, 0, 1).astype(np.float32) if top > 0 else np.zeros_like(m, np.float32)


# ------------------------------------------------------------------------------------------ thresholds, curves
def _minmax(p: np.ndarray) -> np.ndarray:
    lo, hi = float(p.min()), float(p.max())
    return np.zeros_like(p) if hi == lo else (p - lo) / (hi - lo)


def binarise(prob: np.ndarray, threshold: float, minmax: bool = False) -> np.ndarray:
    """Return the flagged pixels bool [H, W]: ``prob`` [H, W] above ``threshold``, after min-max normalising it
    when ``minmax`` (the official protocol's step; a constant map flags nothing)."""
    p = np.asarray(prob, np.float64)
    return (_minmax(p) if minmax else p) > float(threshold)


@dataclass(frozen=True)
class OverlayScores:
    """One map binarised at ``threshold`` under the chosen conventions: its scores, the ``flagged`` pixels
    bool [H, W], and ``standard``: the standard protocol's numbers (raw map, inpainted-class F1) at the same
    threshold, to show what the toggles add."""

    threshold: float
    minmax: bool
    macro: bool
    precision: float
    recall: float
    f1: float
    iou: float
    flagged: np.ndarray
    standard: dict[str, float]


def overlay_scores(prob: np.ndarray, mask: np.ndarray, threshold: float, minmax: bool = False,
                   macro: bool = False) -> OverlayScores:
    """Return the :class:`OverlayScores` of ``prob`` [H, W] against ``mask`` [H, W]
    (:func:`kit.defi.metrics.threshold_scores`)."""
    s = threshold_scores(prob, mask, threshold, minmax=minmax, macro=macro)
    std = threshold_scores(prob, mask, threshold)
    return OverlayScores(float(threshold), bool(minmax), bool(macro), s["precision"], s["recall"], s["f1"],
                         s["iou"], binarise(prob, threshold, minmax), std)


def operating_point(prob: np.ndarray, mask: np.ndarray, threshold: float, minmax: bool = False) -> dict:
    """Return {"fpr", "tpr", "precision", "recall"} of ``prob`` [H, W] flagged above ``threshold`` (after min-max
    normalisation when ``minmax``): the point on the ROC / PR curves that the threshold picks (precision 1 when
    nothing is flagged, where sklearn's PR curve ends)."""
    pred = binarise(prob, threshold, minmax)
    m = np.asarray(mask, bool)
    tp = int(np.count_nonzero(pred & m))
    fp = int(np.count_nonzero(pred & ~m))
    pos, neg = int(m.sum()), int(m.size - m.sum())
    flagged = tp + fp
    recall = tp / pos if pos else 0.0
    return {"fpr": fp / neg if neg else 0.0, "tpr": recall, "recall": recall,
            "precision": tp / flagged if flagged else 1.0}


def _thin(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def curves(prob: np.ndarray, mask: np.ndarray, max_points: int = 400) -> dict:
    """Return the ROC (``fpr``, ``tpr``) and PR (``recall``, ``precision``) curves of ``prob`` [H, W] against
    ``mask`` [H, W] (both classes needed), each thinned to at most ``max_points`` points, with ``auc``, ``ap``
    (average precision) and ``base_rate`` (the inpainted fraction: a chance PR curve)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    c = roc_pr_curves(prob, mask)
    m = np.asarray(mask, bool).ravel()
    p = np.asarray(prob, np.float64).ravel()
    r, q = _thin(len(c["fpr"]), max_points), _thin(len(c["recall"]), max_points)
    return {"fpr": c["fpr"][r], "tpr": c["tpr"][r], "recall": c["recall"][q], "precision": c["precision"][q],
            "auc": float(roc_auc_score(m, p)), "ap": float(average_precision_score(m, p)),
            "base_rate": float(m.mean())}


def pixel_auc(prob: np.ndarray, mask: np.ndarray) -> float:
    """Return the pixel ROC AUC of ``prob`` [H, W] against ``mask`` [H, W]; NaN when the mask holds one class."""
    from sklearn.metrics import roc_auc_score

    m = np.asarray(mask, bool)
    if m.all() or not m.any():
        return math.nan
    return float(roc_auc_score(m.ravel(), np.asarray(prob, np.float64).ravel()))


def edge_band(mask: np.ndarray) -> np.ndarray:
    """Return the ground-truth edge band bool [H, W] of ``mask`` [H, W]: mask AND NOT erode(mask, 5 x 5), the
    target of DeFI-Net's edge branch (:func:`kit.defi.losses.edge_target`)."""
    m = torch.from_numpy(np.asarray(mask, np.float32))
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {tuple(m.shape)}")
    return edge_target(m[None, None])[0, 0].numpy() > 0.5


def edge_scores(edge: np.ndarray, band: np.ndarray) -> dict[str, float]:
    """Return {"auc", "inside", "outside"}: the pixel AUC of the edge map [H, W] against the band [H, W] (NaN
    without band pixels) and the mean edge probability inside and outside the band."""
    e, b = np.asarray(edge, np.float64), np.asarray(band, bool)
    if e.shape != b.shape:
        raise ValueError(f"edge and band must have one shape, got {e.shape} and {b.shape}")
    return {"auc": pixel_auc(e, b),
            "inside": float(e[b].mean()) if b.any() else math.nan,
            "outside": float(e[~b].mean()) if not b.all() else math.nan}


# ------------------------------------------------------------------------------------------ tables
@dataclass(frozen=True)
class Item:
    """One test image uint8 [H, W, 3], its mask bool [H, W], its fill and a title."""

    image: np.ndarray
    mask: np.ndarray
    fill: str
    title: str


def pick_items(data: Any, per_fill: int = 1, unseen: Sequence[str] = ()) -> list[Item]:
    """Return the first ``per_fill`` manipulated test items of each fill of ``data`` (a
    :class:`kit.defi.experiment.DeFIData`), fills in first-seen order; fills in ``unseen`` are titled so."""
    if per_fill < 1:
        raise ValueError(f"per_fill must be >= 1, got {per_fill}")
    taken: dict[str, int] = {}
    out = []
    for i, (im, m, f) in enumerate(zip(data.test_images, data.test_masks, data.test_fills)):
        if not np.asarray(m).any() or taken.get(f, 0) >= per_fill:
            continue
        taken[f] = taken.get(f, 0) + 1
        label = f"{f} (unseen)" if f in unseen else f
        out.append(Item(im, np.asarray(m, bool), f, f"#{i} {label}, {np.mean(m):.0%} inpainted"))
    if not out:
        raise ValueError("data holds no manipulated test image")
    return out


def compare_models(models: Mapping[str, torch.nn.Module], images: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """Return one row per model: the standard protocol's AUC, F1, IoU and oracle F1 and the official
    protocol's AUC and F1 of its maps (:func:`kit.defi.experiment.predict_maps`) on ``images``."""
    from kit.defi.experiment import predict_maps

    rows = []
    for name, model in models.items():
        probs = predict_maps(model, images)
        s, o = standard_scores(probs, masks), official_scores(probs, masks)
        rows.append({"model": name, "AUC": s["auc"], "F1": s["f1"], "IoU": s["iou"], "oracle F1": s["oracle_f1"],
                     "official AUC": o["auc"], "official F1": o["f1"]})
    return rows


def fill_rows(result: Mapping[str, Any], protocol: str = "standard") -> list[dict[str, Any]]:
    """Return one row per (detector, fill) of :func:`kit.defi.experiment.evaluate`'s ``result`` under
    ``protocol``: {"detector", "fill", "unseen", "auc", "f1", "iou"}; the pooled "all" group included."""
    if protocol not in ("standard", "official"):
        raise ValueError(f"protocol must be 'standard' or 'official', got {protocol!r}")
    unseen = set(result.get("unseen_fills", ()))
    return [{"detector": det, "fill": fill, "unseen": fill in unseen, "auc": float(s["auc"]), "f1": float(s["f1"]),
             "iou": float(s["iou"])}
            for det, by_fill in result[protocol].items() for fill, s in by_fill.items()]


def random_maps(masks: Sequence[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Return one uniform-noise map [H, W] in [0, 1) per mask: a detector that knows nothing (chance AUC)."""
    rng = np.random.default_rng(seed)
    return [rng.random(np.asarray(m).shape) for m in masks]


def committed_study() -> dict[str, Any] | None:
    """Return ``results.json`` of the committed model (its evaluation on the larger test set, how it was
    trained), or None while the committed files are a placeholder or hold no evaluation."""
    from kit.defi.assets import committed_results

    try:
        res = committed_results()
    except FileNotFoundError:
        return None
    if res.get("placeholder") or "evaluation" not in res:
        return None
    return res
