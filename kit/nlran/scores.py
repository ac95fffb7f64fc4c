"""How well a heat map finds the lesions: scores of one volume (pointing game, top-10 % share, voxel AUROC), of
several maps at once, and the choice of the attention-mask channel that finds lesions best on held-out volumes.
The maps themselves are made in :mod:`kit.nlran.explain`; :func:`explanation_scores` scores every map of a model
over a phantom set (lesion masks known).

Scores (one volume; heat [D, H, W], boolean lesion mask [D, H, W]):

- :func:`pointing_game`: is the hottest voxel inside a lesion?
- :func:`top_share`: which share of the hottest 10% of voxels lies inside lesions?
- :func:`heat_auroc`: the AUROC of the heat values as a voxel-wise lesion detector (0.5 = chance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import Dataset

from kit.core import eval_mode
from kit.nlran.explain import ArrayLike, as_tensor, check_input

# ----------------------------------------------------------------------------------------------------------------
# Scores against lesion masks


def _heat_and_mask(heat: ArrayLike, mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    h = as_tensor(heat, "heat").cpu().numpy().astype(np.float64)
    m = as_tensor(mask, "mask").cpu().numpy()
    if h.ndim != 3:
        raise ValueError(f"heat must be one volume [D, H, W], got shape {h.shape}")
    if m.shape != h.shape:
        raise ValueError(f"mask shape {m.shape} does not match heat shape {h.shape}")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask must be boolean (or 0/1)")
        m = m.astype(bool)
    if not np.isfinite(h).all():
        raise ValueError("heat contains NaN or infinite values")
    if not m.any():
        raise ValueError("mask is empty (no lesion voxel): the score is undefined for a volume without a lesion")
    return h.ravel(), m.ravel()


def pointing_game(heat: ArrayLike, mask: ArrayLike, ties: str = "all") -> bool:
    """Pointing game: is the hottest voxel of ``heat`` [D, H, W] inside the lesion ``mask`` [D, H, W] (bool)?

    ``ties`` decides when several voxels share the maximum [C] our choice: "all" (default) = a hit only if every
    one of them is inside the lesion, so a flat map cannot score by luck; "any" = a hit if one of them is; "first"
    = numpy's argmax (the first in C order). An empty mask raises ValueError.
    """
    h, m = _heat_and_mask(heat, mask)
    top = h == h.max()
    if ties == "all":
        return bool(m[top].all())
    if ties == "any":
        return bool(m[top].any())
    if ties == "first":
        return bool(m[int(np.argmax(h))])
    raise ValueError(f"ties must be 'all', 'any' or 'first', got {ties!r}")


def top_share(heat: ArrayLike, mask: ArrayLike, fraction: float = 0.10) -> float:
    """Share of the hottest ``fraction`` of voxels (k = ceil(fraction * N), at least 1) that lie inside lesions.

    Ties at the threshold [C] our choice: voxels hotter than the k-th hottest value count fully; the voxels equal
    to it share the remaining places equally (the expected share under a random tie-break). So a constant map
    scores the lesion's volume fraction (chance). heat, mask: [D, H, W]; returns a float in [0, 1].
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h, m = _heat_and_mask(heat, mask)
    k = max(1, math.ceil(float(fraction) * h.size - 1e-9))
    thr = np.partition(h, h.size - k)[h.size - k]  # the k-th largest value
    above = h > thr
    equal = h == thr
    n_above = int(above.sum())
    w_equal = (k - n_above) / int(equal.sum())
    return float((m[above].sum() + w_equal * m[equal].sum()) / k)


def heat_auroc(heat: ArrayLike, mask: ArrayLike) -> float:
    """AUROC of the heat values [D, H, W] as a voxel-wise detector of the lesion ``mask`` [D, H, W]
    (``sklearn.metrics.roc_auc_score``; tied values count one half). 0.5 = chance, 1 = every lesion voxel is hotter
    than every other voxel. Raises ValueError for an empty mask or a mask covering the whole volume."""
    h, m = _heat_and_mask(heat, mask)
    if m.all():
        raise ValueError("mask covers the whole volume: AUROC needs voxels outside the lesion")
    return float(roc_auc_score(m, h))


def score_heatmaps(heats: Mapping[str, ArrayLike], masks: ArrayLike,
                   fraction: float = 0.10) -> dict[str, dict[str, float]]:
    """Score several heat maps against lesion masks.

    Args:
        heats: name -> heat maps [B, D, H, W] (e.g. the output of :func:`heatmaps`).
        masks: boolean lesion masks [B, D, H, W].
        fraction: the top share's fraction (default the hottest 10%).

    Returns:
        name -> {"pointing": hit rate, "top10": mean top share, "auroc": mean AUROC}, plain floats averaged over
        the volumes that have a lesion (volumes without one are skipped). Raises ValueError when no volume has a
        lesion or the shapes disagree.
    """
    m = as_tensor(masks, "masks").cpu().numpy()
    if m.ndim != 4:
        raise ValueError(f"masks must be [B, D, H, W], got shape {m.shape}")
    keep = [i for i in range(m.shape[0]) if m[i].any()]
    if not keep:
        raise ValueError("no volume in masks has a lesion; the heat-map scores are undefined")
    out: dict[str, dict[str, float]] = {}
    for name, heat in heats.items():
        h = as_tensor(heat, f"heats[{name!r}]").cpu().numpy()
        if h.shape != m.shape:
            raise ValueError(f"heats[{name!r}] has shape {h.shape} but masks has shape {m.shape}")
        pts = [pointing_game(h[i], m[i]) for i in keep]
        tops = [top_share(h[i], m[i], fraction) for i in keep]
        aucs = [heat_auroc(h[i], m[i]) for i in keep]
        out[name] = {"pointing": float(np.mean(pts)), "top10": float(np.mean(tops)), "auroc": float(np.mean(aucs))}
    return out


def best_mask_channels(model: nn.Module, volumes: Sequence[tuple[torch.Tensor, np.ndarray, np.ndarray]]
                       ) -> tuple[int, ...]:
    """The channel of each attention module whose single mask finds lesions best on held-out volumes: per module,
    the channel with the highest mean voxel AUROC (:func:`heat_auroc`) inside the lungs over ``volumes``, a sequence
    of (x [1, 1, D, H, W], lesion mask [D, H, W], lung mask [D, H, W]) of volumes with a lesion. Choose them on
    validation data and score them on test data (a per-channel reading of the masks, as a figure of one mask would
    show, without peeking at the test lesions)."""
    if not callable(getattr(model, "forward_maps", None)):
        raise ValueError(f"{type(model).__name__} has no forward_maps(x); attention maps need an NL-RAN model")
    if not volumes:
        raise ValueError("best_mask_channels needs at least one (x, lesion mask, lung mask) volume")
    totals: list[np.ndarray] = []
    for x, lesion, lung in volumes:
        check_input(x)
        lesion, lung = np.asarray(lesion, bool), np.asarray(lung, bool)
        if not lesion.any():
            raise ValueError("best_mask_channels: every volume needs a lesion")
        with eval_mode(model), torch.no_grad():
            masks = model.forward_maps(x)["masks"]
        for i, m in enumerate(masks):
            up = F.interpolate(m.float(), size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)[0]
            aucs = np.array([roc_auc_score(lesion[lung], c[torch.from_numpy(lung)].cpu().numpy()) for c in up])
            if len(totals) <= i:
                totals.append(np.zeros_like(aucs))
            totals[i] += aucs
    return tuple(int(t.argmax()) for t in totals)


# ----------------------------------------------------------------------------------------------------------------
# Scoring every map of a model over phantoms


def explanation_scores(model: nn.Module, data: Dataset, n: int, batch_size: int = 8,
                       class_idx: str | int | None = "label", within: str = "volume",
                       mask_readings: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Return the heat-map scores (pointing game, top-10% share, AUROC) of AM1/AM2/AM3, CAM and Grad-CAM against the
    lesion masks of the first ``n`` volumes of ``data`` that have a lesion (phantoms: ``data.phantom(i)``).

    ``class_idx="label"`` explains the true class of each volume (the lesion is evidence for it); None: the
    predicted class. ``within="lung"`` [C] sets every map to 0 outside the lungs before scoring (lesions only occur
    there; it asks "inside the lungs, does the map find the lesion?" and removes the body wall and air edges the
    raw maps often peak on); "volume" scores the maps as they are. ``mask_readings`` adds other readings of the
    attention masks, {label: reduce} (see :func:`kit.nlran.explain.attention_heatmaps`), scored as "AM<i> <label>".
    """
    return explanation_scores_within(model, data, n, (within,), batch_size, class_idx, mask_readings)[within]


def explanation_scores_within(model: nn.Module, data: Dataset, n: int, withins: Sequence[str] = ("volume", "lung"),
                              batch_size: int = 8, class_idx: str | int | None = "label",
                              mask_readings: dict[str, Any] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`explanation_scores` for several ``within`` at once, {within: scores}: every map is made once."""
    bad = [w for w in withins if w not in ("volume", "lung")]
    if bad or not withins:
        raise ValueError(f"within must be 'volume' or 'lung', got {bad or withins!r}")
    from kit.nlran.explain import attention_heatmaps, heatmaps

    if not hasattr(data, "phantom"):
        raise ValueError("explanation scores need lesion masks: use phantom data (PhantomDataset)")
    idx = [i for i in range(len(data)) if data.phantom(i).lesion_mask.any()][:n]
    if not idx:
        raise ValueError("no volume with a lesion among the data")
    device = next(model.parameters()).device
    model.eval()
    sums: dict[str, dict[str, dict[str, float]]] = {w: {} for w in withins}
    for s in range(0, len(idx), batch_size):
        chunk = idx[s:s + batch_size]
        x = torch.stack([data[i][0] for i in chunk]).to(device)
        masks = np.stack([data.phantom(i).lesion_mask for i in chunk])
        lungs = np.stack([data.phantom(i).lung_mask for i in chunk])
        for i, cls in enumerate(_classes(data, chunk, class_idx)):
            heats = heatmaps(model, x[i:i + 1], class_idx=cls)
            for label, reduce in (mask_readings or {}).items():
                heats |= {f"{k} {label}": v for k, v in attention_heatmaps(model, x[i:i + 1], reduce).items()}
            for within in withins:
                keep = lungs[i:i + 1] if within == "lung" else 1.0
                scores = score_heatmaps({k: np.asarray(v) * keep for k, v in heats.items()}, masks[i:i + 1])
                for k, v in scores.items():
                    acc = sums[within].setdefault(k, {})
                    for m, val in v.items():
                        acc[m] = acc.get(m, 0.0) + float(val)
    return {w: {k: {m: val / len(idx) for m, val in v.items()} | {"volumes": len(idx)} for k, v in sums[w].items()}
            for w in withins}


def _classes(data: Dataset, idx: Sequence[int], class_idx: str | int | None) -> list[int | None]:
    if class_idx == "label":
        return [int(data[i][1]) for i in idx]
    return [class_idx] * len(idx)


def heatmap_comparison(models: dict[str, nn.Module], data: Dataset, n: int, main: str = "nlran",
                       cam_baselines: Sequence[str] = ("resnet18", "resnet18_cbam")) -> dict[str, Any]:
    """Return the heat-map scores of ``models[main]`` (AM1-AM3, CAM, Grad-CAM) and the CAM of each baseline in
    ``cam_baselines`` present in ``models``, scored over the whole volume and inside the lungs
    (:func:`explanation_scores`), with the verdict "does the module-1 mask beat the model's own CAM?" per metric and
    the mean lesion share of the scored volumes (the top-10 % share of a map that ignores lesions):
    ``{"volume": {map: scores}, "lung": {...}, "am1_beats_cam": {within: {metric: bool}}, "lesion_share": float}``.
    """
    out: dict[str, Any] = {"am1_beats_cam": {}}
    withins = ("volume", "lung")
    main_scores = explanation_scores_within(models[main], data, n, withins)
    cams = {name: explanation_scores_within(models[name], data, n, withins) for name in cam_baselines if name in models}
    for within in withins:
        scores = main_scores[within]
        for name, sc in cams.items():
            scores[f"{name} CAM"] = sc[within]["CAM"]
        out[within] = scores
        out["am1_beats_cam"][within] = {m: bool(scores["AM1"][m] > scores["CAM"][m])
                                        for m in ("pointing", "top10", "auroc")}
    shares = [p.lesion_mask.mean() for p in (data.phantom(i) for i in range(len(data))) if p.lesion_mask.any()][:n]
    out["lesion_share"] = float(np.mean(shares))
    return out
