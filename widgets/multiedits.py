"""MultiEdits views: the branches of a ParallelEdits edit, their token maps, the grouping, the local-blend masks
and the clean estimates step by step. Figures are FigureWidgets whose traces are updated in place."""

from __future__ import annotations

from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.multiedits.explore import ROLES, blend_mask, branch_views, group_table, word_map, x0_images
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, record_table_html, setup_plotly

setup_plotly()


def _final_image(result) -> np.ndarray:
    return np.asarray(result.image.convert("RGB"))


class TokenMapsView(Displayable):
    """A branch's token maps: dropdowns branch / role (reference, t_k, m_k) / word; sliders step (-1: mean),
    resolution, head (-1: mean; when the edit kept heads) and overlay opacity. Left: the role's clean estimate at
    that step over the map; right: the map alone."""

    def __init__(self, pipe: Any, source: Any, result: Any, height: int = 300) -> None:
        self.pipe, self.result, self.source = pipe, result, np.asarray(source)
        self.views = branch_views(result)
        self.images = x0_images(pipe, result, rows="t")  # [n, K, H, W, 3]
        self.mutual = x0_images(pipe, result, rows="m")
        store = result.runs[-1].store
        self.n_steps = len(store.steps)
        sizes = sorted({store.spatial_size(store.attention(n, store.steps[0]).shape[2])[0] for n in store.layers})
        heads = store.attention(store.layers[0], store.steps[0]).shape[1]
        self.branch = ipw.Dropdown(options=[(f"branch {v.index} ({v.kind})", v.index) for v in self.views],
                                   description="branch")
        self.role = ipw.Dropdown(options=[("reference", "ref"), ("t_k (edits)", "t"), ("m_k (mutual)", "m")],
                                 value="t", description="role")
        self.word = ipw.Dropdown(description="word")
        self.step = ipw.IntSlider(value=-1, min=-1, max=self.n_steps - 1, description="step (-1: all)",
                                  continuous_update=False)
        self.resolution = ipw.Dropdown(options=[("all layers", 0)] + [(f"{s}x{s}", s) for s in sizes], value=0,
                                       description="layers")
        self.head = ipw.IntSlider(value=-1, min=-1, max=max(heads - 1, -1), description="head (-1: mean)",
                                  continuous_update=False, disabled=heads == 1)
        self.alpha = ipw.FloatSlider(value=0.6, min=0.0, max=1.0, step=0.05, description="opacity",
                                     continuous_update=False)
        fig = make_subplots(rows=1, cols=2, subplot_titles=("estimate + map", "map"), horizontal_spacing=0.04)
        h, w = self.images.shape[2:4]
        fig.add_trace(image_trace(self.images[-1, 0]), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.zeros((h, w)), colorscale="Inferno", zmin=0, zmax=1, opacity=0.6,
                                 showscale=False), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.zeros((h, w)), colorscale="Inferno", zmin=0, zmax=1, showscale=True),
                      row=1, col=2)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=640, margin=dict(l=10, r=10, t=30, b=10))
        self.title = ipw.HTML()
        self._set_words()
        for control in (self.branch, self.role):
            control.observe(lambda _: self._set_words(), names="value")
        for control in (self.word, self.step, self.resolution, self.head, self.alpha):
            control.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.branch, self.role, self.word]),
                                ipw.HBox([self.step, self.resolution]), ipw.HBox([self.head, self.alpha]),
                                self.title, self.figure])
        self.redraw()

    def _set_words(self) -> None:
        words = self.views[self.branch.value].words(self.role.value)
        keep = self.word.value
        self.word.options = [(f"{i}: {w}", i) for i, w in enumerate(words)]
        self.word.value = keep if isinstance(keep, int) and keep < len(words) else len(words) - 1
        self.redraw()

    def current_map(self) -> np.ndarray:
        """Return the map the view shows now."""
        view = self.views[self.branch.value]
        h = self.images.shape[2]
        return word_map(self.result, self.pipe.tokenizer, view, self.role.value, self.word.value,
                        step=None if self.step.value < 0 else self.step.value,
                        resolution=self.resolution.value or None,
                        head=None if self.head.value < 0 else self.head.value, size=h)

    def redraw(self) -> None:
        """Recompute the map and update the figure's traces in place."""
        if self.word.value is None:
            return
        view = self.views[self.branch.value]
        m = self.current_map()
        step = self.n_steps - 1 if self.step.value < 0 else self.step.value
        role = self.role.value
        if role == "t":
            img = self.images[step, view.index]
        elif role == "m":
            img = self.mutual[step, view.index]
        else:  # the reference: the source for branch 0, else the previous branch's estimate
            img = self.source if view.index == 0 else self.images[step, view.index - 1]
        with self.figure.batch_update():
            self.figure.data[0].z = img
            self.figure.data[1].z = m
            self.figure.data[1].opacity = self.alpha.value
            self.figure.data[2].z = m
        self.title.value = (f"<b>{view.prompts[role]}</b> &mdash; word <i>{view.words(role)[self.word.value]}</i>,"
                            f" {'all steps' if self.step.value < 0 else f'step {step}'}")


class GroupingView(Displayable):
    """The grouping pass: each aspect's kind (rigid / non-rigid / global) and branch, the overlap matrix of the
    aspects' target maps, each aspect's thresholded target map (> tau), and the cumulative branch prompts."""

    def __init__(self, result: Any, tau: int = 100, height: int = 260) -> None:
        self.result = result
        g = result.grouping
        rows = group_table(result)
        self.table = ipw.HTML(self._table_html(rows))
        self.prompts = ipw.HTML("<br>".join(f"p<sub>{k}</sub>: {p}" for k, p in enumerate(result.branch_prompts)))
        names = [r["phrase"] for r in rows]
        n = len(names)
        fig = make_subplots(rows=1, cols=1 + n, subplot_titles=["overlap of target maps"] +
                            [f"{r['phrase']} ({r['kind']})" for r in rows], horizontal_spacing=0.03)
        ov = g.overlaps.numpy() if g is not None else np.zeros((0, 0))
        fig.add_trace(go.Heatmap(z=ov, x=names, y=names, zmin=0, zmax=1, colorscale="Viridis",
                                 text=np.round(ov, 2), texttemplate="%{text}", showscale=False), row=1, col=1)
        for i in range(n):
            fig.add_trace(go.Heatmap(z=(g.target_maps[i].numpy() > tau).astype(float), colorscale="Greys",
                                     reversescale=True, zmin=0, zmax=1, showscale=False), row=1, col=2 + i)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data[1:]:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=max(420, 230 * (1 + n)), margin=dict(l=10, r=10, t=30, b=10))
        self.widget = ipw.VBox([self.table, self.prompts, self.figure])

    @staticmethod
    def _table_html(rows: list[dict]) -> str:
        if not rows:
            return "<i>no grouping (identity edit or sequential baseline)</i>"
        head = "".join(f"<th style='padding:2px 8px'>{k}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{v}</td>" for v in r.values()) + "</tr>"
                       for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"


class BlendMasksView(Displayable):
    """Local blending: a branch's normalised blend map at a step, the mask the edit used, and the map thresholded
    at a chosen theta (slider), to see how the mask grows or shrinks with the threshold."""

    def __init__(self, result: Any, height: int = 260) -> None:
        self.result = result
        blend = result.runs[-1].blend
        if blend is None:
            raise ValueError("this edit ran without local blending")
        self.n_steps = len(blend.maps[0])
        blended = [k for k, ind in enumerate(blend.edit_ind) if bool(ind.any())] or [0]
        self.branch = ipw.Dropdown(options=[(f"branch {k}", k) for k in blended], description="branch")
        self.step = ipw.IntSlider(value=self.n_steps - 1, min=0, max=self.n_steps - 1, description="step",
                                  continuous_update=False)
        self.theta = ipw.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="theta",
                                     continuous_update=False)
        self.stats = ipw.HTML()
        fig = make_subplots(rows=1, cols=3, subplot_titles=("blend map", "mask used", "map > theta"),
                            horizontal_spacing=0.03)
        for col in (1, 2, 3):
            fig.add_trace(go.Heatmap(z=[[0.0]], zmin=0, zmax=1, colorscale="Inferno" if col == 1 else "Greys",
                                     reversescale=col != 1, showscale=False), row=1, col=col)
        self.figure = FigureWidget(fig)
        for trace in self.figure.data:
            image_axes(self.figure, trace)
        self.figure.update_layout(height=height, width=660, margin=dict(l=10, r=10, t=30, b=10))
        for control in (self.branch, self.step, self.theta):
            control.observe(lambda _: self.redraw(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.branch, self.step, self.theta]), self.stats, self.figure])
        self.redraw()

    def redraw(self) -> None:
        """Update the three panels in place."""
        m, used = blend_mask(self.result, self.branch.value, self.step.value)
        _, mine = blend_mask(self.result, self.branch.value, self.step.value, self.theta.value)
        with self.figure.batch_update():
            self.figure.data[0].z = m
            self.figure.data[1].z = used.astype(float)
            self.figure.data[2].z = mine.astype(float)
        self.stats.value = (f"mask used: {used.mean():.0%} of the image; map &gt; {self.theta.value:.2f}: "
                            f"{mine.mean():.0%}")


class EditGrid(Displayable):
    """Source | each branch's clean estimate | sequential baseline (when given), at a step chosen by a Play
    widget (the estimates sharpen as the steps go)."""

    def __init__(self, pipe: Any, source: Any, result: Any, sequential: Any = None, height: int = 230) -> None:
        self.pipe = pipe
        self.source = np.asarray(source)
        self.height = height
        self.figure = FigureWidget()
        self.play = ipw.Play(value=0, min=0, max=1, step=1, interval=400, description="play")
        self.step = ipw.IntSlider(value=0, min=0, max=1, description="step", continuous_update=True)
        ipw.jslink((self.play, "value"), (self.step, "value"))
        self.step.observe(lambda _: self.redraw(), names="value")
        self.caption = ipw.HTML()
        self.widget = ipw.VBox([ipw.HBox([self.play, self.step]), self.caption, self.figure])
        self.set_result(result, sequential)

    def set_result(self, result: Any, sequential: Any = None) -> None:
        """Show a new edit (and baseline): rebuild the panels when their number changes, else update in place."""
        self.result, self.sequential = result, sequential
        self.images = x0_images(self.pipe, result)
        self.seq_images = None if sequential is None else x0_images(self.pipe, sequential)
        n, k = self.images.shape[:2]
        titles = ["source"] + [f"branch {i}: {', '.join(result.groups[i]) or '-'}" for i in range(k)]
        if sequential is not None:
            titles.append("sequential")
        if len(self.figure.data) != len(titles):  # a new panel count: same FigureWidget, new layout and traces
            fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.02)
            for col in range(1, len(titles) + 1):
                fig.add_trace(image_trace(self.source), row=1, col=col)
            with self.figure.batch_update():
                self.figure.data = ()
                self.figure.layout = fig.layout
                self.figure.add_traces(list(fig.data))
                for trace in self.figure.data:
                    image_axes(self.figure, trace)
                self.figure.update_layout(height=self.height, width=max(360, 170 * len(titles)),
                                          margin=dict(l=10, r=10, t=40, b=10))
        else:
            for ann, title in zip(self.figure.layout.annotations, titles):
                ann.text = title
        self.play.max = self.step.max = n - 1
        self.step.value = n - 1
        self.redraw()

    def redraw(self) -> None:
        """Show the estimates of step ``self.step.value``."""
        s = min(self.step.value, self.images.shape[0] - 1)
        k = self.images.shape[1]
        with self.figure.batch_update():
            for i in range(k):
                self.figure.data[1 + i].z = self.images[s, i]
            if self.seq_images is not None:
                t = min(s, self.seq_images.shape[0] - 1)
                self.figure.data[1 + k].z = self.seq_images[t, -1]
        prompts = self.result.branch_prompts
        self.caption.value = (f"step {s + 1} of {self.images.shape[0]} &mdash; {prompts[0]} &rarr; {prompts[-1]}; "
                              f"{self.result.seconds:.1f} s")


class EditorView(Displayable):
    """Type a target caption and edit: the grid of branches, the grouping and the scores redraw. The source image
    and caption stay fixed; ``edit_fn`` / ``baseline_fn`` are :func:`kit.multiedits.edit` and
    :func:`kit.multiedits.sequential_edit` (or any editor with their arguments)."""

    def __init__(self, pipe: Any, source: Any, source_prompt: str, target_prompt: str, edit_fn: Any,
                 baseline_fn: Any = None, score_fn: Any = None, **opts: Any) -> None:
        self.pipe, self.source, self.source_prompt = pipe, np.asarray(source), source_prompt
        self.edit_fn, self.baseline_fn, self.score_fn, self.opts = edit_fn, baseline_fn, score_fn, opts
        self.target = ipw.Text(value=target_prompt, description="target", layout=ipw.Layout(width="70%"))
        self.button = ipw.Button(description="Edit", button_style="primary")
        self.status = ipw.HTML()
        self.scores = ipw.HTML()
        self.button.on_click(lambda _: self.run())
        self.result = self.edit_fn(pipe, self.source, source_prompt, target_prompt, **opts)
        base = None if baseline_fn is None else baseline_fn(pipe, self.source, source_prompt, target_prompt, **opts)
        self.grid = EditGrid(pipe, self.source, self.result, base)
        self.groups = ipw.HTML()
        self._report(base)
        self.widget = ipw.VBox([ipw.HTML(f"source: <b>{source_prompt}</b>"), ipw.HBox([self.target, self.button]),
                                self.status, self.groups, self.grid.widget, self.scores])

    def _report(self, base: Any) -> None:
        rows = group_table(self.result)
        self.groups.value = GroupingView._table_html(rows) + "<br>" + "<br>".join(
            f"p<sub>{k}</sub>: {p}" for k, p in enumerate(self.result.branch_prompts))
        if self.score_fn is not None:
            pairs = [("parallel", self.score_fn(self.result.image))]
            if base is not None:
                pairs.append(("sequential", self.score_fn(base.image)))
            self.scores.value = record_table_html(pairs)

    def run(self) -> None:
        """Edit the source toward the typed caption; errors (unknown words, empty caption) are shown, not raised."""
        try:
            result = self.edit_fn(self.pipe, self.source, self.source_prompt, self.target.value, **self.opts)
            base = None if self.baseline_fn is None else self.baseline_fn(
                self.pipe, self.source, self.source_prompt, self.target.value, **self.opts)
        except ValueError as e:
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return
        self.status.value = f"{len(result.groups)} branch(es): " + ", ".join(result.group_kinds)
        self.result = result
        self.grid.set_result(result, base)
        self._report(base)


__all__ = ["TokenMapsView", "GroupingView", "BlendMasksView", "EditGrid", "EditorView", "ROLES"]
