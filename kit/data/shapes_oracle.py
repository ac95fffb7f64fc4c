"""An analytic ShapesWorld oracle: find the objects of an image and score how well it follows its prompt.

It stands in for the CLIP / VLM judges of aspect accuracy (MultiEdits, arXiv:2406.00985) where no pretrained
model is at hand. Detection: every pixel is read as the background blended with one palette colour,
``p = bg + alpha (c - bg)``; the colour with the smallest residual labels the pixel, which is foreground when
``alpha >= 0.5`` and the residual is small. Connected components per colour (8-connectivity, tiny ones
dropped) are the objects; ``alpha`` over a component and a two-pixel rim is a soft coverage whose sum is the
area and whose centroid is the centre (every ShapesWorld shape has its centroid at its centre). The shape is
the template of best soft IoU: each shape drawn at the detected centre with the radius that gives it the
detected area, sharp or blurred by ``TEMPLATE_BLURS`` (generated images are often soft). The size is the
nearer of the two radii (threshold at their geometric mean).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from kit.data.shapes import (
    BACKGROUND,
    COLOURS,
    RADII,
    SHAPE_AREA,
    SHAPES,
    parse_caption,
    relation_of,
    shape_coverage,
)

_PALETTE = np.asarray(list(COLOURS.values()), np.float32) - np.asarray(BACKGROUND, np.float32)   # [K, 3]
_NAMES = tuple(COLOURS)
SIZE_THRESHOLD = math.sqrt(RADII["small"] * RADII["big"])
MIN_AREA_FRACTION = 0.3 * SHAPE_AREA["triangle"] * RADII["small"] ** 2   # 30 % of the smallest object
TEMPLATE_BLURS = (0.0, 0.5, 1.0, 1.5)   # Gaussian blurs (pixels at 32x32) tried on each template
MAX_CANDIDATES = 8   # detections (largest first) that each named object may be matched to
ATTRIBUTES = ("colour", "shape", "size", "count", "relation", "all")


@dataclass(frozen=True, eq=False)
class DetectedObject:
    """One detected object: words, centre (cx, cy) in [0, 1], mask bool [H, W], template IoU ``score``.

    ``radius``: the bounding radius that gives the detected shape its measured ``area`` (image fraction).
    """

    colour: str
    shape: str
    size: str
    cx: float
    cy: float
    mask: np.ndarray
    score: float
    radius: float
    area: float


def to_hwc255(image) -> np.ndarray:
    """Return a float32 [H, W, 3] image in [0, 255] from uint8 [H, W, 3] or float [3, H, W] in [-1, 1]."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.dtype == np.uint8 and image.shape[-1] == 3:
        out = image.astype(np.float32)
    elif image.ndim == 3 and np.issubdtype(image.dtype, np.floating) and image.shape[0] == 3:
        if not np.isfinite(image).all():
            raise ValueError("image holds NaN or inf values")
        out = (image.transpose(1, 2, 0).astype(np.float32) + 1.0) * 127.5
    else:
        raise ValueError("image must be uint8 [H, W, 3] or float [3, H, W] in [-1, 1], "
                         f"got {image.dtype} {tuple(image.shape)}")
    if out.shape[0] != out.shape[1]:
        raise ValueError(f"image must be square, got {out.shape[0]}x{out.shape[1]}")
    return out


def segment_colours(image, max_residual: float = 60.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (colour index int [H, W], alpha float [H, W] in [0, 1], foreground bool [H, W]) of an image.

    Each pixel gets the palette colour whose background-to-colour segment passes closest to it (residual in
    0-255 units); it is foreground when its blend weight ``alpha >= 0.5`` and the residual is at most
    ``max_residual``.
    """
    d = to_hwc255(image) - np.asarray(BACKGROUND, np.float32)                   # [H, W, 3]
    norm2 = (_PALETTE ** 2).sum(1)                                                        # [K]
    alpha = np.clip(d @ _PALETTE.T / norm2, 0.0, 1.0)                                     # [H, W, K]
    resid2 = (d ** 2).sum(-1, keepdims=True) - 2 * alpha * (d @ _PALETTE.T) + alpha ** 2 * norm2
    label = resid2.argmin(-1)
    a = np.take_along_axis(alpha, label[..., None], -1)[..., 0]
    r = np.sqrt(np.maximum(np.take_along_axis(resid2, label[..., None], -1)[..., 0], 0.0))
    return label, a, (a >= 0.5) & (r <= max_residual)


@functools.lru_cache(maxsize=32)
def _blur_matrix(res: int, blur: float) -> np.ndarray:
    """Return the [res, res] matrix of a Gaussian blur of ``blur`` pixels at 32x32 (zero outside)."""
    i = np.arange(res, dtype=np.float32)
    k = np.exp(-0.5 * ((i[:, None] - i[None, :]) / (blur * res / 32)) ** 2)
    return k / k.sum(1, keepdims=True)


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-12))


def detect_objects(image, min_area: float | None = None, max_residual: float = 60.0) -> list[DetectedObject]:
    """Return the ``DetectedObject``s (largest first) of uint8 [H, W, 3] or float [3, H, W] in [-1, 1].

    ``min_area``: components with fewer pixels are dropped (default 30 % of the smallest ShapesWorld object).
    """
    label, alpha, fg = segment_colours(image, max_residual)
    res = label.shape[0]
    min_area = MIN_AREA_FRACTION * res * res if min_area is None else min_area
    grid = (np.arange(res) + 0.5) / res
    ring = np.ones((3, 3), bool)
    found = []
    for k in np.unique(label[fg]):
        comps, n = ndimage.label(fg & (label == k), structure=ring)
        for c in range(1, n + 1):
            mask = comps == c
            if mask.sum() < min_area:
                continue
            rim = ndimage.binary_dilation(mask, ring, iterations=2)
            soft = np.where(rim & (label == k), alpha, 0.0)
            mass = soft.sum()
            area = mass / (res * res)
            cx, cy = float((soft.sum(0) * grid).sum() / mass), float((soft.sum(1) * grid).sum() / mass)
            best = (-1.0, "", 0.0)
            for shape in SHAPES:
                radius = math.sqrt(area / SHAPE_AREA[shape])
                template = shape_coverage(shape, cx, cy, radius, res)
                for blur in TEMPLATE_BLURS:
                    t = _blur_matrix(res, blur) @ template @ _blur_matrix(res, blur).T if blur else template
                    best = max(best, (_soft_iou(t, soft), shape, radius))
            iou, shape, radius = best
            found.append(DetectedObject(_NAMES[k], shape, "big" if radius >= SIZE_THRESHOLD else "small",
                                        cx, cy, mask, iou, radius, float(area)))
    return sorted(found, key=lambda o: -o.area)


def _match(named: list, detected: list[DetectedObject], relation: str | None):
    """Return the best injective assignment named -> detected index or None (colour must agree)."""
    best, best_key = [None] * len(named), (-1,)
    options = [[j for j, d in enumerate(detected) if colour is None or d.colour == colour][:MAX_CANDIDATES]
               + [None] for _, colour, _ in named]
    for assign in itertools.product(*options):
        used = [j for j in assign if j is not None]
        if len(used) != len(set(used)):
            continue
        pairs = [(n, detected[j]) for n, j in zip(named, assign) if j is not None]
        rel_ok = relation is not None and None not in assign and \
            relation_of(detected[assign[0]], detected[assign[1]]) == relation
        key = (len(pairs), sum(d.shape == n[2] for n, d in pairs),
               sum(n[0] is None or d.size == n[0] for n, d in pairs), rel_ok)
        if key > best_key:
            best, best_key = list(assign), key
    return best


def adherence(image, prompt: str, detections: list[DetectedObject] | None = None) -> dict:
    """Return per-attribute booleans of how ``image`` follows ``prompt`` (a ShapesWorld caption).

    colour: every named object has its own detected object of that colour; shape / size: each of those has the
    named shape / size; count: as many objects detected as named; relation (2-object prompts with a relation,
    else None): the matched objects' centres give the named relation; all: every non-None one holds. Also
    ``n_named`` and ``n_detected``.
    """
    parsed = parse_caption(prompt)
    dets = detect_objects(image) if detections is None else detections
    named = parsed.objects
    assign = _match(named, dets, parsed.relation)
    matched = None not in assign
    out = {
        "colour": matched,
        "shape": matched and all(dets[j].shape == n[2] for n, j in zip(named, assign)),
        "size": matched and all(n[0] is None or dets[j].size == n[0] for n, j in zip(named, assign)),
        "count": len(dets) == len(named),
        "relation": None,
    }
    if parsed.relation is not None:
        out["relation"] = matched and relation_of(dets[assign[0]], dets[assign[1]]) == parsed.relation
    out["all"] = all(v for v in out.values() if v is not None)
    out["n_named"], out["n_detected"] = len(named), len(dets)
    return out


def _summary(rows: list[dict]) -> dict:
    out = {"n": len(rows)}
    for key in ATTRIBUTES:
        vals = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(vals)) if vals else None
    out["n_relation"] = sum(r["relation"] is not None for r in rows)
    return out


def adherence_table(images: Sequence, prompts: Sequence[str]) -> dict:
    """Return accuracies per attribute: {"overall": {...}, "by_n_objects": {n: {...}}} (None where undefined).

    ``images``: a sequence of images or a batch array / tensor [B, ...]; ``prompts``: one caption each. Each
    summary holds ``n``, ``n_relation`` and the mean of every attribute of ``adherence`` over the prompts.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a sequence of captions, got a single str")
    if len(images) != len(prompts):
        raise ValueError(f"images and prompts must have the same length, got {len(images)} and "
                         f"{len(prompts)}")
    if len(prompts) == 0:
        raise ValueError("adherence_table needs at least one image")
    rows = [adherence(img, p) for img, p in zip(images, prompts)]
    groups: dict[int, list] = {}
    for r in rows:
        groups.setdefault(r["n_named"], []).append(r)
    return {"overall": _summary(rows), "by_n_objects": {n: _summary(g) for n, g in sorted(groups.items())}}
