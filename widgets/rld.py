"""Interactive views and static figures of the RLD series (Refined Logit Distillation, arXiv:2408.07703).

- `RefineryExplorer`: one teacher logit vector and what KD, LA, DKD and RLD ask the student to match
  (`widgets.rld_mistakes.MistakeExplorer` loads the digits a trained teacher gets wrong into it).
- `GradientView`: dL/dz^s per class for CE, KD, DKD, LA, RLD and cos(grad CE, grad distillation).
- `sweep_figure`, `alpha_beta_heatmap`, `accuracy_table_html` (static figures, in `widgets.rld_results`, importable
  from here): accuracy against teacher error with the RLD gains (the paper's Fig. 4), the alpha/beta grid, tables.

The numbers come from `kit.rld.explore`; these classes only draw them. Each widget has `.widget` and `.figure`
(a plotly FigureWidget, updated in place when a control moves).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.rld import explore as ex
from widgets.rld_results import (
    METHOD_COLORS,
    _method_color,
    accuracy_table_html,
    alpha_beta_heatmap,
    sweep_figure,
)
from widgets.viz import Displayable, FigureWidget, setup_plotly

__all__ = ["GradientView", "RefineryExplorer", "accuracy_table_html", "alpha_beta_heatmap", "sweep_figure",
           "METHOD_COLORS"]

setup_plotly()
GREY, LABEL_COLOR, WRONG_COLOR, BAR_COLOR = "lightgrey", "seagreen", "indianred", "steelblue"
COSINE_ORDER = ("KD", "LA", "DKD", "TCKD", "NCKD", "RLD", "SCD", "MCD")


def _slider(description: str, value: float, lo: float, hi: float, step: float) -> ipw.FloatSlider:
    return ipw.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                           continuous_update=False, readout_format=".2f")


class _DistillControls(Displayable):
    """Teacher (and optionally student) logit sliders, a label dropdown, tau / tau_a / alpha / beta sliders,
    a text box for comma-separated teacher logits and the two presets (left out with presets=False); calls
    `self._redraw()`, then every `on_change` callback, on any change."""

    def __init__(self, logits: Any, label: int | None, class_names: Sequence[str] | None,
                 student_logits: Any = None, with_student: bool = False, temperature: float = 4.0,
                 alpha_temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0, presets: bool = True):
        self._with_student = with_student
        self._hold = False
        self._listeners: list[Callable[[], None]] = []
        self.status = ipw.HTML()
        self.teacher_box, self.student_box = ipw.VBox(), ipw.VBox()
        self.teacher_sliders: list[ipw.FloatSlider] = []
        self.student_sliders: list[ipw.FloatSlider] = []
        self.label_dropdown = ipw.Dropdown(description="label y")
        self.temperature = _slider("τ", temperature, 0.5, 10.0, 0.1)
        self.alpha_temperature = _slider("τ_a", alpha_temperature, 0.5, 10.0, 0.1)
        self.alpha = _slider("α", alpha, 0.0, 4.0, 0.1)
        self.beta = _slider("β", beta, 0.0, 16.0, 0.5)
        self.logits_text = ipw.Text(description="teacher z^t", continuous_update=False,
                                    placeholder="comma-separated logits, then Enter")
        self.wrong_button = ipw.Button(description="preset: wrong teacher")
        self.right_button = ipw.Button(description="preset: right teacher")
        self.wrong_button.on_click(lambda _: self.load_preset(ex.PRESET_WRONG_TEACHER))
        self.right_button.on_click(lambda _: self.load_preset(ex.PRESET_RIGHT_TEACHER))
        for w in (self.label_dropdown, self.temperature, self.alpha_temperature, self.alpha, self.beta):
            w.observe(self._changed, names="value")
        self.logits_text.observe(self._on_text, names="value")
        if logits is None:
            preset = ex.PRESET_WRONG_TEACHER
            logits, class_names = preset["teacher_logits"], class_names or preset["class_names"]
            label = preset["label"] if label is None else label
            student_logits = preset["student_logits"] if student_logits is None else student_logits
        elif label is None:
            raise ValueError("label: expected the true class index when logits are given, got None")
        self._set(logits, label, class_names, student_logits)
        hyper = ipw.HBox([ipw.VBox([self.temperature, self.alpha_temperature]), ipw.VBox([self.alpha, self.beta])])
        boxes = [ipw.VBox([ipw.HTML("<b>teacher logits z^t</b>"), self.teacher_box])]
        if with_student:
            boxes.append(ipw.VBox([ipw.HTML("<b>student logits z^s</b>"), self.student_box]))
        buttons = [self.wrong_button, self.right_button] if presets else []
        self.controls = ipw.VBox([ipw.HBox([*buttons, self.label_dropdown]), self.logits_text,
                                  ipw.HBox([*boxes, hyper])])

    # state --------------------------------------------------------------------------------------------
    @property
    def teacher_logits(self) -> np.ndarray:
        """The teacher logits z^t [C] of the sliders."""
        return np.array([s.value for s in self.teacher_sliders], dtype=np.float64)

    @property
    def student_logits(self) -> np.ndarray:
        """The student logits z^s [C] of the sliders (GradientView; empty in RefineryExplorer)."""
        return np.array([s.value for s in self.student_sliders], dtype=np.float64)

    @property
    def label(self) -> int:
        """The true class y of the dropdown."""
        return int(self.label_dropdown.value)

    @property
    def hyper(self) -> dict[str, float]:
        """The slider values as keyword arguments of `kit.rld.explore` functions."""
        return {"temperature": self.temperature.value, "alpha_temperature": self.alpha_temperature.value,
                "alpha": self.alpha.value, "beta": self.beta.value}

    def _sliders(self, values: np.ndarray, old: list[ipw.FloatSlider]) -> list[ipw.FloatSlider]:
        bound = max(10.0, math.ceil(float(np.abs(values).max())))
        if len(old) == len(values) and all(s.min <= -bound and s.max >= bound for s in old):
            sliders = old
        else:
            sliders = [_slider("", 0.0, -bound, bound, 0.1) for _ in values]
            for s in sliders:
                s.observe(self._changed, names="value")
        for s, v, name in zip(sliders, values, self.class_names):
            s.value, s.description = float(v), name
        return sliders

    def _set(self, logits: Any, label: int, class_names: Sequence[str] | None, student_logits: Any) -> None:
        t = ex.as_logit_vector(logits, "logits").numpy()
        C = t.size
        y = ex.check_label(label, C)
        if class_names is None and C == len(self.teacher_sliders):
            class_names = self.class_names
        names = [str(n) for n in class_names] if class_names is not None else [f"class {i}" for i in range(C)]
        if len(names) != C:
            raise ValueError(f"class_names: expected {C} names (one per logit), got {len(names)}")
        if self._with_student:
            if student_logits is None:
                s = self.student_logits if C == len(self.student_sliders) else np.zeros(C)
            else:
                s = ex.as_logit_vector(student_logits, "student_logits").numpy()
            if s.size != C:
                raise ValueError(f"student_logits: expected {C} logits (as logits), got {s.size}")
        self._hold = True
        try:
            self.class_names = names
            self.teacher_sliders = self._sliders(t, self.teacher_sliders)
            self.teacher_box.children = tuple(self.teacher_sliders)
            if self._with_student:
                self.student_sliders = self._sliders(s, self.student_sliders)
                self.student_box.children = tuple(self.student_sliders)
            self.label_dropdown.options = [(n, i) for i, n in enumerate(names)]
            self.label_dropdown.value = y
            self.logits_text.value = ", ".join(f"{v:g}" for v in t)
        finally:
            self._hold = False

    def set_logits(self, logits: Any, label: int, class_names: Sequence[str] | None = None,
                   student_logits: Any = None) -> None:
        """Sets the teacher logits [C] and the label (and the student logits [C] in GradientView); redraws.

        class_names: C names; None keeps the current ones when C is unchanged, else "class i".
        student_logits: None keeps the current ones when C is unchanged, else zeros.
        """
        self._set(logits, label, class_names, student_logits)
        self._update()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Calls ``callback()`` after every redraw that a control or `set_logits` causes."""
        self._listeners.append(callback)

    def _update(self) -> None:
        self._redraw()
        for callback in self._listeners:
            callback()

    def load_preset(self, preset: Mapping[str, Any]) -> None:
        """Loads a preset dict (`explore.PRESET_WRONG_TEACHER` / `PRESET_RIGHT_TEACHER`) and redraws."""
        self.set_logits(preset["teacher_logits"], preset["label"], preset["class_names"],
                        preset.get("student_logits"))

    # events -------------------------------------------------------------------------------------------
    def _changed(self, _: Any = None) -> None:
        if self._hold:
            return
        self._hold = True
        try:
            self.logits_text.value = ", ".join(f"{v:g}" for v in self.teacher_logits)
        finally:
            self._hold = False
        self._update()

    def _on_text(self, change: dict) -> None:
        if self._hold:
            return
        try:
            values = [float(v) for v in str(change["new"]).replace(";", ",").split(",") if v.strip()]
            self.set_logits(values, self.label if self.label < len(values) else 0)
        except ValueError as err:  # shown to the user; the sliders keep the last valid logits
            msg = html.escape(f"teacher z^t text: {err}")
            self.status.value = f"<span style='color:{WRONG_COLOR}'>{msg}</span>"

    def _describe(self) -> str:
        t, y = self.teacher_logits, self.label
        m = int(np.argmax(t))
        mask = t >= t[y]
        verdict = ("right" if m == y else
                   f"<b style='color:{WRONG_COLOR}'>wrong</b>: it picks {html.escape(self.class_names[m])}")
        masked = ", ".join(html.escape(n) for n, k in zip(self.class_names, mask) if k)
        return (f"label: <b>{html.escape(self.class_names[y])}</b>; teacher {verdict}. "
                f"Mask M = {{{masked}}}: MCD ignores these classes.")

    def _redraw(self) -> None:
        raise NotImplementedError


def _class_colors(names: Sequence[str], label: int, top: int, grey: np.ndarray | None = None) -> list[str]:
    """Returns one bar colour per class: the label green, a wrong top class red, greyed classes grey."""
    cols = [LABEL_COLOR if i == label else WRONG_COLOR if i == top else BAR_COLOR for i in range(len(names))]
    return [GREY if grey is not None and grey[i] else c for i, c in enumerate(cols)]


class RefineryExplorer(_DistillControls):
    """What each method distils from one teacher logit vector z^t [C] for the true class y.

    Panels: teacher softmax; KD target softmax(z^t / tau); LA target (top and true logits swapped); the binary
    targets for the student's [p^s_y, 1 - p^s_y] (DKD/TCKD: [p^t_y, 1 - p^t_y] at tau; RLD/SCD: the teacher's
    TOP-class pair [p^t_max, 1 - p^t_max] at tau_a); DKD's non-target distribution (y greyed); RLD's MCD
    distribution over the classes outside the mask M (masked classes greyed, drawn hatched at their
    softmax(z^t / tau) height for reference). alpha and beta only weight the terms (shown in the titles).
    Trace index by name: `self.trace[name]`; the numbers drawn: `self.values` (`explore.method_targets`).
    """

    TRACES = (("teacher", 1, 1), ("kd", 1, 2), ("la", 1, 3), ("dkd_binary", 2, 1), ("scd_binary", 2, 1),
              ("dkd_nontarget", 2, 2), ("dkd_removed", 2, 2), ("mcd", 2, 3), ("mcd_masked", 2, 3))

    def __init__(self, logits: Any = None, label: int | None = None, class_names: Sequence[str] | None = None,
                 temperature: float = 4.0, alpha_temperature: float = 4.0, alpha: float = 1.0,
                 beta: float = 8.0, height: int = 560, presets: bool = True):
        super().__init__(logits, label, class_names, temperature=temperature,
                         alpha_temperature=alpha_temperature, alpha=alpha, beta=beta, presets=presets)
        fig = make_subplots(rows=2, cols=3, subplot_titles=[" "] * 6, vertical_spacing=0.18,
                            horizontal_spacing=0.06)
        self.trace: dict[str, int] = {}
        legend = {"dkd_binary": "DKD/TCKD target [p^t_y, 1 − p^t_y]",
                  "scd_binary": "RLD/SCD target [p^t_max, 1 − p^t_max]"}
        for name, r, c in self.TRACES:
            ghost = name in ("dkd_removed", "mcd_masked")
            fig.add_trace(go.Bar(name=legend.get(name, name), showlegend=name in legend,
                                 offsetgroup=f"{r}{c}" if r == 2 and c > 1 else None,
                                 opacity=0.5 if ghost else 1.0, marker_pattern_shape="/" if ghost else ""),
                          row=r, col=c)
            self.trace[name] = len(fig.data) - 1
        fig.update_yaxes(range=[0, 1.05])
        fig.update_layout(height=height, barmode="group", margin=dict(l=40, r=10, t=50, b=40),
                          legend=dict(orientation="h", x=0, y=-0.08))
        self.figure = FigureWidget(fig)
        self._redraw()
        self.widget = ipw.VBox([self.controls, self.status, self.figure])

    def _redraw(self) -> None:
        h = self.hyper
        v = ex.method_targets(self.teacher_logits, self.label, h["temperature"], h["alpha_temperature"])
        self.values = v
        y, m, names = self.label, v["top_class"], self.class_names
        colors = _class_colors(names, y, m)
        pair = ["true / top class", "rest"]
        data = {
            "teacher": (names, v["teacher"], colors), "kd": (names, v["kd"], colors), "la": (names, v["la"], colors),
            "dkd_binary": (pair, v["dkd_binary"], METHOD_COLORS["dkd"]),
            "scd_binary": (pair, v["scd_binary"], METHOD_COLORS["rld"]),
            "dkd_nontarget": (names, v["dkd_nontarget"], _class_colors(names, y, m, v["dkd_mask"])),
            "dkd_removed": (names, np.where(v["dkd_mask"], v["kd"], 0.0), GREY),
            "mcd": (names, v["mcd"], _class_colors(names, y, m, v["mask"])),
            "mcd_masked": (names, np.where(v["mask"], v["kd"], 0.0), GREY),
        }
        hover = {"dkd_removed": "removed from NCKD", "mcd_masked": "masked: no MCD target, no MCD gradient"}
        titles = ("teacher softmax (τ = 1)", f"KD target softmax(z^t/{h['temperature']:g})",
                  "LA target (top ↔ true logit swapped)",
                  f"pair for [p^s_y, 1−p^s_y]: α = {h['alpha']:g}",
                  f"DKD non-target (y removed): β = {h['beta']:g}",
                  f"RLD MCD (mask M removed): β = {h['beta']:g}")
        with self.figure.batch_update():
            for name, (x, values, color) in data.items():
                self.figure.data[self.trace[name]].update(x=list(x), y=np.asarray(values, float).tolist(),
                                                          marker_color=color, hovertext=hover.get(name))
            for ann, text in zip(self.figure.layout.annotations, titles):
                ann.text = text
        extra = " Every class is masked (y is ranked last): MCD passes nothing on." if v["mask"].all() else ""
        target = v["true_class_target"]
        self.status.value = (f"{self._describe()}{extra} The student's p^s_y is pulled to: CE 1, "
                             f"DKD {target['DKD']:.3f} (p^t_y at τ), RLD {target['RLD']:.3f} (p^t_max at τ_a).")


class GradientView(_DistillControls):
    """dL/dz^s per class of CE, KD, DKD, LA and RLD for one student / teacher pair, with cos(grad CE, grad L).

    Left: grouped bars of the gradients (the distillation term alone, or the full objective past warm-up:
    `part` toggle). Right: cos(grad CE, grad distillation term) for KD, LA, DKD (and its TCKD / NCKD parts),
    RLD (SCD / MCD parts); negative = the term pulls against the label, drawn red. Below: a table with each
    cosine and the direction the term pushes the true-class logit z^s_y (gradient descent moves against it).
    """

    def __init__(self, student_logits: Any = None, teacher_logits: Any = None, label: int | None = None,
                 class_names: Sequence[str] | None = None, temperature: float = 4.0,
                 alpha_temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0, height: int = 420):
        if teacher_logits is None and student_logits is not None:
            raise ValueError("teacher_logits: expected teacher logits when student_logits are given, got None")
        self.part = ipw.ToggleButtons(options=[("distillation term", "distill"), ("full objective", "objective")],
                                      value="distill", description="gradient of")
        super().__init__(teacher_logits, label, class_names, student_logits, with_student=True,
                         temperature=temperature, alpha_temperature=alpha_temperature, alpha=alpha, beta=beta)
        fig = make_subplots(rows=1, cols=2, column_widths=[0.66, 0.34], horizontal_spacing=0.1,
                            subplot_titles=["dL/dz^s per class", "cos(∇CE, ∇distillation)"])
        for i, name in enumerate(ex.GRADIENT_METHODS):
            fig.add_trace(go.Bar(name=name, marker_color=_method_color(name, i)), row=1, col=1)
        fig.add_trace(go.Bar(name="cosine", orientation="h", showlegend=False), row=1, col=2)
        fig.update_xaxes(range=[-1.05, 1.05], row=1, col=2)
        fig.update_yaxes(autorange="reversed", row=1, col=2)
        fig.update_layout(height=height, barmode="group", margin=dict(l=50, r=10, t=50, b=40),
                          legend=dict(orientation="h", y=-0.15))
        self.figure = FigureWidget(fig)
        self.table = ipw.HTML()
        self.part.observe(self._changed, names="value")
        self._redraw()
        self.widget = ipw.VBox([self.controls, self.part, self.status, self.figure, self.table])

    def _redraw(self) -> None:
        s, t, y, hyper = self.student_logits, self.teacher_logits, self.label, self.hyper
        distill = ex.per_class_gradients(s, t, y, part="distill", **hyper)
        self.gradients = distill if self.part.value == "distill" else ex.per_class_gradients(
            s, t, y, part="objective", **hyper)
        self.cosines = {n: ex.cosine(distill["CE"], g) for n, g in distill.items() if n != "CE"}
        names = list(COSINE_ORDER)
        cos = [self.cosines[n] for n in names]
        with self.figure.batch_update():
            for i, name in enumerate(ex.GRADIENT_METHODS):
                self.figure.data[i].update(x=list(self.class_names), y=self.gradients[name].tolist())
            self.figure.data[-1].update(y=names, x=cos, marker_color=[WRONG_COLOR if c < 0 else LABEL_COLOR
                                                                        for c in cos])
        rows = []
        for n, c in zip(names, cos):
            g_y = float(distill[n][y])
            push = "up (with CE)" if g_y < 0 else "down (against CE)" if g_y > 0 else "none"
            style = f" style='color:{WRONG_COLOR};font-weight:bold'" if c < 0 else ""
            rows.append(f"<tr{style}><td>{n}</td><td style='text-align:right'>{c:+.3f}</td>"
                        f"<td>{push}</td></tr>")
        self.table.value = ("<table><thead><tr><th>term</th><th>cos(∇CE, ∇term)</th><th>pushes z^s_y</th>"
                            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
        self.status.value = self._describe()
