"""D-TIIL views: the caption with its runs scored, the region (heat map, re-binarised mask, ground truth, IoU), the
pipeline's steps, the per-seed maps, the Align losses and the embedding drift, an explorer that localises a typed
caption, and the dataset views (ROC of the score, IoU histogram, worst cases). Figures are FigureWidgets whose
traces are updated in place; the numbers come from :mod:`kit.dtiil.explore`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.dtiil.explore import (
    caption_html,
    mask_outline,
    operating_point,
    predicted_index,
    region_readout,
    roc_points,
    running_mean,
    seed_agreement,
    seed_map,
    step_strip,
    token_labels,
    worst_cases,
)
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()

GT_COLOUR = "#00ffff"      # the ground truth's outline (cyan: no ShapesWorld colour)
MASK_COLOUR = "#ffffff"    # the predicted mask's outline, over the dark heat map
MARGIN = dict(l=10, r=10, t=40, b=10)


def _outline(mask: np.ndarray | None) -> tuple[list, list]:
    """The outline of a mask as plotly lists (None between loops; empty for no mask)."""
    if mask is None:
        return [], []
    xs, ys = mask_outline(mask)
    return ([None if np.isnan(v) else float(v) for v in xs], [None if np.isnan(v) else float(v) for v in ys])


def _line(colour: str, name: str, dash: str = "solid") -> go.Scatter:
    return go.Scatter(x=[], y=[], mode="lines", line=dict(color=colour, width=2, dash=dash), name=name,
                      hoverinfo="skip", showlegend=False)


def _uint8(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)[..., :3].astype(np.uint8)


# --------------------------------------------------------------------------------------------------- caption
class CaptionView(Displayable):
    """The caption as HTML: each run shaded by its word score, the predicted run in red, the GT word underlined;
    below, the consistency score r and the predicted words."""

    def __init__(self, result: Any, caption: str, gt_word: str | None = None) -> None:
        self.html = ipw.HTML()
        self.info = ipw.HTML()
        self.widget = ipw.VBox([self.html, self.info])
        self.set_result(result, caption, gt_word)

    def set_result(self, result: Any, caption: str, gt_word: str | None = None) -> None:
        """Show another result (and caption)."""
        self.result, self.caption, self.gt_word = result, caption, gt_word
        scores = result.run_scores or None
        self.predicted = predicted_index(scores) if scores else None
        self.html.value = caption_html(caption, result.runs or None, scores, self.predicted, gt_word)
        words = " ".join(result.words) or "(no word scorer)"
        gt = f"; ground-truth word <u>{gt_word}</u>" if gt_word else ""
        self.info.value = (f"consistency r = <b>{result.score:.1f}</b> / 100 &mdash; predicted inconsistent words: "
                           f"<b style='color:#c00'>{words}</b>{gt}")


# --------------------------------------------------------------------------------------------------- region
class RegionView(Displayable):
    """Left: the image, the heat map on top (``alpha`` slider) and the outlines of the mask (white) and of the
    ground truth (cyan, dashed). Right: the mask, re-binarised live from the cached map at the ``threshold``
    slider (the localiser's blur and threshold, :meth:`LocalizeResult.rebinarize`), its IoU with the ground truth
    in the title. The ``mask`` dropdown switches between the final map D_f / mask M and the first D1 / M1."""

    def __init__(self, image: Any, result: Any, gt_mask: np.ndarray | None = None, height: int = 340) -> None:
        self.which = ipw.Dropdown(options=[("final: D_f, M", "final"), ("first: D1, M1", "first")], value="final",
                                  description="mask")
        self.alpha = ipw.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="alpha",
                                     continuous_update=False)
        self.tau = ipw.FloatSlider(value=0.3, min=0.0, max=0.99, step=0.01, description="threshold",
                                   continuous_update=False)
        self.readout = ipw.HTML()
        fig = make_subplots(rows=1, cols=2, subplot_titles=("image + heat map", "mask"), horizontal_spacing=0.06)
        img = _uint8(image)
        h, w = img.shape[:2]
        fig.add_trace(image_trace(img), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.zeros((h, w)), colorscale="Inferno", zmin=0, zmax=1, opacity=0.5,
                                 colorbar=dict(thickness=10, x=0.46), name="heat"), row=1, col=1)
        fig.add_trace(_line(MASK_COLOUR, "mask"), row=1, col=1)
        fig.add_trace(_line(GT_COLOUR, "ground truth", "dash"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.zeros((h, w)), colorscale="Greys", reversescale=True, zmin=0, zmax=1,
                                 showscale=False, name="mask"), row=1, col=2)
        fig.add_trace(_line(GT_COLOUR, "ground truth", "dash"), row=1, col=2)
        self.figure = FigureWidget(fig)
        for trace in (self.figure.data[0], self.figure.data[4]):
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=640, margin=MARGIN)
        self._busy = False
        self.which.observe(self._on_which, names="value")
        self.tau.observe(lambda _: self.redraw(), names="value")
        self.alpha.observe(self._on_alpha, names="value")
        self.widget = ipw.VBox([ipw.HBox([self.which, self.alpha, self.tau]), self.readout, self.figure])
        self.set_result(image, result, gt_mask)

    @property
    def first(self) -> bool:
        return self.which.value == "first"

    def _default_tau(self) -> float:
        from kit.dtiil.localize import LocalizeOptions

        o = self.result.options or LocalizeOptions()
        return o.tau1 if self.first else o.tau2

    def set_result(self, image: Any, result: Any, gt_mask: np.ndarray | None = None) -> None:
        """Show another result: the image, the maps and the ground truth change in place; the threshold goes back
        to the localiser's (tau2, or tau1 for the first mask)."""
        self.image, self.result = _uint8(image), result
        self.gt = None if gt_mask is None else np.asarray(gt_mask, bool)
        gx, gy = _outline(self.gt)
        with self.figure.batch_update():
            self.figure.data[0].z = self.image
            for i in (3, 5):
                self.figure.data[i].x, self.figure.data[i].y = gx, gy
        self._set_tau(self._default_tau())

    def _set_tau(self, tau: float) -> None:
        self._busy = True
        try:
            self.tau.value = round(float(tau), 2)
        finally:
            self._busy = False
        self.redraw()

    def _on_which(self, _: Any) -> None:
        self._set_tau(self._default_tau())

    def _on_alpha(self, change: dict) -> None:
        self.figure.data[1].opacity = float(change["new"])

    def current(self):
        """Return the :class:`kit.dtiil.explore.RegionReadout` shown now."""
        return region_readout(self.result, self.tau.value, self.gt, first=self.first)

    def redraw(self) -> None:
        """Re-binarise the map at the threshold and update the traces, the title and the readout in place."""
        if self._busy:
            return
        r = self.current()
        heat = self.result.first_heatmap if self.first else self.result.heatmap
        mx, my = _outline(r.mask)
        name = "M1" if self.first else "M"
        score = "no ground truth" if r.iou is None else f"IoU {r.iou:.2f}"
        with self.figure.batch_update():
            self.figure.data[1].z = np.asarray(heat, np.float64)
            self.figure.data[2].x, self.figure.data[2].y = mx, my
            self.figure.data[4].z = r.mask.astype(float)
            self.figure.layout.annotations[0].text = f"image + {'D1' if self.first else 'D_f'}"
            self.figure.layout.annotations[1].text = f"{name} at τ {r.tau:.2f}: {score}"
        if r.iou is None:
            self.readout.value = (f"{name} at τ = {r.tau:.2f} flags <b>{r.area:.1%}</b> of the image (with no "
                                  "ground-truth region, all of it is false-positive area)")
        else:
            self.readout.value = (f"{name} at τ = {r.tau:.2f}: <b>IoU {r.iou:.3f}</b>, F1 {r.f1:.3f}, "
                                  f"{r.area:.1%} of the image flagged")


# --------------------------------------------------------------------------------------------------- steps
class StepStrip(Displayable):
    """The pipeline in one row: I | D1 | M1 | I_edit | D_f | M | the crop of I_edit that the word step scores."""

    def __init__(self, image: Any, result: Any, height: int = 200) -> None:
        panels = step_strip(result, _uint8(image))
        fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p.title for p in panels],
                            horizontal_spacing=0.015)
        for i, p in enumerate(panels):
            fig.add_trace(self._trace(p), row=1, col=i + 1)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=max(600, 135 * len(panels)), margin=MARGIN)
        self.widget = ipw.VBox([self.figure])
        self.panels = panels

    @staticmethod
    def _trace(p) -> go.Image | go.Heatmap:
        if p.kind == "image":
            return image_trace(p.data)
        if p.kind == "map":
            return go.Heatmap(z=p.data.astype(np.float64), colorscale="Inferno", zmin=0, zmax=1, showscale=False)
        return go.Heatmap(z=p.data.astype(float), colorscale="Greys", reversescale=True, zmin=0, zmax=1,
                          showscale=False)

    def set_result(self, image: Any, result: Any) -> None:
        """Show another result's steps in place."""
        self.panels = step_strip(result, _uint8(image))
        with self.figure.batch_update():
            for trace, p, ann in zip(self.figure.data, self.panels, self.figure.layout.annotations):
                trace.z = p.data if p.kind == "image" else p.data.astype(np.float64)
                ann.text = p.title


# --------------------------------------------------------------------------------------------------- seeds
class SeedView(Displayable):
    """The final map's per-seed maps d_k (``seed`` slider; -1: the mean) beside their mean, each min-max
    normalised; the title gives the seed map's correlation with the mean."""

    def __init__(self, result: Any, height: int = 280) -> None:
        self.seed = ipw.IntSlider(value=0, min=-1, max=0, description="seed (-1: mean)", continuous_update=False,
                                  style={"description_width": "initial"})
        fig = make_subplots(rows=1, cols=2, subplot_titles=("seed", "mean over seeds"), horizontal_spacing=0.05)
        for col in (1, 2):
            fig.add_trace(go.Heatmap(z=[[0.0]], colorscale="Inferno", zmin=0, zmax=1, showscale=col == 2,
                                     colorbar=dict(thickness=10)), row=1, col=col)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=560, margin=MARGIN)
        self.figure.update_annotations(font_size=13)
        self.seed.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.seed, self.figure])
        self.set_result(result)

    def set_result(self, result: Any) -> None:
        """Show another result's seeds (the slider's range follows their number)."""
        self.result = result
        self.agreement = seed_agreement(result)
        n = len(self.agreement)
        self.seed.max = n - 1
        self.seed.value = min(self.seed.value, n - 1)
        self.figure.data[1].z = seed_map(result)
        self.figure.layout.annotations[1].text = f"mean over {n} seeds (= D_f)"
        self.redraw()

    def redraw(self) -> None:
        """Show seed ``self.seed.value`` in place."""
        k = self.seed.value
        with self.figure.batch_update():
            self.figure.data[0].z = seed_map(self.result, None if k < 0 else k)
            self.figure.layout.annotations[0].text = (
                "mean over seeds" if k < 0 else f"seed {k}, correlation {self.agreement[k]:.2f}")


# --------------------------------------------------------------------------------------------------- Align, drift
class AlignCurves(Displayable):
    """The Align losses per step: the first alignment (on I) and the second (on I_edit), embedding steps then UNet
    steps when there were any; thin lines per step, thick lines their running mean over ``window`` steps."""

    def __init__(self, result: Any, window: int = 10, height: int = 300) -> None:
        self.window = window
        self.figure = FigureWidget()
        self.figure.update_layout(height=height, width=620, margin=dict(l=50, r=10, t=40, b=40),
                                  xaxis_title="Align step", yaxis_title="denoising loss",
                                  title="Align: the embedding learns to reconstruct the image")
        self.widget = ipw.VBox([self.figure])
        self.set_result(result)

    def set_result(self, result: Any) -> None:
        """Redraw the curves of another result (traces rebuilt: their number may change)."""
        traces = []
        palette = {"first": "#1f77b4", "second": "#d62728", "first_unet": "#17becf", "second_unet": "#ff7f0e"}
        for key, losses in result.align_losses.items():
            if not len(losses):
                continue
            x = list(range(1, len(losses) + 1))
            colour = palette.get(key, "#555")
            traces.append(go.Scatter(x=x, y=list(map(float, losses)), mode="lines", opacity=0.3, name=key,
                                     line=dict(color=colour, width=1), showlegend=False))
            traces.append(go.Scatter(x=x, y=running_mean(losses, self.window).tolist(), mode="lines",
                                     name=f"{key} (mean of {self.window})", line=dict(color=colour, width=3)))
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(traces)


class DriftView(Displayable):
    """How far Align moved each token's embedding, ||E_img - E_T|| per position (an extra cue, not the paper's):
    the caption's tokens in orange, padding in grey."""

    def __init__(self, result: Any, tokenizer: Any, caption: str, height: int = 280) -> None:
        self.tokenizer = tokenizer
        self.figure = FigureWidget(go.Bar(x=[], y=[]))
        self.figure.update_layout(height=height, width=620, margin=dict(l=50, r=10, t=40, b=60),
                                  yaxis_title="||E_img − E_T||", title="per-token drift of the aligned embedding")
        self.widget = ipw.VBox([self.figure])
        self.set_result(result, caption)

    def set_result(self, result: Any, caption: str) -> None:
        """Show another result's drift in place."""
        drift = np.asarray(result.embed_drift, np.float64)
        labels, n = token_labels(self.tokenizer, caption)
        labels = labels[:len(drift)] + [f"#{i}" for i in range(len(labels), len(drift))]
        x = [f"{i}: {t}" for i, t in enumerate(labels)]
        colours = ["#ff8c00" if i < n else "#bbbbbb" for i in range(len(drift))]
        with self.figure.batch_update():
            self.figure.data[0].update(x=x, y=drift.tolist(), marker=dict(color=colours))


# --------------------------------------------------------------------------------------------------- explorer
class LocalizeExplorer(Displayable):
    """Type a caption for the image and press **Localize**: D-TIIL runs again (``localize_fn(caption)`` returns a
    :class:`kit.dtiil.localize.LocalizeResult`) and every view follows: the caption's runs, the region, the steps,
    the seeds, the Align curves and the drift. The ground truth (mask, word) belongs to the starting caption and is
    shown only while the caption is that one. Errors (unknown words, no content word) are shown, not raised."""

    def __init__(self, image: Any, caption: str, localize_fn: Callable[[str], Any], *, result: Any = None,
                 gt_mask: np.ndarray | None = None, gt_word: str | None = None, tokenizer: Any = None) -> None:
        self.image, self.localize_fn = _uint8(image), localize_fn
        self.start_caption, self.start_gt = caption, (gt_mask, gt_word)
        self.result = localize_fn(caption) if result is None else result
        self.caption = caption
        self.text = ipw.Text(value=caption, description="caption", layout=ipw.Layout(width="70%"))
        self.button = ipw.Button(description="Localize", button_style="primary")
        self.status = ipw.HTML(self._status())
        self.button.on_click(lambda _: self.run())
        self.caption_view = CaptionView(self.result, caption, gt_word)
        self.region = RegionView(self.image, self.result, gt_mask)
        self.steps = StepStrip(self.image, self.result)
        self.seeds = SeedView(self.result)
        self.align = AlignCurves(self.result)
        self.drift = DriftView(self.result, tokenizer, caption) if tokenizer is not None else None
        self.widget = ipw.VBox([ipw.HBox([self.text, self.button]), self.status, self.caption_view.widget,
                                self.region.widget])

    def _status(self) -> str:
        r = self.result
        gt = "ground truth shown" if self.caption == self.start_caption else \
            "no ground truth for an edited caption"
        return f"localised in {r.seconds:.1f} s ({gt})"

    def run(self) -> None:
        """Localise the typed caption and update every view in place."""
        caption = self.text.value.strip()
        self.status.value = "localising ..."
        try:
            result = self.localize_fn(caption)
        except ValueError as e:
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return
        self.result, self.caption = result, caption
        gt_mask, gt_word = self.start_gt if caption == self.start_caption else (None, None)
        self.caption_view.set_result(result, caption, gt_word)
        self.region.set_result(self.image, result, gt_mask)
        self.steps.set_result(self.image, result)
        self.seeds.set_result(result)
        self.align.set_result(result)
        if self.drift is not None:
            self.drift.set_result(result, caption)
        self.status.value = self._status()


# --------------------------------------------------------------------------------------------------- dataset views
def roc_figure(rows: Sequence[dict], threshold: float | None = None, title: str = "ROC of the consistency score",
               height: int = 360) -> go.Figure:
    """Return the ROC of the score r over ``rows`` (inconsistent = positive, flagged when r is low), with the
    operating point of ``threshold`` (fitted on the validation split) marked."""
    roc = roc_points(rows)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#aaa", dash="dash"),
                             name="chance", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines+markers", line_shape="hv",
                             name=f"D-TIIL r (AUC {roc['auc']:.2f})", customdata=roc["thresholds"],
                             hovertemplate="flag r < %{customdata:.1f}: FPR %{x:.2f}, TPR %{y:.2f}<extra></extra>"))
    if threshold is not None:
        fpr, tpr = operating_point(rows, threshold)
        fig.add_trace(go.Scatter(x=[fpr], y=[tpr], mode="markers", marker=dict(size=12, color="#d62728"),
                                 name=f"threshold r < {threshold:.1f} (validation)"))
    fig.update_layout(title=title, xaxis_title="false-positive rate (consistent flagged)",
                      yaxis_title="true-positive rate (inconsistent flagged)", height=height, width=520,
                      xaxis_range=[-0.02, 1.02], yaxis_range=[-0.02, 1.02], legend=dict(x=0.4, y=0.05))
    return fig


def iou_histogram(rows: Sequence[dict], height: int = 320) -> go.Figure:
    """Return the histogram of the final mask's IoU per inconsistent subset, with the cross-attention baseline's
    IoU over all inconsistent pairs beside it."""
    fig = go.Figure()
    bins = dict(start=0.0, end=1.0, size=0.1)
    for subset, colour in (("text", "#1f77b4"), ("image", "#d62728"), ("inconsistent", "#9467bd")):
        vals = [r["iou"] for r in rows if r["subset"] == subset and "iou" in r]
        if vals:
            fig.add_trace(go.Histogram(x=vals, xbins=bins, name=f"D-TIIL, {subset}-edited", marker_color=colour,
                                       opacity=0.65))
    base = [r["cross_attention_iou"] for r in rows if "cross_attention_iou" in r]
    if base:
        fig.add_trace(go.Histogram(x=base, xbins=bins, name="cross-attention (all inconsistent)",
                                   marker_color="#999", opacity=0.5))
    fig.update_layout(barmode="overlay", title="IoU of the mask with the ground truth", xaxis_title="IoU",
                      yaxis_title="pairs", height=height, width=560, xaxis_range=[0, 1])
    return fig


class CaseGallery(Displayable):
    """The worst pairs on ``metric`` (:func:`kit.dtiil.explore.worst_cases`; rows from ``evaluate(keep=True)``),
    one row each: I with the ground truth's outline | I_edit | D_f | M with the ground truth's outline; the
    caption, the metric and the predicted words in the titles."""

    def __init__(self, pairs: Sequence[Any], rows: Sequence[dict], k: int = 4, metric: str = "iou",
                 height_per_row: int = 190) -> None:
        by_id = {p.id: p for p in pairs}
        self.cases = [r for r in worst_cases(rows, k, metric) if "result" in r and r["id"] in by_id]
        if not self.cases:
            raise ValueError(f"no row with {metric!r} and a kept result (evaluate(..., keep=True)) to show")
        titles = []
        for r in self.cases:
            cap = r["caption"] if len(r["caption"]) <= 38 else r["caption"][:36] + "…"
            titles += [cap, "I_edit", "D_f", f"M: {metric} {r[metric]:.2f}; words: {r['predicted_words'] or '-'}"]
        n = len(self.cases)
        fig = make_subplots(rows=n, cols=4, subplot_titles=titles, horizontal_spacing=0.02,
                            vertical_spacing=min(0.08, 0.3 / max(n - 1, 1)))
        for i, r in enumerate(self.cases):
            pair, res = by_id[r["id"]], r["result"]
            gx, gy = _outline(pair.mask)
            fig.add_trace(image_trace(_uint8(pair.image)), row=i + 1, col=1)
            fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line=dict(color=GT_COLOUR, width=2),
                                     hoverinfo="skip", showlegend=False), row=i + 1, col=1)
            fig.add_trace(image_trace(_uint8(res.edited_image)), row=i + 1, col=2)
            fig.add_trace(go.Heatmap(z=np.asarray(res.heatmap, np.float64), colorscale="Inferno", zmin=0, zmax=1,
                                     showscale=False), row=i + 1, col=3)
            fig.add_trace(go.Heatmap(z=np.asarray(res.mask, float), colorscale="Greys", reversescale=True, zmin=0,
                                     zmax=1, showscale=False), row=i + 1, col=4)
            fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line=dict(color=GT_COLOUR, width=2, dash="dash"),
                                     hoverinfo="skip", showlegend=False), row=i + 1, col=4)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data:
            if not isinstance(trace, go.Scatter):
                image_axes(self.figure, trace)
        self.figure.update_layout(height=60 + height_per_row * n, width=720, margin=MARGIN)
        self.figure.update_annotations(font_size=11)
        self.widget = ipw.VBox([self.figure])


def _wrap(text: str, width: int = 30) -> str:
    """Break a title into lines of at most about ``width`` characters (plotly titles do not wrap)."""
    import textwrap

    return "<br>".join(textwrap.wrap(text, width)) or " "


class PairGrid(Displayable):
    """Image-caption pairs in a grid: each image with its ground-truth region outlined (cyan; none for a
    consistent pair), the subset, the GT word and the caption in the title."""

    def __init__(self, pairs: Sequence[Any], cols: int = 4, height_per_row: int = 230) -> None:
        if not pairs:
            raise ValueError("pairs is empty")
        self.pairs = list(pairs)
        cols = min(cols, len(self.pairs))
        rows = -(-len(self.pairs) // cols)
        titles = [_wrap(f"[{p.subset}{': ' + p.word if p.word else ''}] {p.caption}") for p in self.pairs]
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                            vertical_spacing=min(0.12, 0.5 / max(rows - 1, 1)))
        for i, p in enumerate(self.pairs):
            gx, gy = _outline(p.mask)
            fig.add_trace(image_trace(_uint8(p.image)), row=i // cols + 1, col=i % cols + 1)
            fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line=dict(color=GT_COLOUR, width=2),
                                     hoverinfo="skip", showlegend=False), row=i // cols + 1, col=i % cols + 1)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data[::2]:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=40 + height_per_row * rows, width=max(400, 190 * cols),
                                  margin=dict(l=10, r=10, t=60, b=10))
        self.figure.update_annotations(font_size=10)
        self.widget = ipw.VBox([self.figure])

__all__ = ["CaptionView", "RegionView", "StepStrip", "SeedView", "AlignCurves", "DriftView", "LocalizeExplorer",
           "roc_figure", "iou_histogram", "CaseGallery", "PairGrid"]
