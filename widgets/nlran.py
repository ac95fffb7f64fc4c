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

The last four live in :mod:`widgets.nlran_results` (with the trace helpers both share) and are re-exported here.

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
from widgets.nlran_results import (
    HEAT_SCALE,
    SELECTED_COLOR,
    NonLocalView,
    ROCView,
    _check_opacity,
    _contour,
    _grey,
    _heat,
    _marker,
    _range,
    confusion_figure,
    heatmap_panels,
    roc_figure,
)
from widgets.viz import Displayable, FigureWidget, image_axes, setup_plotly

__all__ = ["LesionPainter", "NonLocalView", "ROCView", "SliceScrubber", "confusion_figure", "heatmap_panels",
           "roc_figure"]

setup_plotly()
PREDICTED = -1  # class dropdown value meaning "the predicted class" (class_idx=None)


def _class_options(class_names: Sequence[str], with_predicted: bool) -> list[tuple[str, int]]:
    opts = [(str(n), i) for i, n in enumerate(class_names)]
    return ([("predicted class", PREDICTED)] if with_predicted else []) + opts


def _class_idx(value: int) -> int | None:
    return None if value == PREDICTED else int(value)


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
