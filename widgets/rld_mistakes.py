"""The RLD series' mistake explorer (Refined Logit Distillation, arXiv:2408.07703): a digit the trained teacher gets
wrong, loaded into the refinery explorer, and a student's logits over a few SGD steps on it under KD and RLD.

The numbers come from `kit.rld.mistakes` (`teacher_mistakes`, `student_steps`); this module only draws them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import nn

from kit.rld.config import RLDConfig
from kit.rld.mistakes import STEP_METHODS, TeacherMistakes, student_steps
from widgets.rld import BAR_COLOR, LABEL_COLOR, WRONG_COLOR, RefineryExplorer, _class_colors
from widgets.viz import Displayable, FigureWidget, setup_plotly

__all__ = ["MistakeExplorer"]

setup_plotly()
OTHER_LINE = "rgba(128, 128, 128, 0.35)"


def _describe(mistakes: TeacherMistakes, i: int) -> str:
    m = mistakes.item(i)
    return (f"test digit #{m['index']}: a {m['label']} the teacher reads as {m['teacher_class']} "
            f"(margin {m['margin']:.1f})")


class MistakeExplorer(Displayable):
    """Pick a test digit the teacher gets wrong: its teacher logits go into a `RefineryExplorer` (teacher softmax,
    KD target, RLD's SCD pair and MCD distribution, all following the τ / τ_a / α / β sliders and any edit of the
    logits or the label), and a student takes ``steps`` SGD steps on the digit under each of ``methods`` (KD and
    RLD) from one start (`kit.rld.mistakes.student_steps`).

    The step figure: the digit; per method, every class's logit over the steps (the true class green, the
    teacher's wrong class red, the rest grey) with a line at the chosen step, and the logits at that step as bars.
    A Play button and the "step" slider move through the steps; `self.trajectories` holds the numbers drawn
    (method -> logits [steps + 1, C]).
    """

    def __init__(self, mistakes: TeacherMistakes, student: nn.Module | None = None, *, steps: int = 20,
                 lr: float = 0.01, seed: int = 0, cfg: RLDConfig | None = None,
                 methods: Sequence[str] = STEP_METHODS, class_names: Sequence[str] | None = None,
                 temperature: float = 4.0, alpha_temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0,
                 image_shape: tuple[int, int] | None = (8, 8), height: int = 520):
        if len(mistakes) == 0:
            raise ValueError("mistakes: expected at least one teacher mistake, got an empty set")
        if not methods:
            raise ValueError("methods: expected at least one method, got none")
        self.mistakes, self.student, self.cfg = mistakes, student, cfg
        self.methods, self.n_steps, self.lr, self.seed = tuple(methods), steps, lr, seed
        C = mistakes.teacher_logits.shape[1]
        names = [str(c) for c in range(C)] if class_names is None else [str(n) for n in class_names]
        if len(names) != C:
            raise ValueError(f"class_names: expected {C} names (one per class), got {len(names)}")
        self.class_names, self.image_shape = names, image_shape
        self.digit = ipw.Dropdown(options=[(_describe(mistakes, i), i) for i in range(len(mistakes))], value=0,
                                  description="teacher mistake", layout=ipw.Layout(width="560px"),
                                  style={"description_width": "initial"})
        first = mistakes.item(0)
        self.refinery = RefineryExplorer(first["teacher_logits"], first["label"], names, temperature=temperature,
                                         alpha_temperature=alpha_temperature, alpha=alpha, beta=beta,
                                         presets=False)
        self.play = ipw.Play(value=0, min=0, max=steps, interval=400, description="play")
        self.step = ipw.IntSlider(value=0, min=0, max=steps, description="step", continuous_update=True)
        self.link = ipw.jslink((self.play, "value"), (self.step, "value"))
        self.status = ipw.HTML()
        self.figure = FigureWidget(self._layout(height))
        self.trajectories: dict[str, np.ndarray] = {}
        self._recompute()
        self.digit.observe(lambda change: self.load(int(change["new"])), names="value")
        self.step.observe(lambda _: self._draw_step(), names="value")
        self.refinery.on_change(self._recompute)
        self.widget = ipw.VBox([self.digit, self.refinery.widget, ipw.HTML("<b>a student's first steps on this "
                                "digit</b>"), ipw.HBox([self.play, self.step]), self.status, self.figure])

    # layout -------------------------------------------------------------------------------------------
    def _layout(self, height: int) -> go.Figure:
        k, C = len(self.methods), len(self.class_names)
        fig = make_subplots(rows=2, cols=k + 1, column_widths=[0.14] + [0.86 / k] * k, vertical_spacing=0.16,
                            horizontal_spacing=0.07, specs=[[{}] * (k + 1), [None] + [{}] * k],
                            subplot_titles=["digit"] + [" "] * (2 * k))
        fig.add_trace(go.Heatmap(z=[[0.0]], colorscale="Greys", showscale=False, hoverinfo="skip"), row=1, col=1)
        fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", visible=False, row=1, col=1)
        fig.update_xaxes(constrain="domain", visible=False, row=1, col=1)
        self.trace: dict[tuple[str, int | str], int] = {}
        for j, method in enumerate(self.methods):
            for c in range(C):
                fig.add_trace(go.Scatter(mode="lines", name=self.class_names[c], showlegend=False,
                                         hovertemplate=f"class {self.class_names[c]}: %{{y:.2f}} at step %{{x}}"
                                                       "<extra></extra>"), row=1, col=j + 2)
                self.trace[(method, c)] = len(fig.data) - 1
            fig.add_trace(go.Bar(showlegend=False, hovertemplate="class %{x}: %{y:.2f}<extra></extra>"),
                          row=2, col=j + 2)
            self.trace[(method, "bars")] = len(fig.data) - 1
            fig.add_vline(x=0, line=dict(color="black", width=1, dash="dot"), row=1, col=j + 2,
                          exclude_empty_subplots=False)
            fig.update_xaxes(title_text="SGD step", row=1, col=j + 2)
        fig.update_yaxes(title_text="student logit z^s", row=1, col=2)
        fig.update_yaxes(title_text="at the step", row=2, col=2)
        for name, color in (("true class y", LABEL_COLOR), ("teacher's class", WRONG_COLOR)):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, line=dict(color=color, width=3)))
        fig.update_layout(height=height, margin=dict(l=50, r=10, t=50, b=40),
                          legend=dict(orientation="h", x=0.2, y=1.12))
        return fig

    # state --------------------------------------------------------------------------------------------
    def load(self, i: int) -> None:
        """Loads teacher mistake ``i`` (0 <= i < len(mistakes)) into the refinery explorer and the step figure."""
        m = self.mistakes.item(i)
        if self.digit.value != i:
            self.digit.value = i  # its observer calls load again
            return
        self.refinery.set_logits(m["teacher_logits"], m["label"], self.class_names)

    def _recompute(self) -> None:
        r, m = self.refinery, self.mistakes.item(self.digit.value)
        if r.teacher_logits.size != len(self.class_names):
            self.status.value = (f"<span style='color:{WRONG_COLOR}'>the student has {len(self.class_names)} "
                                 "classes: give the teacher as many logits to see its steps</span>")
            return
        self.trajectories = student_steps(self.student, m["x"], r.teacher_logits, r.label, methods=self.methods,
                                          steps=self.n_steps, lr=self.lr, seed=self.seed, cfg=self.cfg, **r.hyper)
        top, y = int(np.argmax(r.teacher_logits)), r.label
        x = np.arange(self.n_steps + 1)
        lo = min(float(v.min()) for v in self.trajectories.values())
        hi = max(float(v.max()) for v in self.trajectories.values())
        pad = 0.05 * (hi - lo) + 1e-6
        with self.figure.batch_update():
            if self.image_shape is not None and math.prod(self.image_shape) == m["x"].numel():
                self.figure.data[0].z = m["x"].reshape(self.image_shape).double().numpy().tolist()
            for method, traj in self.trajectories.items():
                for c in range(len(self.class_names)):
                    color, width = (LABEL_COLOR, 3) if c == y else (WRONG_COLOR, 3) if c == top else (OTHER_LINE, 1)
                    self.figure.data[self.trace[(method, c)]].update(x=x.tolist(), y=traj[:, c].tolist(),
                                                                     line=dict(color=color, width=width))
            self.figure.update_yaxes(range=[lo - pad, hi + pad], selector=lambda a: a.anchor != "x")
        self._draw_step()

    def _draw_step(self) -> None:
        k, y = int(self.step.value), self.refinery.label
        top = int(np.argmax(self.refinery.teacher_logits))
        words = []
        with self.figure.batch_update():
            for j, (method, traj) in enumerate(self.trajectories.items()):
                z = traj[k]
                s = int(np.argmax(z))
                self.figure.data[self.trace[(method, "bars")]].update(
                    x=list(self.class_names), y=z.tolist(), marker_color=_class_colors(self.class_names, y, top))
                self.figure.layout.shapes[j].update(x0=k, x1=k)
                verdict = "the true class" if s == y else "the teacher's class" if s == top else "another class"
                self.figure.layout.annotations[1 + j].text = f"{method.upper()}: logits over the steps"
                self.figure.layout.annotations[1 + len(self.methods) + j].text = (
                    f"{method.upper()} at step {k}: top-1 {self.class_names[s]}")
                color = LABEL_COLOR if s == y else WRONG_COLOR if s == top else BAR_COLOR
                words.append(f"{method.upper()} <b style='color:{color}'>{html.escape(self.class_names[s])}</b> "
                             f"({verdict})")
        self.status.value = (f"step {k} of {self.n_steps} (SGD, lr {self.lr:g}, from the seed-{self.seed} "
                             f"student): the student's top-1 is " + "; ".join(words) + ".")

    @property
    def final_top1(self) -> dict[str, int]:
        """Returns method -> the student's top-1 class after the last step."""
        return {m: int(np.argmax(t[-1])) for m, t in self.trajectories.items()}
