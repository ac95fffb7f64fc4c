"""DeFI-Net views (arXiv:2408.02191): a predicted mask over the image with a live threshold and the two protocols'
toggles, the ROC / PR curves with the threshold's operating point, "inpaint it yourself", the edge band, live
training curves, the per-fill results and the protocol-inflation bars. Figures are FigureWidgets updated in place;
the numbers come from :mod:`kit.defi.explore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.data.inpainting import FILLS, PHOTOS
from kit.defi.explore import (
    MASK_KINDS,
    Explanation,
    Item,
    curves,
    edge_band,
    edge_scores,
    explain,
    held_out_photos,
    inpaint_yourself,
    operating_point,
    overlay_scores,
    pixel_auc,
    residual_magnitude,
)
from kit.defi.metrics import threshold_scores
from widgets.defi_results import (  # re-exported: the notebooks import every view from here
    MARGIN,
    ExplainView,
    ResultsView,
    TrainingCurves,
    explain_figure,
    inflation_figure,
)
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()

GT_COLOUR = "#00ffff"  # the ground truth's outline
FLAG_COLOUR = "#ffffff"  # the flagged region's outline
# the error map: 0 authentic called authentic, 1 missed (FN), 2 false alarm (FP), 3 found (TP)
ERROR_SCALE = [[0, "#222222"], [1 / 6, "#222222"], [1 / 6, "#1f77b4"], [1 / 2, "#1f77b4"], [1 / 2, "#d62728"],
               [5 / 6, "#d62728"], [5 / 6, "#2ca02c"], [1, "#2ca02c"]]
CONVENTIONS = {(False, False): "standard: raw map, inpainted-class F1", (True, True): "official: min-max, macro F1",
               (True, False): "min-max map, inpainted-class F1", (False, True): "raw map, macro F1"}


def _outline(mask: np.ndarray) -> tuple[list, list]:
    """The outline of a bool mask [H, W] in pixel coordinates as plotly lists (None between loops)."""
    from skimage.measure import find_contours

    m = np.pad(np.asarray(mask, float), 1)
    xs: list = []
    ys: list = []
    for c in find_contours(m, 0.5):
        ys += (c[:, 0] - 1).tolist() + [None]
        xs += (c[:, 1] - 1).tolist() + [None]
    return xs, ys


def _line(colour: str, name: str, dash: str = "solid") -> go.Scatter:
    return go.Scatter(x=[], y=[], mode="lines", line=dict(color=colour, width=2, dash=dash), name=name,
                      hoverinfo="skip", showlegend=False)


def _map(colorscale: str = "Inferno", showscale: bool = False, zmin: float = 0.0, zmax: float = 1.0,
         **kw: Any) -> go.Heatmap:
    return go.Heatmap(z=[[0.0]], colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=showscale, **kw)


def _image_axes(figure: go.FigureWidget) -> None:
    for trace in figure.data:
        if not isinstance(trace, go.Scatter):
            image_axes(figure, trace)


def _check_items(items: Sequence[Item], maps: Sequence[np.ndarray], name: str) -> None:
    if not items:
        raise ValueError("items is empty: nothing to show")
    if len(maps) != len(items):
        raise ValueError(f"{name} must hold one map per item ({len(items)}), got {len(maps)}")


def _error_map(flagged: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (np.asarray(mask, bool).astype(np.int8) + 2 * np.asarray(flagged, bool)).astype(float)


# --------------------------------------------------------------------------------------------------- mask overlay
class MaskOverlay(Displayable):
    """The image with the ground truth (cyan) and the flagged region (white) outlined, the probability map, and the
    errors (found green, false alarm red, missed blue). The ``threshold`` slider re-binarises live; "min-max
    normalise" and "macro F1" switch to the official protocol's conventions, and the readout shows how much they
    add over the standard numbers at the same threshold."""

    def __init__(self, items: Sequence[Item], probs: Sequence[np.ndarray], threshold: float = 0.5,
                 height: int = 330) -> None:
        _check_items(items, probs, "probs")
        self.items, self.probs = list(items), [np.asarray(p, np.float64) for p in probs]
        self.selector = ipw.Dropdown(options=[(it.title, i) for i, it in enumerate(self.items)], value=0,
                                     description="image")
        self.threshold = ipw.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                         continuous_update=False)
        self.minmax = ipw.Checkbox(value=False, description="min-max normalise")
        self.macro = ipw.Checkbox(value=False, description="macro F1")
        self.readout = ipw.HTML()
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.04, subplot_titles=(
            "image: truth (cyan), flagged (white)", "probability", "found / false alarm / missed"))
        fig.add_trace(image_trace(self.items[0].image), row=1, col=1)
        fig.add_trace(_line(GT_COLOUR, "ground truth"), row=1, col=1)
        fig.add_trace(_line(FLAG_COLOUR, "flagged"), row=1, col=1)
        fig.add_trace(_map(showscale=True, colorbar=dict(thickness=10, x=0.64), name="probability"), row=1, col=2)
        fig.add_trace(_line(GT_COLOUR, "ground truth", "dash"), row=1, col=2)
        fig.add_trace(go.Heatmap(z=[[0.0]], colorscale=ERROR_SCALE, zmin=0, zmax=3, showscale=False, name="errors",
                                 hovertemplate="x %{x}, y %{y}: %{z}<extra>0 TN, 1 FN, 2 FP, 3 TP</extra>"),
                      row=1, col=3)
        self.figure = FigureWidget(fig)
        _image_axes(self.figure)
        self.figure.update_layout(height=height, width=900, margin=MARGIN)
        self.figure.update_annotations(font_size=12)
        self.selector.observe(lambda _: self.set_item(), names="value")
        for w in (self.threshold, self.minmax, self.macro):
            w.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.selector, self.threshold]), ipw.HBox([self.minmax, self.macro]),
                                self.readout, self.figure])
        self.set_item()

    @property
    def index(self) -> int:
        return int(self.selector.value)

    def current(self):
        """Return the :class:`kit.defi.explore.OverlayScores` shown now."""
        it = self.items[self.index]
        return overlay_scores(self.probs[self.index], it.mask, self.threshold.value, self.minmax.value,
                              self.macro.value)

    def set_item(self) -> None:
        """Show the selected item: the image and ground truth change in place, then :meth:`redraw`."""
        it = self.items[self.index]
        gx, gy = _outline(it.mask)
        with self.figure.batch_update():
            self.figure.data[0].z = it.image
            for i in (1, 4):
                self.figure.data[i].x, self.figure.data[i].y = gx, gy
        self.redraw()

    def redraw(self) -> None:
        """Re-binarise the map under the current threshold and toggles; update the traces and the readout."""
        it, p = self.items[self.index], self.probs[self.index]
        s = self.current()
        shown = p
        if s.minmax:
            lo, hi = float(p.min()), float(p.max())
            shown = np.zeros_like(p) if hi == lo else (p - lo) / (hi - lo)
        fx, fy = _outline(s.flagged)
        with self.figure.batch_update():
            self.figure.data[2].x, self.figure.data[2].y = fx, fy
            self.figure.data[3].z = shown
            self.figure.data[5].z = _error_map(s.flagged, it.mask)
            self.figure.layout.annotations[1].text = "probability, min-max normalised" if s.minmax else "probability"
        label = CONVENTIONS[(s.minmax, s.macro)]
        text = (f"<b>{label}</b>, threshold {s.threshold:.2f}: precision {s.precision:.3f}, recall {s.recall:.3f}, "
                f"<b>F1 {s.f1:.3f}</b>, IoU {s.iou:.3f}; {s.flagged.mean():.1%} of the image flagged "
                f"({it.mask.mean():.1%} inpainted)")
        if s.minmax or s.macro:
            d = s.f1 - s.standard["f1"]
            text += (f"<br>the standard protocol at the same threshold: F1 {s.standard['f1']:.3f}, IoU "
                     f"{s.standard['iou']:.3f}; the toggles add <b>{d:+.3f}</b> F1")
        self.readout.value = text


# --------------------------------------------------------------------------------------------------- curves
class CurvesView(Displayable):
    """The ROC and precision-recall curves of one item's map, with the point that the threshold picks (red).

    Given ``overlay`` (a :class:`MaskOverlay`), it follows that view's image, threshold and min-max toggle and shows
    no controls of its own; otherwise it has an image selector and a threshold slider."""

    def __init__(self, items: Sequence[Item], probs: Sequence[np.ndarray], overlay: MaskOverlay | None = None,
                 threshold: float = 0.5, height: int = 330) -> None:
        _check_items(items, probs, "probs")
        self.items, self.probs = list(items), [np.asarray(p, np.float64) for p in probs]
        self._curves: dict[int, dict] = {}
        if overlay is not None:
            self.selector, self.threshold, self.minmax = overlay.selector, overlay.threshold, overlay.minmax
            controls: list = []
        else:
            self.selector = ipw.Dropdown(options=[(it.title, i) for i, it in enumerate(self.items)], value=0,
                                         description="image")
            self.threshold = ipw.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                             continuous_update=False)
            self.minmax = ipw.Checkbox(value=False, description="min-max normalise")
            controls = [ipw.HBox([self.selector, self.threshold, self.minmax])]
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=("ROC", "precision-recall"))
        grey = dict(color="#aaaaaa", dash="dash")
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=grey, name="chance", hoverinfo="skip"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="ROC", line=dict(color="#1f77b4")), row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(size=12, color="#d62728"),
                                 name="threshold"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 0], mode="lines", line=grey, name="chance (inpainted share)",
                                 hoverinfo="skip", showlegend=False), row=1, col=2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="PR", line=dict(color="#9467bd")), row=1, col=2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(size=12, color="#d62728"),
                                 name="threshold", showlegend=False), row=1, col=2)
        self.figure = FigureWidget(fig)
        self.figure.update_xaxes(range=[-0.02, 1.02])
        self.figure.update_yaxes(range=[-0.02, 1.02])
        self.figure.update_xaxes(title_text="false-positive rate", row=1, col=1)
        self.figure.update_yaxes(title_text="true-positive rate", row=1, col=1)
        self.figure.update_xaxes(title_text="recall", row=1, col=2)
        self.figure.update_yaxes(title_text="precision", row=1, col=2)
        self.figure.update_layout(height=height, width=760, margin=dict(l=50, r=10, t=40, b=40),
                                  legend=dict(orientation="h", y=-0.25))
        self.selector.observe(lambda _: self.redraw(), names="value")
        for w in (self.threshold, self.minmax):
            w.observe(lambda _: self.mark(), names="value")
        self.widget = ipw.VBox([*controls, self.figure])
        self.redraw()

    @property
    def index(self) -> int:
        return int(self.selector.value)

    def curves(self) -> dict:
        """Return the curves of the selected item (:func:`kit.defi.explore.curves`; cached)."""
        i = self.index
        if i not in self._curves:
            self._curves[i] = curves(self.probs[i], self.items[i].mask)
        return self._curves[i]

    def redraw(self) -> None:
        """Draw the selected item's curves, then :meth:`mark`."""
        c = self.curves()
        with self.figure.batch_update():
            self.figure.data[1].x, self.figure.data[1].y = c["fpr"], c["tpr"]
            self.figure.data[3].y = [c["base_rate"], c["base_rate"]]
            self.figure.data[4].x, self.figure.data[4].y = c["recall"], c["precision"]
            self.figure.layout.annotations[0].text = f"ROC: AUC {c['auc']:.3f}"
            self.figure.layout.annotations[1].text = f"precision-recall: AP {c['ap']:.3f}"
        self.mark()

    def point(self) -> dict:
        """Return the operating point of the current threshold (:func:`kit.defi.explore.operating_point`)."""
        i = self.index
        return operating_point(self.probs[i], self.items[i].mask, self.threshold.value, self.minmax.value)

    def mark(self) -> None:
        """Move the markers to the current threshold's operating point."""
        p = self.point()
        name = f"threshold {self.threshold.value:.2f}" + (" (min-max)" if self.minmax.value else "")
        with self.figure.batch_update():
            self.figure.data[2].update(x=[p["fpr"]], y=[p["tpr"]], name=name)
            self.figure.data[5].update(x=[p["recall"]], y=[p["precision"]])


# --------------------------------------------------------------------------------------------------- inpaint it yourself
class InpaintYourself(Displayable):
    """Pick a photo, a fill and a mask (strokes, a box or a disc; its position, size and seed): the crop is filled
    and DeFI-Net runs again. Side by side: the inpainted image (truth outlined), the mask, DeFI-Net's probability,
    its edge map, REAM's reverse map r and the high-pass (SRM) residual. Errors are shown, not raised."""

    def __init__(self, model: Any, photo: str = "coffee", fill: str = "telea", mask_kind: str = "box",
                 size: int = 128, seed: int = 0, train_fills: Sequence[str] | None = None,
                 height: int = 520) -> None:
        for name, value, valid in (("photo", photo, PHOTOS), ("fill", fill, FILLS), ("mask_kind", mask_kind, MASK_KINDS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}; got {value!r}")
        self.model, self.size, self.seconds = model, int(size), 0.0
        held = set(held_out_photos())
        self.photo = ipw.Dropdown(options=[(f"{p} (held out)" if p in held else p, p) for p in PHOTOS], value=photo,
                                  description="photo")
        unseen = set() if train_fills is None else set(FILLS) - set(train_fills)
        self.fill = ipw.Dropdown(options=[(f"{f} (unseen in training)" if f in unseen else f, f) for f in FILLS],
                                 value=fill, description="fill")
        self.kind = ipw.Dropdown(options=list(MASK_KINDS), value=mask_kind, description="mask")
        s = self.size
        slider = dict(continuous_update=False)
        self.x = ipw.IntSlider(value=s // 2, min=0, max=s - 1, description="x", **slider)
        self.y = ipw.IntSlider(value=s // 2, min=0, max=s - 1, description="y", **slider)
        self.radius = ipw.IntSlider(value=s // 5, min=3, max=s // 2 - 1, description="radius", **slider)
        self.seed = ipw.IntSlider(value=seed, min=0, max=20, description="mask seed", **slider)
        self.crop = ipw.IntSlider(value=0, min=0, max=20, description="crop seed", **slider)
        self.status = ipw.HTML()
        titles = ("inpainted (truth in cyan)", "mask", "DeFI-Net probability", "edge probability",
                  "reverse map r (REAM)", "high-pass residual (SRM)")
        fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.03, vertical_spacing=0.08)
        z = np.zeros((s, s, 3), np.uint8)
        fig.add_trace(image_trace(z), row=1, col=1)
        fig.add_trace(_line(GT_COLOUR, "ground truth"), row=1, col=1)
        fig.add_trace(_map("Greys", reversescale=True), row=1, col=2)
        fig.add_trace(_map(showscale=True, colorbar=dict(thickness=10, len=0.45, y=0.78)), row=1, col=3)
        fig.add_trace(_map(), row=2, col=1)
        fig.add_trace(_map("Viridis"), row=2, col=2)
        fig.add_trace(_map("gray"), row=2, col=3)
        self.figure = FigureWidget(fig)
        _image_axes(self.figure)
        self.figure.update_layout(height=height, width=720, margin=MARGIN)
        self.figure.update_annotations(font_size=12)
        self.result = self.explanation = None
        for w in (self.photo, self.fill, self.kind, self.x, self.y, self.radius, self.seed, self.crop):
            w.observe(lambda _: self.update(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.photo, self.fill, self.kind]),
                                ipw.HBox([self.x, self.y, self.radius]), ipw.HBox([self.seed, self.crop]),
                                self.status, self.figure])
        self.update()

    def update(self) -> None:
        """Inpaint with the current controls, run DeFI-Net and redraw every panel in place."""
        import time

        t0 = time.perf_counter()
        try:
            r = inpaint_yourself(self.photo.value, self.fill.value, self.kind.value, self.size, self.seed.value,
                                 (self.x.value, self.y.value), self.radius.value, self.crop.value)
        except ValueError as e:
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return
        e = explain(self.model, r.image)
        self.result, self.explanation = r, e
        gx, gy = _outline(r.mask)
        with self.figure.batch_update():
            self.figure.data[0].z = r.image
            self.figure.data[1].x, self.figure.data[1].y = gx, gy
            self.figure.data[2].z = r.mask.astype(float)
            self.figure.data[3].z = e.prob
            self.figure.data[4].z = e.edge
            self.figure.data[5].z = e.reverse
            self.figure.data[6].z = residual_magnitude(e.residual)
        self.seconds = time.perf_counter() - t0
        self.status.value = self._readout(r, e)

    def _readout(self, r: Any, e: Explanation) -> str:
        if not r.mask.any():
            return f"the mask lies outside the crop: nothing inpainted ({self.seconds:.2f} s)"
        s = threshold_scores(e.prob, r.mask, 0.5)
        return (f"{r.mask.mean():.1%} of the crop filled by <b>{r.fill}</b> ({r.seconds:.2f} s); DeFI-Net: "
                f"<b>AUC {pixel_auc(e.prob, r.mask):.3f}</b>, F1 at 0.5 {s['f1']:.3f}; the Laplacian floor: AUC "
                f"{pixel_auc(e.floor, r.mask):.3f}; updated in {self.seconds:.2f} s")


# --------------------------------------------------------------------------------------------------- edge band
class EdgeBandView(Displayable):
    """The ground-truth edge band (the mask minus its 5 x 5 erosion: what REAM's edge branch is trained on) beside
    the predicted edge probability, with the image and its truth; the readout gives the edge map's AUC against the
    band and its mean inside and outside the band."""

    def __init__(self, items: Sequence[Item], edges: Sequence[np.ndarray], height: int = 320) -> None:
        _check_items(items, edges, "edges")
        self.items, self.edges = list(items), [np.asarray(e, np.float64) for e in edges]
        self.selector = ipw.Dropdown(options=[(it.title, i) for i, it in enumerate(self.items)], value=0,
                                     description="image")
        self.readout = ipw.HTML()
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.04, subplot_titles=(
            "image: truth (cyan)", "ground-truth edge band", "predicted edge probability"))
        fig.add_trace(image_trace(self.items[0].image), row=1, col=1)
        fig.add_trace(_line(GT_COLOUR, "ground truth"), row=1, col=1)
        fig.add_trace(_map("Greys", reversescale=True), row=1, col=2)
        fig.add_trace(_map(showscale=True, colorbar=dict(thickness=10)), row=1, col=3)
        fig.add_trace(_line(GT_COLOUR, "ground truth", "dot"), row=1, col=3)
        self.figure = FigureWidget(fig)
        _image_axes(self.figure)
        self.figure.update_layout(height=height, width=900, margin=MARGIN)
        self.figure.update_annotations(font_size=12)
        self.selector.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.selector, self.readout, self.figure])
        self.redraw()

    def redraw(self) -> None:
        """Show the selected item in place."""
        i = int(self.selector.value)
        it, edge = self.items[i], self.edges[i]
        band = edge_band(it.mask)
        gx, gy = _outline(it.mask)
        with self.figure.batch_update():
            self.figure.data[0].z = it.image
            for k in (1, 4):
                self.figure.data[k].x, self.figure.data[k].y = gx, gy
            self.figure.data[2].z = band.astype(float)
            self.figure.data[3].z = edge
        s = edge_scores(edge, band)
        self.scores = s
        self.readout.value = (f"band: {band.mean():.1%} of the pixels; predicted edge probability "
                              f"<b>{s['inside']:.3f}</b> inside the band, {s['outside']:.3f} outside; AUC against "
                              f"the band <b>{s['auc']:.3f}</b>")


# --------------------------------------------------------------------------------------------------- training


__all__ = ["MaskOverlay", "CurvesView", "InpaintYourself", "EdgeBandView", "TrainingCurves", "ResultsView",
           "inflation_figure", "explain_figure", "ExplainView"]
