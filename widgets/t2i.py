"""Prompt explorer for the text-to-image core: type a prompt, get the image and the cross-attention heat map of
every word, averaged over the denoising steps or at one step (slider)."""

from __future__ import annotations

from typing import Any

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.t2i.explore import TokenMaps, token_maps
from widgets.viz import Displayable, FigureWidget, image_axes, image_trace, setup_plotly

setup_plotly()


class PromptExplorer(Displayable):
    """Image + one heat map per prompt word; a step slider (-1 = mean over steps) and a Generate button."""

    def __init__(self, pipe: Any, prompt: str = "a big red circle left of a small blue square", steps: int = 20,
                 guidance_scale: float = 3.0, seed: int = 0, height: int = 260):
        self.pipe, self.height = pipe, height
        self.prompt = ipw.Text(value=prompt, description="prompt", layout=ipw.Layout(width="60%"))
        self.seed = ipw.IntText(value=seed, description="seed", layout=ipw.Layout(width="160px"))
        self.steps = ipw.IntSlider(value=steps, min=2, max=50, description="steps", continuous_update=False)
        self.guidance = ipw.FloatSlider(value=guidance_scale, min=1.0, max=8.0, step=0.5, description="guidance",
                                        continuous_update=False)
        self.step = ipw.IntSlider(value=-1, min=-1, max=steps - 1, description="step (-1: all)",
                                  continuous_update=False)
        self.button = ipw.Button(description="Generate", button_style="primary")
        self.status = ipw.HTML()
        self.figure = FigureWidget()
        self.result: TokenMaps | None = None
        self.button.on_click(lambda _: self.generate())
        self.step.observe(lambda _: self._update_maps(), names="value")
        self.widget = ipw.VBox([ipw.HBox([self.prompt, self.seed, self.button]),
                                ipw.HBox([self.steps, self.guidance, self.step]), self.status, self.figure])
        self.generate()

    def generate(self) -> None:
        """Runs the pipeline on the current prompt and redraws image and maps."""
        try:
            result = token_maps(self.pipe, self.prompt.value, steps=self.steps.value,
                                guidance_scale=self.guidance.value, seed=self.seed.value)
        except ValueError as e:  # unknown words: say so, keep the last result
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return
        self.result = result
        self.step.max = result.steps - 1
        self.step.value = min(self.step.value, self.step.max)
        self.status.value = f"{len(result.words)} words, {result.steps} UNet calls recorded"
        self._draw()

    def _maps(self) -> list[np.ndarray]:
        step = None if self.step.value < 0 else self.step.value
        return [self.result.word_map(i, step) for i, _ in self.result.words]

    def _draw(self) -> None:
        r = self.result
        titles = ["image"] + [w for _, w in r.words]
        fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.01)
        fig.add_trace(image_trace(r.image), row=1, col=1)
        for k, m in enumerate(self._maps(), start=2):
            fig.add_trace(go.Heatmap(z=m, colorscale="Inferno", showscale=False), row=1, col=k)
        new = FigureWidget(fig)
        for trace in new.data:
            image_axes(new, trace)
        new.update_layout(height=self.height, width=max(400, 150 * len(titles)),
                          margin=dict(l=10, r=10, t=30, b=10))
        self.figure = new
        self.widget.children = (*self.widget.children[:3], new)

    def _update_maps(self) -> None:
        if self.result is None:
            return
        with self.figure.batch_update():
            for trace, m in zip(self.figure.data[1:], self._maps()):
                trace.z = m
