"""Reusable notebook widgets: image grid, heat-map overlay, live training curve, step player, record table.

Each widget is a class with `.widget` (an ipywidgets container to display) and, where it draws, `.figure`
(a plotly FigureWidget). A bare widget object in a cell displays itself. Everything can be built and driven
from plain Python (tests, scripts): FigureWidget and ipywidgets need no front end to hold and update state.
Importing this module sets the plotly renderer (see `widgets.viz.setup_plotly`) and registers
`show_record_table` as the display hook of `kit.core.run` when that module exists.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.viz import (
    Displayable,
    FigureWidget,
    as_heatmap,
    as_number,
    downsample,
    downsample_factor,
    image_axes,
    image_trace,
    normalize01,
    record_table_html,
    resize_bilinear,
    setup_plotly,
    signed_range,
    split_images,
    to_uint8,
)

__all__ = ["HeatmapOverlay", "ImageGrid", "LiveCurve", "StepPlayer", "show_record_table", "setup_plotly"]


class ImageGrid(Displayable):
    """A grid of images in one plotly figure.

    images: list of images, numpy [N, H, W] / [N, H, W, C], or torch [N, C, H, W] / [N, H, W] (C in 1, 3, 4).
    Float images are read as [0, 1], or as [-1, 1] when any value in the call is negative (diffusion outputs),
    and clipped to that range; uint8 is shown as is. Grey images use a grey heat map, RGB a go.Image; RGBA is
    composited over white. Images with a side above `max_side` are block-averaged first.
    """

    def __init__(self, images: Any, titles: Sequence[str] | None = None, cols: int = 4,
                 max_side: int = 256, height: int | None = None):
        imgs = self._prepare(images, titles, max_side)
        if cols < 1:
            raise ValueError(f"cols: expected a positive int, got {cols}")
        self.max_side = max_side
        self.n = len(imgs)
        self.cols = min(cols, self.n)
        rows = math.ceil(self.n / self.cols)
        names = [t or " " for t in titles] if titles is not None else [" "] * self.n
        base = make_subplots(rows=rows, cols=self.cols, subplot_titles=names, horizontal_spacing=0.02,
                             vertical_spacing=min(0.08, 1.0 / max(rows - 1, 1)))
        self.figure = FigureWidget(base)
        for i, img in enumerate(imgs):
            self.figure.add_trace(image_trace(img), row=i // self.cols + 1, col=i % self.cols + 1)
            image_axes(self.figure, self.figure.data[i])
        self._grey = [img.ndim == 2 for img in imgs]
        self.figure.update_layout(height=height or 60 + 200 * rows, margin=dict(l=10, r=10, t=30, b=10))
        self.widget = ipw.VBox([self.figure])

    def _prepare(self, images: Any, titles: Sequence[str] | None, max_side: int) -> list[np.ndarray]:
        arrays = split_images(images, "images")
        if titles is not None and len(titles) != len(arrays):
            raise ValueError(f"titles: expected {len(arrays)} titles (one per image), got {len(titles)}")
        signed = signed_range(arrays)
        out = [to_uint8(a, signed, "images") for a in arrays]
        return [downsample(a, downsample_factor(a.shape, max_side)) for a in out]

    def update(self, images: Any, titles: Sequence[str] | None = None) -> None:
        """Replaces the image data (and titles) in place; the count and grey/RGB kind must match."""
        imgs = self._prepare(images, titles, self.max_side)
        if len(imgs) != self.n:
            raise ValueError(f"images: expected {self.n} images as at construction, got {len(imgs)}")
        for i, img in enumerate(imgs):
            if (img.ndim == 2) != self._grey[i]:
                raise ValueError(f"images: image {i} changed between grey and colour; build a new ImageGrid")
        with self.figure.batch_update():
            for trace, img in zip(self.figure.data, imgs):
                trace.z = img
            if titles is not None:
                for ann, t in zip(self.figure.layout.annotations, titles):
                    ann.text = t or " "


class HeatmapOverlay(Displayable):
    """An image with a heat map on top, sliders for opacity and threshold, and the outline of the mask.

    image: grey [H, W] or colour [H, W, 3|4] (numpy) / [C, H, W] (torch), scaled as in ImageGrid.
    heatmap: [h, w]; resized bilinearly to the displayed image size when shapes differ (pixel centres as in
    torch `interpolate(..., align_corners=False)`). With `normalize` (default) the map is rescaled to [0, 1]
    by its min and max, else shown as given with the colour range [min, max].
    The outline is the iso-line heat == threshold from skimage.measure.find_contours, i.e. the exact boundary
    of the mask heat >= threshold (sub-pixel, linear interpolation). Images with a side above `max_side` are
    block-averaged; axes stay in original pixel units.
    """

    def __init__(self, image: Any, heatmap: Any, alpha: float = 0.5, threshold: float = 0.5,
                 colorscale: str = "Inferno", normalize: bool = True, max_side: int = 512,
                 height: int = 420, contour_color: str = "cyan"):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
        self.normalize = normalize
        self.max_side = max_side
        self._img, self._s = self._prepare_image(image)
        self._raw = as_heatmap(heatmap, "heatmap")
        self.heat = self._display_heat()
        lo, hi = self._heat_range()
        if not lo <= threshold <= hi:
            raise ValueError(f"threshold: expected a value in [{lo:g}, {hi:g}], got {threshold}")
        s = self._s
        geom = dict(x0=(s - 1) / 2, y0=(s - 1) / 2, dx=s, dy=s)
        self.figure = FigureWidget(data=[
            image_trace(self._img, s),
            go.Heatmap(z=self.heat, colorscale=colorscale, zmin=lo, zmax=hi, opacity=alpha, name="heat",
                       colorbar=dict(thickness=12), **geom),
            go.Scatter(x=[], y=[], mode="lines", line=dict(color=contour_color, width=2),
                       name="heat >= threshold", hoverinfo="skip", showlegend=False),
        ])
        image_axes(self.figure, self.figure.data[0], show_ticks=True)
        self.figure.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
        self.alpha_slider = ipw.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha",
                                            continuous_update=False)
        self.threshold_slider = ipw.FloatSlider(value=threshold, min=lo, max=hi, step=(hi - lo) / 100 or 0.01,
                                                description="threshold", continuous_update=False,
                                                readout_format=".3g")
        self.alpha_slider.observe(self._on_alpha, names="value")
        self.threshold_slider.observe(lambda _: self._draw_contour(), names="value")
        self._draw_contour()
        self.widget = ipw.VBox([ipw.HBox([self.alpha_slider, self.threshold_slider]), self.figure])

    # state ------------------------------------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        return float(self.alpha_slider.value)

    @property
    def threshold(self) -> float:
        return float(self.threshold_slider.value)

    @property
    def mask(self) -> np.ndarray:
        """Returns the displayed mask heat >= threshold, bool [H', W'] (H' = H // block size)."""
        return self.heat >= self.threshold

    def _prepare_image(self, image: Any) -> tuple[np.ndarray, int]:
        imgs = split_images([image], "image")
        img = to_uint8(imgs[0], signed_range(imgs), "image")
        s = downsample_factor(img.shape, self.max_side)
        return downsample(img, s), s

    def _display_heat(self) -> np.ndarray:
        h = self._raw
        if h.shape != self._img.shape[:2]:
            h = resize_bilinear(h, self._img.shape[:2])
        return normalize01(h) if self.normalize else h

    def _heat_range(self) -> tuple[float, float]:
        if self.normalize:
            return 0.0, 1.0
        return float(self.heat.min()), float(self.heat.max())

    # drawing ----------------------------------------------------------------------------------------------
    def _on_alpha(self, change: dict) -> None:
        self.figure.data[1].opacity = float(change["new"])

    def _draw_contour(self) -> None:
        from skimage.measure import find_contours

        s, off = self._s, (self._s - 1) / 2
        xs: list[float | None] = []
        ys: list[float | None] = []
        lo, hi = float(self.heat.min()), float(self.heat.max())
        if lo < self.threshold <= hi:
            for c in find_contours(self.heat, self.threshold):
                ys.extend((c[:, 0] * s + off).tolist() + [None])
                xs.extend((c[:, 1] * s + off).tolist() + [None])
        with self.figure.batch_update():
            self.figure.data[2].x = xs
            self.figure.data[2].y = ys

    def set_heatmap(self, heatmap: Any) -> None:
        """Replaces the heat map (resized and normalised as at construction) and redraws."""
        self._raw = as_heatmap(heatmap, "heatmap")
        self._refresh_heat()

    def set_image(self, image: Any) -> None:
        """Replaces the background image; the heat map is resized again if the size changed."""
        img, s = self._prepare_image(image)
        if (img.ndim == 2) != (self._img.ndim == 2):
            raise ValueError("image: cannot switch between grey and colour; build a new HeatmapOverlay")
        self._img, self._s = img, s
        geom = dict(x0=(s - 1) / 2, y0=(s - 1) / 2, dx=s, dy=s)
        with self.figure.batch_update():
            self.figure.data[0].update(z=img, **geom)
            self.figure.data[1].update(**geom)
        self._refresh_heat()

    def _refresh_heat(self) -> None:
        self.heat = self._display_heat()
        lo, hi = self._heat_range()
        with self.figure.batch_update():
            self.figure.data[1].update(z=self.heat, zmin=lo, zmax=hi)
        if not self.normalize:
            t = self.threshold_slider  # order matters: ipywidgets rejects min > max at every assignment
            if lo > t.max:
                t.max, t.min = hi, lo
            else:
                t.min, t.max = lo, hi
            t.step = (hi - lo) / 100 or 0.01
        self._draw_contour()


class LiveCurve(Displayable):
    """A live line plot fed by a training loop: curve(event), event = {"step": int, "kind": ..., key: number}.

    One trace per key. keys=None plots every numeric entry except "step" and "kind". Values from events with
    kind "eval" are named "eval/<key>" unless the key already starts with "eval/", and are drawn with markers.
    Keys in `secondary` (default "lr") go on a right-hand y axis. Redraws are throttled to at most one per
    `min_interval` seconds; `flush()` draws whatever is pending. At most `max_points` points per trace are
    drawn (evenly strided, last point kept); `history` always holds all points.
    """

    def __init__(self, keys: Sequence[str] | None = None, title: str = "training", log_y: bool = False,
                 min_interval: float = 0.2, secondary: Sequence[str] = ("lr",), max_points: int = 2000,
                 height: int = 320):
        if min_interval < 0:
            raise ValueError(f"min_interval: expected >= 0 seconds, got {min_interval}")
        if max_points < 2:
            raise ValueError(f"max_points: expected >= 2, got {max_points}")
        self.keys = None if keys is None else list(keys)
        self.min_interval = float(min_interval)
        self.secondary = tuple(secondary)
        self.max_points = int(max_points)
        self._steps: dict[str, list[int]] = {}
        self._values: dict[str, list[float]] = {}
        self._trace_of: dict[str, int] = {}
        self._last_draw = -math.inf
        self._pending = False
        self.figure = FigureWidget(layout=dict(
            title=dict(text=title), height=height, margin=dict(l=50, r=50, t=40, b=40),
            xaxis=dict(title=dict(text="step")), yaxis=dict(type="log" if log_y else "linear"),
            yaxis2=dict(overlaying="y", side="right", showgrid=False, type="log" if log_y else "linear"),
            legend=dict(orientation="h", y=-0.2)))
        self.widget = ipw.VBox([self.figure])

    def _name(self, key: str, kind: str) -> str | None:
        name = f"eval/{key}" if kind == "eval" and not key.startswith("eval/") else key
        if self.keys is not None and key not in self.keys and name not in self.keys:
            return None
        return name

    def __call__(self, event: dict[str, Any]) -> None:
        """Adds the numeric entries of one event at its step; redraws if `min_interval` has passed."""
        if not isinstance(event, dict):
            raise ValueError(f"event: expected a dict, got {type(event).__name__}")
        step = event.get("step")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ValueError(f"event: expected an int 'step', got {step!r}")
        kind = event.get("kind", "train")
        if kind not in ("train", "eval"):
            raise ValueError(f"event: expected 'kind' 'train' or 'eval', got {kind!r}")
        for key, v in event.items():
            if key in ("step", "kind"):
                continue
            x = as_number(v)
            name = self._name(key, kind) if x is not None else None
            if name is None:
                continue
            if name not in self._steps:
                self._steps[name], self._values[name] = [], []
            self._steps[name].append(int(step))
            self._values[name].append(x)
            self._pending = True
        if self._pending and time.monotonic() - self._last_draw >= self.min_interval:
            self.flush()

    def flush(self) -> None:
        """Draws all collected points now."""
        new = [n for n in self._steps if n not in self._trace_of]
        for name in new:
            on_right = name in self.secondary or name.rsplit("/", 1)[-1] in self.secondary
            self.figure.add_scatter(x=[], y=[], name=name, yaxis="y2" if on_right else "y",
                                    mode="lines+markers" if name.startswith("eval/") else "lines")
            self._trace_of[name] = len(self.figure.data) - 1
        with self.figure.batch_update():
            for name, idx in self._trace_of.items():
                xs, ys = self._steps[name], self._values[name]
                stride = math.ceil(len(xs) / self.max_points)
                if stride > 1:
                    keep = list(range(0, len(xs) - 1, stride)) + [len(xs) - 1]
                    xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
                self.figure.data[idx].x = xs
                self.figure.data[idx].y = ys
        self._pending = False
        self._last_draw = time.monotonic()

    @property
    def history(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Returns every collected point: trace name -> (steps int64 [n], values float64 [n])."""
        return {n: (np.asarray(self._steps[n], dtype=np.int64), np.asarray(self._values[n], dtype=np.float64))
                for n in self._steps}


class StepPlayer(Displayable):
    """A Play button and slider (linked in the browser with jslink) that step through frames in one figure.

    frames: images (anything ImageGrid accepts: a list, numpy [T, H, W(, C)], torch [T, C, H, W]), scaled with
    one range decision for the whole sequence; or, with `render`, arbitrary objects where
    render(frame) -> {"data": [trace dict, ...], "layout": {...}} (both optional). The first frame's trace
    dicts (with "type", e.g. {"type": "scatter", "x": ..., "y": ...}) create the traces; later frames update
    trace i with their i-th dict in place, so every frame must give the same number of traces.
    labels: one string per frame, shown as the figure title.
    """

    def __init__(self, frames: Sequence[Any] | Any, labels: Sequence[str] | None = None,
                 render: Callable[[Any], dict[str, Any]] | None = None, interval_ms: int = 300,
                 max_side: int = 256, height: int = 380):
        if render is None:
            self._frames: Sequence[Any] = split_images(frames, "frames")
            self._signed = signed_range(self._frames)
            self._max_side = max_side
            self._render = self._render_image
        else:
            if not callable(render):
                raise ValueError(f"render: expected a callable frame -> dict, got {type(render).__name__}")
            self._frames = list(frames)
            self._render = render
        n = len(self._frames)
        if n == 0:
            raise ValueError("frames: expected at least one frame")
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels: expected {n} labels (one per frame), got {len(labels)}")
        self.labels = None if labels is None else list(labels)
        self._callbacks: list[Callable[[int], None]] = []
        self.figure = FigureWidget(layout=dict(height=height, margin=dict(l=10, r=10, t=40, b=10)))
        first = self._checked(self._render(self._frames[0]))
        self.figure.add_traces(list(first.get("data", [])))
        if render is None:
            image_axes(self.figure, self.figure.data[0], show_ticks=True)
        self._apply(first, 0, create=True)
        self.play = ipw.Play(value=0, min=0, max=n - 1, interval=interval_ms, description="play")
        self.slider = ipw.IntSlider(value=0, min=0, max=n - 1, description="step", continuous_update=False)
        self.link = ipw.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(self._on_slider, names="value")
        self.widget = ipw.VBox([ipw.HBox([self.play, self.slider]), self.figure])

    def __len__(self) -> int:
        return len(self._frames)

    def _render_image(self, frame: np.ndarray) -> dict[str, Any]:
        img = to_uint8(frame, self._signed, "frames")
        s = downsample_factor(img.shape, self._max_side)
        trace = image_trace(downsample(img, s), s)
        return {"data": [trace.to_plotly_json()]}

    @staticmethod
    def _checked(out: Any) -> dict[str, Any]:
        if not isinstance(out, dict) or not set(out) <= {"data", "layout"}:
            raise ValueError(f"render: expected a dict with keys 'data' and/or 'layout', got {out!r:.80}")
        return out

    def _apply(self, out: dict[str, Any], i: int, create: bool = False) -> None:
        data = list(out.get("data", []))
        if not create and len(data) != len(self.figure.data):
            raise ValueError(f"render: frame {i} gave {len(data)} traces, the first frame gave "
                             f"{len(self.figure.data)}")
        with self.figure.batch_update():
            if not create:
                for trace, upd in zip(self.figure.data, data):
                    trace.update({k: v for k, v in upd.items() if k != "type"})
            if out.get("layout"):
                self.figure.layout.update(out["layout"])
            if self.labels is not None:
                self.figure.layout.title.text = self.labels[i]

    def _on_slider(self, change: dict) -> None:
        i = int(change["new"])
        self._apply(self._checked(self._render(self._frames[i])), i)
        for cb in self._callbacks:
            cb(i)

    @property
    def index(self) -> int:
        """The frame shown now."""
        return int(self.slider.value)

    @index.setter
    def index(self, i: int) -> None:
        if not 0 <= i < len(self._frames):
            raise ValueError(f"index: expected 0 <= index < {len(self._frames)}, got {i}")
        self.slider.value = i

    def on_change(self, callback: Callable[[int], None]) -> None:
        """Calls callback(index) after each frame change (slider, Play button or `.index`)."""
        if not callable(callback):
            raise ValueError(f"callback: expected a callable, got {type(callback).__name__}")
        self._callbacks.append(callback)


# --- recorded metrics --------------------------------------------------------------------------------------
_cell_tables: dict[str, Any] = {"cell": None, "values": {}, "handle": None}


def show_record_table(name: str, value: Any, all_metrics: dict[str, Any] | None = None) -> None:
    """Displays the metrics recorded in the current cell as a small HTML table; does nothing outside a kernel.

    Display hook for kit.core.run (fn(name, value, all_metrics)). Within one cell the same table is updated
    in place, one row per name recorded in that cell (latest value), the newest name in bold; `all_metrics`
    (the whole run's metrics) is accepted for the hook signature and not shown.
    """
    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython
    from IPython.display import HTML, display

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    cell = getattr(shell, "execution_count", None)
    state = _cell_tables
    if state["cell"] != cell or state["handle"] is None:
        state.update(cell=cell, values={}, handle=None)
    state["values"][name] = value
    table = HTML(record_table_html(list(state["values"].items()), highlight=name))
    if state["handle"] is None:
        state["handle"] = display(table, display_id=True)
    else:
        state["handle"].update(table)


setup_plotly()
try:
    from kit.core.run import set_display_hook
except ImportError as err:  # kit.core.run absent (or without the hook): nothing to register
    if err.name not in ("kit", "kit.core", "kit.core.run"):
        raise
else:
    set_display_hook(show_record_table)
