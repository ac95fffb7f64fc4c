"""Self-supervised handwriting verification views (arXiv:2405.18320): the loss terms of a pre-training run
(:class:`LossTerms`), each method's embedding map with hover thumbnails (:class:`EmbeddingMap`), the VAE's
reconstructions, latent traversals and style correlation (:class:`VAEExplorer`), the collapse alarm
(:class:`CollapseView`), the augmented views (:class:`AugmentationViewer`) and the label-efficiency curves
(:class:`LabelEfficiency`). Figures are FigureWidgets updated in place; every number comes from
:mod:`kit.sslhv.explore` (and the training loop's events)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from kit.sslhv import explore
from kit.sslhv.explore import EmbeddingView
from kit.sslhv.methods import METHODS
from kit.verification.pairs import PairData
from widgets.common import LiveCurve
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, png_bytes, setup_plotly, to_uint8

setup_plotly()

__all__ = ["AugmentationViewer", "CollapseView", "EmbeddingMap", "LabelEfficiency", "LossTerms", "PAPER_POINTS",
           "VAEExplorer", "LOSS_TERMS", "png_bytes"]

# the terms each method's training_loss reports beside "loss" (methods without terms show "loss" itself)
LOSS_TERMS = {"vicreg": ("invariance", "variance", "covariance"), "barlow_twins": ("on_diag", "off_diag"),
              "vae": ("kl", "recon")}
VALIDATION_KEYS = ("val_gap", "val_effective_rank")

# arXiv:2405.18320's CEDAR AND accuracies: {curve: {fraction of labelled writers: accuracy}}
PAPER_POINTS = {"supervised ResNet-18": {0.1: 0.72, 1.0: 0.84}, "VICReg (frozen)": {0.1: 0.78},
                "VAE (frozen)": {0.1: 0.763}}

_MARGIN = dict(l=50, r=20, t=40, b=40)
_ALARM = "#d62728"
_HEALTHY = "#2ca02c"




def _ink_to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 [H, W] (dark ink on white) of a model input [H, W] with ink = 1."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return to_uint8(1.0 - a.astype(np.float32), signed=False, arg="x")


def _image_row_figure(n: int, titles: Sequence[str], size: int, height: int) -> FigureWidget:
    """One row of n blank grey images (size x size) with titles."""
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=0.01)
    for i in range(n):
        fig.add_trace(image_trace(np.full((size, size), 255, np.uint8)), row=1, col=i + 1)
    figure = FigureWidget(fig)
    for trace in figure.data:
        image_axes(figure, trace)
    figure.update_layout(height=height, width=max(360, 110 * n), margin=dict(l=10, r=10, t=30, b=10))
    figure.update_annotations(font_size=11)
    return figure


# --------------------------------------------------------------------------------------------------- loss terms
class LossTerms(LiveCurve):
    """Live curves of one method's pre-training, a callback for kit.core's training loop: the method's loss terms
    (top: VICReg's invariance / variance / covariance, Barlow Twins' on- / off-diagonal, the VAE's KL and recon, the
    others' loss), and below the validation writers' intra- minus inter-writer cosine ("val_gap", left) and the
    embeddings' effective rank (right) from the eval events. ``curves(event)``, ``flush()``; a committed history
    replays with :meth:`from_history`."""

    def __init__(self, method: str, title: str | None = None, height: int = 460) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.terms = LOSS_TERMS.get(method, ("loss",))
        super().__init__(keys=[*self.terms, *VALIDATION_KEYS], title=title or f"{method}: loss terms",
                         secondary=VALIDATION_KEYS, height=height)
        self.figure.update_layout(
            xaxis=dict(anchor="y2"),
            yaxis=dict(domain=[0.45, 1.0], title=dict(text="loss term")),
            yaxis2=dict(domain=[0.0, 0.33], overlaying=None, side="left", anchor="x", showgrid=True,
                        title=dict(text="val gap")),
            yaxis3=dict(overlaying="y2", side="right", anchor="x", showgrid=False,
                        title=dict(text="effective rank")),
            legend=dict(orientation="h", y=-0.15))
        self.last_eval: dict[str, float] | None = None
        self.readout = ipw.HTML("waiting for the first evaluation")
        self.widget = ipw.VBox([self.readout, self.figure])

    def __call__(self, event: dict[str, Any]) -> None:
        super().__call__(event)
        if event.get("kind") == "eval" and any(k in event for k in VALIDATION_KEYS):
            self.last_eval = {k: float(event[k]) for k in VALIDATION_KEYS if k in event}
            parts = [f"{k.removeprefix('val_').replace('_', ' ')} <b>{v:.3g}</b>" for k, v in self.last_eval.items()]
            self.readout.value = f"step {event['step']} (validation writers): " + ", ".join(parts)

    def flush(self) -> None:
        """Draws all collected points now (the effective rank on its own right-hand axis)."""
        super().flush()
        for name, idx in self._trace_of.items():
            if name.endswith("val_effective_rank") and self.figure.data[idx].yaxis != "y3":
                self.figure.data[idx].yaxis = "y3"

    @classmethod
    def from_history(cls, method: str, history: Sequence[dict[str, Any]], title: str | None = None) -> LossTerms:
        """A new LossTerms with every event of ``history`` (a training run's list of events) drawn."""
        if isinstance(history, (str, bytes, Mapping)) or not all(isinstance(h, dict) for h in history):
            raise ValueError("history must be a list of event dicts {'step', 'kind', ...}")
        curves = cls(method, title=title)
        for event in history:
            curves(event)
        curves.flush()
        return curves


# --------------------------------------------------------------------------------------------------- embeddings
def _cosine_text(cos: Mapping[str, float]) -> str:
    return f"intra {cos['intra']:.3f}, inter {cos['inter']:.3f}, gap <b>{cos['gap']:.3f}</b>"


class EmbeddingMap(Displayable):
    """A method's 2-D map of a writer subset (:func:`kit.sslhv.explore.embedding_views`), one colour per writer,
    the intra- / inter-writer cosine in the embedding space and on the map, and the image under the pointer.
    ``select(name)`` picks a method, ``show_point(k)`` shows row k of the current view (what hovering does)."""

    def __init__(self, views: Mapping[str, EmbeddingView], images: np.ndarray, method: str | None = None,
                 height: int = 460) -> None:
        if not views:
            raise ValueError("views must hold at least one EmbeddingView")
        self.views = dict(views)
        self.images = np.asarray(images)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, S, S], got {self.images.dtype} {self.images.shape}")
        for name, v in self.views.items():
            n = len(v.index)
            if np.shape(v.coords) != (n, 2) or len(v.writer) != n:
                raise ValueError(f"view {name!r}: coords must be [n, 2] and writer [n] with n = len(index) = {n}")
            if n and (v.index.min() < 0 or v.index.max() >= len(self.images)):
                raise ValueError(f"view {name!r}: index points outside images (N = {len(self.images)})")
        method = next(iter(self.views)) if method is None else method
        self._check(method)
        self.point: int | None = None
        self.dropdown = ipw.Dropdown(options=list(self.views), value=method, description="method")
        self.readout = ipw.HTML()
        self.thumbnail = ipw.Image(format="png", layout=ipw.Layout(width="128px", height="128px"))
        self.caption = ipw.HTML("hover a point")
        self.figure = FigureWidget(layout=dict(
            height=height, width=620, margin=_MARGIN, hovermode="closest",
            xaxis=dict(title=dict(text="map 1"), zeroline=False), yaxis=dict(title=dict(text="map 2"), zeroline=False)))
        self._writers: list = []
        self.dropdown.observe(lambda _: self._draw(), names="value")
        self.widget = ipw.VBox([self.dropdown, self.readout,
                                ipw.HBox([self.figure, ipw.VBox([self.thumbnail, self.caption])])])
        self._draw()

    def _check(self, name: str) -> None:
        if name not in self.views:
            raise ValueError(f"method {name!r} is not one of the views {list(self.views)}")

    @property
    def view(self) -> EmbeddingView:
        """The view shown now."""
        return self.views[self.dropdown.value]

    def select(self, name: str) -> None:
        """Shows method ``name``'s map."""
        self._check(name)
        self.dropdown.value = name

    def _draw(self) -> None:
        v = self.view
        writers = list(dict.fromkeys(np.asarray(v.writer).tolist()))
        rows = {w: np.flatnonzero(np.asarray(v.writer) == w) for w in writers}
        if writers != self._writers:
            with self.figure.batch_update():
                self.figure.data = ()
                for w in writers:
                    self.figure.add_scatter(x=[], y=[], mode="markers", name=f"writer {w}", customdata=[],
                                            marker=dict(size=9, opacity=0.85),
                                            hovertemplate=f"writer {w}, image %{{text}}<extra></extra>")
                    self.figure.data[-1].on_hover(self._on_hover)
                self.figure.add_scatter(x=[], y=[], mode="markers", name="shown", showlegend=False,
                                        hoverinfo="skip", marker=dict(size=18, color="rgba(0,0,0,0)",
                                                                      line=dict(color="black", width=2)))
                self._writers = writers
        with self.figure.batch_update():
            for trace, w in zip(self.figure.data, writers):
                k = rows[w]
                trace.update(x=v.coords[k, 0], y=v.coords[k, 1], customdata=k, text=np.asarray(v.index)[k])
            self.figure.layout.title.text = f"{v.name}: {len(v.index)} images of {len(writers)} writers"
        self.readout.value = (f"<b>{html.escape(v.name)}</b> cosine, same vs different writers: N-d "
                              f"{_cosine_text(v.nd)}; 2-D map {_cosine_text(v.map2d)}")
        k = self.point if self.point is not None and self.point < len(v.index) else 0
        self.show_point(k)

    def _on_hover(self, trace: Any, points: Any, _state: Any) -> None:
        if points.point_inds:
            self.show_point(int(trace.customdata[points.point_inds[0]]))

    def show_point(self, k: int) -> None:
        """Shows the image of row ``k`` of the current view beside the map and rings its point."""
        v = self.view
        if not 0 <= int(k) < len(v.index):
            raise ValueError(f"k must be a row of the {v.name!r} view, 0 <= k < {len(v.index)}, got {k}")
        self.point = int(k)
        i = int(v.index[k])
        self.thumbnail.value = png_bytes(self.images[i])
        self.caption.value = f"writer {v.writer[k]}, image {i}"
        with self.figure.batch_update():
            self.figure.data[-1].update(x=[v.coords[k, 0]], y=[v.coords[k, 1]])


# --------------------------------------------------------------------------------------------------- VAE
class VAEExplorer(Displayable):
    """The VAE (an SSLMethod("vae")) on images ``index`` of ``data``: the first ``n_show`` inputs over their
    reconstructions, and a latent traversal of one of them (7 values of one latent from -range to +range, in
    prior std units) in ``figure``; with ``correlation`` (:func:`kit.sslhv.explore.latent_style_correlation`) a
    heat map of |r| of each latent with each writer-style field and a "which dimension is ...?" picker that moves
    the dimension slider to that field's best latent."""

    N_STEPS = 7

    def __init__(self, method: Any, data: PairData, index: np.ndarray, correlation: Mapping[str, Any] | None = None,
                 n_show: int = 6, height: int = 420) -> None:
        index = np.asarray(index)
        if n_show < 1 or len(index) == 0:
            raise ValueError(f"need n_show >= 1 and a non-empty index, got n_show={n_show}, {len(index)} images")
        self.method, self.data = method, data
        self.shown = index[:n_show]
        n = len(self.shown)
        self.inputs = data.images[self.shown]
        self.reconstructed = explore.reconstructions(method, data.x[self.shown])  # ValueError for a non-VAE
        self.latent_dim = int(method.vae.latent_dim)
        size = self.inputs.shape[-1]
        cols = max(n, self.N_STEPS)
        titles = [f"writer {data.writer_of[i]}" for i in self.shown] + [" "] * (cols - n)
        titles += ["reconstruction"] + [" "] * (cols - 1)
        titles += [f"step {c}" for c in range(self.N_STEPS)] + [" "] * (cols - self.N_STEPS)
        fig = make_subplots(rows=3, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
        blank = np.full((size, size), 255, np.uint8)
        for r, imgs in ((1, self.inputs), (2, self.reconstructed)):
            for c, img in enumerate(imgs):
                fig.add_trace(image_trace(img), row=r, col=c + 1)
        self._first_step = len(fig.data)
        for c in range(self.N_STEPS):
            fig.add_trace(image_trace(blank), row=3, col=c + 1)
        self.figure = FigureWidget(fig)
        self.figure.update_xaxes(visible=False)  # cells without an image stay blank
        self.figure.update_yaxes(visible=False)
        for trace in self.figure.data:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=max(420, 105 * cols), margin=dict(l=10, r=10, t=30, b=10))
        self.figure.update_annotations(font_size=11)
        self._step_titles = self.figure.layout.annotations[2 * cols:2 * cols + self.N_STEPS]
        self.sample = ipw.IntSlider(value=0, min=0, max=n - 1, description="sample", continuous_update=False)
        self.dim = ipw.IntSlider(value=0, min=0, max=self.latent_dim - 1, description="latent dim",
                                 continuous_update=False)
        self.range = ipw.FloatSlider(value=3.0, min=0.5, max=5.0, step=0.5, description="range (std)",
                                     continuous_update=False)
        self.readout = ipw.HTML()
        for w in (self.sample, self.dim, self.range):
            w.observe(lambda _: self.redraw(), names="value")
        parts: list[ipw.Widget] = [ipw.HBox([self.sample, self.dim, self.range]), self.readout, self.figure]
        self.correlation = None if correlation is None else self._check_correlation(correlation)
        self.correlation_figure: FigureWidget | None = None
        self.field: ipw.Dropdown | None = None
        self.answer = ipw.HTML()
        if self.correlation is not None:
            parts.append(self._correlation_view(height))
        self.widget = ipw.VBox(parts)
        self.redraw()

    # traversal ------------------------------------------------------------------------------------------------
    @property
    def values(self) -> np.ndarray:
        """The latent values of the traversal: 7 from -range to +range."""
        r = float(self.range.value)
        return np.linspace(-r, r, self.N_STEPS)

    def redraw(self) -> None:
        """Decodes the traversal the sliders pick and redraws its row."""
        k, d, values = int(self.sample.value), int(self.dim.value), self.values
        imgs = explore.traverse(self.method, self.data.x[self.shown[k]][None], d, values)
        with self.figure.batch_update():
            for c, img in enumerate(imgs):
                self.figure.data[self._first_step + c].z = img
            for ann, v in zip(self._step_titles, values):
                ann.text = f"z{d} = {v:+.2g}"
        self.readout.value = (f"traversal of sample {k} (image {int(self.shown[k])}, writer "
                              f"{self.data.writer_of[self.shown[k]]}): latent {d} from {-values[-1]:g} to "
                              f"{values[-1]:+g}, the other latents at the image's mean")

    # style correlation ----------------------------------------------------------------------------------------
    def _check_correlation(self, c: Mapping[str, Any]) -> dict[str, np.ndarray]:
        missing = {"corr", "fields", "best_dim"} - set(c)
        if missing:
            raise ValueError(f"correlation needs the keys of latent_style_correlation, missing {sorted(missing)}")
        out = {k: np.asarray(c[k]) for k in ("corr", "fields", "best_dim")}
        if out["corr"].shape != (self.latent_dim, len(out["fields"])) or len(out["best_dim"]) != len(out["fields"]):
            raise ValueError(f"correlation['corr'] must be [latent_dim={self.latent_dim}, {len(out['fields'])} fields]"
                             f" with one best_dim per field, got {out['corr'].shape}")
        return out

    def _correlation_view(self, height: int) -> ipw.Widget:
        c = self.correlation
        fields = [str(f) for f in c["fields"]]
        dims = [f"z{d}" for d in range(self.latent_dim)]
        self.correlation_figure = FigureWidget(data=[
            go.Heatmap(z=np.abs(c["corr"]), x=fields, y=dims, zmin=0, zmax=1, colorscale="Viridis",
                       customdata=c["corr"], colorbar=dict(title=dict(text="|r|"), thickness=12),
                       hovertemplate="%{y} vs %{x}: r = %{customdata:+.2f}<extra></extra>"),
            go.Scatter(x=[], y=[], mode="markers", name="picked", showlegend=False, hoverinfo="skip",
                       marker=dict(symbol="square-open", size=16, color="red", line=dict(width=2)))],
            layout=dict(height=min(max(height, 120 + 16 * self.latent_dim), 900), width=520,
                        margin=dict(l=60, r=10, t=40, b=80),
                        title=dict(text="|r| of each latent with the writers' true style"),
                        yaxis=dict(autorange="reversed")))
        self.field = ipw.Dropdown(options=fields, value=None, description="which dimension is")
        self.field.observe(self._on_field, names="value")
        return ipw.VBox([ipw.HBox([self.field, self.answer]), self.correlation_figure])

    def _on_field(self, change: dict) -> None:
        if change["new"] is not None:
            self._show_field(change["new"])

    def which(self, field: str) -> int:
        """The latent with the largest |r| for style ``field``; picks the field, which moves the dimension slider."""
        if self.correlation is None:
            raise ValueError("no correlation: pass correlation=latent_style_correlation(...)")
        fields = list(self.field.options)
        if field not in fields:
            raise ValueError(f"field must be one of {fields}, got {field!r}")
        if self.field.value == field:
            self._show_field(field)
        self.field.value = field
        return int(self.dim.value)

    def _show_field(self, field: str) -> None:
        c = self.correlation
        j = list(self.field.options).index(field)
        d = int(c["best_dim"][j])
        self.answer.value = f"<b>{html.escape(field)}</b> is latent <b>{d}</b> (r = {float(c['corr'][d, j]):+.2f})"
        with self.correlation_figure.batch_update():
            self.correlation_figure.data[1].update(x=[field], y=[f"z{d}"])
        self.dim.value = d


# --------------------------------------------------------------------------------------------------- collapse
class CollapseView(Displayable):
    """The collapse alarm per method (:func:`kit.sslhv.explore.collapse_stats` values): a histogram of the
    per-dimension std with VICReg's variance target 1 dashed, the alarm with the share of collapsed dimensions and
    the effective rank, and the covariance matrix of the first 64 dimensions (symmetric colour range)."""

    MAX_DIMS = 64

    def __init__(self, stats: Mapping[str, Mapping[str, Any]], method: str | None = None, height: int = 380) -> None:
        if not stats:
            raise ValueError("stats must hold at least one method's collapse_stats")
        for name, s in stats.items():
            missing = {"std", "cov", "report", "dim"} - set(s)
            if missing:
                raise ValueError(f"stats[{name!r}] needs the keys of collapse_stats, missing {sorted(missing)}")
        self.stats = dict(stats)
        method = next(iter(self.stats)) if method is None else method
        if method not in self.stats:
            raise ValueError(f"method {method!r} is not one of {list(self.stats)}")
        self.dropdown = ipw.Dropdown(options=list(self.stats), value=method, description="method")
        self.readout = ipw.HTML()
        fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12,
                            subplot_titles=("std per dimension", "covariance"))
        fig.add_trace(go.Histogram(x=[], name="dimensions", nbinsx=30, marker_color="#1f77b4"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=[[0.0]], colorscale="RdBu", zmid=0, zmin=-1, zmax=1, name="covariance",
                                 colorbar=dict(thickness=12, x=1.0)), row=1, col=2)
        fig.add_shape(type="line", x0=1, x1=1, y0=0, y1=1, xref="x", yref="y domain",
                      line=dict(color="black", dash="dash", width=2), row=1, col=1)
        fig.add_annotation(x=1, y=1, xref="x", yref="y domain", text="target 1", showarrow=False, yanchor="bottom",
                           font=dict(size=10))
        self.figure = FigureWidget(fig)
        self.figure.update_layout(height=height, width=880, margin=_MARGIN, showlegend=False)
        self.figure.update_xaxes(title_text="std", row=1, col=1)
        self.figure.update_yaxes(title_text="dimensions", row=1, col=1)
        self.figure.update_yaxes(autorange="reversed", scaleanchor="x2", row=1, col=2)
        self.dropdown.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.dropdown, self.readout, self.figure])
        self.redraw()

    @property
    def collapsed(self) -> bool:
        """Whether the shown method's alarm is on."""
        return bool(self.stats[self.dropdown.value]["report"]["collapsed"])

    def select(self, name: str) -> None:
        """Shows method ``name``."""
        if name not in self.stats:
            raise ValueError(f"method {name!r} is not one of {list(self.stats)}")
        self.dropdown.value = name

    def redraw(self) -> None:
        """Redraws the histogram, the covariance and the alarm of the selected method."""
        s = self.stats[self.dropdown.value]
        std = np.asarray(s["std"], dtype=float)
        cov = np.asarray(s["cov"], dtype=float)[:self.MAX_DIMS, :self.MAX_DIMS]
        m = float(np.abs(cov).max()) or 1.0
        rep = s["report"]
        with self.figure.batch_update():
            self.figure.data[0].x = std
            self.figure.data[1].update(z=cov, zmin=-m, zmax=m)
            self.figure.layout.xaxis.range = [0, max(1.1, 1.05 * float(std.max(initial=0.0)))]
            self.figure.layout.annotations[1].text = (f"covariance (first {len(cov)} of {s['dim']} dims)"
                                                      if s["dim"] > self.MAX_DIMS else "covariance")
        state, colour = ("collapsed", _ALARM) if rep["collapsed"] else ("healthy", _HEALTHY)
        self.readout.value = (f"<b>{html.escape(self.dropdown.value)}</b>: <b style='color:{colour}'>{state}</b> "
                              f"&mdash; {rep['frac_collapsed']:.0%} of {s['dim']} dimensions collapsed, effective "
                              f"rank {rep['effective_rank']:.2f}, mean std {float(std.mean()):.3g}")


# --------------------------------------------------------------------------------------------------- augmentations
class AugmentationViewer(Displayable):
    """The original of one input and ``n`` random :class:`kit.sslhv.views.HandwritingViews` of it
    (:func:`kit.sslhv.explore.augmented_views`), with sliders for the view knobs and a "new views" button."""

    KNOBS = {"min_scale": (0.3, 1.0, 0.05, 0.5), "max_rotation_deg": (0.0, 30.0, 1.0, 8.0),
             "max_shear": (0.0, 0.5, 0.05, 0.2), "elastic_alpha": (0.0, 0.1, 0.005, 0.03)}

    def __init__(self, x: torch.Tensor, n: int = 6, seed: int = 0, height: int = 200) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1 or len(x) == 0:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"x must be model inputs, a tensor [N, 1, S, S] (ink = 1), got {shape}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.x, self.n, self.seed = x, int(n), int(seed)
        self.sample = ipw.IntSlider(value=0, min=0, max=len(x) - 1, description="sample", continuous_update=False)
        self.knobs: dict[str, ipw.ValueWidget] = {
            k: ipw.FloatSlider(value=v, min=lo, max=hi, step=st, description=k, continuous_update=False,
                               readout_format=".3g", style={"description_width": "initial"})
            for k, (lo, hi, st, v) in self.KNOBS.items()}
        self.knobs["stroke_jitter"] = ipw.IntSlider(value=1, min=0, max=2, description="stroke_jitter",
                                                    continuous_update=False, style={"description_width": "initial"})
        self.button = ipw.Button(description="new views", icon="refresh")
        self.readout = ipw.HTML()
        self.figure = _image_row_figure(self.n + 1, ["original"] + [f"view {i + 1}" for i in range(self.n)],
                                        x.shape[-1], height)
        self.sample.observe(lambda _: self.redraw(), names="value")
        for w in self.knobs.values():
            w.observe(lambda _: self.redraw(), names="value")
        self.button.on_click(lambda _: self.new_views())
        knobs = list(self.knobs.values())
        self.widget = ipw.VBox([ipw.HBox([self.sample, self.button]), ipw.HBox(knobs[:3]), ipw.HBox(knobs[3:]),
                                self.readout, self.figure])
        self.redraw()

    @property
    def params(self) -> dict[str, float]:
        """The view knobs as the sliders set them (HandwritingViews keyword arguments)."""
        return {k: w.value for k, w in self.knobs.items()}

    def new_views(self) -> None:
        """Draws new views (the next seed)."""
        self.seed += 1
        self.redraw()

    def redraw(self) -> None:
        """Draws the original and its views with the current knobs and seed."""
        k = int(self.sample.value)
        xk = self.x[k:k + 1]
        views = explore.augmented_views(xk, self.n, self.seed, **self.params)
        with self.figure.batch_update():
            self.figure.data[0].z = _ink_to_uint8(xk[0, 0])
            for trace, img in zip(self.figure.data[1:], views):
                trace.z = img
        knobs = ", ".join(f"{k} {v:g}" for k, v in self.params.items())
        self.readout.value = f"sample {k}, seed {self.seed}: {knobs}"


# --------------------------------------------------------------------------------------------------- label efficiency
def _fraction(key: Any, where: str) -> float:
    try:
        f = float(key)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: fractions of labelled writers must be numbers like '0.1', got {key!r}") from None
    if not 0 < f <= 1:
        raise ValueError(f"{where}: fractions of labelled writers must be in (0, 1], got {key!r}")
    return f


class LabelEfficiency(Displayable):
    """Accuracy against the % of labelled training writers (log axis), one line per curve ({name: {fraction:
    accuracy}}, fractions as strings like "0.01" or numbers), chance 0.5 dashed, and optional paper points
    (e.g. :data:`PAPER_POINTS`, arXiv:2405.18320's CEDAR AND numbers) as markers; a checkbox shows or hides them."""

    def __init__(self, curves: Mapping[str, Mapping[Any, float]],
                 paper: Mapping[str, Mapping[float, float]] | None = None, title: str = "label efficiency",
                 height: int = 420) -> None:
        if not curves:
            raise ValueError("curves must hold at least one curve {name: {fraction: accuracy}}")
        self.curves = {name: self._points(pts, f"curves[{name!r}]") for name, pts in curves.items()}
        self.paper = {name: self._points(pts, f"paper[{name!r}]") for name, pts in (paper or {}).items()}
        xs = [x for pts in (*self.curves.values(), *self.paper.values()) for x, _ in pts]
        lo, hi = min(xs), max(xs)
        self.figure = FigureWidget(layout=dict(
            title=dict(text=title), height=height, width=720, margin=_MARGIN, legend=dict(orientation="v"),
            xaxis=dict(type="log", title=dict(text="% of training writers labelled"), ticksuffix="%"),
            yaxis=dict(title=dict(text="test accuracy"))))
        for name, pts in self.curves.items():
            self.figure.add_scatter(x=[x for x, _ in pts], y=[y for _, y in pts], mode="lines+markers", name=name)
        self.figure.add_scatter(x=[lo, hi], y=[0.5, 0.5], mode="lines", name="chance",
                                line=dict(color="grey", dash="dash"), hoverinfo="skip")
        self._paper_traces = []
        symbols = ("star", "diamond", "square", "triangle-up", "x", "cross")
        for i, (name, pts) in enumerate(self.paper.items()):
            self.figure.add_scatter(x=[x for x, _ in pts], y=[y for _, y in pts], mode="markers",
                                    name=f"paper: {name} (CEDAR AND)",
                                    marker=dict(symbol=symbols[i % len(symbols)], size=12, line=dict(width=1)))
            self._paper_traces.append(self.figure.data[-1])
        self.show_paper = ipw.Checkbox(value=True, description="paper's CEDAR AND points", indent=False,
                                       disabled=not self.paper)
        self.show_paper.observe(self._on_paper, names="value")
        self.widget = ipw.VBox([self.show_paper, self.figure])

    @staticmethod
    def _points(pts: Mapping[Any, float], where: str) -> list[tuple[float, float]]:
        if not isinstance(pts, Mapping) or not pts:
            raise ValueError(f"{where}: expected a non-empty {{fraction: accuracy}} dict, got {pts!r:.80}")
        out = []
        for k, v in pts.items():
            if not isinstance(v, (int, float, np.floating)) or isinstance(v, bool) or not 0 <= v <= 1:
                raise ValueError(f"{where}: accuracies must be numbers in [0, 1], got {v!r} at {k!r}")
            out.append((100.0 * _fraction(k, where), float(v)))
        return sorted(out)

    def _on_paper(self, change: dict) -> None:
        with self.figure.batch_update():
            for trace in self._paper_traces:
                trace.visible = bool(change["new"])
