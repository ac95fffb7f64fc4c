"""Plotly renderer setup and helpers shared by the widgets: image conversion, downsampling, resizing, image
traces, number parsing and the metric-table HTML.

Nothing here needs a Jupyter front end; everything works in plain Python.
"""

from __future__ import annotations

import html
import math
import numbers
import os
import uuid
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
import traitlets

RENDERER = "plotly_mimetype+notebook_connected"
_CHANNELS = (1, 3, 4)


def setup_plotly() -> str:
    """Returns the plotly renderer name after making it the default.

    `plotly_mimetype` draws in JupyterLab / Notebook 7 / VS Code; `notebook_connected` adds HTML that loads
    plotly.js from a CDN so exported HTML (nbconvert, nbviewer) still shows figures. Never `notebook`, which
    embeds ~3 MB of JavaScript in every notebook.
    """
    import plotly.io as pio

    pio.renderers.default = RENDERER
    return RENDERER


class PlotlyBundle(ipw.Widget):
    """plotly's FigureWidget front end (plotly.js and its widget code, ~5 MB) as one synced string: sent to the
    front end once per kernel and shared by every `FigureWidget` below. Never displayed."""

    source = traitlets.Unicode().tag(sync=True)


_BUNDLE: PlotlyBundle | None = None


def plotly_bundle() -> PlotlyBundle:
    """Returns this kernel's PlotlyBundle (made on first use, and again if it was closed)."""
    global _BUNDLE
    if _BUNDLE is None or _BUNDLE.comm is None:
        esm = go.FigureWidget._esm
        _BUNDLE = PlotlyBundle(source=Path(esm).read_text(encoding="utf-8") if isinstance(esm, Path) else str(esm))
    return _BUNDLE


def shared_bundle_enabled() -> bool:
    """False when KIT_SHARED_PLOTLY=0: every figure then carries plotly's own front end, as go.FigureWidget does
    (for a front end whose widget manager cannot hand one model to another)."""
    return os.environ.get("KIT_SHARED_PLOTLY", "1") != "0"


class FigureWidget(go.FigureWidget):
    """A plotly FigureWidget of which a page can hold many: the class every view in widgets/ draws with.

    - Front end: its `_esm` is the small widgets/figure.js, which loads plotly's widget code once per page from
      the kernel's `PlotlyBundle` (go.FigureWidget sends all ~5 MB with every figure, and on a loaded machine
      anywidget's 2-second start-up deadline then fails the later figures of a page). KIT_SHARED_PLOTLY=0 turns
      this off.
    - State: a front end that connects after the figure changed (Voila, a reloaded page, a second tab) receives
      the current data and layout; go.FigureWidget sends its construction-time state unless it was displayed
      on its own. Each figure's front end asks for the current state once its plotly code is running
      ("kit:resync"), so an update that arrived before can never leave a view stale for good.
    - Messages: when anywidget gives up waiting for a figure's front end to start (2 s; it then drops every later
      message to that model without a word), figure.js hands the model's comm back to the widget model's own handler
      and asks for the state again; it needs the model id, which is why the comm opens under `_kit_model_id`.
    """

    _esm = Path(__file__).with_name("figure.js").read_text(encoding="utf-8")
    _kit_bundle = traitlets.Instance(PlotlyBundle, allow_none=True).tag(sync=True, **ipw.widget_serialization)
    # the figure's own model id, in the state its comm opens with: anywidget hands figure.js a wrapper of the widget
    # model without the id, and figure.js needs the model itself to mend its message handler (see figure.js)
    _kit_model_id = traitlets.Unicode("").tag(sync=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not shared_bundle_enabled():
            self._esm = go.FigureWidget._esm  # anywidget reads the instance's _esm when it makes the trait
        else:
            # the bundle widget exists before this figure opens its comm (made lazily, the first figure of a kernel
            # would open the bundle's comm, 5 MB, from inside its own state serialization)
            plotly_bundle()
        super().__init__(*args, **kwargs)
        self.on_msg(self._on_front_end_msg)

    def open(self) -> None:
        """Open the comm under an id chosen here, so that the state it opens with can carry that id."""
        if self.comm is None:
            if self._model_id is None:
                self._model_id = uuid.uuid4().hex
            self.set_trait("_kit_model_id", self._model_id)
        super().open()

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "kit:resync":
            self.send_state(["_widget_layout", "_widget_data"])  # one message, current values (get_state)
            self.send({"type": "kit:resynced", "traces": len(self._data)})  # the front end stops asking

    @traitlets.default("_kit_bundle")
    def _default_bundle(self) -> PlotlyBundle | None:
        return plotly_bundle() if shared_bundle_enabled() else None

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict:
        state = super().get_state(key, drop_defaults=drop_defaults)
        if not hasattr(self, "_layout_obj"):  # the comm opens before plotly has filled in the figure
            return state
        current = {"_widget_data": lambda: deepcopy(self._data),
                   "_widget_layout": lambda: deepcopy(self._layout_obj._props)}
        for name, value in current.items():
            if name in state:
                state[name] = self.trait_metadata(name, "to_json", self._trait_to_json)(value(), self)
        return state


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def to_numpy(x: Any, arg: str) -> np.ndarray:
    """Returns `x` (numpy array, torch tensor or nested sequence) as a numpy array (torch is not imported)."""
    if _is_torch(x):
        x = x.detach().cpu()
        return (x.float() if x.dtype.is_floating_point else x).numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{arg}: expected an array or tensor, got {type(x).__name__} ({err})") from err


def _to_hwc(a: np.ndarray, channels_first: bool, arg: str) -> np.ndarray:
    """Returns one image as [H, W] or [H, W, C]; `channels_first` marks a [C, H, W] layout (torch)."""
    if a.ndim == 2:
        return a
    if a.ndim != 3:
        raise ValueError(f"{arg}: expected an image [H, W] or [H, W, C] / [C, H, W], got shape {a.shape}")
    if channels_first or (a.shape[-1] > 4 and a.shape[0] in (1, 3)):
        a = np.moveaxis(a, 0, -1)
    if a.shape[-1] not in _CHANNELS:
        raise ValueError(f"{arg}: expected 1, 3 or 4 channels, got shape {a.shape}")
    return a


def split_images(images: Any, arg: str = "images") -> list[np.ndarray]:
    """Returns the images as a list of arrays [H, W] or [H, W, C].

    Accepts a list of images, numpy [N, H, W] or [N, H, W, C], or torch [N, C, H, W] / [N, H, W].
    A numpy image [C, H, W] with C in (1, 3) and W > 4 is read as channels-first.
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"{arg}: expected at least one image, got an empty sequence")
        return [_to_hwc(to_numpy(im, arg), _is_torch(im), arg) for im in images]
    torch_in = _is_torch(images)
    a = to_numpy(images, arg)
    if a.ndim not in (3, 4):
        raise ValueError(f"{arg}: expected a batch [N, H, W], [N, H, W, C] or [N, C, H, W], got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{arg}: expected at least one image, got shape {a.shape}")
    return [_to_hwc(im, torch_in and a.ndim == 4, arg) for im in a]


def signed_range(images: Sequence[np.ndarray]) -> bool:
    """Returns True when float images should be read as [-1, 1] (some value is negative), else [0, 1]."""
    return any(im.dtype.kind == "f" and im.size and float(np.min(im)) < 0 for im in images)


def to_uint8(im: np.ndarray, signed: bool, arg: str = "images") -> np.ndarray:
    """Returns a display image uint8 [H, W] (grey) or [H, W, 3] (RGB) from one image [H, W] / [H, W, C].

    Floats are read as [-1, 1] when `signed` else [0, 1] and clipped to that range; uint8 is kept; bool
    maps to {0, 255}; other integers must lie in [0, 255]. One channel becomes grey; RGBA is composited over
    white.
    """
    if im.dtype == np.uint8:
        out = im
    elif im.dtype == np.bool_:
        out = im.astype(np.uint8) * 255
    elif im.dtype.kind == "f":
        if not np.all(np.isfinite(im)):
            raise ValueError(f"{arg}: image contains NaN or inf")
        x = (im.astype(np.float32) + 1.0) / 2.0 if signed else im.astype(np.float32)
        out = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif im.dtype.kind in "iu":
        if im.size and (im.min() < 0 or im.max() > 255):
            raise ValueError(f"{arg}: integer images must lie in [0, 255], got [{im.min()}, {im.max()}]")
        out = im.astype(np.uint8)
    else:
        raise ValueError(f"{arg}: expected float, uint8 or bool images, got dtype {im.dtype}")
    if out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    elif out.ndim == 3 and out.shape[-1] == 4:
        a = out[..., 3:].astype(np.float32) / 255.0
        out = np.round(out[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    return out


def downsample_factor(shape: tuple[int, ...], max_side: int) -> int:
    """Returns the integer block size s so that max(H, W) / s <= max_side."""
    if max_side < 1:
        raise ValueError(f"max_side: expected a positive int, got {max_side}")
    return max(1, math.ceil(max(shape[0], shape[1]) / max_side))


def downsample(im: np.ndarray, s: int) -> np.ndarray:
    """Returns `im` [H, W(, C)] block-averaged by s x s -> [H // s, W // s(, C)], same dtype (s=1: no-op)."""
    if s == 1:
        return im
    h, w = (im.shape[0] // s) * s, (im.shape[1] // s) * s
    blocks = im[:h, :w].astype(np.float32).reshape(h // s, s, w // s, s, *im.shape[2:]).mean(axis=(1, 3))
    return np.round(blocks).astype(im.dtype) if im.dtype.kind in "iub" else blocks.astype(im.dtype)


def resize_bilinear(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Returns x [h, w] resized to `shape` [H, W] by bilinear interpolation (float64).

    Pixel centres are aligned as in torch.nn.functional.interpolate(mode="bilinear", align_corners=False):
    output pixel i samples input coordinate (i + 0.5) * h / H - 0.5, clamped to the image. No antialiasing.
    """
    out = np.asarray(x, dtype=np.float64)
    for axis, (n_in, n_out) in enumerate(zip(out.shape, shape)):
        if n_in == n_out:
            continue
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = src - i0
        a0, a1 = np.take(out, i0, axis=axis), np.take(out, i1, axis=axis)
        w = w.reshape((-1, 1) if axis == 0 else (1, -1))
        out = a0 * (1.0 - w) + a1 * w
    return out


def as_heatmap(h: Any, arg: str = "heatmap") -> np.ndarray:
    """Returns a heat map [h, w] as float64; leading singleton axes ([1, h, w], [1, 1, h, w]) are dropped."""
    a = to_numpy(h, arg)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{arg}: expected a 2-D map [h, w], got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{arg}: expected numeric values, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{arg}: contains NaN or inf")
    return a


def normalize01(h: np.ndarray) -> np.ndarray:
    """Returns (h - min) / (max - min) in [0, 1]; a constant map becomes all zeros."""
    lo, hi = float(h.min()), float(h.max())
    return (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)


def sync_figure_state(widget: Any) -> int:
    """Returns how many FigureWidgets inside `widget` (it, or any descendant through `children`) had their synced
    state set to their current data and layout.

    A FigureWidget sends Python-side changes as update messages to the views that exist, but its synced state
    (`_widget_data`, `_widget_layout`) keeps its construction-time value unless the figure itself is displayed.
    Inside a container, a front end that builds its views later (Voila, a reloaded page, a second tab) would
    draw that stale state: empty traces for a figure filled after construction. Views that exist ignore this.
    """
    from copy import deepcopy

    seen, todo, n = set(), [widget], 0
    while todo:
        w = todo.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        if isinstance(w, go.FigureWidget):
            w._widget_layout = deepcopy(w._layout_obj._props)
            w._widget_data = deepcopy(w._data)
            n += 1
        todo.extend(getattr(w, "children", ()) or ())
    return n


class Displayable:
    """Delegates notebook display to `self.widget` (its figures' synced state brought up to date first)."""

    widget: ipw.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        sync_figure_state(self.widget)
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        sync_figure_state(self.widget)
        display(self.widget)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image [H, W] (grey) or [H, W, 3] (RGB), e.g. for an ``ipywidgets.Image``."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def image_trace(img: np.ndarray, s: int = 1) -> go.Image | go.Heatmap:
    """Returns a go.Image for RGB uint8 [H, W, 3] or a grey go.Heatmap for [H, W]; pixels are s units wide."""
    geom = dict(x0=(s - 1) / 2, y0=(s - 1) / 2, dx=s, dy=s)
    if img.ndim == 3:
        return go.Image(z=img, hoverinfo="x+y+z", **geom)
    return go.Heatmap(z=img, colorscale="gray", zmin=0, zmax=255, showscale=False, **geom)


def image_axes(fig: go.FigureWidget, trace: Any, show_ticks: bool = False) -> None:
    """Gives the trace's subplot image axes: y down, square pixels, no grid."""
    x_ref, y_ref = trace.xaxis or "x", trace.yaxis or "y"
    x_name, y_name = "xaxis" + x_ref[1:], "yaxis" + y_ref[1:]
    fig.layout[x_name].update(visible=show_ticks, showgrid=False, zeroline=False, constrain="domain")
    fig.layout[y_name].update(visible=show_ticks, showgrid=False, zeroline=False, constrain="domain",
                              autorange="reversed", scaleanchor=x_ref)


def as_number(v: Any) -> float | None:
    """Returns v as a float if it is a real number (python, numpy, one-element tensor/array), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, numbers.Real):
        return float(v)
    if hasattr(v, "item") and getattr(v, "ndim", None) in (0, 1) and getattr(v, "shape", (2,)) in ((), (1,)):
        item = v.item()
        return float(item) if isinstance(item, numbers.Real) and not isinstance(item, bool) else None
    return None


def format_value(v: Any) -> str:
    """Returns a short text for a metric value: ints as is, reals with 4 significant digits, else a repr."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return str(int(v))
    x = as_number(v)
    if x is not None:
        return f"{x:.4g}"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def record_table_html(rows: Sequence[tuple[str, Any]], highlight: str | None = None) -> str:
    """Returns an HTML table with one row (name, value) per recorded metric; `highlight` is set in bold."""
    cells = []
    for n, v in rows:
        name = f"<b>{html.escape(str(n))}</b>" if n == highlight else html.escape(str(n))
        cells.append(f"<tr><td style='text-align:left'>{name}</td>"
                     f"<td style='text-align:right'>{html.escape(format_value(v))}</td></tr>")
    body = "".join(cells)
    return ("<table class='kit-record'><thead><tr><th style='text-align:left'>metric</th>"
            f"<th style='text-align:right'>value</th></tr></thead><tbody>{body}</tbody></table>")
