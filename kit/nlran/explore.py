"""Numbers behind the NL-RAN widgets (arXiv:2408.04300): 2D slices of a CT volume, lesion outlines, an editable
phantom with the model's live answer, the non-local block's attention weights and ROC curves ready to draw.

- :func:`slice_of` / :func:`axis_length`: one 2D slice of a [D, H, W] volume along a named axis, with a fixed,
  documented orientation (MONAI#2354: 3D Grad-CAM slices came out rotated; here the row / column order is stated
  and tested).
- :func:`lesion_contour`: the outline of a 2D lesion mask as one NaN-separated polyline (one plotly trace).
- :class:`Painter`: a phantom (:class:`kit.nlran.phantom.PhantomSpec`) whose lesions can be added, moved and
  removed; every edit re-renders with the same noise seed, so only the edited lesion's voxels change, and the
  model's class probabilities and heat maps follow.
- :func:`nonlocal_lesion_summary`: how much a painted phantom's lesions attend to each other in the non-local block
  (the attention itself is read in :mod:`kit.nlran.attention`).
- :func:`roc_data`, :func:`confusion_data`: curves and matrix from
  :func:`kit.nlran.metrics.classification_report`'s dict.

Volumes are [D, H, W] = (z: slice, y: row, x: column), as in :mod:`kit.nlran.phantom`; model inputs are
[B, 1, D, H, W] windowed to [0, 1]. Everything returns numpy; no plotting and no Jupyter imports here (the
drawing is in ``widgets/nlran.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from kit.core import eval_mode
from kit.nlran import explain
from kit.nlran import phantom as ph
from kit.nlran.attention import lesion_affinity
from kit.nlran.data import window

__all__ = [
    "AXES",
    "AXIS_LABELS",
    "Painter",
    "as_volume",
    "axis_length",
    "confusion_data",
    "lesion_contour",
    "nonlocal_lesion_summary",
    "roc_data",
    "slice_of",
]

AXES = ("axial", "coronal", "sagittal")
"""Slicing axes: axial fixes z (dim 0 of [D, H, W]), coronal fixes y (dim 1), sagittal fixes x (dim 2)."""
_AXIS_DIM = {"axial": 0, "coronal": 1, "sagittal": 2}
AXIS_LABELS = {"axial": ("x (column)", "y (row)"), "coronal": ("x (column)", "z (slice)"),
               "sagittal": ("y (row)", "z (slice)")}
"""(horizontal, vertical) axis names of the 2D slice of each axis, as :func:`slice_of` lays it out."""


# ----------------------------------------------------------------------------------------------------------------
# slices and outlines


def as_volume(a: Any, name: str = "volume") -> np.ndarray:
    """Return ``a`` (numpy array or torch tensor) as a numpy array [D, H, W]; leading singleton axes
    ([1, D, H, W], [1, 1, D, H, W]) are dropped. Anything else raises ValueError naming ``name``."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        a = (a.float() if a.dtype.is_floating_point else a).numpy()
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected an array [D, H, W], got {type(a).__name__} ({err})") from err
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a volume [D, H, W] (or [1, D, H, W]), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numeric or boolean values, got dtype {arr.dtype}")
    return arr


def _check_axis(axis: str) -> int:
    if axis not in _AXIS_DIM:
        raise ValueError(f"axis: expected one of {AXES}, got {axis!r}")
    return _AXIS_DIM[axis]


def axis_length(shape: Sequence[int], axis: str) -> int:
    """Number of slices along ``axis`` of a volume of ``shape`` (D, H, W): D (axial), H (coronal) or W (sagittal)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"shape: expected (D, H, W), got {shape}")
    return shape[_check_axis(axis)]


def slice_of(volume: Any, axis: str, index: int) -> np.ndarray:
    """Return one 2D slice of ``volume`` [D, H, W] (numpy or torch; [1, D, H, W] is accepted) as numpy.

    Orientation (row 0 is drawn at the TOP, column 0 at the LEFT; the widgets draw with the y axis reversed):

    - "axial" (fixes z = ``index``): ``volume[index]`` -> [H, W]; y (dim 1) runs down the rows, x (dim 2) across
      the columns. In the phantoms y grows anterior -> posterior, so the back is at the bottom, as on a CT viewer.
    - "coronal" (fixes y): ``volume[:, index, :]`` -> [D, W]; z (slice 0 at the top) down the rows, x across.
    - "sagittal" (fixes x): ``volume[:, :, index]`` -> [D, H]; z down the rows, y across the columns.

    No transpose or flip is applied, so ``out[r, c]`` is a plain index into the volume (e.g. coronal
    ``out[z, x] = volume[z, index, x]``). Whether slice 0 is the head or the feet depends on the data (the
    phantoms are symmetric in z; real NIfTI files follow their own affine). ``index`` must be in
    [0, axis_length - 1]; otherwise ValueError.
    """
    vol = as_volume(volume)
    dim = _check_axis(axis)
    n = vol.shape[dim]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < n:
        raise ValueError(f"index: expected an int in [0, {n - 1}] for the {axis} axis of a volume of shape "
                         f"{vol.shape}, got {index!r}")
    return np.take(vol, int(index), axis=dim)


def lesion_contour(mask2d: Any) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a 2D boolean mask [R, C] as (xs, ys) float arrays for one plotly line trace.

    The outline is the iso-line 0.5 of the mask (skimage.measure.find_contours on the mask padded with a ring of
    zeros, so regions touching the border close too): it runs half-way between inside and outside pixel centres,
    so every mask pixel centre lies strictly inside it. xs are column coordinates, ys row coordinates (pixel
    centres at integers); separate closed loops are separated by NaN. An empty mask gives two empty arrays.
    """
    from skimage.measure import find_contours

    m = np.asarray(mask2d.detach().cpu() if isinstance(mask2d, torch.Tensor) else mask2d)
    if m.ndim != 2:
        raise ValueError(f"mask2d: expected a 2D mask [rows, columns], got shape {m.shape}")
    m = m.astype(bool)
    if not m.any():
        return np.zeros(0), np.zeros(0)
    padded = np.pad(m.astype(np.float64), 1)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for c in find_contours(padded, 0.5):
        ys += [c[:, 0] - 1.0, np.array([np.nan])]
        xs += [c[:, 1] - 1.0, np.array([np.nan])]
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1])


# ----------------------------------------------------------------------------------------------------------------
# the lesion painter


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class Painter:
    """An editable phantom and a model's answer to it.

    model: a classifier ``model(x [1, 1, D, H, W]) -> logits [1, K]`` (NL-RAN or a baseline).
    spec: a :class:`kit.nlran.phantom.PhantomSpec` (or a rendered :class:`~kit.nlran.phantom.Phantom`, whose spec
    is used). The model sees ``phantom.window(hu)`` (lung window WL -600 / WW 1500 HU -> [0, 1]), exactly the
    input :class:`~kit.nlran.phantom.PhantomDataset` gives.

    Lesion centres are normalised (z, y, x) coordinates in [-1, 1] (:func:`kit.nlran.phantom.voxel_to_normalised`
    converts voxel indices); GGO radii are in voxels. Every edit (:meth:`add`, :meth:`move`, :meth:`remove`)
    builds a new spec and re-renders it with :func:`kit.nlran.phantom.render`; the spec keeps its ``noise_seed``,
    so the noise is identical and only the voxels of the edited lesion change. The label stays the spec's label
    (it says what the phantom was drawn as, not what it now shows).
    Probabilities and heat maps are computed with the model in eval mode (its mode is restored) and cached until
    the next edit.
    """

    DEFAULT_HU = {"ggo": float(np.mean(ph.GGO_HU)), "consolidation": float(np.mean(ph.CONSOLIDATION_HU))}
    """Lesion HU used by :meth:`add` when none is given: the middle of the phantom's ranges [C] our choice."""

    def __init__(self, model: nn.Module, spec: ph.PhantomSpec | ph.Phantom):
        if isinstance(spec, ph.Phantom):
            spec = spec.spec
        if not isinstance(spec, ph.PhantomSpec):
            raise ValueError(f"spec: expected a kit.nlran.phantom.PhantomSpec (or Phantom), got {type(spec).__name__}")
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected a torch nn.Module, got {type(model).__name__}")
        self.model = model
        self._set(spec)

    # state --------------------------------------------------------------------------------------------------
    def _set(self, spec: ph.PhantomSpec) -> None:
        self.spec = spec
        self.phantom = ph.render(spec)
        self._probs: np.ndarray | None = None
        self._heats: dict[Any, dict[str, np.ndarray]] = {}

    @property
    def size(self) -> int:
        """Voxels per side of the cubic volume."""
        return int(self.spec.size)

    @property
    def lesions(self) -> tuple[ph.Lesion, ...]:
        """The current lesions."""
        return self.spec.lesions

    @property
    def hu(self) -> np.ndarray:
        """The rendered volume in HU, float32 [D, H, W]."""
        return self.phantom.hu

    @property
    def volume(self) -> np.ndarray:
        """The windowed volume the model sees, float32 [D, H, W] in [0, 1]."""
        return window(self.phantom.hu)

    def input(self) -> torch.Tensor:
        """The model input x float32 [1, 1, D, H, W] on the model's device."""
        return torch.from_numpy(self.volume)[None, None].to(_device(self.model))

    def lesion_mask(self, index: int | None = None) -> np.ndarray:
        """Lesion mask bool [D, H, W]: of all lesions (``index`` None) or of lesion ``index`` alone."""
        if index is None:
            return self.phantom.lesion_mask
        i = self._index(index)
        return ph.render(replace(self.spec, lesions=(self.spec.lesions[i],), noise_hu=0.0)).lesion_mask

    def lesion_voxel(self, index: int) -> tuple[int, int, int]:
        """Voxel (z, y, x) nearest to the centre of lesion ``index``."""
        return ph.normalised_to_voxel(self.spec.lesions[self._index(index)].centre, self.size)

    def focus_voxel(self) -> tuple[int, int, int]:
        """Voxel (z, y, x) to explore first: the middle lesion voxel (in scan order), or for a phantom without
        lesions (a "Normal" one) the lung voxel nearest the centroid of the lungs."""
        lesion = self.phantom.lesion_mask
        if lesion.any():
            pts = np.argwhere(lesion)
            return tuple(int(v) for v in pts[len(pts) // 2])
        pts = np.argwhere(self.phantom.lung_mask)
        if not len(pts):
            return tuple(int(n) // 2 for n in lesion.shape)
        centroid = pts.mean(0)
        return tuple(int(v) for v in pts[np.argmin(((pts - centroid) ** 2).sum(1))])

    def _index(self, index: int) -> int:
        n = len(self.spec.lesions)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < n:
            raise ValueError(f"index: expected a lesion index in [0, {n - 1}] ({n} lesions), got {index!r}")
        return int(index)

    # model --------------------------------------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """Softmax class probabilities float64 [K] of the current phantom (model in eval mode)."""
        if self._probs is None:
            with eval_mode(self.model), torch.no_grad():
                logits = self.model(self.input())
            self._probs = torch.softmax(logits.double(), dim=1)[0].cpu().numpy()
        return self._probs

    def heatmaps(self, class_idx: int | None = None) -> dict[str, np.ndarray]:
        """Heat maps of the current phantom: name -> float32 [D, H, W] in [0, 1], from
        :func:`kit.nlran.explain.heatmaps` ("AM1", "AM2", "AM3", "CAM", "Grad-CAM"; baselines: CAM, Grad-CAM).
        ``class_idx``: the class CAM / Grad-CAM explain (None: the predicted class)."""
        key = None if class_idx is None else int(class_idx)
        if key not in self._heats:
            maps = explain.heatmaps(self.model, self.input(), class_idx=key)
            self._heats[key] = {k: v[0].numpy() for k, v in maps.items()}
        return self._heats[key]

    # edits --------------------------------------------------------------------------------------------------
    def add(self, kind: str, centre: Sequence[float], radius: float = 3.0, hu: float | None = None,
            side: str | None = None, normal: Sequence[float] = (0.0, 1.0, 0.0)) -> int:
        """Add a lesion and return its index.

        kind: "ggo" (a Gaussian ground-glass blob of half-maximum ``radius`` voxels centred at ``centre``) or
        "consolidation" (the lung ``side`` filled beyond the plane through ``centre`` with unit ``normal`` (z, y, x),
        default posterior; ``radius`` unused). centre: normalised (z, y, x) in [-1, 1]. hu: peak / fill HU
        (default :attr:`DEFAULT_HU`). side: "left" / "right"; default the half the centre lies in (x < 0: left).
        """
        if kind not in ph.LESION_KINDS:
            raise ValueError(f"kind: expected one of {ph.LESION_KINDS}, got {kind!r}")
        c = tuple(float(v) for v in centre)
        if len(c) != 3:
            raise ValueError(f"centre: expected normalised (z, y, x), got {centre!r}")
        if side is None:
            side = "left" if c[2] < 0 else "right"
        lesion = ph.Lesion(kind, c, radius=float(radius) if kind == "ggo" else 0.0,
                           hu=self.DEFAULT_HU[kind] if hu is None else float(hu), side=side,
                           normal=tuple(float(v) for v in normal))
        self._set(ph.add_lesion(self.spec, lesion))
        return len(self.spec.lesions) - 1

    def move(self, index: int, centre: Sequence[float], radius: float | None = None) -> None:
        """Move lesion ``index`` to normalised ``centre`` (z, y, x) (a consolidation's plane moves with it); with
        ``radius`` (voxels) also resize a GGO blob. The lesion's HU and side are kept."""
        i = self._index(index)
        spec = ph.move_lesion(self.spec, i, tuple(float(v) for v in centre))
        if radius is not None and spec.lesions[i].kind == "ggo":
            les = replace(spec.lesions[i], radius=float(radius))
            spec = replace(spec, lesions=spec.lesions[:i] + (les,) + spec.lesions[i + 1:])
        self._set(spec)

    def remove(self, index: int) -> None:
        """Remove lesion ``index`` (later lesions shift down by one)."""
        self._set(ph.remove_lesion(self.spec, self._index(index)))


# ----------------------------------------------------------------------------------------------------------------
# non-local attention of a painted phantom


def nonlocal_lesion_summary(model: nn.Module, painter: Painter, threshold: float = 0.25) -> dict[str, Any]:
    """Return :func:`lesion_affinity` of ``painter``'s phantom, or ``{"note": why}`` when it cannot be measured
    (no lesion, or lesions smaller than a cell of the non-local grid)."""
    mask = painter.lesion_mask()
    if not mask.any():
        return {"note": "this phantom has no lesion: there is no lesion-to-lesion attention to measure"}
    try:
        return lesion_affinity(model, painter.input(), mask, threshold=threshold)
    except ValueError as err:
        if "no non-local grid cell" not in str(err):
            raise
        return {"note": str(err)}


# ----------------------------------------------------------------------------------------------------------------
# ROC curves and the confusion matrix


def _auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoid area under a ROC curve (equals sklearn's roc_auc_score for a roc_curve output)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def roc_data(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ROC curves of a :func:`kit.nlran.metrics.classification_report` dict, ready to draw.

    Returns a list of dicts {"name", "kind" ("class" | "micro" | "macro"), "fpr", "tpr" (float64 arrays),
    "auc"}: one per class that has a curve (classes absent from the labels have none and are skipped), then
    "micro" (flattened one-hot vs flattened probabilities) and "macro" (mean of the class TPRs on the union of
    their FPRs). Each class and the micro "auc" is the trapezoid area under the drawn curve, which equals
    sklearn's roc_auc_score; the macro "auc" is the mean of the class AUCs (the macro one-vs-rest AUC, not the
    area under the averaged curve).
    """
    if not isinstance(report, Mapping) or "roc" not in report or "class_names" not in report:
        raise ValueError("report: expected the dict of kit.nlran.metrics.classification_report (with 'roc' and "
                         "'class_names')")
    roc = report["roc"]
    out: list[dict[str, Any]] = []
    for name in report["class_names"]:
        curve = roc.get(name)
        if curve is None:
            continue
        fpr, tpr = np.asarray(curve["fpr"], dtype=np.float64), np.asarray(curve["tpr"], dtype=np.float64)
        out.append({"name": str(name), "kind": "class", "fpr": fpr, "tpr": tpr, "auc": _auc(fpr, tpr)})
    if not out:
        raise ValueError("report: no class has a ROC curve (a single class in y_true?)")
    class_aucs = [c["auc"] for c in out]
    for kind in ("micro", "macro"):
        curve = roc.get(kind)
        if curve is None:
            continue
        fpr, tpr = np.asarray(curve["fpr"], dtype=np.float64), np.asarray(curve["tpr"], dtype=np.float64)
        auc = _auc(fpr, tpr) if kind == "micro" else float(np.mean(class_aucs))
        out.append({"name": kind, "kind": kind, "fpr": fpr, "tpr": tpr, "auc": auc})
    return out


def confusion_data(report: Mapping[str, Any], normalize: bool = False) -> tuple[np.ndarray, list[str]]:
    """The confusion matrix of a classification_report dict: (matrix float64 [K, K], class names).

    Rows are the true class, columns the predicted class. ``normalize=True`` divides each row by its count (the
    per-class recall on the diagonal); a class with no samples keeps a row of zeros.
    """
    if not isinstance(report, Mapping) or "confusion_matrix" not in report:
        raise ValueError("report: expected the dict of kit.nlran.metrics.classification_report "
                         "(with 'confusion_matrix')")
    m = np.asarray(report["confusion_matrix"], dtype=np.float64)
    names = [str(n) for n in report.get("class_names", [f"class {i}" for i in range(len(m))])]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(names):
        raise ValueError(f"report: confusion_matrix must be K x K with K = {len(names)} classes, got {m.shape}")
    if normalize:
        rows = m.sum(axis=1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    return m, names
