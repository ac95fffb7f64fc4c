"""Interactive views of ODE sampling trajectories and the GITS time schedule (arXiv:2405.11326).

- `Trajectory2DExplorer`: a 2-D toy, x_sigma (with ghost paths) next to D(x_sigma) under a step slider.
- `ProjectionView`: one trajectory in chord + 2-PC coordinates (Fig. 4) with the steps of several schedules.
- `BoomerangView`: many trajectories overlaid in their own chord + 2-PC frames (the "boomerang"), with their
  denoising trajectories.
- `StatsView`: deviation from the chord, distances to the final sample, cos(eps, x - x_end) against sigma.
- `CostMatrixView`: the GITS cost matrix, its dynamic-programming path and the schedule it gives.
- `error_vs_nfe_figure` / `ErrorTableView`: sampling error per solver x schedule x NFE.
- `gap_figure`: a trained denoiser's RMS error, the optimal denoiser's and their gap, against sigma (01_train).
- `DigitStrips`: the sampling row x_sigma and the denoising row D(x_sigma) of one sample, as images.

The numbers come from `kit.trajectory.explore`; these classes only draw them. Each has `.widget` and
`.figure` (a plotly FigureWidget, updated in place when a control moves).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from kit.diffusion.solvers import steps_for_nfe
from kit.trajectory.explore import (
    BASELINE_SCHEDULES,
    cost_for_metric,
    log_abs_cost,
    schedule_curves,
    weighted_path_cost,
)
from kit.trajectory.gits import METRICS, GITSSearch, dp_path
from widgets.common import ImageGrid, StepPlayer
from widgets.figures import lines
from widgets.viz import Displayable, FigureWidget, to_numpy

__all__ = ["BoomerangView", "CostMatrixView", "DigitStrips", "ErrorTableView", "ProjectionView", "StatsView",
           "Trajectory2DExplorer", "error_vs_nfe_figure", "gap_figure"]

_COLORS = qualitative.Plotly


def _array(a: Any, arg: str, ndim: int | None = None) -> np.ndarray:
    """Returns `a` as a finite float64 numpy array, checking the number of dimensions."""
    x = to_numpy(a, arg)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{arg}: expected real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{arg}: expected {ndim} dimensions, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{arg}: contains NaN or inf")
    return x


def _trajectory_arrays(xs: Any, denoised: Any, sigmas: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns xs [T, B, d], denoised [T-1, B, d], sigmas [T] (trailing dims flattened) after checks."""
    x, d, s = _array(xs, "xs"), _array(denoised, "denoised"), _array(sigmas, "sigmas", ndim=1)
    if x.ndim < 3 or x.shape[0] < 2:
        raise ValueError(f"xs: expected a trajectory [T, B, ...] with T >= 2, got shape {x.shape}")
    if d.shape != (x.shape[0] - 1,) + x.shape[1:]:
        raise ValueError(f"denoised: expected shape {(x.shape[0] - 1,) + x.shape[1:]}, got {d.shape}")
    if s.shape != (x.shape[0],):
        raise ValueError(f"sigmas: expected shape [{x.shape[0]}] (one per point of xs), got {s.shape}")
    T, B = x.shape[:2]
    return x.reshape(T, B, -1), d.reshape(T - 1, B, -1), s


def _with_gaps(a: Any) -> list:
    """Returns the numbers of a 2-D array as nested lists with None (a gap in plotly) where a value is NaN or inf.

    Plotly sends 2-D arrays to the front end as JSON lists, and NaN or inf is not JSON: jupyter-client warns
    ("Message serialization failed ... Out of range float values") and newer versions drop the message."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, None).tolist()


def _paths(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns x, y of every path in points [T, B, 2] joined into one line trace (NaN between paths)."""
    B = points.shape[1]
    flat = np.concatenate([points, np.full((1, B, 2), np.nan)]).transpose(1, 0, 2).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def _square_range(p: np.ndarray, min_half: float = 0.0) -> tuple[list[float], list[float]]:
    """Returns equal-length x and y ranges covering the points p [N, 2] with 15% margin."""
    lo, hi = p.min(0), p.max(0)
    c, half = (lo + hi) / 2, max(float(np.max(hi - lo)) / 2 * 1.15, min_half, 1e-9)
    return [c[0] - half, c[0] + half], [c[1] - half, c[1] + half]


class Trajectory2DExplorer(Displayable):
    """A 2-D toy: x_sigma (left, with faint ghost paths) and D(x_sigma, sigma) (right) under a step slider.

    xs [T, B, 2], denoised [T-1, B, 2], sigmas [T] (e.g. `explore.sample_trajectories`). Points are coloured
    by the angle of their final sample around the final samples' mean, so each x can be followed to its
    mode: D jumps to the mode early while x still moves on a straight line. The left panel zooms to the
    current points (x_sigma spreads ~sigma); the right panel keeps one range. At the last point (no D was
    evaluated there) the right panel shows x_end. At most `max_paths` ghost paths are drawn. Built on
    `StepPlayer`, so a Play button steps through sigma.
    """

    def __init__(self, xs: Any, denoised: Any, sigmas: Any, max_paths: int = 200, height: int = 430):
        self.xs, self.denoised, self.sigmas = _trajectory_arrays(xs, denoised, sigmas)
        if self.xs.shape[2] != 2:
            raise ValueError(f"xs: expected 2-D points [T, B, 2], got {self.xs.shape[2]} coordinates")
        if max_paths < 1:
            raise ValueError(f"max_paths: expected a positive int, got {max_paths}")
        T = self.xs.shape[0]
        end = self.xs[-1]
        rel = end - end.mean(0)
        self.color = np.arctan2(rel[:, 1], rel[:, 0])
        self._ghost_x = _paths(self.xs[:, :max_paths])
        self._ghost_d = _paths(np.concatenate([self.denoised, end[None]])[:, :max_paths])
        self._d_range = _square_range(np.concatenate([self.denoised.reshape(-1, 2), end]))
        self._min_half = 0.5 * float(np.max(np.ptp(end, axis=0))) * 1.15 or 1.0
        titles = ["x_σ (sampling)", "D(x_σ, σ) (denoising)"]
        self._layout = make_subplots(rows=1, cols=2, subplot_titles=titles,
                                     horizontal_spacing=0.08).layout.to_plotly_json()
        self._layout.pop("template", None)
        self.show_paths = ipw.Checkbox(value=True, description="show paths")
        labels = [f"step {i}/{T - 1}: σ = {s:.4g}" for i, s in enumerate(self.sigmas)]
        labels[-1] += " (last point: x_end on the right)"
        self.player = StepPlayer(list(range(T)), labels=labels, render=self._render, height=height)
        self.figure = self.player.figure
        self.slider = self.player.slider
        self.show_paths.observe(self._on_paths, names="value")
        self.widget = ipw.VBox([self.show_paths, self.player.widget])

    def _render(self, i: int) -> dict[str, Any]:
        x = self.xs[i]
        d = self.denoised[i] if i < len(self.denoised) else self.xs[-1]
        marker = dict(color=self.color, colorscale="Phase", cmin=-math.pi, cmax=math.pi, size=6)
        ghost = dict(type="scatter", mode="lines", line=dict(color="rgba(120,120,120,0.25)", width=1),
                     hoverinfo="skip", showlegend=False, visible=bool(self.show_paths.value))
        points = dict(type="scatter", mode="markers", marker=marker, showlegend=False)
        right = dict(xaxis="x2", yaxis="y2")
        data = [{**ghost, "x": self._ghost_x[0], "y": self._ghost_x[1], "name": "x paths"},
                {**points, "x": x[:, 0], "y": x[:, 1], "name": "x_σ"},
                {**ghost, **right, "x": self._ghost_d[0], "y": self._ghost_d[1], "name": "D paths"},
                {**points, **right, "x": d[:, 0], "y": d[:, 1], "name": "D(x_σ)"}]
        rx, ry = _square_range(x, self._min_half)
        layout = {"xaxis": {"range": rx}, "yaxis": {"range": ry, "scaleanchor": "x"},
                  "xaxis2": {"range": self._d_range[0]},
                  "yaxis2": {"range": self._d_range[1], "scaleanchor": "x2"}}
        if self._layout is not None:  # first frame: StepPlayer's figure gets the two-panel layout
            layout = {**self._layout, **{k: {**self._layout.get(k, {}), **v} for k, v in layout.items()}}
            self._layout = None
        return {"data": data, "layout": layout}

    def _on_paths(self, change: dict) -> None:
        with self.figure.batch_update():
            self.figure.data[0].visible = self.figure.data[2].visible = bool(change["new"])


def _check_projection(p: Any, arg: str) -> Mapping[str, Any]:
    if not isinstance(p, Mapping) or not {"coords", "explained", "teacher_sigmas", "schedules"} <= set(p):
        raise ValueError(f"{arg}: expected a dict from explore.projection_with_steps, got {type(p).__name__}")
    if np.shape(p["coords"])[1:] != (3,):
        raise ValueError(f"{arg}: coords must have shape [T, 3], got {np.shape(p['coords'])}")
    return p


class ProjectionView(Displayable):
    """One teacher trajectory in chord + 2-PC coordinates (Fig. 4 of arXiv:2405.11326) with schedule steps.

    projection: a dict from `explore.projection_with_steps`; or a list of them (a dropdown picks the sample);
    or a callable nfe -> dict together with `nfes` (a dropdown picks the NFE; results are cached). Every dict
    must hold the same schedule names. The axes are scaled independently (aspect "cube"): the chord is orders
    of magnitude longer than the off-chord bend. The legend gives the share of off-chord energy in the 2 PCs.
    """

    def __init__(self, projection: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Callable[[int], Mapping],
                 nfes: Sequence[int] | None = None, height: int = 520):
        self._cache: dict[int, Mapping[str, Any]] = {}
        self.dropdown: ipw.Dropdown | None = None
        if callable(projection) and not isinstance(projection, Mapping):
            if not nfes:
                raise ValueError("nfes: expected a non-empty list of NFEs when projection is a callable")

            def get(nfe: int) -> Mapping[str, Any]:
                if nfe not in self._cache:
                    self._cache[nfe] = _check_projection(projection(nfe), "projection(nfe)")
                return self._cache[nfe]

            self._get = get
            self.dropdown = ipw.Dropdown(options=[(f"NFE {n}", n) for n in nfes], value=nfes[0],
                                         description="NFE")
        elif isinstance(projection, Mapping):
            one = _check_projection(projection, "projection")
            self._get = lambda _: one
        elif isinstance(projection, Sequence) and len(projection) > 0:
            items = [_check_projection(p, f"projection[{i}]") for i, p in enumerate(projection)]
            self._get = lambda i: items[i]
            if len(items) > 1:
                self.dropdown = ipw.Dropdown(options=[(f"sample {i}", i) for i in range(len(items))], value=0,
                                             description="sample")
        else:
            raise ValueError("projection: expected a dict, a non-empty list of dicts or a callable")
        first = self._get(self.dropdown.value if self.dropdown else 0)
        self.names = list(first["schedules"])
        scene = dict(aspectmode="cube", xaxis_title="u1: chord", yaxis_title="u2: PC 1 after chord",
                     zaxis_title="u3: PC 2 after chord")
        self.figure = FigureWidget(layout=dict(height=height, margin=dict(l=0, r=0, t=30, b=0),
                                                  legend=dict(y=0.95), scene=scene))
        self.figure.add_scatter3d(mode="lines+markers", line=dict(color="grey", width=3),
                                  marker=dict(size=2, color="grey"), name="teacher")
        for k, name in enumerate(self.names):
            self.figure.add_scatter3d(mode="markers", name=name, marker=dict(size=5, color=_COLORS[k % 10]))
        self._draw(first)
        if self.dropdown is not None:
            self.dropdown.observe(lambda ch: self._draw(self._get(ch["new"])), names="value")
        self.widget = ipw.VBox(([self.dropdown] if self.dropdown else []) + [self.figure])

    def _draw(self, p: Mapping[str, Any]) -> None:
        if list(p["schedules"]) != self.names:
            raise ValueError(f"projection: expected schedules {self.names}, got {list(p['schedules'])}")
        c = np.asarray(p["coords"], dtype=np.float64)
        ev = 100 * float(np.sum(p["explained"]))
        with self.figure.batch_update():
            self.figure.data[0].update(x=c[:, 0], y=c[:, 1], z=c[:, 2],
                                       customdata=np.asarray(p["teacher_sigmas"]),
                                       name=f"teacher: 2 PCs explain {ev:.2f}% off-chord",
                                       hovertemplate="σ = %{customdata:.4g}<extra>teacher</extra>")
            for trace, name in zip(self.figure.data[1:], self.names):
                s = p["schedules"][name]
                pc = np.asarray(s["coords"], dtype=np.float64)
                trace.update(x=pc[:, 0], y=pc[:, 1], z=pc[:, 2], customdata=np.asarray(s["sigmas"]),
                             name=f"{name} ({len(pc) - 1} steps)",
                             hovertemplate=f"σ = %{{customdata:.4g}}<extra>{html.escape(name)}</extra>")
            self.figure.layout.title.text = f"chord length {float(c[0, 0]):.4g}"


_STATS_GROUPS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "deviation from chord": ("linear", (("dev_x", "dev(x_σ)"), ("dev_d", "dev(D(x_σ))"))),
    "distance to x_end": ("log", (("dist_x_end", "‖x_σ − x_end‖"),
                                  ("dist_d_end", "‖D(x_σ) − x_end‖"))),
    "cos(ε, x_σ − x_end)": ("linear", (("cos_eps", "cos(ε, x_σ − x_end)"),)),
    "norms": ("log", (("norm_x", "‖x_σ‖"), ("norm_d", "‖D(x_σ)‖"), ("norm_eps", "‖ε‖"))),
}


class BoomerangView(Displayable):
    """Many sampling trajectories overlaid (Fig. 4 of arXiv:2405.11326): each in its own chord + 2-PC frame, scaled
    to a unit chord (from (1, 0, 0) to the origin), as 3-D lines; a toggle adds each one's denoising trajectory
    D(x_sigma) in the same frame (dashed), which leaves the chord at once and sits near the end long before x does.

    b: the dict of `explore.boomerangs`. `x_traces` / `d_traces` hold the two groups of lines.
    """

    def __init__(self, b: Mapping[str, Any], show_denoised: bool = True, height: int = 520):
        if not isinstance(b, Mapping) or "x" not in b or "D" not in b:
            raise ValueError("b: expected the dict of explore.boomerangs")
        x, d = _array(b["x"], "b['x']", ndim=3), _array(b["D"], "b['D']", ndim=3)
        if x.shape[2] != 3 or d.shape[0] != x.shape[0] or d.shape[2] != 3:
            raise ValueError(f"b['x'] must be [n, T, 3] and b['D'] [n, T-1, 3], got {x.shape} and {d.shape}")
        self.figure = FigureWidget(layout=dict(
            height=height, margin=dict(l=0, r=0, t=40, b=0), legend=dict(orientation="h"),
            title=dict(text=f"{len(x)} trajectories, each in its chord + 2-PC frame (chord scaled to 1)"),
            scene=dict(aspectmode="cube", xaxis_title="along the chord", yaxis_title="PC 1", zaxis_title="PC 2")))
        for i in range(len(x)):
            self.figure.add_scatter3d(x=x[i, :, 0], y=x[i, :, 1], z=x[i, :, 2], mode="lines",
                                      line=dict(color=_COLORS[0], width=3), opacity=0.6, name="x_σ (sampling)",
                                      legendgroup="x", showlegend=i == 0)
        self.x_traces = list(self.figure.data)
        for i in range(len(d)):
            self.figure.add_scatter3d(x=d[i, :, 0], y=d[i, :, 1], z=d[i, :, 2], mode="lines",
                                      line=dict(color=_COLORS[1], width=2, dash="dash"), opacity=0.6,
                                      name="D(x_σ) (denoising)", legendgroup="D", showlegend=i == 0)
        self.d_traces = list(self.figure.data[len(x):])
        self.toggle = ipw.Checkbox(value=show_denoised, description="denoising trajectories")
        self.toggle.observe(lambda ch: self._show(ch["new"]), names="value")
        self._show(show_denoised)
        self.widget = ipw.VBox([self.toggle, self.figure])

    def _show(self, on: bool) -> None:
        with self.figure.batch_update():
            for t in self.d_traces:
                t.visible = bool(on)


class StatsView(Displayable):
    """Trajectory statistics against sigma (log axis): batch mean (line) +/- std (band), a group dropdown.

    stats: the dict of `explore.stats_vs_sigma`. Groups: deviation from the chord of x and D; distance of x
    and D to the final sample (log y); cos(eps, x - x_end); norms (log y). On log axes the lower band edge is
    clipped at mean / 100, since mean - std can be <= 0. The title gives the chord length and the variance
    explained by two PCs after chord removal (mean and worst sample). `traces[key]` = (band, line).
    """

    def __init__(self, stats: Mapping[str, Any], group: str = "deviation from chord", height: int = 380):
        if not isinstance(stats, Mapping) or "sigma" not in stats:
            raise ValueError("stats: expected the dict of explore.stats_vs_sigma")
        if group not in _STATS_GROUPS:
            raise ValueError(f"group: expected one of {list(_STATS_GROUPS)}, got {group!r}")
        sigma = _array(stats["sigma"], "stats['sigma']", ndim=1)
        self.figure = FigureWidget(layout=dict(
            height=height, margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.2),
            xaxis=dict(type="log", autorange="reversed",
                       title=dict(text="σ (log; sampling runs left to right)"))))
        self.traces: dict[str, tuple[Any, Any]] = {}
        items = [(scale, key, label) for scale, pairs in _STATS_GROUPS.values() for key, label in pairs]
        for k, (scale, key, label) in enumerate(items):
            mean = _array(stats[f"{key}_mean"], f"stats['{key}_mean']", ndim=1)
            std = _array(stats[f"{key}_std"], f"stats['{key}_std']", ndim=1)
            if mean.shape != sigma.shape or std.shape != sigma.shape:
                raise ValueError(f"stats: {key}_mean and {key}_std must have sigma's shape {sigma.shape}")
            lower = np.maximum(mean - std, mean / 100) if scale == "log" else mean - std
            color = _COLORS[k % 10]
            self.figure.add_scatter(x=np.concatenate([sigma, sigma[::-1]]),
                                    y=np.concatenate([mean + std, lower[::-1]]), fill="toself",
                                    line=dict(width=0), fillcolor=color, opacity=0.2, hoverinfo="skip",
                                    legendgroup=key, showlegend=False, name=f"{label} ± std")
            self.figure.add_scatter(x=sigma, y=mean, mode="lines", line=dict(color=color), name=label,
                                    legendgroup=key)
            self.traces[key] = (self.figure.data[-2], self.figure.data[-1])
        title = f"chord {float(np.mean(stats['chord'])):.4g}" if "chord" in stats else ""
        if "explained_top2" in stats:
            ev = 100 * np.asarray(stats["explained_top2"], dtype=np.float64)
            title += f"; 2 PCs after chord removal explain {ev.mean():.2f}% (min {ev.min():.2f}%) off-chord"
        self.figure.layout.title.text = title
        self.dropdown = ipw.Dropdown(options=list(_STATS_GROUPS), value=group, description="quantity")
        self.dropdown.observe(lambda ch: self._show(ch["new"]), names="value")
        self._show(group)
        self.widget = ipw.VBox([self.dropdown, self.figure])

    def _show(self, group: str) -> None:
        scale, items = _STATS_GROUPS[group]
        keys = {key for key, _ in items}
        with self.figure.batch_update():
            for key, (band, line) in self.traces.items():
                band.visible = line.visible = key in keys
            self.figure.layout.yaxis.type = scale
            self.figure.layout.yaxis.title.text = group


class CostMatrixView(Displayable):
    """The GITS cost matrix (log colour) with its dynamic-programming path, and the schedule it gives.

    Left: log10(|C| + eps) for i < j (`explore.log_abs_cost`; "dev" costs are signed, the hover shows the
    signed value); row = from grid index i, column = to index j. The DP path (`gits.dp_path`) is a staircase
    whose corners (markers) are the cells (p_m, p_{m+1}) it uses. Right: sigma against step index for the
    GITS schedule and `baselines` at the same number of steps (log y). Sliders: NFE (3..12, even only for
    two-stage solvers, at most what the grid allows) and coeff (0.8..1.6). A metric dropdown appears when the
    search kept its teacher (``gits_search(..., keep_teacher=True)``); other metrics are then recomputed from
    it without denoiser calls. `path` and `schedules` hold what is drawn.
    """

    def __init__(self, search: GITSSearch, solver: str = "ipndm", nfe: int = 6, coeff: float = 1.15,
                 baselines: Sequence[str] = BASELINE_SCHEDULES, height: int = 440):
        if not isinstance(search, GITSSearch):
            raise ValueError(f"search: expected a GITSSearch, got {type(search).__name__}")
        self.search, self.solver, self.baselines = search, solver, tuple(baselines)
        two_stage = steps_for_nfe(solver, 2) == 1  # also validates the solver name
        G = search.grid.numel()
        low, top = (4 if two_stage else 3), min(12, (2 if two_stage else 1) * (G - 1))
        if top < low:
            raise ValueError(f"search: the base grid ({G} points) is too coarse for NFE >= {low}")
        self.nfe_slider = ipw.IntSlider(value=int(np.clip(nfe, low, top)), min=low, max=top,
                                        step=2 if two_stage else 1, description="NFE",
                                        continuous_update=False)
        self.coeff_slider = ipw.FloatSlider(value=coeff, min=0.8, max=1.6, step=0.05, description="coeff",
                                            continuous_update=False)
        self.metric_dropdown: ipw.Dropdown | None = None
        if search.teacher_xs is not None and search.teacher_eps is not None:
            self.metric_dropdown = ipw.Dropdown(options=list(METRICS), value=search.metric,
                                                description="metric")
        self._costs: dict[str, Any] = {search.metric: search.cost}
        self.figure = FigureWidget(make_subplots(
            rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.14,
            subplot_titles=["cost C[i, j] and DP path", "σ per step"]))
        cbar = dict(x=self.figure.layout.xaxis.domain[1] + 0.01, len=0.9, thickness=10,
                    title=dict(side="right"))
        self.figure.add_heatmap(row=1, col=1, colorscale="Viridis", colorbar=cbar,
                                hovertemplate="i=%{y} → j=%{x}<br>C = %{customdata:.4g}<extra></extra>")
        self.figure.add_scatter(row=1, col=1, mode="lines", line=dict(color="red", width=2), name="DP path",
                                showlegend=False, hoverinfo="skip")
        self.figure.add_scatter(row=1, col=1, mode="markers", marker=dict(color="red", size=7, symbol="x"),
                                name="steps (i → j)", showlegend=False,
                                hovertemplate="step %{y} → %{x}<extra></extra>")
        for k, name in enumerate(self.baselines + ("gits",)):
            line = dict(color="black", width=3) if name == "gits" else dict(color=_COLORS[k % 10], width=1.5)
            self.figure.add_scatter(row=1, col=2, mode="lines+markers", name=name, line=line)
        self.figure.update_yaxes(autorange="reversed", title_text="from grid index i", row=1, col=1)
        self.figure.update_xaxes(title_text="to grid index j", row=1, col=1)
        self.figure.update_yaxes(type="log", title_text="σ", row=1, col=2)
        self.figure.update_xaxes(title_text="step index", row=1, col=2)
        self.figure.update_layout(height=height, margin=dict(l=50, r=10, t=60, b=40),
                                  legend=dict(x=1.0, xanchor="right", y=1.0))
        self._redraw(heat=True)
        self.nfe_slider.observe(lambda _: self._redraw(), names="value")
        self.coeff_slider.observe(lambda _: self._redraw(), names="value")
        controls = [self.nfe_slider, self.coeff_slider]
        if self.metric_dropdown is not None:
            self.metric_dropdown.observe(lambda _: self._redraw(heat=True), names="value")
            controls.append(self.metric_dropdown)
        self.widget = ipw.VBox([ipw.HBox(controls), self.figure])

    @property
    def metric(self) -> str:
        return self.metric_dropdown.value if self.metric_dropdown is not None else self.search.metric

    @property
    def cost(self) -> Any:
        """The cost matrix C [G, G] of the current metric (computed once per metric)."""
        if self.metric not in self._costs:
            self._costs[self.metric] = cost_for_metric(self.search, self.metric)
        return self._costs[self.metric]

    def _redraw(self, heat: bool = False) -> None:
        nfe, coeff, cost = int(self.nfe_slider.value), float(self.coeff_slider.value), self.cost
        p = self.path = dp_path(cost, steps_for_nfe(self.solver, nfe), coeff=coeff)
        self.schedules = schedule_curves(nfe, self.solver, self.search, coeff, names=self.baselines)
        stair_x = [p[0]] + [v for v in p[1:] for _ in (0, 1)]
        stair_y = [v for v in p[:-1] for _ in (0, 1)] + [p[-1]]
        with self.figure.batch_update():
            if heat:
                z, eps = log_abs_cost(cost)
                custom = np.where(np.isnan(z), np.nan, np.asarray(cost, dtype=np.float64))
                self.figure.data[0].update(z=_with_gaps(z), customdata=_with_gaps(custom))
                signed = ", C signed" if self.metric == "dev" else ""
                self.figure.data[0].colorbar.title.text = f"log10(|C| + {eps:.1e}){signed}"
            self.figure.data[1].update(x=stair_x, y=stair_y)
            self.figure.data[2].update(x=p[1:], y=p[:-1])
            for trace, name in zip(self.figure.data[3:], self.baselines + ("gits",)):
                trace.update(x=np.arange(len(self.schedules[name])), y=self.schedules[name])
            sig = ", ".join(f"{v:.3g}" for v in self.schedules["gits"])
            total = weighted_path_cost(cost, p, coeff)
            self.figure.layout.title.text = (f"GITS ({self.solver}, NFE {nfe}, coeff {coeff:.2f}, "
                                             f"{self.metric}): σ = [{sig}]; weighted cost {total:.4g}")


_ROW_KEYS = ("denoiser", "solver", "schedule", "nfe", "error")


def _check_rows(rows: Any, coeff: float | None = None) -> list[dict[str, Any]]:
    """Returns the rows checked and normalised: str names, int nfe, float-or-None error and coeff, and the
    series name "line" (the schedule, plus "@coeff" where the row has a coeff). With `coeff`, rows whose
    coeff differs are dropped (rows without one are kept). A row with schedule None is an impossible cell."""
    if not isinstance(rows, Sequence) or len(rows) == 0:
        raise ValueError("rows: expected a non-empty list of dicts")
    out, seen = [], set()
    for k, r in enumerate(rows):
        if not isinstance(r, Mapping) or not set(_ROW_KEYS) <= set(r):
            raise ValueError(f"rows[{k}]: expected a dict with keys {_ROW_KEYS}, got {r!r:.120}")
        err, c = r["error"], r.get("coeff")
        for name, v in (("error", err), ("coeff", c)):
            number = isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool)
            if v is not None and (not number or not math.isfinite(v) or v < 0):
                raise ValueError(f"rows[{k}]: {name} must be None or a finite number >= 0, got {v!r}")
        if coeff is not None and c is not None and not math.isclose(c, coeff):
            continue
        sched = None if r["schedule"] is None else str(r["schedule"])
        line = None if sched is None else sched if c is None else f"{sched}@{c:g}"
        key = (str(r["denoiser"]), str(r["solver"]), line, int(r["nfe"]))
        if key in seen:
            raise ValueError(f"rows[{k}]: duplicate cell {key}")
        seen.add(key)
        out.append({"denoiser": key[0], "solver": key[1], "schedule": sched, "line": line, "nfe": key[3],
                    "coeff": None if c is None else float(c), "error": None if err is None else float(err)})
    if not out:
        raise ValueError(f"coeff: no row has coeff {coeff} (rows without a coeff count too)")
    return out


def _unique(values: Any) -> list[Any]:
    return [v for v in dict.fromkeys(values) if v is not None]


def _series(rows: list[dict], line: str) -> tuple[list[int], list[float | None]]:
    """Returns the sorted NFEs and errors of one line; cells marked impossible (schedule None) give gaps."""
    pts = {r["nfe"]: r["error"] for r in rows if r["line"] == line}
    if pts:
        pts.update({r["nfe"]: None for r in rows if r["schedule"] is None})
    return sorted(pts), [pts[n] for n in sorted(pts)]


def error_vs_nfe_figure(rows: Sequence[Mapping[str, Any]], denoiser: str | None = None,
                        coeff: float | None = None) -> go.Figure:
    """Returns a figure with one subplot per solver and one line per schedule: error against NFE (log y).

    rows: dicts {"denoiser", "solver", "schedule", "nfe", "error"} and optionally "coeff" (GITS rows of a
    coeff sweep: one line "gits@<coeff>" each; `coeff` keeps one). error None, or a row with schedule None
    (the cell is impossible for every schedule, e.g. Heun at odd NFE), leaves a gap. With several
    denoisers in rows, `denoiser` picks one.
    """
    all_rows = _check_rows(rows, coeff)
    names = _unique(r["denoiser"] for r in all_rows)
    if denoiser is None and len(names) > 1:
        raise ValueError(f"denoiser: rows hold several denoisers {names}; pick one")
    denoiser = names[0] if denoiser is None else denoiser
    sel = [r for r in all_rows if r["denoiser"] == denoiser]
    if not sel:
        raise ValueError(f"denoiser: {denoiser!r} not in rows (have {names})")
    solvers, lines = _unique(r["solver"] for r in sel), _unique(r["line"] for r in all_rows)
    cols = min(3, len(solvers))
    n_rows = math.ceil(len(solvers) / cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=solvers, shared_yaxes=True)
    shown: set[str] = set()
    for k, solver in enumerate(solvers):
        for j, line in enumerate(lines):
            nfes, errs = _series([r for r in sel if r["solver"] == solver], line)
            if nfes:
                fig.add_scatter(x=nfes, y=errs, mode="lines+markers", name=line, legendgroup=line,
                                showlegend=line not in shown, line=dict(color=_COLORS[j % 10]),
                                row=k // cols + 1, col=k % cols + 1)
                shown.add(line)
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="NFE", dtick=1)
    fig.update_layout(title=dict(text=f"sampling error vs NFE ({denoiser})"), height=120 + 260 * n_rows,
                      margin=dict(l=50, r=10, t=60, b=40))
    return fig


def gap_figure(gap: Mapping[str, Sequence[float]], name: str) -> go.Figure:
    """Returns the RMS errors of `kit.trajectory.model.denoiser_gap` ({"sigma", "gap", "learned", "optimal"})
    against sigma (log x), the optimal denoiser's dotted."""
    missing = {"sigma", "gap", "learned", "optimal"} - set(gap)
    if missing:
        raise ValueError(f"gap: missing keys {sorted(missing)} (expected denoiser_gap's output)")
    return lines(gap["sigma"], {k: gap[k] for k in ("gap", "learned", "optimal")}, log_x=True,
                 title=f"{name}: RMS error over sigma", x_title="sigma", y_title="RMS per coordinate",
                 dash={"optimal": "dot"})


def _error_table_html(rows: list[dict], lines: Sequence[str]) -> str:
    """Returns an HTML table, lines x NFE, of already-filtered rows; the best error per NFE is bold."""
    nfes = sorted({r["nfe"] for r in rows})
    cell = {(r["line"], r["nfe"]): r["error"] for r in rows if r["line"] is not None}
    best = {n: min((e for (_, m), e in cell.items() if m == n and e is not None), default=None) for n in nfes}
    head = "".join(f"<th style='text-align:right'>{n}</th>" for n in nfes)
    body = []
    for s in lines:
        tds = []
        for n in nfes:
            e = cell.get((s, n))
            text = "–" if e is None else f"{e:.4g}"
            text = f"<b>{text}</b>" if e is not None and e == best[n] else text
            tds.append(f"<td style='text-align:right'>{text}</td>")
        body.append(f"<tr><td style='text-align:left'>{html.escape(s)}</td>{''.join(tds)}</tr>")
    return (f"<table class='kit-record'><thead><tr><th style='text-align:left'>schedule \\ NFE</th>"
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


class ErrorTableView(Displayable):
    """Error against NFE (one line per schedule, log y) and a schedules x NFE table for one denoiser and one
    solver, both picked by dropdowns. rows and `coeff` as in `error_vs_nfe_figure`; the best error per NFE is
    bold and impossible cells show '–'."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], coeff: float | None = None, height: int = 360):
        self.rows = _check_rows(rows, coeff)
        self.lines = _unique(r["line"] for r in self.rows)
        dens = _unique(r["denoiser"] for r in self.rows)
        self.denoiser_dropdown = ipw.Dropdown(options=dens, value=dens[0], description="denoiser")
        self.solver_dropdown = ipw.Dropdown(description="solver")
        self.table = ipw.HTML()
        self._quiet = False
        self.figure = FigureWidget(layout=dict(
            height=height, margin=dict(l=50, r=10, t=40, b=40), xaxis=dict(title=dict(text="NFE"), dtick=1),
            yaxis=dict(type="log", title=dict(text="error"))))
        for j, s in enumerate(self.lines):
            self.figure.add_scatter(mode="lines+markers", name=s, line=dict(color=_COLORS[j % 10]))
        self._set_solvers()
        self.denoiser_dropdown.observe(lambda _: self._set_solvers(), names="value")
        self.solver_dropdown.observe(lambda _: None if self._quiet else self._draw(), names="value")
        controls = ipw.HBox([self.denoiser_dropdown, self.solver_dropdown])
        self.widget = ipw.VBox([controls, self.figure, self.table])

    def _set_solvers(self) -> None:
        solvers = _unique(r["solver"] for r in self.rows if r["denoiser"] == self.denoiser_dropdown.value)
        keep = self.solver_dropdown.value if self.solver_dropdown.value in solvers else solvers[0]
        self._quiet = True  # setting options moves the value; draw once at the end
        try:
            self.solver_dropdown.options = solvers
            self.solver_dropdown.value = keep
        finally:
            self._quiet = False
        self._draw()

    def _draw(self) -> None:
        den, solver = self.denoiser_dropdown.value, self.solver_dropdown.value
        sel = [r for r in self.rows if r["denoiser"] == den and r["solver"] == solver]
        with self.figure.batch_update():
            for trace, s in zip(self.figure.data, self.lines):
                nfes, errs = _series(sel, s)
                trace.update(x=nfes, y=errs, visible=bool(nfes))
            self.figure.layout.title.text = f"{den}, {solver}"
        present = [s for s in self.lines if any(r["line"] == s for r in sel)]
        self.table.value = _error_table_html(sel, present)


class DigitStrips(Displayable):
    """Two image rows for one sample: the sampling trajectory x_sigma (top) and the denoising trajectory
    D(x_sigma, sigma) (bottom) at ~n_show evenly spaced steps among those with a denoiser output.

    xs [T, B, ...], denoised [T-1, B, ...], sigmas [T]; each point reshapes to `image_shape`. Images are read
    as [-1, 1] and clipped (`ImageGrid`), so the noisy early x_sigma saturate. An IntSlider picks the sample;
    `indices` are the steps shown.
    """

    def __init__(self, xs: Any, denoised: Any, sigmas: Any, image_shape: Sequence[int] = (8, 8),
                 n_show: int = 10, sample: int = 0):
        self.xs, self.denoised, self.sigmas = _trajectory_arrays(xs, denoised, sigmas)
        self.image_shape = tuple(int(v) for v in image_shape)
        if int(np.prod(self.image_shape)) != self.xs.shape[2]:
            raise ValueError(f"image_shape: {self.image_shape} does not hold {self.xs.shape[2]} values")
        if n_show < 1:
            raise ValueError(f"n_show: expected a positive int, got {n_show}")
        B, n = self.xs.shape[1], self.denoised.shape[0]
        if not 0 <= sample < B:
            raise ValueError(f"sample: expected 0 <= sample < {B}, got {sample}")
        self.indices = np.unique(np.round(np.linspace(0, n - 1, min(n_show, n))).astype(int))
        titles = [f"σ {self.sigmas[i]:.3g}" for i in self.indices] + ["D"] * len(self.indices)
        self.grid = ImageGrid(self._images(sample), titles=titles, cols=len(self.indices), height=280)
        self.figure = self.grid.figure
        self.slider = ipw.IntSlider(value=sample, min=0, max=B - 1, description="sample",
                                    continuous_update=False)
        self.slider.observe(lambda ch: self.grid.update(self._images(int(ch["new"]))), names="value")
        caption = ipw.HTML("top: x_σ (sampling trajectory); bottom: D(x_σ, σ) (denoising trajectory)")
        self.widget = ipw.VBox([self.slider, caption, self.figure])

    def _images(self, b: int) -> np.ndarray:
        """Returns the 2 * len(indices) images [2k, *image_shape]: the x row first, then the D row."""
        rows = np.concatenate([self.xs[self.indices, b], self.denoised[self.indices, b]])
        return rows.reshape(-1, *self.image_shape)
