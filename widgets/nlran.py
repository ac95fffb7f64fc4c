"""Interactive views and static figures of the NL-RAN series (explainable non-local network, arXiv:2408.04300).

- `SliceScrubber`: scroll through a CT volume along any axis with a heat map (AM1/AM2/AM3/CAM/Grad-CAM) over it
  and the lesion outline (spec §5, widget 1; the ready-made 3D overlay users ask for in MONAI#8217).
- `LesionPainter`: add, move or remove a ground-glass blob or a consolidation in a phantom and watch the three
  class probabilities and the heat map follow (widget 2).
- `roc_figure`, `confusion_figure`, `ROCView`: one ROC curve per class plus micro and macro, and the confusion
  matrix (widget 3).
- `NonLocalView`: pick a voxel (click, or `select(z, y, x)`) and see its softmax weights over the non-local
  block's key grid (widget 4).
- `heatmap_panels`: a static figure with one panel per heat-map source on the same slice (for the notebooks).

The numbers come from `kit.nlran.explore` (slices, contours, the painter, attention, curves); these classes only
draw them. Every 2D image is a `kit.nlran.explore.slice_of` slice drawn with row 0 at the top (y axis reversed)
and column 0 at the left, in voxel units. Each widget has `.widget` (an ipywidgets box) and `.figure` (a plotly
FigureWidget updated in place); sliders use continuous_update=False.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from kit.nlran import explore as ex
from kit.nlran.phantom import CLASS_TITLES, voxel_to_normalised
from widgets.viz import Displayable, FigureWidget, image_axes, setup_plotly

__all__ = ["LesionPainter", "NonLocalView", "ROCView", "SliceScrubber", "confusion_figure", "heatmap_panels",
           "roc_figure"]

setup_plotly()
HEAT_SCALE, ATTN_SCALE = "Inferno", "Viridis"
CONTOUR_COLOR, SELECTED_COLOR, MARKER_COLOR = "cyan", "lime", "red"
PREDICTED = -1  # class dropdown value meaning "the predicted class" (class_idx=None)


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


def _class_options(class_names: Sequence[str], with_predicted: bool) -> list[tuple[str, int]]:
    opts = [(str(n), i) for i, n in enumerate(class_names)]
    return ([("predicted class", PREDICTED)] if with_predicted else []) + opts


def _class_idx(value: int) -> int | None:
    return None if value == PREDICTED else int(value)


def _check_opacity(opacity: float) -> float:
    if not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity: expected a value in [0, 1], got {opacity}")
    return float(opacity)


# --- 1. slice scrubber -------------------------------------------------------------------------------------
class SliceScrubber(Displayable):
    """A CT volume sliced along a chosen axis with a colour heat map over it and the lesion outline.

    volume: [D, H, W] (numpy or torch; [1, D, H, W] accepted), e.g. the windowed input; drawn grey with a fixed
    range (``vrange``, default the volume's min and max) so slices compare.
    overlays: name -> heat map [D, H, W] (e.g. {"AM1": ..., "CAM": ...}), or a callable class_idx -> such a dict
    (class_idx None = the predicted class), called again when the class selector changes (e.g.
    ``lambda k: painter.heatmaps(k)``). With a plain dict the class selector is disabled. Each overlay is drawn
    with its own fixed range (its min and max over the volume).
    lesion_mask: bool [D, H, W] or None; its outline on the slice (`kit.nlran.explore.lesion_contour`) can be
    toggled. class_names: labels of the class selector.
    Orientation: see `kit.nlran.explore.slice_of` (axial: y down, x across; coronal: z down, x across; sagittal:
    z down, y across). Changing the axis moves the slice slider to the middle slice of the new axis.
    Traces: 0 CT, 1 overlay, 2 lesion outline.
    """

    BASE, OVERLAY, CONTOUR = 0, 1, 2

    def __init__(self, volume: Any, overlays: Mapping[str, Any] | Callable[[int | None], Mapping[str, Any]],
                 lesion_mask: Any = None, class_names: Sequence[str] = CLASS_TITLES, axis: str = "axial",
                 index: int | None = None, overlay: str | None = None, class_idx: int | None = None,
                 opacity: float = 0.5, colorscale: str = HEAT_SCALE, vrange: tuple[float, float] | None = None,
                 height: int = 460):
        self.volume = ex.as_volume(volume, "volume")
        self.shape = tuple(self.volume.shape)
        self.vrange = _range(self.volume) if vrange is None else (float(vrange[0]), float(vrange[1]))
        self.lesion_mask = None if lesion_mask is None else self._checked(lesion_mask, "lesion_mask").astype(bool)
        if callable(overlays):
            self._source: Callable[[int | None], Mapping[str, Any]] | None = overlays
            maps = overlays(class_idx)
        elif isinstance(overlays, Mapping):
            self._source, maps = None, overlays
        else:
            raise ValueError(f"overlays: expected a dict name -> [D, H, W] or a callable class_idx -> dict, "
                             f"got {type(overlays).__name__}")
        self._set_maps(maps)
        n = ex.axis_length(self.shape, axis)
        self._hold = False
        self.axis_dropdown = ipw.Dropdown(options=list(ex.AXES), value=axis, description="axis")
        self.slice_slider = ipw.IntSlider(value=n // 2 if index is None else index, min=0, max=n - 1,
                                          description="slice", continuous_update=False)
        names = list(self.maps)
        if overlay is not None and overlay not in names:
            raise ValueError(f"overlay: expected one of the overlay names {names}, got {overlay!r}")
        self.overlay_dropdown = ipw.Dropdown(options=names, description="overlay",
                                             value=overlay if overlay is not None else
                                             ("AM1" if "AM1" in names else names[0]))
        self.class_dropdown = ipw.Dropdown(options=_class_options(class_names, True), description="class",
                                           value=PREDICTED if class_idx is None else int(class_idx),
                                           disabled=self._source is None)
        self.opacity_slider = ipw.FloatSlider(value=_check_opacity(opacity), min=0.0, max=1.0, step=0.05,
                                              description="opacity", continuous_update=False)
        self.contour_checkbox = ipw.Checkbox(value=self.lesion_mask is not None, description="lesion outline",
                                             disabled=self.lesion_mask is None, indent=False)
        self.figure = FigureWidget(data=[_grey(np.zeros((1, 1)), *self.vrange),
                                            _heat(np.zeros((1, 1)), 0.0, 1.0, self.opacity, colorscale),
                                            _contour()])
        image_axes(self.figure, self.figure.data[0], show_ticks=True)
        self.figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
        self.axis_dropdown.observe(self._on_axis, names="value")
        self.slice_slider.observe(lambda _: self._redraw(), names="value")
        self.overlay_dropdown.observe(lambda _: self._redraw(), names="value")
        self.class_dropdown.observe(self._on_class, names="value")
        self.opacity_slider.observe(self._on_opacity, names="value")
        self.contour_checkbox.observe(lambda _: self._redraw(), names="value")
        self._redraw()
        self.widget = ipw.VBox([
            ipw.HBox([self.axis_dropdown, self.slice_slider, self.contour_checkbox]),
            ipw.HBox([self.overlay_dropdown, self.class_dropdown, self.opacity_slider]),
            self.figure])

    # state ------------------------------------------------------------------------------------------------
    @property
    def axis(self) -> str:
        return str(self.axis_dropdown.value)

    @property
    def index(self) -> int:
        return int(self.slice_slider.value)

    @property
    def overlay(self) -> str:
        return str(self.overlay_dropdown.value)

    @property
    def opacity(self) -> float:
        return float(self.opacity_slider.value)

    @property
    def class_idx(self) -> int | None:
        """The class the overlays explain (None: the predicted class)."""
        return _class_idx(self.class_dropdown.value)

    def _checked(self, a: Any, name: str) -> np.ndarray:
        v = ex.as_volume(a, name)
        if v.shape != self.shape:
            raise ValueError(f"{name}: expected the volume's shape {self.shape}, got {v.shape}")
        return v

    def _set_maps(self, maps: Mapping[str, Any]) -> None:
        if not isinstance(maps, Mapping) or len(maps) == 0:
            raise ValueError(f"overlays: expected a non-empty dict name -> [D, H, W], got {maps!r:.80}")
        self.maps = {str(k): self._checked(v, f"overlays[{k!r}]").astype(np.float64) for k, v in maps.items()}
        self._ranges = {k: _range(v) for k, v in self.maps.items()}

    def set_overlays(self, overlays: Mapping[str, Any]) -> None:
        """Replaces the overlay maps (name -> [D, H, W]) and redraws; keeps the selected name if still present."""
        self._set_maps(overlays)
        names = list(self.maps)
        keep = self.overlay if self.overlay in names else ("AM1" if "AM1" in names else names[0])
        self._hold = True
        try:
            self.overlay_dropdown.options = names
            self.overlay_dropdown.value = keep
        finally:
            self._hold = False
        self._redraw()

    # events -----------------------------------------------------------------------------------------------
    def _on_axis(self, change: dict) -> None:
        n = ex.axis_length(self.shape, change["new"])
        self._hold = True
        try:  # order matters: ipywidgets clamps value into [min, max] at every assignment
            if n - 1 > self.slice_slider.max:
                self.slice_slider.max = n - 1
                self.slice_slider.value = n // 2
            else:
                self.slice_slider.value = n // 2
                self.slice_slider.max = n - 1
        finally:
            self._hold = False
        self._redraw()

    def _on_class(self, change: dict) -> None:
        if self._source is not None:
            self.set_overlays(self._source(_class_idx(change["new"])))

    def _on_opacity(self, change: dict) -> None:
        self.figure.data[self.OVERLAY].opacity = float(change["new"])

    def _redraw(self) -> None:
        if self._hold:
            return
        axis, i, name = self.axis, self.index, self.overlay
        lo, hi = self._ranges[name]
        show = self.lesion_mask is not None and bool(self.contour_checkbox.value)
        xs, ys = ex.lesion_contour(ex.slice_of(self.lesion_mask, axis, i)) if show else (np.zeros(0), np.zeros(0))
        h_name, v_name = ex.AXIS_LABELS[axis]
        with self.figure.batch_update():
            self.figure.data[self.BASE].z = ex.slice_of(self.volume, axis, i)
            self.figure.data[self.OVERLAY].update(z=ex.slice_of(self.maps[name], axis, i), zmin=lo, zmax=hi,
                                                  name=name)
            self.figure.data[self.CONTOUR].update(x=xs, y=ys, visible=show)
            self.figure.layout.xaxis.title.text = h_name
            self.figure.layout.yaxis.title.text = v_name
            self.figure.layout.title.text = (f"{axis} slice {i} / {ex.axis_length(self.shape, axis) - 1}: "
                                             f"{html.escape(name)}")


# --- 2. lesion painter -------------------------------------------------------------------------------------
class LesionPainter(Displayable):
    """Edit a phantom's lesions and watch a model's class probabilities and heat map follow.

    model: a classifier (NL-RAN or a baseline); spec: a `kit.nlran.phantom.PhantomSpec` (or Phantom). The state
    and all numbers live in `self.painter` (`kit.nlran.explore.Painter`).
    Controls: the lesion dropdown selects a lesion and puts the centre sliders on it; the centre sliders are
    VOXEL indices (z: slice, y: row, x: column, 0 .. size - 1), converted to the phantom's normalised
    coordinates for the edits; the radius slider is the GGO half-maximum radius in voxels. "Add GGO" / "Add
    consolidation" add a lesion at the sliders' centre (a consolidation fills the lung on the centre's side
    behind the plane through the centre); "Move" moves the selected lesion there (and gives a GGO the slider
    radius); "Remove" deletes it. The source dropdown picks the heat map (default AM1) and the class dropdown
    the class CAM / Grad-CAM explain.
    Figure: left, the class probabilities (bars); right, the axial slice at the z slider (after selecting a
    lesion: through its centre) with the heat map, the outline of all lesions (cyan), of the selected one
    (green) and a cross at the sliders' (y, x).
    Traces: 0 bars, 1 CT, 2 heat, 3 all lesions' outline, 4 selected lesion's outline, 5 cross.
    """

    BARS, BASE, HEAT, CONTOUR, SELECTED, CROSS = range(6)

    def __init__(self, model: Any, spec: Any, class_names: Sequence[str] = CLASS_TITLES, source: str = "AM1",
                 class_idx: int | None = None, opacity: float = 0.5, height: int = 420):
        self.painter = ex.Painter(model, spec)
        self.class_names = [str(c) for c in class_names]
        n = self.painter.size
        self._hold = False
        self.lesion_dropdown = ipw.Dropdown(description="lesion")
        self.z_slider, self.y_slider, self.x_slider = (
            ipw.IntSlider(value=n // 2, min=0, max=n - 1, description=d, continuous_update=False)
            for d in ("centre z", "centre y", "centre x"))
        self.radius_slider = ipw.FloatSlider(value=3.0, min=0.5, max=max(4.0, n / 4), step=0.25,
                                             description="radius (vox)", continuous_update=False)
        self.add_ggo_button = ipw.Button(description="Add GGO", button_style="primary")
        self.add_consolidation_button = ipw.Button(description="Add consolidation", button_style="primary")
        self.move_button = ipw.Button(description="Move")
        self.remove_button = ipw.Button(description="Remove", button_style="danger")
        names = list(self.painter.heatmaps(class_idx))
        self.source_dropdown = ipw.Dropdown(options=names, value=source if source in names else names[0],
                                            description="heat map")
        self.class_dropdown = ipw.Dropdown(options=_class_options(self.class_names, True), description="class",
                                           value=PREDICTED if class_idx is None else int(class_idx))
        self.opacity_slider = ipw.FloatSlider(value=_check_opacity(opacity), min=0.0, max=1.0, step=0.05,
                                              description="opacity", continuous_update=False)
        self.status = ipw.HTML()
        fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65], horizontal_spacing=0.12,
                            subplot_titles=("class probabilities", "axial slice"))
        fig.add_trace(go.Bar(x=self.class_names, y=[0.0] * len(self.class_names), name="p",
                             marker_color=qualitative.Plotly[:len(self.class_names)], texttemplate="%{y:.3f}",
                             textposition="outside"), row=1, col=1)
        lo, hi = _range(self.painter.volume)
        fig.add_trace(_grey(np.zeros((1, 1)), lo, hi), row=1, col=2)
        fig.add_trace(_heat(np.zeros((1, 1)), 0.0, 1.0, self.opacity_slider.value), row=1, col=2)
        fig.add_trace(_contour(), row=1, col=2)
        fig.add_trace(_contour(SELECTED_COLOR, "selected lesion", 3.0), row=1, col=2)
        fig.add_trace(_marker(), row=1, col=2)
        self.figure = FigureWidget(fig)
        image_axes(self.figure, self.figure.data[self.BASE], show_ticks=True)
        self.figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                                  yaxis=dict(range=[0, 1.1], title=dict(text="probability")))
        self.figure.data[self.HEAT].colorbar.x = 1.02
        self.add_ggo_button.on_click(lambda _: self.add("ggo"))
        self.add_consolidation_button.on_click(lambda _: self.add("consolidation"))
        self.move_button.on_click(lambda _: self.move())
        self.remove_button.on_click(lambda _: self.remove())
        self.lesion_dropdown.observe(self._on_lesion, names="value")
        for w in (self.z_slider, self.source_dropdown, self.class_dropdown):
            w.observe(lambda _: self._draw_slice(), names="value")
        for w in (self.y_slider, self.x_slider):
            w.observe(lambda _: self._draw_cross(), names="value")
        self.opacity_slider.observe(self._on_opacity, names="value")
        self._refresh(0 if self.painter.lesions else None)
        self.widget = ipw.VBox([
            ipw.HBox([self.lesion_dropdown, self.add_ggo_button, self.add_consolidation_button, self.move_button,
                      self.remove_button]),
            ipw.HBox([ipw.VBox([self.z_slider, self.y_slider, self.x_slider]),
                      ipw.VBox([self.radius_slider, self.source_dropdown, self.class_dropdown,
                                self.opacity_slider])]),
            self.status, self.figure])

    # state ------------------------------------------------------------------------------------------------
    @property
    def selected(self) -> int | None:
        """Index of the selected lesion, None when there is none."""
        v = self.lesion_dropdown.value
        return None if v is None else int(v)

    @property
    def centre_voxel(self) -> tuple[int, int, int]:
        """The sliders' voxel (z, y, x)."""
        return int(self.z_slider.value), int(self.y_slider.value), int(self.x_slider.value)

    @property
    def centre(self) -> tuple[float, float, float]:
        """The sliders' voxel centre in the phantom's normalised coordinates (z, y, x) in [-1, 1]."""
        return voxel_to_normalised(self.centre_voxel, self.painter.size)

    @property
    def class_idx(self) -> int | None:
        return _class_idx(self.class_dropdown.value)

    def heat(self) -> np.ndarray:
        """The selected heat map [D, H, W] of the current phantom."""
        return self.painter.heatmaps(self.class_idx)[self.source_dropdown.value]

    # actions ----------------------------------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        """Selects lesion ``index`` (None: none) and moves the sliders to its centre and radius."""
        self.lesion_dropdown.value = index

    def add(self, kind: str) -> int:
        """Adds a lesion of ``kind`` ("ggo" / "consolidation") at the sliders' centre; selects and returns it."""
        i = self.painter.add(kind, self.centre, radius=float(self.radius_slider.value))
        self._refresh(i)
        self.status.value = f"added lesion {i} ({kind}) at voxel {self.centre_voxel}. " + self._summary()
        return i

    def move(self) -> None:
        """Moves the selected lesion to the sliders' centre (a GGO also takes the slider radius)."""
        i = self.selected
        if i is None:
            self.status.value = "<span style='color:#b00'>no lesion selected: add one first</span>"
            return
        self.painter.move(i, self.centre, radius=float(self.radius_slider.value))
        self._refresh(i)
        self.status.value = f"moved lesion {i} to voxel {self.centre_voxel}. " + self._summary()

    def remove(self) -> None:
        """Removes the selected lesion; the next one (or none) becomes selected."""
        i = self.selected
        if i is None:
            self.status.value = "<span style='color:#b00'>no lesion selected: nothing to remove</span>"
            return
        self.painter.remove(i)
        n = len(self.painter.lesions)
        self._refresh(min(i, n - 1) if n else None)
        self.status.value = f"removed lesion {i}. " + self._summary()

    # drawing ----------------------------------------------------------------------------------------------
    def _summary(self) -> str:
        p = self.painter.probabilities()
        k = int(np.argmax(p))
        return f"prediction: <b>{html.escape(self.class_names[k])}</b> ({p[k]:.3f})"

    def _lesion_label(self, i: int) -> str:
        les = self.painter.lesions[i]
        z, y, x = self.painter.lesion_voxel(i)
        size = f", r {les.radius:.2g}" if les.kind == "ggo" else f", {les.side} lung"
        return f"{i}: {les.kind} @ ({z}, {y}, {x}){size}"

    def _refresh(self, select: int | None) -> None:
        """After an edit: new dropdown options, the selection, bars and slice."""
        self._hold = True
        try:
            opts = [(self._lesion_label(i), i) for i in range(len(self.painter.lesions))]
            self.lesion_dropdown.options = opts
            self.lesion_dropdown.value = select
        finally:
            self._hold = False
        self._snap(select)
        with self.figure.batch_update():
            self.figure.data[self.BARS].y = self.painter.probabilities()
            self._draw_slice()
        if not self.status.value:
            self.status.value = self._summary()

    def _snap(self, i: int | None) -> None:
        """Puts the sliders on lesion i's centre voxel (and radius) without drawing for each slider."""
        if i is None:
            return
        self._hold = True
        try:
            z, y, x = self.painter.lesion_voxel(i)
            self.z_slider.value, self.y_slider.value, self.x_slider.value = z, y, x
            les = self.painter.lesions[i]
            if les.kind == "ggo":
                self.radius_slider.value = min(max(les.radius, self.radius_slider.min), self.radius_slider.max)
        finally:
            self._hold = False

    def _on_lesion(self, change: dict) -> None:
        if self._hold:
            return
        self._snap(None if change["new"] is None else int(change["new"]))
        self._draw_slice()

    def _on_opacity(self, change: dict) -> None:
        self.figure.data[self.HEAT].opacity = float(change["new"])

    def _draw_cross(self) -> None:
        if self._hold:
            return
        _, y, x = self.centre_voxel
        self.figure.data[self.CROSS].update(x=[x], y=[y])

    def _draw_slice(self) -> None:
        if self._hold:
            return
        z = int(self.z_slider.value)
        heat = self.heat()
        xs, ys = ex.lesion_contour(ex.slice_of(self.painter.lesion_mask(), "axial", z))
        i = self.selected
        sx, sy = (ex.lesion_contour(ex.slice_of(self.painter.lesion_mask(i), "axial", z)) if i is not None
                  else (np.zeros(0), np.zeros(0)))
        lo, hi = _range(heat)
        with self.figure.batch_update():
            self.figure.data[self.BASE].z = ex.slice_of(self.painter.volume, "axial", z)
            self.figure.data[self.HEAT].update(z=ex.slice_of(heat, "axial", z), zmin=lo, zmax=hi,
                                               name=self.source_dropdown.value)
            self.figure.data[self.CONTOUR].update(x=xs, y=ys)
            self.figure.data[self.SELECTED].update(x=sx, y=sy)
            self.figure.layout.annotations[1].text = f"axial slice z = {z}: {html.escape(self.source_dropdown.value)}"
        self._draw_cross()


# --- 3. ROC curves and confusion matrix --------------------------------------------------------------------
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
    mapped to its cell of the non-local grid (`kit.nlran.explore.input_voxel_to_grid`), whose attention row is
    shown on the right: one axial slice ("key slice" slider; set to the query's own key slice on selection) of
    the key grid, drawn in input voxel units (each key cell spans S / g input voxels), colour range 0 .. the
    largest weight of the whole row so slices compare. Traces: 0 input, 1 cross, 2 weights, 3 query cell.
    """

    BASE, CROSS, WEIGHTS, QUERY = range(4)

    def __init__(self, model: Any, x: Any, volume: Any = None, voxel: Sequence[int] | None = None,
                 height: int = 420):
        self.attn, self.grid, self.kv_grid = ex.nonlocal_attention(model, x)
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
        self.cell = ex.input_voxel_to_grid(voxel, self.input_size, self.grid)
        self.weights = ex.attention_for_voxel(self.attn, self.grid, self.kv_grid, self.cell)
        self.voxel = voxel
        self.key_cell = ex.input_voxel_to_grid(self.cell, self.grid, self.kv_grid)
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
        cy, cx = ex.grid_to_input(self.key_cell, self.input_size, self.kv_grid)[1:]
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
