"""What a front end that builds its views late (Voila, a reloaded page) receives: the figures' current data."""

from __future__ import annotations

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go

from widgets.viz import Displayable, FigureWidget, plotly_bundle, sync_figure_state


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


def test_kit_figures_send_their_current_state_to_a_late_front_end():
    """widgets.viz.FigureWidget answers a state request (a front end connecting late) with the current figure,
    displayed or not; go.FigureWidget answers with its construction-time data."""
    kit_fig, stock = FigureWidget(data=[go.Bar(x=[], y=[])]), go.FigureWidget(data=[go.Bar(x=[], y=[])])
    for fig in (kit_fig, stock):
        with fig.batch_update():
            fig.data[0].y = np.array([4.0, 5.0])
            fig.layout.title.text = "later"
    assert list(kit_fig.get_state()["_widget_data"][0]["y"]["buffer"].cast("B").cast("d")) == [4.0, 5.0]
    assert kit_fig.get_state()["_widget_layout"]["title"]["text"] == "later"
    assert _state_y(stock) == [] and "title" not in stock.get_state()["_widget_layout"]
    assert set(kit_fig.get_state("_widget_data")) == {"_widget_data"}  # a single-key request stays single


def test_kit_figures_share_one_plotly_bundle(monkeypatch):
    figs = [FigureWidget() for _ in range(3)]
    refs = {f.get_state()["_kit_bundle"] for f in figs}
    assert len(refs) == 1 and refs.pop() == f"IPY_MODEL_{plotly_bundle().model_id}"
    stock_esm = str(go.FigureWidget._esm)
    assert plotly_bundle().source == stock_esm and len(stock_esm) > 1_000_000
    assert len(figs[0]._esm) < 20_000 and "widget_manager.get_model" in figs[0]._esm
    old = plotly_bundle()
    old.close()
    assert plotly_bundle() is not old and FigureWidget().get_state()["_kit_bundle"].endswith(plotly_bundle().model_id)
    monkeypatch.setenv("KIT_SHARED_PLOTLY", "0")  # every figure carries plotly's own front end again
    inline = FigureWidget()
    assert inline._esm == stock_esm and inline.get_state()["_kit_bundle"] is None


def test_a_resync_request_is_answered_with_the_current_figure(monkeypatch):
    """What widgets/figure.js asks once plotly's code runs in the page: one update with the current state, then an
    acknowledgement that stops the page from asking again."""
    fig = FigureWidget(data=[go.Scatter(x=[0], y=[0])])
    fig.add_scatter(x=[1, 2], y=[3, 4], name="added later")
    sent = []
    monkeypatch.setattr(fig, "_send", lambda msg, buffers=None: sent.append(msg))
    fig._handle_custom_msg({"type": "kit:resync"}, [])
    fig._handle_custom_msg({"type": "something else"}, [])
    assert [m["method"] for m in sent] == ["update", "custom"]
    assert sent[1]["content"] == {"type": "kit:resynced", "traces": 2}
    state = sent[0]["state"]
    assert set(state) == {"_widget_data", "_widget_layout"}
    assert [t.get("name") for t in state["_widget_data"]] == [None, "added later"]
