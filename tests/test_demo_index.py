"""The demo's index page: a headline per series from the recorded metrics, a thumbnail per notebook (redrawn from
the saved plotly HTML without a browser), time and peak memory, links, metrics folded away."""

from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.demo import DemoEntry, collect_outputs, headline, write_index
from kit.thumbnails import figure_thumbnail, plotly_figure_from_html


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fig.to_html(include_plotlyjs="cdn", full_html=True))  # as RunDir.save_figure writes it
    return path


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_thumbnail_redraws_lines_heatmaps_images_and_bars(tmp_path):
    fig = make_subplots(rows=2, cols=2)
    fig.add_scatter(x=np.arange(5), y=np.arange(5.0) ** 2, row=1, col=1)
    fig.add_heatmap(z=np.random.default_rng(0).random((8, 8)), row=1, col=2)
    fig.add_image(z=np.zeros((4, 4, 3), np.uint8), row=2, col=1)
    fig.add_bar(x=["a", "b"], y=[1, 2], row=2, col=2)
    fig.update_yaxes(type="log", row=1, col=1)
    html = _save(go.FigureWidget(fig), tmp_path / "f.html")
    data, layout = plotly_figure_from_html(html)
    assert [t["type"] for t in data] == ["scatter", "heatmap", "image", "bar"] and "xaxis4" in layout
    assert _png_size(figure_thumbnail(html, tmp_path / "t.png")) == (480, 300)
    empty = _save(go.Figure(), tmp_path / "empty.html")
    try:
        figure_thumbnail(empty, tmp_path / "e.png")
    except ValueError as e:
        assert "no trace" in str(e)
    else:
        raise AssertionError("a figure with nothing to draw must not give a blank thumbnail")


def _rows():
    rows = []
    for den in ("kde", "trained"):
        for sched, err in (("edm", 0.9), ("logsnr", 0.7), ("gits", 0.6)):
            rows.append({"denoiser": den, "solver": "ipndm", "nfe": 5, "schedule": sched, "error": err,
                         "variant": "paper" if sched == "gits" else None})
    return rows


METRICS = {
    "trajectory/02_evaluate": {"errors": _rows(), "gits_claims": {"kde": {"cells": 14, "wins_vs_recommended": 9,
                                                                        "wins_vs_best_fixed": 0}}},
    "rld/02_evaluate": {"accuracy": [{"method": m, "seeds": 3, "best_mean": a} for m, a in
                                     (("ce", 0.93), ("kd", 0.95), ("dkd", 0.964), ("rld", 0.965))],
                        "sweep_summary": [{"teacher_error": 0.45, "rld_minus_dkd": 0.18, "rld_minus_kd": 0.3}]},
    "t2i/02_evaluate": {"adherence": {"1": {"n": 60, "colour": 1.0, "shape": 0.95, "all": 0.9},
                                      "2": {"n": 8, "all": 0.375}}},
    "nlran/02_evaluate": {"comparison": [{"model": "nlran", "auc_macro": 0.987, "accuracy": 0.9},
                                         {"model": "resnet18", "auc_macro": 0.999, "accuracy": 0.98}],
                          "paper": {"auc": 0.9903}},
    "multiedits/02_evaluate": {"parallel_vs_sequential": {
        "2": {"parallel_aspacc": 0.75, "sequential_aspacc": 0.83, "time_ratio": 0.62},
        "3": {"parallel_aspacc": 0.78, "sequential_aspacc": 0.92, "time_ratio": 0.68}}},
    "00_start_here": {"digits_test_accuracy": 0.942},
}


def test_headlines_state_the_measured_effect(tmp_path):
    def entries(series):
        return [DemoEntry(k, tmp_path / "x.ipynb", tmp_path / k, metrics=v) for k, v in METRICS.items()
                if (k.split("/")[0] if "/" in k else "") == series]

    assert "most cells (kde 9/14)" in headline("trajectory", entries("trajectory"))
    assert "in few (kde 0/14)" in headline("trajectory", entries("trajectory"))
    rld = headline("rld", entries("rld"))
    assert "RLD 96.5 %" in rld and "KD 95.0 %" in rld and "DKD 96.4 %" in rld and "+18.0" in rld
    assert "60 single-object prompts" in headline("t2i", entries("t2i"))
    assert "macro-AUC 0.987" in headline("nlran", entries("nlran")) and "0.9903" in headline("nlran", entries("nlran"))
    assert "94.2 %" in headline("", entries(""))
    me = headline("multiedits", entries("multiedits"))
    assert "2 aspects 0.75 vs 0.83 in 0.62x the time" in me and "3 aspects 0.78 vs 0.92" in me
    assert headline("rld", []).startswith("No headline")


def test_index_page_links_thumbnails_time_and_memory(tmp_path):
    root = tmp_path / "run"
    entries = []
    for label, metrics in METRICS.items():
        e = DemoEntry(label, tmp_path / "nb.ipynb", root / label, seconds=12.3, peak_mb=812.0)
        (e.output_dir / "metrics.json").parent.mkdir(parents=True, exist_ok=True)
        (e.output_dir / "metrics.json").write_text(json.dumps(metrics))
        _save(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), e.output_dir / "figures" / "curve.html")
        e.html = e.output_dir / "nb.html"
        e.html.write_text("<html></html>")
        collect_outputs(e)
        entries.append(e)
    entries.append(DemoEntry("rld/03_explore", tmp_path / "nb.ipynb", root / "rld/03_explore", error="boom"))
    page = write_index(root, entries).read_text()
    imgs = re.findall(r'<img src="([^"]+)"', page)
    assert len(imgs) == len(METRICS) and all((root / src).is_file() for src in imgs)
    assert 'href="rld/02_evaluate/nb.html"' in page and "812 MB" in page and "12 s" in page
    assert "<details><summary>metrics.json</summary>" in page and "boom" in page
    assert page.index("Start here") < page.index("trajectory:") and "RLD 96.5 %" in page
