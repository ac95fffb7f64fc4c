"""Each explore notebook served by ``python -m kit voila SERIES`` as an app: no code cells, no error or undeclared
stderr, every declared widget view and plotly plot rendered with data, and its controls still move its figures."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPLORE = sorted(p.parent.name for p in (ROOT / "notebooks").glob("*/03_explore.ipynb"))
# Voila's page template links Font Awesome from a CDN (icons only); offline it fails and nothing else is missing
VOILA_TEMPLATE_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/fontawesome-free@")


@pytest.mark.parametrize("series", EXPLORE)
def test_explore_notebook_runs_as_a_voila_app(series, lab_root, page, harness):
    label = f"{series}/03_explore"
    spec = harness.NOTEBOOK_TABLE[label]
    harness.prepare_notebook(lab_root, label)
    server = harness.start_voila(lab_root, series)
    try:
        t0 = time.perf_counter()
        page.goto(server.url + "/", timeout=120_000)
        outputs, views = harness.voila_state(page, spec, timeout_s=spec.get("timeout", 900))
        seconds = time.perf_counter() - t0
        shot = harness.full_screenshot(page, f"voila__{series}",
                                       page.evaluate("() => document.body.scrollHeight") + 50)
        problems = [f"stderr or error output: {t[:400]}" for t in outputs["stderr"]
                    if not any(re.search(p, ln) for ln in t.splitlines() if ln.strip()
                               for p in spec.get("stderr", []))]
        if outputs["code_cells"]:
            problems.append(f"{outputs['code_cells']} code cell(s) shown: an app shows outputs only")
        problems += [f"a widget view failed to render: {b}" for b in views["broken_views"]]
        if views["empty_plots"]:
            problems.append(f"{views['empty_plots']} plotly plot(s) drew no data: {views.get('empty_details')}")
        problems += [f"{views[k]} {k} rendered, notebooks.toml declares {spec[k]}" for k in ("views", "plots")
                     if views[k] != spec[k]]
        problems += [f"uncaught error in the page: {e}" for e in page.kit_log.page_errors]
        problems += [f"the page reached outside this machine: {u}" for u in page.kit_log.outside_requests
                     if not VOILA_TEMPLATE_CDN.match(u)]
        action = spec.get("voila_interact", spec["interact"][0])
        if not problems and action:
            before, after = harness.interact(page, action)
            if after == before:
                problems.append(f"the figure beside {action} did not change")
        harness.record_summary(label, {"voila_views": views["views"], "voila_plots": views["plots"],
                                       "voila_seconds": round(seconds, 1)})
        assert not problems, "\n".join(f"voila {label}: {p}" for p in problems) + \
            f"\n(page text: {outputs['text'][:300]!r}; screenshot {shot})\n{server.log_tail(1500)}"
    finally:
        server.stop()
