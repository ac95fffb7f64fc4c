"""What a front end that builds its views late (Voila, a reloaded page) receives: the figures' current data."""

from __future__ import annotations

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go

from widgets.viz import Displayable, sync_figure_state


class _View(Displayable):
    def __init__(self):
        self.figure = go.FigureWidget(data=[go.Bar(x=[], y=[])])
        self.widget = ipw.VBox([ipw.HBox([ipw.Label("x")]), ipw.VBox([self.figure])])
        with self.figure.batch_update():  # filled after construction, as the views' _redraw does
            self.figure.data[0].x = ["a", "b", "c"]
            self.figure.data[0].y = np.array([1.0, 2.0, 3.0])
            self.figure.layout.title.text = "filled"


def _state_y(fig: go.FigureWidget) -> list:
    return list(fig.get_state()["_widget_data"][0].get("y", []))


def test_displaying_a_view_syncs_its_figures_state():
    v = _View()
    assert _state_y(v.figure) == []  # without the sync a late front end draws an empty bar chart
    bundle = v._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert list(v.figure._widget_data[0]["y"]) == [1.0, 2.0, 3.0]
    assert v.figure.get_state()["_widget_layout"]["title"]["text"] == "filled"


def test_sync_walks_nested_children_once():
    a, b = go.FigureWidget(), go.FigureWidget()
    box = ipw.VBox([a, ipw.HBox([b, a])])
    assert sync_figure_state(box) == 2 and sync_figure_state(ipw.Label("no figure")) == 0
