"""Small PNG thumbnails of saved figures, drawn with matplotlib and no browser.

``RunDir.save_figure`` writes plotly figures as HTML (the figure's JSON inside a ``Plotly.newPlot`` call) and
matplotlib / PIL figures as PNG. A thumbnail of an HTML figure redraws its scatter, line, bar, heat-map and image
traces on its subplot grid; other trace types are skipped. kit does not import plotly: the JSON is read here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "<i1", "u1": "<u1", "i2": "<i2", "u2": "<u2", "i4": "<i4", "u4": "<u4",
           "i8": "<i8", "u8": "<u8", "u1c": "<u1"}
_COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]


def plotly_figure_from_html(path: Path) -> tuple[list[dict], dict]:
    """Return (data, layout) of the first ``Plotly.newPlot(id, data, layout, config)`` call in an HTML file."""
    text = Path(path).read_text(encoding="utf-8")
    start = text.find("Plotly.newPlot(")
    if start < 0:
        raise ValueError(f"{path}: no Plotly.newPlot call")
    dec = json.JSONDecoder()
    i = start + len("Plotly.newPlot(")
    values = []
    while len(values) < 3:
        while text[i] in " \t\r\n,":
            i += 1
        value, i = dec.raw_decode(text, i)
        values.append(value)
    _, data, layout = values
    return data, layout


def _array(v: Any) -> np.ndarray | None:
    """Return plotly's typed-array JSON ({"dtype", "bdata", "shape"}) or a (nested) list as a numpy array."""
    if v is None:
        return None
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=_DTYPES.get(v.get("dtype", "f8"), "<f8"))
        shape = v.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")])
        return a.astype(np.float64) if a.dtype.kind != "u" or a.ndim < 3 else a
    try:
        a = np.asarray(v, dtype=object)
        return np.where(a == None, np.nan, a).astype(np.float64)  # noqa: E711 (None is a gap)
    except (TypeError, ValueError):
        return None


def _domain(layout: dict, axis: str) -> list[float]:
    return list(layout.get(axis, {}).get("domain", [0.0, 1.0]))


def _axis_key(ref: str | None, kind: str) -> str:
    ref = ref or kind
    return f"{kind}axis{ref[1:]}"


def figure_thumbnail(figure: Path, out: Path, size: tuple[int, int] = (480, 300)) -> Path:
    """Return ``out``, a PNG thumbnail (``size`` pixels) of a saved figure: a PNG is scaled, an HTML plotly
    figure redrawn (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, out = Path(figure), Path(out)
    dpi = 100
    fig = plt.figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    try:
        if figure.suffix == ".png":
            img = plt.imread(str(figure))
            ax = fig.add_axes((0, 0, 1, 1))
            ax.imshow(img)
            ax.axis("off")
        else:
            _draw_plotly(fig, *plotly_figure_from_html(figure))
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(out), dpi=dpi)
    finally:
        plt.close(fig)
    return out


def _draw_plotly(fig: Any, data: list[dict], layout: dict) -> None:
    axes: dict[tuple[str, str], Any] = {}
    drawn = 0
    for k, t in enumerate(data):
        kind = t.get("type", "scatter")
        if kind not in ("scatter", "scattergl", "bar", "heatmap", "image", "scatter3d"):
            continue
        xk, yk = _axis_key(t.get("xaxis"), "x"), _axis_key(t.get("yaxis"), "y")
        if kind == "scatter3d":
            xk, yk = "xaxis", "yaxis"
        lx, ly = layout.get(xk, {}), layout.get(yk, {})
        if (xk, yk) not in axes:
            (x0, x1), (y0, y1) = _domain(layout, xk), _domain(layout, yk)
            ax = fig.add_axes((0.06 + 0.9 * x0, 0.08 + 0.84 * y0, 0.9 * (x1 - x0) * 0.95, 0.84 * (y1 - y0) * 0.92))
            ax.tick_params(labelsize=5, which="both")
            if lx.get("type") == "log":
                ax.set_xscale("log")
            if ly.get("type") == "log":
                ax.set_yscale("log")
            if ly.get("autorange") == "reversed":
                ax.invert_yaxis()
            if lx.get("visible") is False:
                ax.set_xticks([])
            if ly.get("visible") is False:
                ax.set_yticks([])
            axes[(xk, yk)] = ax
        ax = axes[(xk, yk)]
        color = (t.get("line") or {}).get("color") or (t.get("marker") or {}).get("color")
        color = color if isinstance(color, str) else _COLORS[k % len(_COLORS)]
        if kind in ("heatmap", "image"):
            z = _array(t.get("z"))
            if z is None or z.ndim < 2:
                continue
            if kind == "image" and z.ndim == 3:
                ax.imshow(np.clip(z, 0, 255).astype(np.uint8), aspect="equal")
            else:
                ax.imshow(z, cmap="gray" if t.get("colorscale") in ("gray", "Greys") else "viridis",
                          aspect="equal" if "scaleanchor" in ly else "auto", interpolation="nearest")
                if ly.get("autorange") != "reversed":
                    ax.invert_yaxis()
            drawn += 1
            continue
        y = _array(t.get("y"))
        if y is None or y.size == 0:
            continue
        x = _array(t.get("x"))
        x = np.arange(len(y)) if x is None or x.shape != y.shape else x
        if kind == "bar":
            ax.bar(np.arange(len(y)) if x.dtype == object else x, y, color=color)
        else:
            mode = t.get("mode", "lines")
            ax.plot(x, y, "-" if "lines" in mode else "", marker="." if "markers" in mode else None,
                    color=color, linewidth=1, markersize=2)
        drawn += 1
    title = layout.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    if text:
        fig.suptitle(str(text)[:80], fontsize=7)
    if not drawn:
        raise ValueError("the figure has no trace a thumbnail can draw")
