"""Static figures of the RLD series: student accuracy against teacher error with the RLD - DKD / RLD - KD gains (the
paper's Fig. 4), the alpha/beta sensitivity heat map, and mean +- std tables. The numbers come from
`kit.rld.explore`; `widgets.rld` re-exports these beside its interactive views."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from kit.rld import explore as ex

__all__ = ["METHOD_COLORS", "accuracy_table_html", "alpha_beta_heatmap", "sweep_figure"]

METHOD_COLORS = {"ce": "grey", "kd": "#1f77b4", "dkd": "#ff7f0e", "la": "#9467bd", "rld": "#2ca02c",
                 "tckd": "#ffbb78", "nckd": "#ff7f0e", "scd": "#98df8a", "mcd": "#2ca02c"}


def _method_color(name: str, i: int) -> str:
    return METHOD_COLORS.get(name.lower(), qualitative.Plotly[i % len(qualitative.Plotly)])


def _sweep(sweep: Any) -> dict[str, Any]:
    if isinstance(sweep, Mapping) and "teacher_errors" in sweep:
        return dict(sweep)
    if isinstance(sweep, Iterable) and not isinstance(sweep, (str, Mapping)):
        return ex.sweep_table(list(sweep))
    raise ValueError("sweep: expected the dict of explore.sweep_table or its rows "
                     f"[{{teacher_error, method, seed, accuracy}}], got {type(sweep).__name__}")


def sweep_figure(sweep: Any, x_title: str = "teacher error on the student's training set",
                 height: int = 400) -> go.Figure:
    """Returns accuracy vs teacher error per method (mean +- std over seeds), and RLD - DKD / RLD - KD.

    sweep: `explore.sweep_table(rows)` or the rows themselves. Error bars: sample std over seeds.
    """
    sw = _sweep(sweep)
    x = np.asarray(sw["teacher_errors"], dtype=float)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["student accuracy", "gain of RLD (paired by seed)"])
    for i, m in enumerate(sw["methods"]):
        fig.add_trace(go.Scatter(x=x, y=sw["mean"][m], name=m, mode="lines+markers",
                                 line=dict(color=_method_color(m, i)),
                                 error_y=dict(type="data", array=sw["std"][m], visible=True)), row=1, col=1)
    for j, (name, d) in enumerate(sw["differences"].items()):
        fig.add_trace(go.Scatter(x=x, y=d["mean"], name=name, mode="lines+markers",
                                 line=dict(dash="dash", color=_method_color(name.split(" - ")[-1], j)),
                                 error_y=dict(type="data", array=d["std"], visible=True)), row=1, col=2)
    fig.add_hline(y=0, line=dict(color="black", width=1), row=1, col=2)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_yaxes(title_text="accuracy difference", row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=50, b=50))
    return fig


def alpha_beta_heatmap(grid: Any, title: str = "RLD accuracy over α (SCD) and β (MCD)",
                       height: int = 380) -> go.Figure:
    """Returns a heat map of accuracy over (alpha, beta), values written in the cells, the best cell boxed.

    grid: {(alpha, beta): accuracy or [accuracies]} or (alphas [A], betas [B], accuracy [A, B]).
    """
    alphas, betas, acc = ex.alpha_beta_grid(grid)
    if np.isnan(acc).all():
        raise ValueError("grid: expected at least one finite accuracy")
    xs, ys = [f"{b:g}" for b in betas], [f"{a:g}" for a in alphas]
    fig = go.Figure(go.Heatmap(z=acc, x=xs, y=ys, colorscale="Viridis", texttemplate="%{z:.3g}",
                               hovertemplate="α=%{y}, β=%{x}: %{z:.4g}<extra></extra>"))
    i, j = np.unravel_index(np.nanargmax(acc), acc.shape)
    fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="red", width=3))
    fig.update_layout(title=title, height=height, xaxis=dict(title="β", type="category"),
                      yaxis=dict(title="α", type="category"), margin=dict(l=60, r=20, t=50, b=50))
    return fig


def accuracy_table_html(sweep: Any, digits: int = 2, scale: float = 1.0) -> str:
    """Returns an HTML table: one row per teacher error, one column per method, "mean ± std (n)" cells.

    sweep: `explore.sweep_table(rows)` or the rows. Values are multiplied by `scale` (100 for percent);
    the best mean of each row is in bold; missing cells read "n/a".
    """
    sw = _sweep(sweep)
    methods = sw["methods"]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    body = []
    for k, e in enumerate(sw["teacher_errors"]):
        means = np.array([sw["mean"][m][k] for m in methods], dtype=float) * scale
        best = np.nanmax(means) if np.isfinite(means).any() else None
        cells = []
        for m, mu in zip(methods, means):
            if not np.isfinite(mu):
                cells.append("<td>n/a</td>")
                continue
            text = f"{mu:.{digits}f} ± {sw['std'][m][k] * scale:.{digits}f} ({sw['n'][m][k]})"
            cells.append(f"<td>{'<b>' + text + '</b>' if mu == best else text}</td>")
        body.append(f"<tr><td>{e:g}</td>{''.join(cells)}</tr>")
    return (f"<table class='kit-record'><thead><tr><th>teacher error</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")
