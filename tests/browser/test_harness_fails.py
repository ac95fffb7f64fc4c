"""The suite can fail: a small notebook with a widget that raises in its front-end render, a figure with no data,
an undeclared stderr line and a slider that no longer moves its figure; the harness must report each of them."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

CELLS = [
    # a good view: a slider that moves its figure, the pattern every explore notebook uses
    """import anywidget, ipywidgets as ipw, plotly.graph_objects as go, traitlets, warnings
fig = go.FigureWidget(data=[go.Scatter(x=[0, 1, 2], y=[0, 1, 2])])  # y = x ** power
good = ipw.IntSlider(value=1, min=1, max=5, description="power")
good.observe(lambda c: fig.data[0].update(y=[x ** c["new"] for x in (0, 1, 2)]), names="value")
ipw.VBox([good, fig])""",
    # a slider whose figure stays still (what a broken observer looks like to a learner)
    """still = go.FigureWidget(data=[go.Scatter(x=[0, 1], y=[1, 1])])
ipw.VBox([ipw.IntSlider(value=1, min=1, max=5, description="frozen"), still])""",
    # a widget whose front-end view raises while rendering
    """class Broken(anywidget.AnyWidget):
    _esm = "export default { render() { throw new Error('kit harness: this view fails on purpose'); } };"
Broken()""",
    # a figure with no data
    "go.FigureWidget()",
    # stderr nobody declared
    'warnings.warn("kit harness: undeclared stderr")',
]
# what a correct version of this notebook would show: 4 views, 3 plots with data, no stderr
EXPECTED = {"views": 4, "plots": 3}


def test_the_harness_reports_every_broken_view(lab, harness):
    folder = lab.root / "harness"
    folder.mkdir(exist_ok=True)
    nb = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(folder / "broken.ipynb"))
    lab.open("harness/broken.ipynb")
    state = lab.run_all(timeout_s=180)
    views = lab.wait_views(EXPECTED, timeout_s=15)
    state = lab.settled_state()
    found = "\n".join(harness.problems("broken", state, views, EXPECTED))
    assert "a widget view failed to render" in found, found
    assert "plotly plot(s) drew no data" in found, found
    assert "stderr output not declared" in found and "undeclared stderr" in found, found
    assert "views rendered, notebooks.toml declares 4" in found, found
    # a learner's interaction: the working slider moves its figure, the frozen one does not
    before, after = lab.interact({"kind": "slider", "label": "power", "keys": ["ArrowRight"]})
    assert after != before
    before, after = lab.interact({"kind": "slider", "label": "frozen", "keys": ["ArrowRight"],
                                  "wait_s": 5})
    assert after == before, "the harness must see a figure that did not follow its slider"
