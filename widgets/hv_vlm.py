"""Handwriting-verification views (arXiv:2407.21788): a known / questioned pair with the examiner's explanation,
dots on the letters it talks about and a faithfulness meter (:class:`PairViewer`), a canvas to write your own "and"
on (:class:`DrawCanvas`), and, re-exported from :mod:`widgets.hv_vlm_results`, the noise sweep, the verdict
dashboard, live training curves and the results table. Figures are FigureWidgets updated in place; the numbers come
from :mod:`kit.hv_vlm.explore`."""

from __future__ import annotations

import html
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
import traitlets
from plotly.subplots import make_subplots

from kit.data.handwriting import ATTRIBUTES, Writers
from kit.hv_vlm.examiner import ChatBackend
from kit.hv_vlm.explore import PairView, compare_pair, drawn_to_image, ink_letter_boxes, writer_pair
from kit.hv_vlm.features import FEATURES
from widgets.hv_vlm_results import (  # re-exported: the notebooks import every view from here
    NoiseSlider,
    TrainingCurves,
    VerdictDashboard,
    results_table,
)
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()

__all__ = ["DrawCanvas", "PairViewer", "NoiseSlider", "VerdictDashboard", "TrainingCurves", "results_table",
           "explanation_html", "DIFFER_COLOUR", "SIMILAR_COLOUR"]

DIFFER_COLOUR = "#d62728"    # "claims differ": the paper's red dots
SIMILAR_COLOUR = "#2ca02c"   # "claims consistent"
NO_CLAIM_COLOUR = "#c7c7c7"
_BACKGROUND = {"differ": "#fdecea", "similar": "#eaf6ec", None: "#f5f5f5"}
_DRAW_JS = Path(__file__).with_name("hv_vlm_draw.js")


# --------------------------------------------------------------------------------------------------- drawing
class DrawCanvas(anywidget.AnyWidget):
    """A canvas to write "and" on (mouse, pen or touch; Undo and Clear buttons). ``strokes`` (synced) holds the
    finished strokes as lists of [x, y] canvas pixels; :meth:`image` turns them into a sample of the synthetic
    writers' look (:func:`kit.hv_vlm.explore.drawn_to_image`). Setting ``strokes`` from Python redraws the canvas."""

    _esm = _DRAW_JS.read_text(encoding="utf-8")
    strokes = traitlets.List(traitlets.List(), default_value=[]).tag(sync=True)
    canvas_width = traitlets.Int(360).tag(sync=True)
    canvas_height = traitlets.Int(180).tag(sync=True)
    line_width = traitlets.Float(7.0).tag(sync=True)

    def __init__(self, canvas_width: int = 360, canvas_height: int = 180, line_width: float = 7.0,
                 **kwargs: Any) -> None:
        if min(canvas_width, canvas_height) < 32 or line_width <= 0:
            raise ValueError(f"the canvas needs sides >= 32 px and a line width > 0, got {canvas_width} x "
                             f"{canvas_height}, {line_width}")
        super().__init__(canvas_width=int(canvas_width), canvas_height=int(canvas_height),
                         line_width=float(line_width), **kwargs)

    @property
    def widget(self) -> DrawCanvas:
        """The canvas itself (every view here has a ``.widget``)."""
        return self

    @property
    def has_ink(self) -> bool:
        """Whether any stroke has a point."""
        return any(len(s) for s in self.strokes)

    def image(self, size: int = 64) -> np.ndarray:
        """The drawing as uint8 [size, size], dark ink on light paper; ValueError while the canvas is empty."""
        return drawn_to_image(self.strokes, size)

    def clear(self) -> None:
        """Remove every stroke (the canvas clears too)."""
        self.strokes = []


# --------------------------------------------------------------------------------------------------- text
def explanation_html(view: PairView) -> str:
    """HTML of the examiner's explanation, one block per feature heading: red where the paragraph claims a
    difference, green where it claims consistency; then the turn-2 answer and the parsed decision."""
    blocks = []
    for s in view.sections:
        colour = {"differ": DIFFER_COLOUR, "similar": SIMILAR_COLOUR}.get(s.polarity, "#999999")
        tag = ""
        if s.polarity is not None:
            verb = "claims a difference in" if s.polarity == "differ" else "claims consistency of"
            tag = f" <span style='color:{colour};font-size:11px'>({verb} {', '.join(s.attributes)})</span>"
        head = f"<b style='color:{colour}'>{html.escape(s.heading)}</b>{tag}<br>" if s.heading else tag
        blocks.append(f"<div style='border-left:4px solid {colour};background:{_BACKGROUND[s.polarity]};"
                      f"padding:4px 8px;margin:3px 0'>{head}{html.escape(s.body)}</div>")
    v = view.verdict
    blocks.append(f"<div style='padding:4px 8px'><b>Decision (turn 2):</b> {html.escape(v.raw)} "
                  f"&rarr; parsed as <b>{v.decision}</b></div>")
    return "<div style='font-size:13px;max-width:900px'>" + "".join(blocks) + "</div>"


def measurements_html(view: PairView) -> str:
    """An HTML table of the offline examiner's measurements of the pair (empty for other backends)."""
    a = view.assessment
    if a is None:
        return ""
    spec = {f.name: f for f in FEATURES}
    rows = []
    for n in a.known:
        f = spec[n]
        style = f" style='color:{DIFFER_COLOUR};font-weight:bold'" if a.differs[n] else ""
        rows.append(f"<tr{style}><td style='text-align:left'>{html.escape(f.label)}</td><td>{f.fmt.format(a.known[n])}"
                    f"</td><td>{f.fmt.format(a.questioned[n])}</td><td>{a.scaled[n]:.2f}</td>"
                    f"<td>{'differs' if a.differs[n] else 'consistent'}</td><td>{a.evidence[n]:.2f}</td></tr>")
    head = ("<tr><th style='text-align:left'>feature</th><th>known</th><th>questioned</th><th>scaled gap</th>"
            "<th>reads as</th><th>evidence</th></tr>")
    return (f"<details><summary>the offline examiner's measurements (evidence {a.score:.2f} vs bias {a.bias:.2f}, "
            f"P(same) {a.p_same:.2f})</summary><table style='font-size:12px'>{head}{''.join(rows)}</table></details>")


# --------------------------------------------------------------------------------------------------- pair viewer
class PairViewer(Displayable):
    """Known | questioned "and" of two synthetic writers (or your own drawing), the examiner's decision and its
    explanation per feature heading, the Siamese model's P(same), and on both images the letter boxes and a dot for
    every feature the explanation names where it lives on the word (red: claims they differ, green: claims they are
    consistent), as in the figure of arXiv:2407.21788. The meter beside compares each style attribute's true gap
    between the writers (1 = a typical gap; above the dashed line it truly differs) with what the explanation claims.

    ``examiner``: a ChatBackend, or {name: backend} for a backend dropdown. "draw your own" compares writer A's
    sample with what you write on the canvas (no truth there, so no meter)."""

    def __init__(self, model: Any, examiner: ChatBackend | Mapping[str, ChatBackend], writers: Writers,
                 wa: int = 0, wb: int = 1, ia: int = 0, ib: int = 1, seed: int = 0, max_sample: int = 9,
                 canvas: DrawCanvas | None = None, height: int = 330) -> None:
        backends = dict(examiner) if isinstance(examiner, Mapping) else {getattr(examiner, "name", "examiner"): examiner}
        if not backends or not all(isinstance(b, ChatBackend) for b in backends.values()):
            raise ValueError("examiner must be a ChatBackend or a non-empty {name: ChatBackend} dict")
        self.model, self.backends, self.writers, self.seed = model, backends, writers, int(seed)
        self.view: PairView | None = None
        self._held = 0
        n = writers.n_writers
        self.backend = ipw.Dropdown(options=list(backends), description="backend")
        self.mode = ipw.ToggleButtons(options=["writer samples", "draw your own"], value="writer samples")
        self.writer_a = ipw.BoundedIntText(value=wa, min=0, max=n - 1, description="writer A",
                                           layout=ipw.Layout(width="160px"))
        self.sample_a = ipw.BoundedIntText(value=ia, min=0, max=max_sample, description="sample",
                                           layout=ipw.Layout(width="140px"))
        self.writer_b = ipw.BoundedIntText(value=wb, min=0, max=n - 1, description="writer B",
                                           layout=ipw.Layout(width="160px"))
        self.sample_b = ipw.BoundedIntText(value=ib, min=0, max=max_sample, description="sample",
                                           layout=ipw.Layout(width="140px"))
        self.same = ipw.Checkbox(value=wa == wb, description="same writer", indent=False)
        self.canvas = canvas or DrawCanvas()
        self.readout, self.explanation, self.measurements = ipw.HTML(), ipw.HTML(), ipw.HTML()
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.04, subplot_titles=("Known", "Questioned"))
        for col in (1, 2):
            fig.add_trace(image_trace(np.full((writers.size, writers.size), 250, np.uint8)), row=1, col=col)
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#1f77b4", width=1, dash="dot"),
                                     name="letter boxes", hoverinfo="skip", showlegend=col == 1), row=1, col=col)
            for name, colour in (("claims differ", DIFFER_COLOUR), ("claims consistent", SIMILAR_COLOUR)):
                fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=name, showlegend=col == 1,
                                         legendgroup=name, marker=dict(color=colour, size=9, line=dict(width=1,
                                                                                                      color="white")),
                                         hovertemplate="%{text}<extra></extra>", text=[]), row=1, col=col)
        self.figure = FigureWidget(fig)
        for trace in (self.figure.data[0], self.figure.data[4]):
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=640, margin=dict(l=10, r=10, t=40, b=10),
                                  legend=dict(orientation="h", y=-0.05))
        self.meter = FigureWidget(data=[
            go.Bar(x=list(ATTRIBUTES), y=[0.0] * len(ATTRIBUTES), name="true style gap", text=[],
                   textposition="outside", marker_color=[NO_CLAIM_COLOUR] * len(ATTRIBUTES)),
            go.Scatter(x=[-0.5, len(ATTRIBUTES) - 0.5], y=[1.0, 1.0], mode="lines", name="truly differs above",
                       line=dict(color="#555555", dash="dash"), hoverinfo="skip")],
            layout=dict(height=height, width=520, margin=dict(l=50, r=10, t=50, b=80), showlegend=False,
                        yaxis=dict(title="true gap (1 = typical between writers)", rangemode="tozero"),
                        xaxis=dict(range=[-0.5, len(ATTRIBUTES) - 0.5]), title=dict(text="faithfulness", x=0.02)))
        self.backend.observe(lambda _: self.redraw(), names="value")
        self.mode.observe(self._on_mode, names="value")
        self.same.observe(self._on_same, names="value")
        self.writer_a.observe(self._on_writer_a, names="value")
        for w in (self.sample_a, self.writer_b, self.sample_b):
            w.observe(lambda _: self.redraw(), names="value")
        self.canvas.observe(lambda _: self.redraw() if self.mode.value == "draw your own" else None, names="strokes")
        self._pickers = ipw.HBox([self.writer_b, self.sample_b, self.same])
        self._canvas_box = ipw.VBox([ipw.HTML("write <b>and</b> below: it becomes the questioned sample"),
                                     self.canvas], layout=ipw.Layout(display="none"))
        top = [self.mode] if len(backends) == 1 else [self.backend, self.mode]
        self.widget = ipw.VBox([ipw.HBox(top), ipw.HBox([self.writer_a, self.sample_a]), self._pickers,
                                self._canvas_box, self.readout, ipw.HBox([self.figure, self.meter]),
                                self.explanation, self.measurements])
        with self._hold():
            self._on_same({"new": self.same.value})
        self.redraw()

    # controls ---------------------------------------------------------------------------------------------------
    @contextmanager
    def _hold(self):
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def _on_same(self, change: dict) -> None:
        with self._hold():
            self.writer_b.disabled = bool(change["new"])
            if change["new"]:
                self.writer_b.value = self.writer_a.value
                if self.sample_b.value == self.sample_a.value:
                    self.sample_b.value = (self.sample_a.value + 1) % (self.sample_b.max + 1)
        self.redraw()

    def _on_writer_a(self, change: dict) -> None:
        with self._hold():
            if self.same.value:
                self.writer_b.value = change["new"]
        self.redraw()

    def _on_mode(self, change: dict) -> None:
        drawing = change["new"] == "draw your own"
        self._pickers.layout.display = "none" if drawing else None
        self._canvas_box.layout.display = None if drawing else "none"
        self.redraw()

    # drawing ----------------------------------------------------------------------------------------------------
    def _pair(self) -> tuple[np.ndarray, np.ndarray, tuple, tuple[str, str]]:
        wa, ia = self.writer_a.value, self.sample_a.value
        if self.mode.value == "draw your own":
            images, boxes, styles = writer_pair(self.writers, wa, (wa + 1) % self.writers.n_writers, ia, 0, self.seed)
            mine = self.canvas.image(self.writers.size)
            return (np.stack([images[0], mine]), np.stack([boxes[0], ink_letter_boxes(mine)]), (styles[0], None),
                    (f"Known: writer {wa}, sample {ia}", "Questioned: your drawing"))
        wb, ib = self.writer_b.value, self.sample_b.value
        images, boxes, styles = writer_pair(self.writers, wa, wb, ia, ib, self.seed)
        return images, boxes, styles, (f"Known: writer {wa}, sample {ia}", f"Questioned: writer {wb}, sample {ib}")

    def redraw(self) -> None:
        """Compare the pair the controls pick and update every figure and text in place."""
        if self._held:
            return
        if self.mode.value == "draw your own" and not self.canvas.has_ink:
            self.readout.value = "write <b>and</b> on the canvas: it is compared with writer A's sample"
            return
        try:
            images, boxes, styles, titles = self._pair()
            view = compare_pair(self.model, self.backends[self.backend.value], images[0], images[1], boxes[0],
                                boxes[1], *styles)
        except (ValueError, RuntimeError, OSError) as e:
            self.readout.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            return
        self.view = view
        with self.figure.batch_update():
            for col, (img, which) in enumerate(((view.known, "known"), (view.questioned, "questioned"))):
                base = 4 * col
                self.figure.data[base].z = img
                bx = view.known_boxes if col == 0 else view.questioned_boxes
                xs, ys = _box_lines(bx)
                self.figure.data[base + 1].x, self.figure.data[base + 1].y = xs, ys
                marks = view.marks(which)
                for k, polarity in ((2, "differ"), (3, "similar")):
                    sel = [m for m in marks if view.claimed.get(m[2]) == polarity]
                    self.figure.data[base + k].update(x=[m[0] - 0.5 for m in sel], y=[m[1] - 0.5 for m in sel],
                                                      text=[f"{m[2]} ({m[3]}): claims {polarity}" for m in sel])
                self.figure.layout.annotations[col].text = titles[col]
        self._draw_meter(view)
        self.readout.value = _readout(view, self.mode.value == "draw your own")
        self.explanation.value = explanation_html(view)
        self.measurements.value = measurements_html(view)

    def _draw_meter(self, view: PairView) -> None:
        claimed = view.claimed
        colours = [{"differ": DIFFER_COLOUR, "similar": SIMILAR_COLOUR}.get(claimed.get(a), NO_CLAIM_COLOUR)
                   for a in ATTRIBUTES]
        text = [{"differ": "claims differ", "similar": "claims same"}.get(claimed.get(a), "no claim")
                for a in ATTRIBUTES]
        with self.meter.batch_update():
            gaps = view.style_gaps
            self.meter.data[0].update(y=[gaps[a] for a in ATTRIBUTES] if gaps else [0.0] * len(ATTRIBUTES),
                                      marker_color=colours, text=text)
            f = view.faithfulness
            if f is None:
                title = "faithfulness: needs two synthetic writers (bars: the claims only)"
            else:
                fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
                title = (f"faithfulness: precision {fmt(f['precision'])}, recall {fmt(f['recall'])} "
                         f"({f['n_differ_claims']} differ claims, {f['n_true_differ']} true gaps)")
            self.meter.layout.title.text = title


def _box_lines(boxes: np.ndarray | None) -> tuple[list, list]:
    """Outlines of letter boxes [3, 4] in heat-map coordinates (pixel k centred at k) as plotly lists."""
    xs: list = []
    ys: list = []
    if boxes is None:
        return xs, ys
    for x0, y0, x1, y1 in np.asarray(boxes, float) - 0.5:
        xs += [x0, x1, x1, x0, x0, None]
        ys += [y0, y0, y1, y1, y0, None]
    return xs, ys


def _readout(view: PairView, drawing: bool) -> str:
    colour = {"same": SIMILAR_COLOUR, "different": DIFFER_COLOUR}.get(view.decision, "#7f7f7f")
    truth = ("your drawing against a synthetic writer" if drawing else
             "unknown" if view.same_writer is None else "same writer" if view.same_writer else "different writers")
    parts = [f"truth: <b>{truth}</b>", f"examiner: <b style='color:{colour}'>{view.decision}</b>"]
    if view.correct is not None:
        parts[-1] += " (correct)" if view.correct else " <b>(wrong)</b>"
    if view.assessment is not None:
        parts.append(f"examiner P(same) {view.assessment.p_same:.2f}")
    if view.p_same is not None:
        siamese = "same" if view.p_same >= 0.5 else "different"
        ok = "" if view.same_writer is None or drawing else (
            " (correct)" if (view.p_same >= 0.5) == view.same_writer else " <b>(wrong)</b>")
        parts.append(f"Siamese ResNet-18: P(same) <b>{view.p_same:.2f}</b> &rarr; {siamese}{ok}")
    return " &nbsp;|&nbsp; ".join(parts)
