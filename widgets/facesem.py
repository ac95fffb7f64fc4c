"""Semantic face forgery detection views (arXiv:2405.08487): what the 12-node label graph says about one face
(:class:`LabelDAG`), P(fake) along an edit's strength against the threshold tau (:class:`ThresholdSlider`),
Auto-lambda's level weights during training (:class:`LambdaTrace`) and the protocol table as a heat map
(:class:`ProtocolHeatmap`). Figures are FigureWidgets updated in place; every number comes from
:mod:`kit.facesem.explore` (and the training loop's events)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.data.faces import EDITS, TAU, FaceIdentity, FaceSet, random_identity
from kit.facesem import explore
from kit.facesem.explore import NodeView
from kit.facesem.graph import CHILDREN, LEVELS, NODES, UNKNOWN
from kit.facesem.models import MODES
from widgets.common import LiveCurve
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, png_bytes, setup_plotly

setup_plotly()

__all__ = ["LabelDAG", "LambdaTrace", "ProtocolHeatmap", "ThresholdSlider", "READOUTS", "TRUTH_STYLE"]

# read-out name -> the NodeView field it shows
READOUTS = {"graph marginals": "graph", "independent sigmoids": "sigmoid"}
# ground truth of a node (0, 1, 2 = unknown) -> (outline colour, outline width, legend text)
TRUTH_STYLE = {1: ("#111111", 4.0, "truth 1: thick dark outline"), 0: ("#b0b0b0", 1.5, "truth 0: thin grey outline"),
               UNKNOWN: ("#1f77b4", 3.0, "truth unknown (label 2): blue outline")}
_BAD = "#d62728"
_GOOD = "#2ca02c"
_MARGIN = dict(l=50, r=20, t=40, b=40)




def _node_xy() -> tuple[np.ndarray, np.ndarray]:
    """Node positions: rows of 1 / 5 / 6 nodes (levels 1-3) from top to bottom, centred on x = 2.5."""
    xs, ys = np.zeros(len(NODES)), np.zeros(len(NODES))
    for level, idx in LEVELS.items():
        n = len(idx)
        xs[list(idx)] = 2.5 + np.arange(n) - (n - 1) / 2
        ys[list(idx)] = 3 - level
    return xs, ys


def _set_text(nodes: Sequence[str]) -> str:
    return ", ".join(nodes) if nodes else "none (real)"


# --------------------------------------------------------------------------------------------------- label graph
class LabelDAG(Displayable):
    """One face through a 12-node detector (:func:`kit.facesem.explore.node_view`) drawn on the label graph: each
    node's fill is its predicted probability (graph marginal or independent sigmoid, the "read-out" toggle), its
    outline the face's ground truth; beside it the face, its edit / strength / generator, whether the label set
    thresholded at ``threshold`` obeys the graph (the broken rules in red when not) and the top-5 legal label sets.
    ``show(index)`` picks a face, ``set_readout(name)`` a read-out; ``view`` is the face's NodeView."""

    def __init__(self, model: Any, faces: FaceSet, index: int = 0, threshold: float = 0.5, height: int = 420) -> None:
        if len(faces) == 0:
            raise ValueError("faces must hold at least one face")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.model, self.faces, self.threshold = model, faces, float(threshold)
        self._check_index(index)
        self._views: dict[int, NodeView] = {}
        self._view_of(int(index))  # a non-12-node model fails here (node_view's ValueError), before any widget
        self.slider = ipw.IntSlider(value=int(index), min=0, max=len(faces) - 1, description="face",
                                    continuous_update=False)
        self.toggle = ipw.ToggleButtons(options=list(READOUTS), value="graph marginals", description="read-out")
        self.image = ipw.Image(format="png", layout=ipw.Layout(width="144px", height="144px"))
        self.readout = ipw.HTML()
        self.top = ipw.HTML(layout=ipw.Layout(width="260px"))
        self.figure = self._graph_figure(height)
        self.slider.observe(lambda _: self.redraw(), names="value")
        self.toggle.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.slider, self.toggle]),
                                ipw.HBox([ipw.VBox([self.image, self.readout], layout=ipw.Layout(width="260px")),
                                          self.figure, self.top])])
        self.redraw()

    def _check_index(self, index: int) -> None:
        if not 0 <= int(index) < len(self.faces):
            raise ValueError(f"index must be a face, 0 <= index < {len(self.faces)}, got {index}")

    def _view_of(self, i: int) -> NodeView:
        if i not in self._views:
            self._views[i] = explore.node_view(self.model, self.faces.images[i], self.threshold)
        return self._views[i]

    def _graph_figure(self, height: int) -> FigureWidget:
        xs, ys = _node_xy()
        ex, ey = [], []
        for parent, children in CHILDREN.items():
            p = NODES.index(parent)
            for child in children:
                c = NODES.index(child)
                ex += [xs[p], xs[c], None]
                ey += [ys[p], ys[c], None]
        data = [go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#c8c8c8", width=1), hoverinfo="skip",
                           showlegend=False, name="edges"),
                go.Scatter(x=xs, y=ys, mode="markers+text", name="nodes", showlegend=False, text=list(NODES),
                           textposition="bottom center", textfont=dict(size=11),
                           marker=dict(size=34, color=np.zeros(len(NODES)), colorscale="YlOrRd", cmin=0, cmax=1,
                                       colorbar=dict(title=dict(text="P(node)"), thickness=12, len=0.8),
                                       line=dict(color=["#b0b0b0"] * len(NODES), width=[1.5] * len(NODES))),
                           hovertemplate="%{customdata[0]}: P = %{marker.color:.3f}, truth %{customdata[1]}"
                                         "<extra></extra>")]
        for colour, width, text in TRUTH_STYLE.values():  # legend entries for the outlines
            data.append(go.Scatter(x=[None], y=[None], mode="markers", name=text, hoverinfo="skip",
                                   marker=dict(size=14, color="white", line=dict(color=colour, width=width))))
        axis = dict(visible=False, showgrid=False, zeroline=False)
        return FigureWidget(data=data, layout=dict(
            height=height, width=620, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white",
            xaxis=dict(range=[-0.6, 5.6], **axis), yaxis=dict(range=[-0.55, 2.45], **axis),
            legend=dict(orientation="h", y=-0.02, yanchor="top", font=dict(size=10))))

    # state ----------------------------------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """The face shown now."""
        return int(self.slider.value)

    @property
    def view(self) -> NodeView:
        """The NodeView of the face shown now."""
        return self._view_of(self.index)

    @property
    def probabilities(self) -> np.ndarray:
        """The 12 node probabilities drawn now (the read-out's field of ``view``)."""
        return np.asarray(getattr(self.view, READOUTS[self.toggle.value]), dtype=float)

    def show(self, index: int) -> None:
        """Shows face ``index``."""
        self._check_index(index)
        self.slider.value = int(index)

    def set_readout(self, name: str) -> None:
        """Shows read-out ``name`` ("graph marginals" or "independent sigmoids")."""
        if name not in READOUTS:
            raise ValueError(f"read-out must be one of {list(READOUTS)}, got {name!r}")
        self.toggle.value = name

    # drawing --------------------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Redraws nodes, face, read-out and top list for the face and read-out the controls pick."""
        i, v, p = self.index, self.view, self.probabilities
        truth = np.asarray(self.faces.labels[i]).astype(int)
        on = p >= self.threshold
        texts = [f"<b>{n}</b><br>{q:.2f}" if o else f"{n}<br>{q:.2f}" for n, q, o in zip(NODES, p, on)]
        truth_text = {1: "1", 0: "0", UNKNOWN: "unknown"}
        with self.figure.batch_update():
            self.figure.data[1].update(text=texts, customdata=[[n, truth_text[t]] for n, t in zip(NODES, truth)])
            self.figure.data[1].marker.color = p
            self.figure.data[1].marker.line.color = [TRUTH_STYLE[t][0] for t in truth]
            self.figure.data[1].marker.line.width = [TRUTH_STYLE[t][1] for t in truth]
            self.figure.layout.title.text = (f"face {i}: {self.toggle.value} (bold: P >= {self.threshold:g})")
        self.image.value = png_bytes(self.faces.images[i])
        self.readout.value = self._readout_html(i, v, on)
        rows = "".join(f"<li>{html.escape(_set_text(nodes))}: <b>{q:.3f}</b></li>" for nodes, q in v.top)
        self.top.value = f"<b>top-{len(v.top)} legal label sets</b> (the graph's P)<ol>{rows}</ol>"

    def _readout_html(self, i: int, v: NodeView, on: np.ndarray) -> str:
        f = self.faces
        gen = str(f.generator[i]) or "none"
        truth = "fake" if int(f.labels[i][0]) == 1 else "real"
        head = (f"<b>face {i}</b> of {len(f)}: edit <b>{html.escape(str(f.edit[i]))}</b>, strength "
                f"{float(f.strength[i]):.2f}, generator {html.escape(gen)} &mdash; truth: <b>{truth}</b>")
        nodes = [n for n, o in zip(NODES, on) if o]
        graph = self.toggle.value == "graph marginals"
        legal = v.graph_legal if graph else v.sigmoid_legal
        label = f"{html.escape(self.toggle.value)} &ge; {self.threshold:g}: {html.escape(_set_text(nodes))}"
        if legal:
            return f"{head}<br>{label} &mdash; <b style='color:{_GOOD}'>legal</b>"
        # node_view lists the sigmoid set's broken rules; the graph set's come from the same kit function
        broken = v.violations if not graph else explore.violations(on.astype(np.int64))
        items = "".join(f"<li>{html.escape(b)}</li>" for b in broken)
        return (f"{head}<br>{label} &mdash; <b style='color:{_BAD}'>illegal</b>"
                f"<ul style='color:{_BAD}; margin:0'>{items}</ul>")


# --------------------------------------------------------------------------------------------------- threshold
class ThresholdSlider(Displayable):
    """One identity's face with an edit at a chosen strength (left) and the detector's P(fake) along that edit's
    strength (right, :func:`kit.facesem.explore.strength_sweep` over 11 strengths, recomputed when the edit
    changes), with tau (an edit of strength >= tau is fake by definition) dashed, the fake side shaded and the
    current strength marked. ``set(edit, strength)`` moves both controls at once."""

    N_STRENGTHS = 11

    def __init__(self, model: Any, mode: str, identity: FaceIdentity, other: FaceIdentity | None = None,
                 edits: Sequence[str] = EDITS, edit: str | None = None, strength: float = 0.5, size: int = 48,
                 height: int = 360) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        out = getattr(getattr(model, "head", None), "out_features", None)
        if out is not None and ((mode in ("so", "sigmoid") and out != len(NODES)) or (mode == "binary" and out != 1)
                                or (mode == "multiclass" and out < 2)):
            raise ValueError(f"the model's head has {out} scores, which does not fit mode {mode!r}")
        edits = tuple(edits)
        bad = [e for e in edits if e not in EDITS]
        if not edits or bad:
            raise ValueError(f"edits must be a non-empty subset of {EDITS}, got {edits}")
        edit = edits[0] if edit is None else edit
        self._check(edit, strength, edits)
        self.model, self.mode, self.identity, self.size = model, mode, identity, int(size)
        self.other = random_identity(np.random.default_rng(1)) if other is None else other
        self.strengths = np.linspace(0.0, 1.0, self.N_STRENGTHS)
        self.sweep: dict[str, Any] = {}
        self.point: dict[str, Any] = {}
        self.dropdown = ipw.Dropdown(options=list(edits), value=edit, description="edit")
        self.slider = ipw.FloatSlider(value=float(strength), min=0.0, max=1.0, step=0.05, description="strength",
                                      continuous_update=False, readout_format=".2f")
        self.readout = ipw.HTML()
        self.figure = self._figure(height)
        self._hold = False
        self.dropdown.observe(lambda _: self._changed(edit_changed=True), names="value")
        self.slider.observe(lambda _: self._changed(edit_changed=False), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.dropdown, self.slider]), self.readout, self.figure])
        self._recompute_sweep()
        self._draw_point()

    @staticmethod
    def _check(edit: str, strength: float, edits: Sequence[str]) -> None:
        if edit not in edits:
            raise ValueError(f"edit must be one of {list(edits)}, got {edit!r}")
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")

    def _figure(self, height: int) -> FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65], horizontal_spacing=0.1,
                            subplot_titles=("face", "P(fake) against strength"))
        fig.add_trace(image_trace(np.full((self.size, self.size, 3), 255, np.uint8)), row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="P(fake)", line=dict(color="#1f77b4")),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="current strength",
                                 marker=dict(size=14, color=_BAD, symbol="diamond", line=dict(color="black", width=1))),
                      row=1, col=2)
        fig.add_shape(type="rect", x0=TAU, x1=1.0, y0=0, y1=1, xref="x2", yref="y2 domain", layer="below",
                      fillcolor="rgba(214, 39, 40, 0.1)", line=dict(width=0))
        fig.add_shape(type="line", x0=TAU, x1=TAU, y0=0, y1=1, xref="x2", yref="y2 domain",
                      line=dict(color="black", dash="dash", width=2))
        fig.add_annotation(x=TAU, y=1, xref="x2", yref="y2 domain", text="tau: fake by definition", showarrow=False,
                           xanchor="left", yanchor="bottom", font=dict(size=10))
        figure = FigureWidget(fig)
        image_axes(figure, figure.data[0])
        figure.update_xaxes(title_text="edit strength s", range=[-0.03, 1.03], row=1, col=2)
        figure.update_yaxes(title_text="P(fake)", range=[0, 1], row=1, col=2)
        figure.update_layout(height=height, width=820, margin=_MARGIN, showlegend=False)
        return figure

    # state ----------------------------------------------------------------------------------------------------
    @property
    def edit(self) -> str:
        return str(self.dropdown.value)

    @property
    def strength(self) -> float:
        return float(self.slider.value)

    def set(self, edit: str, strength: float) -> None:
        """Shows ``edit`` at ``strength`` (one redraw)."""
        self._check(edit, strength, self.dropdown.options)
        changed = edit != self.edit
        self._hold = True
        try:
            self.dropdown.value = edit
            self.slider.value = float(strength)
        finally:
            self._hold = False
        self._changed(edit_changed=changed)

    # drawing --------------------------------------------------------------------------------------------------
    def _changed(self, edit_changed: bool) -> None:
        if self._hold:
            return
        if edit_changed:
            self._recompute_sweep()
        self._draw_point()

    def _run(self, strengths: Sequence[float]) -> dict[str, Any]:
        return explore.strength_sweep(self.model, self.mode, self.identity, self.edit, strengths, self.other,
                                      self.size)

    def _recompute_sweep(self) -> None:
        self.sweep = self._run(self.strengths)
        with self.figure.batch_update():
            self.figure.data[1].update(x=self.sweep["strengths"], y=self.sweep["p_fake"])
            self.figure.layout.annotations[1].text = f"P(fake) against strength: {self.edit} ({self.mode})"

    def _draw_point(self) -> None:
        self.point = self._run([self.strength])
        p = float(self.point["p_fake"][0])
        with self.figure.batch_update():
            self.figure.data[0].z = self.point["images"][0]
            self.figure.data[2].update(x=[self.strength], y=[p])
            self.figure.layout.annotations[0].text = f"{self.edit}, s = {self.strength:.2f}"
        fake = self.strength >= self.point["tau"]
        verdict = (f"<b style='color:{_BAD}'>fake</b> by definition (s &ge; tau = {TAU:g})" if fake
                   else f"<b style='color:{_GOOD}'>real</b> by definition (s &lt; tau = {TAU:g})")
        said = "fake" if p >= 0.5 else "real"
        self.readout.value = (f"edit <b>{html.escape(self.edit)}</b> at strength {self.strength:.2f}: {verdict}; "
                              f"the detector says P(fake) = <b>{p:.3f}</b> ({said} at 0.5)")


# --------------------------------------------------------------------------------------------------- Auto-lambda
LAMBDA_NAMES = {"lambda1": "lambda L1 (real/fake)", "lambda2": "lambda L2 (attributes)",
                "lambda3": "lambda L3 (regions)", "L1": "loss L1 (real/fake)", "L2": "loss L2 (attributes)",
                "L3": "loss L3 (regions)"}


class LambdaTrace(LiveCurve):
    """Auto-lambda's three level weights (left axis) and the level losses L1-L3 (right axis, dotted) of an "so"
    run, a callback for kit.core's training loop: ``trace(event)``, ``flush()``; :meth:`from_history` replays a
    history (what :func:`kit.facesem.explore.lambda_trace` reads)."""

    def __init__(self, history: Sequence[dict[str, Any]] | None = None, title: str = "Auto-lambda: level weights",
                 height: int = 360) -> None:
        super().__init__(keys=list(LAMBDA_NAMES), title=title, secondary=("L1", "L2", "L3"), height=height)
        self.figure.update_layout(yaxis=dict(title=dict(text="lambda")),
                                  yaxis2=dict(title=dict(text="level loss")))
        if history is not None:
            for event in self._check_history(history):
                self(event)
            self.flush()

    @staticmethod
    def _check_history(history: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        if isinstance(history, (str, bytes, Mapping)) or not all(isinstance(h, dict) for h in history):
            raise ValueError("history must be a list of event dicts {'step', 'kind', ...}")
        return history

    def flush(self) -> None:
        """Draws all collected points now, under readable names."""
        super().flush()
        palette = {"1": "#1f77b4", "2": "#ff7f0e", "3": "#2ca02c"}
        for key, idx in self._trace_of.items():
            trace = self.figure.data[idx]
            if trace.name != LAMBDA_NAMES[key]:
                trace.update(name=LAMBDA_NAMES[key], line=dict(color=palette[key[-1]],
                                                               dash="dot" if key.startswith("L") else "solid"))

    @classmethod
    def from_history(cls, history: Sequence[dict[str, Any]], title: str = "Auto-lambda: level weights"
                     ) -> LambdaTrace:
        """A new LambdaTrace with every event of ``history`` drawn (ValueError if it holds no Auto-lambda values)."""
        explore.lambda_trace(cls._check_history(history))
        return cls(history, title=title)


# --------------------------------------------------------------------------------------------------- protocols
METRICS = ("auc", "acc", "impossible_rate", "map_impossible_rate")


class ProtocolHeatmap(Displayable):
    """Result rows ({"mode", "protocol", metric, ...}, one per run) as a heat map of
    :func:`kit.facesem.explore.protocol_matrix`: modes down, protocols across, each cell "mean ± std" over seeds;
    the dropdown picks the metric (those of ``METRICS`` the rows hold)."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], value: str = "auc", height: int = 320) -> None:
        rows = list(rows)
        if not rows or not all(isinstance(r, Mapping) and "mode" in r and "protocol" in r for r in rows):
            raise ValueError("rows must be a non-empty list of dicts with 'mode', 'protocol' and a metric")
        self.rows = rows
        self.metrics = [m for m in METRICS if any(r.get(m) is not None for r in rows)]
        if not self.metrics:
            raise ValueError(f"rows hold none of the metrics {METRICS}")
        self._check(value)
        self.matrix: dict[str, Any] = {}
        self.dropdown = ipw.Dropdown(options=self.metrics, value=value, description="value")
        self.figure = FigureWidget(data=[go.Heatmap(z=[[0.0]], colorscale="Viridis", texttemplate="%{text}",
                                                    colorbar=dict(thickness=12),
                                                    hovertemplate="%{y} / %{x}: %{text}<extra></extra>")],
                                   layout=dict(height=height, width=640, margin=dict(l=90, r=20, t=40, b=60),
                                               yaxis=dict(autorange="reversed", type="category"),
                                               xaxis=dict(type="category")))
        self.dropdown.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.dropdown, self.figure])
        self.redraw()

    def _check(self, value: str) -> None:
        if value not in self.metrics:
            raise ValueError(f"value must be one of the metrics in rows {self.metrics}, got {value!r}")

    @property
    def value(self) -> str:
        return str(self.dropdown.value)

    def set_value(self, value: str) -> None:
        """Shows metric ``value``."""
        self._check(value)
        self.dropdown.value = value

    def redraw(self) -> None:
        """Redraws the heat map of the metric the dropdown picks."""
        m = explore.protocol_matrix(self.rows, self.value)
        self.matrix = m
        vals, std = np.asarray(m["values"], float), np.asarray(m["std"], float)
        text = [["n/a" if np.isnan(v) else f"{v:.3f} ± {s:.3f}" for v, s in zip(rv, rs)] for rv, rs in zip(vals, std)]
        z = [[None if np.isnan(v) else float(v) for v in row] for row in vals]
        with self.figure.batch_update():
            self.figure.data[0].update(z=z, x=m["protocols"], y=m["modes"], text=text,
                                       reversescale=self.value.endswith("impossible_rate"),
                                       colorbar=dict(title=dict(text=self.value)))
            self.figure.layout.title.text = f"{self.value}: mean ± std over seeds (modes x protocols)"
