"""DeFI-Net's result views (arXiv:2408.02191): live training curves, per-fill bars, protocol inflation, internals.

Views only; the numbers come from :mod:`kit.defi.experiment` and :mod:`kit.defi.explore`. Re-exported by
:mod:`widgets.defi`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.defi.explore import LEVELS, Explanation, fill_rows
from widgets.common import LiveCurve
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()

DETECTOR_COLOURS = {"defi": "#d62728", "laplacian": "#1f77b4", "noise": "#2ca02c", "random": "#7f7f7f"}
MARGIN = dict(l=10, r=10, t=40, b=10)


class TrainingCurves(LiveCurve):
    """Live curves of a DeFI-Net training run, a callback for :func:`kit.defi.experiment.train`: the loss and its
    two parts (5 x structure + 1 x edge) on the left axis, the validation AUC and F1 on the right; the readout
    keeps the best validation AUC (the weights that ``train`` keeps)."""

    def __init__(self, title: str = "DeFI-Net: training loss and validation", height: int = 340) -> None:
        super().__init__(keys=["loss", "seg", "edge", "val_auc", "val_f1"], title=title,
                         secondary=("val_auc", "val_f1"), height=height)
        self.best: tuple[int, float] | None = None
        self.readout = ipw.HTML("waiting for the first evaluation")
        self.widget = ipw.VBox([self.readout, self.figure])

    def __call__(self, event: dict[str, Any]) -> None:
        super().__call__(event)
        if event.get("kind") == "eval" and "val_auc" in event:
            auc = float(event["val_auc"])
            if self.best is None or auc > self.best[1]:
                self.best = (int(event["step"]), auc)
            self.readout.value = (f"step {event['step']}: validation AUC {auc:.3f}; best <b>{self.best[1]:.3f}</b> "
                                  f"at step {self.best[0]} (kept)")


# --------------------------------------------------------------------------------------------------- results
class ResultsView(Displayable):
    """Pixel AUC and F1 per fill method, DeFI-Net beside the training-free floors, under the ``protocol`` picked
    (standard or official); the fill that training never saw is marked "(unseen)"; "all" pools every fill.

    ``results``: one :func:`kit.defi.experiment.evaluate` result, or {name: result} of several, which the
    ``evaluation`` dropdown switches between (e.g. this run and the committed model's larger study)."""

    def __init__(self, results: Mapping[str, Any], height: int = 380) -> None:
        self.results = {"this run": results} if "standard" in results else dict(results)
        if not self.results:
            raise ValueError("results is empty: nothing to show")
        self.which = ipw.Dropdown(options=list(self.results), description="evaluation",
                                  layout=ipw.Layout(width="420px"))
        self.protocol = ipw.Dropdown(options=[("standard (IMDLBenCo)", "standard"),
                                              ("official (min-max, macro F1)", "official")], value="standard",
                                     description="protocol")
        self.detectors = list(dict.fromkeys(d for r in self.results.values() for d in r["standard"]))
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=("pixel AUC", "F1 at 0.5"))
        for det in self.detectors:
            colour = DETECTOR_COLOURS.get(det, "#8c564b")
            for col in (1, 2):
                fig.add_trace(go.Bar(x=[], y=[], name=det, legendgroup=det, showlegend=col == 1,
                                     marker_color=colour), row=1, col=col)
        fig.add_hline(y=0.5, line=dict(color="#aaaaaa", dash="dash"), row=1, col=1)
        self.figure = FigureWidget(fig)
        self.figure.update_yaxes(range=[0, 1])
        self.figure.update_layout(height=height, width=860, barmode="group", margin=dict(l=40, r=10, t=60, b=40))
        for w in (self.which, self.protocol):
            w.observe(lambda _: self.redraw(), names="value")
        controls = [self.which, self.protocol] if len(self.results) > 1 else [self.protocol]
        self.widget = ipw.VBox([ipw.HBox(controls), self.figure])
        self.redraw()

    def rows(self) -> list[dict]:
        """Return the rows shown now (:func:`kit.defi.explore.fill_rows`)."""
        return fill_rows(self.results[self.which.value], self.protocol.value)

    def redraw(self) -> None:
        """Show the picked evaluation and protocol's bars in place."""
        rows = self.rows()
        with self.figure.batch_update():
            for k, det in enumerate(self.detectors):
                mine = [r for r in rows if r["detector"] == det]
                x = [r["fill"] + (" (unseen)" if r["unseen"] else "") for r in mine]
                self.figure.data[2 * k].update(x=x, y=[r["auc"] for r in mine])
                self.figure.data[2 * k + 1].update(x=x, y=[r["f1"] for r in mine])
            proto = "official protocol" if self.protocol.value == "official" else "standard protocol"
            self.figure.layout.title.text = f"{self.which.value}: {proto}"


def inflation_figure(inflation: Mapping[str, Mapping[str, float]], height: int = 360) -> go.Figure:
    """Return bars of the mean F1 of each detector's maps under the four conventions ({raw, min-max} x
    {inpainted-class, macro}; :func:`kit.defi.metrics.protocol_inflation`), with each detector's pixel AUC, which
    none of them changes, as a black marker."""
    keys = {"raw_positive_f1": ("standard: raw, inpainted-class", "#1f77b4"),
            "raw_macro_f1": ("raw, macro", "#aec7e8"),
            "minmax_positive_f1": ("min-max, inpainted-class", "#ffbb78"),
            "minmax_macro_f1": ("official: min-max, macro", "#ff7f0e")}
    dets = list(inflation)
    fig = go.Figure()
    for k, (name, colour) in keys.items():
        fig.add_trace(go.Bar(x=dets, y=[inflation[d][k] for d in dets], name=name, marker_color=colour))
    fig.add_trace(go.Scatter(x=dets, y=[inflation[d]["auc"] for d in dets], mode="markers", name="pixel AUC",
                             marker=dict(color="black", symbol="diamond", size=11)))
    fig.update_layout(barmode="group", height=height, width=720, yaxis=dict(range=[0, 1], title="F1 at 0.5"),
                      title="one set of maps, four F1 conventions", legend=dict(orientation="h", y=-0.15))
    return fig


def explain_figure(expl: Explanation, image: np.ndarray | None = None, height: int = 320) -> FigureWidget:
    """Return the DFPL energy per level (bars, log scale) beside SAFF's per-pixel share of the high-level source
    (1: only the high-level map, 0: only the low/mid map), and the image when given."""
    cols = 3 if image is not None else 2
    titles = (["image"] if image is not None else []) + [
        "DFPL output energy per level", f"SAFF: share of the high level ({expl.high_fraction:.0%} of pixels > 0.5)"]
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.08)
    if image is not None:
        fig.add_trace(image_trace(np.asarray(image)), row=1, col=1)
    fig.add_trace(go.Bar(x=list(LEVELS), y=[expl.energy[k] for k in LEVELS], marker_color="#9467bd",
                         name="energy"), row=1, col=cols - 1)
    fig.add_trace(go.Heatmap(z=expl.high_share, colorscale="RdBu_r", zmin=0, zmax=1, colorbar=dict(thickness=10),
                             name="high share"), row=1, col=cols)
    fig.update_yaxes(type="log", row=1, col=cols - 1)
    for trace in fig.data:
        if not isinstance(trace, go.Bar):
            image_axes(fig, trace)
    fig.update_layout(height=height, width=300 * cols, margin=dict(l=40, r=10, t=40, b=40), showlegend=False)
    return FigureWidget(fig)  # a widget: drawn by the shared plotly bundle in Lab and Voila alike


class ExplainView(Displayable):
    """The DFPL energy / SAFF weights figure (:func:`explain_figure`) as a view, so Lab and Voila draw it alike."""

    def __init__(self, expl: Explanation, image: np.ndarray | None = None, height: int = 320):
        self.figure = explain_figure(expl, image, height)
        caption = ipw.HTML(f"SAFF leans on the high-level map on {expl.high_fraction:.0%} of the pixels")
        self.widget = ipw.VBox([caption, self.figure])

