"""Handwriting-verification result views (arXiv:2407.21788): accuracy against the writers' variability
(:class:`NoiseSlider`), the verdict dashboard on an evaluation (:class:`VerdictDashboard`), live training curves
(:class:`TrainingCurves`) and our table beside the paper's (:func:`results_table`).

Views only; the numbers come from :mod:`kit.hv_vlm.explore` and :mod:`kit.hv_vlm.experiment`. Re-exported by
:mod:`widgets.hv_vlm`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.data.handwriting import ATTRIBUTES
from kit.hv_vlm.examiner import decision_metrics
from kit.hv_vlm.explore import (
    DECISION_COLUMNS,
    confusion_from_metrics,
    decision_confusion,
    first_below,
    threshold_curve,
)
from kit.hv_vlm.metrics import PAPER_TABLE
from kit.hv_vlm.report import table_rows
from widgets.common import LiveCurve
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()

__all__ = ["NoiseSlider", "VerdictDashboard", "TrainingCurves", "results_table", "METHOD_COLOURS"]

METHOD_COLOURS = {"siamese": "#1f77b4", "hog_cosine": "#ff7f0e", "examiner": "#2ca02c"}
SAME_COLOUR, DIFFERENT_COLOUR = "#1f77b4", "#d62728"
_MARGIN = dict(l=50, r=10, t=50, b=40)


def _fmt(v: Any) -> str:
    return "&ndash;" if v is None else (f"{v:.3f}" if isinstance(v, float) else html.escape(str(v)))


# --------------------------------------------------------------------------------------------------- noise sweep
class NoiseSlider(Displayable):
    """Accuracy against the per-sample noise of the writers (:func:`kit.hv_vlm.explore.noise_sweep`), one line per
    method, chance (0.5) dashed and where each method first drops below ``level`` labelled; the slider moves a
    marker along the noise axis and shows that noise's samples of two writers."""

    def __init__(self, sweep: Mapping[str, Any], level: float = 0.7, height: int = 360) -> None:
        for key in ("noises", "labels", "accuracy", "examples"):
            if key not in sweep:
                raise ValueError(f"sweep lacks {key!r}: pass the result of kit.hv_vlm.explore.noise_sweep")
        self.sweep, self.level = sweep, float(level)
        noises = list(sweep["noises"])
        self.methods = list(sweep["labels"])
        self.figure = FigureWidget()
        for m in self.methods:
            self.figure.add_scatter(x=noises, y=list(sweep["accuracy"][m]), mode="lines+markers",
                                    name=sweep["labels"][m], line=dict(color=METHOD_COLOURS.get(m)))
        self.figure.add_scatter(x=[], y=[], mode="markers", name="selected noise", showlegend=False,
                                marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(color="black", width=2)),
                                hovertemplate="%{text}: %{y:.3f}<extra></extra>", text=[])
        span = [min(noises), max(noises)]
        self.figure.add_scatter(x=span, y=[0.5, 0.5], mode="lines", name="chance", hoverinfo="skip",
                                line=dict(color="#888888", dash="dash"))
        self.figure.add_scatter(x=span, y=[self.level] * 2, mode="lines", name=f"{self.level:g}", hoverinfo="skip",
                                showlegend=False, line=dict(color="#bbbbbb", dash="dot", width=1))
        self.first_below = {m: first_below(noises, sweep["accuracy"][m], self.level) for m in self.methods}
        notes = []
        for k, m in enumerate(self.methods):
            x = self.first_below[m]
            if x is not None:
                notes.append(dict(x=x, y=self.level, ax=0, ay=-28 - 18 * k, showarrow=True, arrowhead=2,
                                  text=f"{sweep['labels'][m]} < {self.level:g} at noise {x:g}",
                                  font=dict(size=11, color=METHOD_COLOURS.get(m)),
                                  arrowcolor=METHOD_COLOURS.get(m)))
        self.figure.update_layout(height=height, width=640, margin=_MARGIN, annotations=notes,
                                  xaxis=dict(title="noise (per-sample variation of each writer)"),
                                  yaxis=dict(title="accuracy", range=[0.3, 1.02]),
                                  legend=dict(orientation="h", y=-0.22), title=dict(text="accuracy vs noise"))
        ex = np.asarray(sweep["examples"])
        titles = list(sweep.get("example_titles") or [f"sample {i}" for i in range(ex.shape[1])])
        grid = make_subplots(rows=1, cols=ex.shape[1], subplot_titles=titles, horizontal_spacing=0.02)
        for i in range(ex.shape[1]):
            grid.add_trace(image_trace(ex[0, i]), row=1, col=i + 1)
        self.examples = FigureWidget(grid)
        for trace in self.examples.data:
            image_axes(self.examples, trace)
        self.examples.update_layout(height=200, width=640, margin=dict(l=10, r=10, t=30, b=10))
        self.slider = ipw.SelectionSlider(options=[(f"{x:g}", x) for x in noises], value=noises[0],
                                          description="noise", continuous_update=False)
        self.readout = ipw.HTML()
        self.slider.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([self.figure, self.slider, self.readout, self.examples])
        self.redraw()

    @property
    def index(self) -> int:
        """The position of the selected noise in the sweep."""
        return list(self.sweep["noises"]).index(self.slider.value)

    def redraw(self) -> None:
        """Move the marker to the selected noise and show its samples and accuracies."""
        k, x = self.index, self.slider.value
        acc = [self.sweep["accuracy"][m][k] for m in self.methods]
        names = [self.sweep["labels"][m] for m in self.methods]
        with self.figure.batch_update():
            self.figure.data[len(self.methods)].update(x=[x] * len(acc), y=acc, text=names)
        ex = np.asarray(self.sweep["examples"])[k]
        with self.examples.batch_update():
            for trace, img in zip(self.examples.data, ex):
                trace.z = img
        parts = [f"{n} <b>{a:.3f}</b>" for n, a in zip(names, acc)]
        cov = self.sweep.get("coverage", {}).get("examiner")
        if cov:
            parts[-1] += f" (coverage {cov[k]:.2f})"
        self.readout.value = f"noise {x:g}: " + ", ".join(parts)


# --------------------------------------------------------------------------------------------------- dashboard
def _test_labels(result: Mapping[str, Any], data: Any, labels: Any) -> np.ndarray | None:
    if labels is not None:
        return np.asarray(labels).astype(int).ravel()
    if data is not None:
        return np.asarray(data.pairs["test"])[:, 2].astype(int)
    for found in (result.get("scores", {}).get("labels"), result.get("test_labels")):
        if found is not None:
            return np.asarray(found).astype(int).ravel()
    return None


class VerdictDashboard(Displayable):
    """An evaluation (:func:`kit.hv_vlm.experiment.evaluate`) at a glance: confusion matrices of the Siamese model,
    HOG cosine and the examiner on the examiner's pairs (the examiner's with its Unknown / Both replies, which the
    parser of arXiv:2407.21788 drops), its coverage; the Siamese P(same) histogram of same- vs different-writer test
    pairs with a threshold slider and the accuracy / precision / recall / F1 it gives; and the explanations'
    faithfulness per style attribute when the writers are synthetic.

    The test pairs' labels come from ``labels``, ``data.pairs["test"]`` or the result; without them the histogram
    shows every pair in one colour."""

    def __init__(self, result: Mapping[str, Any], data: Any = None, labels: Any = None, threshold: float = 0.5,
                 height: int = 320) -> None:
        self.result = result
        self.scores = np.asarray(result["scores"]["siamese"], float)
        self.labels = _test_labels(result, data, labels)
        if self.labels is not None and len(self.labels) != len(self.scores):
            raise ValueError(f"labels must hold one label per test pair ({len(self.scores)}), got {len(self.labels)}")
        self.confusion = self._confusions()
        self.coverage = ipw.HTML(self._coverage_html())
        titles = [f"{name}: accuracy {self._accuracy(name):.2f}" for name in self.confusion] or ["(no examiner)"]
        fig = make_subplots(rows=1, cols=max(len(self.confusion), 1), subplot_titles=titles, horizontal_spacing=0.08,
                            column_widths=[2 if m.shape[1] == 2 else 3.2 for m in self.confusion.values()] or None)
        for k, m in enumerate(self.confusion.values()):
            cols = list(DECISION_COLUMNS[:m.shape[1]])
            fig.add_trace(go.Heatmap(z=m, x=cols, y=["different", "same"], colorscale="Blues", showscale=False,
                                     text=m, texttemplate="%{text}", hovertemplate="truth %{y}, decided %{x}: %{z}"
                                                                                   "<extra></extra>"), row=1, col=k + 1)
        self.confusion_figure = FigureWidget(fig)
        self.confusion_figure.update_xaxes(title_text="decision", side="bottom")
        self.confusion_figure.update_yaxes(title_text="truth", col=1)
        self.confusion_figure.update_layout(height=260, width=860, margin=_MARGIN)
        self.confusion_figure.update_annotations(font_size=12)
        self.threshold = ipw.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                         continuous_update=False)
        self.readout = ipw.HTML()
        self.curve = None if self.labels is None else threshold_curve(self.scores, self.labels,
                                                                      np.linspace(0, 1, 101))
        self.figure = self._histogram(height)
        self.threshold.observe(lambda _: self.redraw(), names="value")
        parts = [self.coverage, self.confusion_figure, self.threshold, self.readout, self.figure]
        self.faithfulness_figure = self._faithfulness(height) if result.get("faithfulness") else None
        if self.faithfulness_figure is not None:
            parts.append(self.faithfulness_figure)
        self.widget = ipw.VBox(parts)
        self.redraw()

    # confusion --------------------------------------------------------------------------------------------------
    def _confusions(self) -> dict[str, np.ndarray]:
        r = self.result
        if "examiner_pairs" not in r:
            return {}
        y = np.asarray(r["examiner_pairs"])[:, 2]
        out = {name: confusion_from_metrics(m, y) for name, m in r.get("same_pairs", {}).items()
               if not name.startswith("examiner")}
        out[r["examiner_row"]["method"]] = decision_confusion([v.decision for v in r["verdicts"]], y)
        return out

    def _accuracy(self, name: str) -> float:
        m = self.confusion[name]
        covered = m[:, :2].sum()
        return float(np.trace(m[:, :2]) / covered) if covered else 0.0

    def _coverage_html(self) -> str:
        r = self.result
        if "verdicts" not in r:
            return "no examiner in this evaluation"
        m = decision_metrics([v.decision for v in r["verdicts"]], np.asarray(r["examiner_pairs"])[:, 2])
        return (f"{r['examiner_row']['method']} on {m['n']} balanced test pairs: coverage <b>{m['coverage']:.2f}</b> "
                f"({m['n_covered']} decided, {m['n_unknown']} Unknown, {m['n_both']} Both); accuracy "
                f"{m['accuracy']:.3f} on the decided pairs, {m['accuracy_all']:.3f} counting the rest as wrong")

    # histogram --------------------------------------------------------------------------------------------------
    def _histogram(self, height: int) -> FigureWidget:
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
            "Siamese P(same) on the test pairs", "metrics vs threshold"))
        bins = dict(start=0.0, end=1.0, size=0.05)
        groups = ([("same writer", self.labels == 1, SAME_COLOUR), ("different writers", self.labels == 0,
                                                                   DIFFERENT_COLOUR)]
                  if self.labels is not None else [("all test pairs", np.ones(len(self.scores), bool), "#7f7f7f")])
        top = 1
        for name, sel, colour in groups:
            fig.add_trace(go.Histogram(x=self.scores[sel], name=name, xbins=bins, marker_color=colour, opacity=0.6),
                          row=1, col=1)
            top = max(top, int(np.histogram(self.scores[sel], bins=20, range=(0, 1))[0].max(initial=0)))
        fig.add_trace(go.Scatter(x=[0.5, 0.5], y=[0, top], mode="lines", name="threshold", showlegend=False,
                                 line=dict(color="black", width=2), hoverinfo="skip"), row=1, col=1)
        self._line = len(fig.data) - 1
        if self.curve is not None:
            for key, dash in (("accuracy", "solid"), ("precision", "dot"), ("recall", "dash"), ("f1", "dashdot")):
                fig.add_trace(go.Scatter(x=self.curve["thresholds"], y=self.curve[key], mode="lines", name=key,
                                         line=dict(dash=dash)), row=1, col=2)
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="at threshold", showlegend=False,
                                     marker=dict(size=9, color="black")), row=1, col=2)
        figure = FigureWidget(fig)
        figure.update_layout(barmode="overlay", height=height, width=860, margin=_MARGIN,
                             legend=dict(orientation="h", y=-0.2))
        figure.update_xaxes(range=[0, 1], title_text="P(same)", row=1, col=1)
        figure.update_xaxes(range=[0, 1], title_text="threshold", row=1, col=2)
        figure.update_yaxes(title_text="pairs", row=1, col=1)
        figure.update_yaxes(range=[0, 1.02], row=1, col=2)
        return figure

    def at_threshold(self) -> dict[str, float] | None:
        """Accuracy, precision, recall and F1 of the Siamese model at the slider's threshold (None without labels)."""
        if self.labels is None:
            return None
        c = threshold_curve(self.scores, self.labels, [self.threshold.value])
        return {k: float(c[k][0]) for k in ("accuracy", "precision", "recall", "f1")}

    def redraw(self) -> None:
        """Move the threshold line and markers and update the readout."""
        t = float(self.threshold.value)
        m = self.at_threshold()
        with self.figure.batch_update():
            self.figure.data[self._line].x = [t, t]
            if m is not None:
                self.figure.data[-1].update(x=[t] * 4, y=[m[k] for k in ("accuracy", "precision", "recall", "f1")])
        if m is None:
            self.readout.value = (f"threshold {t:.2f}: {np.mean(self.scores >= t):.1%} of the test pairs called same "
                                  "writer (pass data= or labels= to score it)")
            return
        self.readout.value = (f"Siamese ResNet-18 at threshold {t:.2f}: accuracy <b>{m['accuracy']:.3f}</b>, "
                              f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 <b>{m['f1']:.3f}</b> "
                              f"on {len(self.scores)} test pairs")

    # faithfulness -----------------------------------------------------------------------------------------------
    def _faithfulness(self, height: int) -> FigureWidget:
        f = self.result["faithfulness"]
        per = f.get("per_attribute", {})
        attrs = [a for a in ATTRIBUTES if a in per]
        val = lambda a, k: float("nan") if per[a].get(k) is None else per[a][k]  # noqa: E731
        fig = FigureWidget(data=[
            go.Bar(x=attrs, y=[val(a, "precision") for a in attrs], name="precision of 'differs' claims",
                   marker_color="#9467bd"),
            go.Bar(x=attrs, y=[val(a, "recall") for a in attrs], name="recall of true gaps", marker_color="#17becf"),
            go.Scatter(x=attrs, y=[val(a, "chance_precision") for a in attrs], mode="markers",
                       name="chance precision", marker=dict(symbol="line-ew-open", size=22, color="black"))])
        overall = ", ".join(f"{k} {_fmt(f.get(k))}" for k in ("precision", "recall", "chance_precision"))
        fig.update_layout(barmode="group", height=height, width=860, margin=_MARGIN, yaxis=dict(range=[0, 1.02]),
                          title=dict(text=f"faithfulness of the explanations: {overall.replace('&ndash;', '-')}"),
                          legend=dict(orientation="h", y=-0.2))
        return fig


# --------------------------------------------------------------------------------------------------- training
class TrainingCurves(LiveCurve):
    """Live curves of a Siamese training run, a callback for :func:`kit.hv_vlm.experiment.train`: the loss on the left
    axis, the validation accuracy and F1 on the right; the readout keeps the best validation F1 (the weights that
    ``train`` keeps, as the authors stop on F1)."""

    def __init__(self, title: str = "Siamese ResNet-18: training loss and validation", height: int = 340) -> None:
        super().__init__(keys=["loss", "val_accuracy", "val_f1"], title=title, secondary=("val_accuracy", "val_f1"),
                         height=height)
        self.best: tuple[int, float] | None = None
        self.readout = ipw.HTML("waiting for the first evaluation")
        self.widget = ipw.VBox([self.readout, self.figure])

    def __call__(self, event: dict[str, Any]) -> None:
        super().__call__(event)
        if event.get("kind") == "eval" and "val_f1" in event:
            f1 = float(event["val_f1"])
            if self.best is None or f1 > self.best[1]:
                self.best = (int(event["step"]), f1)
            acc = event.get("val_accuracy")
            acc_text = "" if acc is None else f"accuracy {float(acc):.3f}, "
            self.readout.value = (f"step {event['step']}: validation {acc_text}F1 {f1:.3f}; best F1 "
                                  f"<b>{self.best[1]:.3f}</b> at step {self.best[0]} (kept)")


# --------------------------------------------------------------------------------------------------- table
def _table(caption: str, rows: list[dict], keys: tuple[str, ...]) -> str:
    head = "".join(f"<th style='text-align:right'>{k}</th>" for k in keys)
    body = "".join("<tr><td style='text-align:left'>" + html.escape(r["method"]) + "</td>"
                   + "".join(f"<td style='text-align:right'>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>"
                   for r in rows)
    return (f"<table style='font-size:12px;margin-right:24px'><caption style='font-weight:bold;text-align:left'>"
            f"{html.escape(caption)}</caption><thead><tr><th style='text-align:left'>method</th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def results_table(result: Mapping[str, Any], ours: str = "ours (synthetic writers)") -> str:
    """HTML of our verification table (an :func:`kit.hv_vlm.experiment.evaluate` result, the examiner's row last,
    with coverage), captioned ``ours``, beside arXiv:2407.21788's Table 1 ("paper (CEDAR AND)", ``PAPER_TABLE``;
    a dash where the paper gives no number)."""
    keys = ("accuracy", "precision", "recall", "f1")
    mine = _table(ours, table_rows(result), (*keys, "coverage"))
    paper = _table("paper (CEDAR AND)", PAPER_TABLE, keys)
    return f"<div style='display:flex;flex-wrap:wrap;align-items:flex-start'>{mine}{paper}</div>"
