"""Every notebook opened in JupyterLab in chromium and all its cells run: no error output, no undeclared stderr,
every widget view and plotly plot the notebook declares in notebooks.toml rendered with data, a screenshot of each
under runs/browser/. Each explore notebook then gets a learner's interaction (a slider moved or a dropdown picked
through the DOM) and the figure beside the control must change."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from kit.runner import KernelMemory

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(str(p.relative_to(ROOT / "notebooks").with_suffix(""))
                   for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
EXPLORE = [n for n in NOTEBOOKS if n.endswith("03_explore")]
# widgets.viz's renderer "plotly_mimetype+notebook_connected" adds a script that loads plotly.js from its CDN, for
# exported HTML (nbconvert, nbviewer); JupyterLab draws the figures offline through the mimetype renderer
PLOTLY_CDN = re.compile(r"^https://cdn\.plot\.ly/")


def test_every_notebook_is_in_the_table(harness):
    assert sorted(harness.NOTEBOOK_TABLE) == NOTEBOOKS, "notebooks.toml must list every notebook, and only those"
    for label in EXPLORE:
        assert harness.NOTEBOOK_TABLE[label].get("interact"), f"{label}: notebooks.toml declares no interaction"


def run_and_check(harness, lab, label: str) -> None:
    """Open, run all, wait for the views; record counts, time, peak and a screenshot; fail on any problem."""
    spec = harness.NOTEBOOK_TABLE[label]
    harness.prepare_notebook(lab.root, label)
    t0 = time.perf_counter()
    with KernelMemory(lab.server.proc.pid) as mem:
        lab.open(f"notebooks/{label}.ipynb")
        state = lab.run_all(timeout_s=spec.get("timeout", 900))
        views = lab.wait_views(spec)
        state = lab.settled_state()
        mem.poll()
    seconds = time.perf_counter() - t0
    shot = lab.screenshot(label)
    lab.save()  # the executed copy, for the demo page's links (tests/browser/test_demo_page.py)
    harness.record_summary(label, {"lab_views": views["views"], "lab_plots": views["plots"],
                                   "lab_seconds": round(seconds, 1), "lab_peak_mb": round(mem.peak_mb),
                                   "screenshot": shot.name, "figure_stats": views.get("figure_stats")})
    found = harness.problems(label, state, views, spec)
    log = lab.page.kit_log
    found += [f"{label}: uncaught error in the page: {e}" for e in log.page_errors]
    found += [f"{label}: the page reached outside this machine: {u}" for u in log.outside_requests
              if not PLOTLY_CDN.match(u)]
    assert not found, "\n".join(found + [f"(console errors: {log.console_errors[:6]}; screenshot {shot})"])


@pytest.mark.parametrize("label", [n for n in NOTEBOOKS if n not in EXPLORE])
def test_notebook_renders_in_jupyterlab(label, lab, harness):
    run_and_check(harness, lab, label)


@pytest.mark.parametrize("label", EXPLORE)
def test_explore_notebook_renders_and_its_figures_follow_the_controls(label, lab, harness):
    run_and_check(harness, lab, label)
    for action in harness.NOTEBOOK_TABLE[label]["interact"]:
        before, after = lab.interact(action)
        assert after != before, f"{label}: the figure beside {action} did not change"
    harness.record_summary(label, {"interactions": len(harness.NOTEBOOK_TABLE[label]["interact"])})
