"""The NL-RAN result views (arXiv:2408.04300): ROC curves and the confusion matrix (`roc_figure`, `confusion_figure`,
`ROCView`), the non-local block's attention for a picked voxel (`NonLocalView`), one panel per heat-map source
(`heatmap_panels`), and the trace helpers the slice views share. Re-exported by :mod:`widgets.nlran`; the numbers
come from :mod:`kit.nlran.explore` and :mod:`kit.nlran.attention`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from kit.nlran import attention as att
from kit.nlran import explore as ex
from widgets.viz import Displayable, FigureWidget, image_axes, setup_plotly

setup_plotly()
HEAT_SCALE, ATTN_SCALE = "Inferno", "Viridis"
CONTOUR_COLOR, SELECTED_COLOR, MARKER_COLOR = "cyan", "lime", "red"


# --- trace helpers -----------------------------------------------------------------------------------------
def _range(a: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(a)), float(np.max(a))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _grey(z: np.ndarray, lo: float, hi: float) -> go.Heatmap:
    return go.Heatmap(z=z, colorscale="gray", zmin=lo, zmax=hi, showscale=False, name="CT",
                      hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra>CT</extra>")


def _heat(z: np.ndarray, lo: float, hi: float, opacity: float, colorscale: str = HEAT_SCALE,
          name: str = "heat", showscale: bool = True) -> go.Heatmap:
    return go.Heatmap(z=z, colorscale=colorscale, zmin=lo, zmax=hi, opacity=opacity, name=name,
                      showscale=showscale, colorbar=dict(thickness=10, len=0.8),
                      hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra>" + name + "</extra>")


def _contour(color: str = CONTOUR_COLOR, name: str = "lesion", width: float = 2.0) -> go.Scatter:
    return go.Scatter(x=[], y=[], mode="lines", line=dict(color=color, width=width), name=name,
                      hoverinfo="skip", showlegend=False)


def _marker(color: str = MARKER_COLOR, name: str = "voxel") -> go.Scatter:
    return go.Scatter(x=[], y=[], mode="markers", name=name, hoverinfo="skip", showlegend=False,
                      marker=dict(symbol="x-thin", size=14, line=dict(width=3, color=color), color=color))


def _check_opacity(opacity: float) -> float:
    if not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity: expected a value in [0, 1], got {opacity}")
    return float(opacity)


# --- 1. slice scrubber -------------------------------------------------------------------------------------


def roc_figure(report: Mapping[str, Any], title: str | None = None, height: int = 420) -> go.Figure:
    """ROC curves of a `kit.nlran.metrics.classification_report` dict: one trace per class (classes absent
    from the labels have no curve), then micro (dashed) and macro (dotted), then the chance diagonal; AUCs in the
    legend and the macro / micro AUC in the title (see `kit.nlran.explore.roc_data`)."""
    curves = ex.roc_data(report)
    fig = go.Figure()
    palette = qualitative.Plotly
    for i, c in enumerate(curves):
        dash = {"class": "solid", "micro": "dash", "macro": "dot"}[c["kind"]]
        color = palette[i % len(palette)] if c["kind"] == "class" else ("black" if c["kind"] == "micro" else "grey")
        fig.add_trace(go.Scatter(x=c["fpr"], y=c["tpr"], mode="lines", name=f"{c['name']} (AUC {c['auc']:.3f})",
                                 line=dict(dash=dash, color=color, width=2.5 if c["kind"] == "class" else 2)))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", hoverinfo="skip",
                             line=dict(dash="dashdot", color="lightgrey", width=1)))
    auc = {c["kind"]: c["auc"] for c in curves if c["kind"] != "class"}
    parts = [f"{k} AUC {auc[k]:.4f}" for k in ("macro", "micro") if k in auc]
    fig.update_layout(title=dict(text=title or "ROC: " + ", ".join(parts)), height=height,
                      margin=dict(l=50, r=10, t=50, b=40), legend=dict(x=0.98, y=0.02, xanchor="right"),
                      xaxis=dict(title=dict(text="false positive rate"), range=[-0.01, 1.01], constrain="domain"),
                      yaxis=dict(title=dict(text="true positive rate"), range=[-0.01, 1.01], scaleanchor="x"))
    return fig


def confusion_figure(report: Mapping[str, Any], normalize: bool = False, height: int = 420) -> go.Figure:
    """The confusion matrix of a classification_report dict as a heat map: rows the true class (top to bottom in
    class order), columns the predicted class; each cell shows its count (and the row share with ``normalize``,
    which also colours by row share)."""
    counts, names = ex.confusion_data(report, normalize=False)
    z, _ = ex.confusion_data(report, normalize=normalize)
    text = [[f"{int(c)}<br>{s:.0%}" if normalize else f"{int(c)}" for c, s in zip(rc, rz)]
            for rc, rz in zip(counts, z)]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale="Blues",
                               zmin=0, showscale=False,
                               hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    acc = report.get("accuracy")
    fig.update_layout(title=dict(text="confusion matrix" + (f" (accuracy {acc:.3f})" if acc is not None else "")),
                      height=height, margin=dict(l=10, r=10, t=50, b=40),
                      xaxis=dict(title=dict(text="predicted"), side="bottom", constrain="domain"),
                      yaxis=dict(title=dict(text="true"), autorange="reversed", scaleanchor="x"))
    return fig


class ROCView(Displayable):
    """ROC curves (`.figure`) and the confusion matrix (`.confusion`) of one classification_report dict side by
    side, with a checkbox that shows row shares in the matrix; `update(report)` redraws both."""

    def __init__(self, report: Mapping[str, Any], height: int = 420):
        self.report = report
        self.height = height
        self.figure = FigureWidget(roc_figure(report, height=height))
        self.confusion = FigureWidget(confusion_figure(report, height=height))
        self.normalize_checkbox = ipw.Checkbox(value=False, description="row shares", indent=False)
        self.normalize_checkbox.observe(lambda _: self._draw_confusion(), names="value")
        self.widget = ipw.VBox([self.normalize_checkbox, ipw.HBox([self.figure, self.confusion])])

    def _draw_confusion(self) -> None:
        new = confusion_figure(self.report, normalize=bool(self.normalize_checkbox.value), height=self.height)
        with self.confusion.batch_update():
            self.confusion.data[0].update(z=new.data[0].z, text=new.data[0].text, x=new.data[0].x, y=new.data[0].y)
            self.confusion.layout.title.text = new.layout.title.text

    def update(self, report: Mapping[str, Any]) -> None:
        """Shows another report (the same number of classes or not)."""
        new = roc_figure(report, height=self.height)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(list(new.data))
            self.figure.layout.title.text = new.layout.title.text
        self.report = report
        self._draw_confusion()


# --- 4. non-local attention --------------------------------------------------------------------------------
class NonLocalView(Displayable):
    """Where does one voxel look? The non-local block's softmax weights A[i, :] of a chosen query voxel.

    model: a network with a non-local block (`model.nonlocal_block`); without one (the "nlran_no_nl" ablation)
    a ValueError is raised before anything is drawn. x: one input [1, 1, D, H, W]. volume: what to draw on the
    left ([D, H, W], default x itself), on the input grid.
    Left: the axial input slice at the "input z" slider, with a cross at the selected voxel; click it to select
    the voxel under the mouse (on that slice), or call `select(z, y, x)` (input voxel indices). The voxel is
    mapped to its cell of the non-local grid (`kit.nlran.attention.input_voxel_to_grid`), whose attention row is
    shown on the right: one axial slice ("key slice" slider; set to the query's own key slice on selection) of
    the key grid, drawn in input voxel units (each key cell spans S / g input voxels), colour range 0 .. the
    largest weight of the whole row so slices compare. Traces: 0 input, 1 cross, 2 weights, 3 query cell.
    """

    BASE, CROSS, WEIGHTS, QUERY = range(4)

    def __init__(self, model: Any, x: Any, volume: Any = None, voxel: Sequence[int] | None = None,
                 height: int = 420):
        self.attn, self.grid, self.kv_grid = att.nonlocal_attention(model, x)
        self.volume = ex.as_volume(x if volume is None else volume, "volume").astype(np.float64)
        self.input_size = tuple(int(s) for s in x.shape[2:])
        if self.volume.shape != self.input_size:
            raise ValueError(f"volume: expected the input grid {self.input_size}, got {self.volume.shape}")
        D = self.input_size[0]
        self._hold = False
        self.input_slider = ipw.IntSlider(value=D // 2, min=0, max=D - 1, description="input z",
                                          continuous_update=False)
        self.key_slider = ipw.IntSlider(value=0, min=0, max=self.kv_grid[0] - 1, description="key slice",
                                        continuous_update=False)
        self.status = ipw.HTML()
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                            subplot_titles=("input (click a voxel)", "attention weights"))
        fig.add_trace(_grey(np.zeros((1, 1)), *_range(self.volume)), row=1, col=1)
        fig.add_trace(_marker(), row=1, col=1)
        # key cell c spans S / g input voxels: draw the key grid in input voxel units
        step = [s / g for s, g in zip(self.input_size, self.kv_grid)]
        fig.add_trace(go.Heatmap(z=np.zeros((1, 1)), colorscale=ATTN_SCALE, zmin=0, zmax=1, name="weight",
                                 x0=step[2] / 2 - 0.5, dx=step[2], y0=step[1] / 2 - 0.5, dy=step[1],
                                 colorbar=dict(thickness=10, len=0.8),
                                 hovertemplate="x %{x:.1f}, y %{y:.1f}: %{z:.3g}<extra>weight</extra>"),
                      row=1, col=2)
        fig.add_trace(_marker(MARKER_COLOR, "query"), row=1, col=2)
        self.figure = FigureWidget(fig)
        for t in (self.figure.data[self.BASE], self.figure.data[self.WEIGHTS]):
            image_axes(self.figure, t, show_ticks=True)
        self.figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
        self.figure.data[self.BASE].on_click(self._on_click)
        self.input_slider.observe(lambda _: self._draw_input(), names="value")
        self.key_slider.observe(lambda _: self._draw_weights(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.input_slider, self.key_slider]), self.status, self.figure])
        self.select(*(voxel if voxel is not None else tuple(s // 2 for s in self.input_size)))

    @property
    def key_slice(self) -> np.ndarray:
        """The drawn weights: slice ``key_slider.value`` of the selected voxel's weights [h', w']."""
        return self.weights[int(self.key_slider.value)]

    def select(self, z: int, y: int, x: int) -> None:
        """Selects input voxel (z, y, x): its query cell's weights [d', h', w'] become ``self.weights``; the
        input slider moves to z and the key slider to the query's key slice."""
        voxel = (int(z), int(y), int(x))
        self.cell = att.input_voxel_to_grid(voxel, self.input_size, self.grid)
        self.weights = att.attention_for_voxel(self.attn, self.grid, self.kv_grid, self.cell)
        self.voxel = voxel
        self.key_cell = att.input_voxel_to_grid(self.cell, self.grid, self.kv_grid)
        self._hold = True
        try:
            self.input_slider.value = voxel[0]
            self.key_slider.value = self.key_cell[0]
        finally:
            self._hold = False
        n_kv = self.weights.size
        k = np.unravel_index(int(np.argmax(self.weights)), self.weights.shape)
        self.status.value = (f"voxel {voxel} -> non-local cell {self.cell} of {self.grid}; {n_kv} keys "
                             f"{self.kv_grid}; largest weight {self.weights.max():.4f} at key {tuple(map(int, k))} "
                             f"(uniform: {1 / n_kv:.4f})")
        with self.figure.batch_update():
            self._draw_input()
            self._draw_weights()

    def _on_click(self, _trace: Any, points: Any, _selector: Any) -> None:
        if not points.xs:
            return
        y = int(np.clip(round(float(points.ys[0])), 0, self.input_size[1] - 1))
        x = int(np.clip(round(float(points.xs[0])), 0, self.input_size[2] - 1))
        self.select(int(self.input_slider.value), y, x)

    def _draw_input(self) -> None:
        if self._hold:
            return
        z = int(self.input_slider.value)
        on = z == self.voxel[0]
        with self.figure.batch_update():
            self.figure.data[self.BASE].z = ex.slice_of(self.volume, "axial", z)
            self.figure.data[self.CROSS].update(x=[self.voxel[2]] if on else [], y=[self.voxel[1]] if on else [])
            self.figure.layout.annotations[0].text = f"input, axial z = {z} (click a voxel)"

    def _draw_weights(self) -> None:
        if self._hold:
            return
        k = int(self.key_slider.value)
        on = k == self.key_cell[0]
        cy, cx = att.grid_to_input(self.key_cell, self.input_size, self.kv_grid)[1:]
        with self.figure.batch_update():
            self.figure.data[self.WEIGHTS].update(z=self.key_slice, zmin=0.0, zmax=float(self.weights.max()))
            self.figure.data[self.QUERY].update(x=[cx] if on else [], y=[cy] if on else [])
            self.figure.layout.annotations[1].text = (f"weights of voxel {self.voxel}, key slice {k} / "
                                                      f"{self.kv_grid[0] - 1}")


# --- static panels -----------------------------------------------------------------------------------------
def heatmap_panels(volume: Any, heats: Mapping[str, Any], lesion_mask: Any = None, axis: str = "axial",
                   index: int | None = None, opacity: float = 0.5, colorscale: str = HEAT_SCALE,
                   ct_panel: bool = True, height: int = 280) -> go.Figure:
    """One panel per heat map on the same slice: the CT slice (grey) with the heat map over it (each map's own
    min..max over the volume) and the lesion outline (cyan); with ``ct_panel`` a first panel shows the CT alone.

    volume, heats (name -> [D, H, W]; torch [1, D, H, W] accepted), lesion_mask (bool [D, H, W] or None): one
    volume. axis / index: as `kit.nlran.explore.slice_of` (index None: the middle slice). Returns a plain
    go.Figure (write_image / write_html friendly). Traces per panel: CT, heat, outline (the CT panel: CT, outline).
    """
    vol = ex.as_volume(volume, "volume")
    if not isinstance(heats, Mapping) or not heats:
        raise ValueError(f"heats: expected a non-empty dict name -> [D, H, W], got {type(heats).__name__}")
    maps = {str(k): ex.as_volume(v, f"heats[{k!r}]").astype(np.float64) for k, v in heats.items()}
    for k, v in maps.items():
        if v.shape != vol.shape:
            raise ValueError(f"heats[{k!r}]: expected the volume's shape {vol.shape}, got {v.shape}")
    mask = None if lesion_mask is None else ex.as_volume(lesion_mask, "lesion_mask").astype(bool)
    if mask is not None and mask.shape != vol.shape:
        raise ValueError(f"lesion_mask: expected the volume's shape {vol.shape}, got {mask.shape}")
    i = ex.axis_length(vol.shape, axis) // 2 if index is None else index
    base = ex.slice_of(vol, axis, i)
    xs, ys = ex.lesion_contour(ex.slice_of(mask, axis, i)) if mask is not None else (np.zeros(0), np.zeros(0))
    titles = (["CT"] if ct_panel else []) + list(maps)
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.01)
    lo, hi = _range(vol)
    col = 1
    if ct_panel:
        fig.add_trace(_grey(base, lo, hi), row=1, col=col)
        fig.add_trace(_contour().update(x=xs, y=ys), row=1, col=col)
        col += 1
    for name, m in maps.items():
        fig.add_trace(_grey(base, lo, hi), row=1, col=col)
        fig.add_trace(_heat(ex.slice_of(m, axis, i), *_range(m), opacity, colorscale, name, showscale=False),
                      row=1, col=col)
        fig.add_trace(_contour().update(x=xs, y=ys), row=1, col=col)
        col += 1
    for t in fig.data:
        if isinstance(t, go.Heatmap) and t.name == "CT":
            image_axes(fig, t)
    fig.update_layout(height=height, width=max(400, 220 * len(titles)), margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=f"{axis} slice {i}", x=0.01, font=dict(size=12)))
    return fig
