"""Static plotly figures shared by the notebooks (results to save and to render in HTML exports).

Interactive views live in the series' widget modules; these are plain ``go.Figure`` objects, which nbconvert's
HTML keeps (through the ``notebook_connected`` renderer) while widget state is not saved by papermill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from widgets.viz import setup_plotly

setup_plotly()


def lines(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    log_x: bool = False,
    log_y: bool = False,
    dash: Mapping[str, str] | None = None,
    height: int = 380,
) -> go.Figure:
    """Return a line chart with one trace per entry of ``series`` over the common ``x``."""
    x = np.asarray(x, dtype=float)
    if not series:
        raise ValueError("series must hold at least one named sequence")
    fig = go.Figure()
    for name, y in series.items():
        y = np.asarray(y, dtype=float)
        if y.shape != x.shape:
            raise ValueError(f"series {name!r} has {y.shape[0] if y.ndim else 0} values, x has {x.shape[0]}")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                                 line={"dash": (dash or {}).get(name, "solid")}))
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      xaxis={"title": x_title, "type": "log" if log_x else "linear"},
                      yaxis={"title": y_title, "type": "log" if log_y else "linear"})
    return fig


def training_curve(history: Sequence[Mapping], key: str = "loss", title: str = "training loss") -> go.Figure:
    """Return the curve of ``key`` over steps from a ``fit`` history (train events only)."""
    pts = [(e["step"], e[key]) for e in history if e.get("kind") == "train" and key in e]
    if not pts:
        raise ValueError(f"the history has no train events with {key!r}")
    steps, vals = zip(*pts)
    return lines(steps, {key: vals}, title=title, x_title="step", y_title=key)
