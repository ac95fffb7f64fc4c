"""The demo page a newcomer reads, built by kit.demo from the notebooks this suite ran in JupyterLab (their saved
copies, metrics, figures, times and peaks), opened in chromium: it loads, every image resolves, every link points
at a file that exists."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from kit.demo import DemoEntry, collect_outputs, demo_notebooks, write_index
from kit.runner import execute_notebook, notebook_parameters, notebook_to_html

ROOT = Path(__file__).resolve().parents[2]


def entries_from_lab_runs(root: Path, summary: dict) -> list[DemoEntry]:
    """One entry per notebook whose copy under ``root`` ran in JupyterLab (its metrics.json exists)."""
    out = []
    for label, nb in demo_notebooks():
        copy = root / nb.relative_to(ROOT)
        default_dir = notebook_parameters(nb).get("output_dir", {}).get("default", "").strip("\"'")
        output_dir = copy.parent / default_dir
        if not default_dir or not (output_dir / "metrics.json").is_file():
            continue
        run = summary.get(label, {})
        e = DemoEntry(label, copy, output_dir, seconds=run.get("lab_seconds", 0.0), peak_mb=run.get("lab_peak_mb"))
        e.html = notebook_to_html(copy) if copy.is_file() else None
        collect_outputs(e)
        out.append(e)
    return out


def test_demo_page_loads_and_every_image_resolves(lab_root, page, harness, tmp_path):
    summary_file = harness.summary_path()
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    entries = entries_from_lab_runs(lab_root, summary)
    if not entries:  # run alone (-k): make one entry the way `make demo` does
        nb = ROOT / "notebooks" / "00_start_here.ipynb"
        run = execute_notebook(nb, {}, tmp_path / "00_start_here", timeout=600)
        e = DemoEntry("00_start_here", nb, tmp_path / "00_start_here", seconds=run.seconds, peak_mb=run.peak_mb)
        e.html = notebook_to_html(run.path)
        collect_outputs(e)
        entries = [e]
    index = write_index(lab_root / "demo", entries)
    page.goto(index.as_uri())
    images = page.evaluate("() => [...document.images].map((i) => [i.getAttribute('src'), i.complete, "
                           "i.naturalWidth])")
    links = page.evaluate("() => [...document.querySelectorAll('a')].map((a) => a.href)")
    text = page.evaluate("() => document.body.innerText")
    harness.full_screenshot(page, "demo_index", page.evaluate("() => document.body.scrollHeight") + 50)
    with_figures = [e for e in entries if (e.output_dir / "figures").is_dir()]
    assert len(images) == sum(e.thumbnail is not None for e in entries) >= min(1, len(with_figures))
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, f"images that did not load: {broken}"
    local = [unquote(urlparse(u).path) for u in links if u.startswith("file:")]
    assert local and all(Path(p).is_file() for p in local), [p for p in local if not Path(p).is_file()]
    assert "No headline" not in text or len(entries) < len(demo_notebooks()), text[:2000]
    assert "kernel peak" in text
