"""widgets/figure.js run in node against a fake widget model and a fake plotly front end (figure_js_check.mjs):
updates that arrive while plotly's code loads are replayed, a redraw leaves exactly one live plotly view, and a
replaced view can neither receive updates nor stop the live one from receiving them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIGURE_JS = HERE.parents[1] / "widgets" / "figure.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (the browser suite covers figure.js)")


def run_check(figure_js: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, str(HERE / "figure_js_check.mjs"), str(figure_js)], capture_output=True,
                          text=True, timeout=60)


def test_a_redrawn_figure_keeps_receiving_updates():
    done = run_check(FIGURE_JS)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the front end asks the kernel for the current state once plotly runs, and again once a view is drawn
    assert got["resyncs"] == 2, got
    assert got["first_view"] == ["early"], "an update that arrived while plotly's code loaded was lost"
    assert got["views"] == 2 and got["host_removed"], "a new _widget_data must redraw into a fresh element"
    assert got["live_view"] == ["early", "resynced", "late"], got
    assert got["model_data"] == ["early", "resynced", "late"], got
    assert got["errors"] == [], "the replaced view still received an update"
    # plotly's model-level handler, figure.js's counter and its answer listener stay; the live view's handler and its
    # redraw listener go
    assert (got["handlers_before_teardown"], got["handlers_after_teardown"]) == (5, 3), got
    assert got["stats"]["answers"] == 2 and got["stats"]["answer_traces"] == 2, got["stats"]
    # unanswered: the request at initialize, the one after the first draw, and one retry 2 s later
    assert got["unanswered_resyncs"] == 3, got


def test_a_figure_anywidget_gave_up_on_hears_the_kernel_again():
    """anywidget rejects every message of a model whose widget code took over 2 s to start (a loaded page); the
    figure then drew without data and never heard the kernel (the browser suite's rare "drew no data"). figure.js
    hands the comm to the widget model's own handler and asks for the state again: the kernel's answer draws."""
    done = run_check(FIGURE_JS)
    assert done.returncode == 0, done.stderr
    deaf = json.loads(done.stdout.strip().splitlines()[-1])["deaf"]
    assert deaf["messages"] == "mended", deaf
    assert deaf["answers"] >= 1 and deaf["live_view"] == ["from kernel"], deaf


def test_the_check_catches_a_figure_left_deaf(tmp_path):
    """Against a figure.js that never mends, the same scenario leaves the figure empty and unanswered."""
    source = FIGURE_JS.read_text(encoding="utf-8")
    broken = source.replace('const id = model.get("_kit_model_id");', 'return "ok";', 1)
    assert broken != source
    path = tmp_path / "figure.js"
    path.write_text(broken, encoding="utf-8")
    done = run_check(path)
    assert done.returncode == 0, done.stderr
    deaf = json.loads(done.stdout.strip().splitlines()[-1])["deaf"]
    assert deaf["answers"] == 0 and deaf["live_view"] == [], deaf


def test_the_check_catches_a_replaced_view_that_starves_the_live_one(tmp_path):
    """The same check against a figure.js whose redraw leaves the old view subscribed (as plotly's own wrapper does)
    must fail: the purged view throws and the live view misses the update."""
    broken = FIGURE_JS.read_text(encoding="utf-8").replace("if (owner) {", "if (false) {", 1)
    assert broken != FIGURE_JS.read_text(encoding="utf-8")
    broken = broken.replace("cb(...args);\n            } catch (err) {", "cb(...args);\n            } catch (err) {\n              throw err;", 1)
    path = tmp_path / "figure.js"
    path.write_text(broken, encoding="utf-8")
    done = run_check(path)
    assert done.returncode != 0 or "late" not in json.loads(done.stdout.strip().splitlines()[-1])["live_view"]
