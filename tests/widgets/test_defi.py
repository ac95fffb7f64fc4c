"""DeFI-Net views on small generated inpaintings and a freshly built DeFI-lite: every control changes what it drives,
in place, and the numbers shown are kit.defi's."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from kit.data.inpainting import make_sample
from kit.defi import explore as ex
from kit.defi.metrics import per_method, protocol_inflation, threshold_scores
from kit.defi.model import DeFINet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DeFINet("lite", input_filter="srm").eval()


@pytest.fixture(scope="module")
def items():
    out = []
    for i, fill in enumerate(("telea", "ns", "biharmonic")):
        s = make_sample("china", fill, 48, seed=i)
        out.append(ex.Item(s.image, s.mask, fill, f"#{i} {fill}"))
    return out


def _probs(items, seed=0):
    """Weak maps: slightly higher inside the mask, never above 0.5 (so min-max and macro F1 change the numbers)."""
    rng = np.random.default_rng(seed)
    return [np.clip(0.2 + 0.1 * it.mask + 0.15 * rng.random(it.mask.shape), 0, 1) for it in items]


def _f1(text):
    return float(re.search(r"<b>F1 ([0-9.]+)</b>", text).group(1))


def test_mask_overlay_threshold_and_toggles(items):
    from widgets.defi import MaskOverlay

    probs = _probs(items)
    view = MaskOverlay(items, probs)
    fig = view.figure
    assert _f1(view.readout.value) == 0.0 and "standard" in view.readout.value  # nothing passes 0.5
    view.threshold.value = 0.3
    assert view.figure is fig
    want = threshold_scores(probs[0], items[0].mask, 0.3)["f1"]
    assert _f1(view.readout.value) == pytest.approx(want, abs=1e-3) and want > 0
    errors = np.asarray(fig.data[5].z)
    np.testing.assert_array_equal(errors >= 2, probs[0] > 0.3)  # flagged pixels: false alarms and hits
    np.testing.assert_array_equal(errors % 2 == 1, items[0].mask)
    view.threshold.value = 0.5
    view.minmax.value = True  # the official protocol's scaling lifts the weak map over 0.5
    mm = _f1(view.readout.value)
    assert mm > 0 and "the toggles add" in view.readout.value and len(fig.data[2].x) > 0
    assert fig.layout.annotations[1].text.endswith("min-max normalised")
    assert np.asarray(fig.data[3].z).max() == pytest.approx(1.0)
    view.macro.value = True  # macro F1 adds the large authentic class's F1
    assert _f1(view.readout.value) > mm and "official" in view.readout.value
    view.selector.value = 2
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), items[2].image)
    assert view.current().f1 == pytest.approx(threshold_scores(probs[2], items[2].mask, 0.5, True, True)["f1"])


def test_curves_view_follows_the_overlay(items):
    from widgets.defi import CurvesView, MaskOverlay

    probs = _probs(items, 1)
    overlay = MaskOverlay(items, probs)
    view = CurvesView(items, probs, overlay=overlay)
    assert view.widget.children == (view.figure,)  # no controls of its own
    c = ex.curves(probs[0], items[0].mask)
    assert view.figure.layout.annotations[0].text == f"ROC: AUC {c['auc']:.3f}"
    assert view.figure.data[2].x == (0.0,)  # at 0.5 nothing is flagged
    overlay.threshold.value = 0.3
    p = ex.operating_point(probs[0], items[0].mask, 0.3)
    assert view.figure.data[2].x[0] == pytest.approx(p["fpr"]) and view.figure.data[5].y[0] == pytest.approx(
        p["precision"])
    assert 0 < p["fpr"] < 1
    overlay.minmax.value = True
    q = ex.operating_point(probs[0], items[0].mask, 0.3, minmax=True)
    assert view.figure.data[2].x[0] == pytest.approx(q["fpr"]) and q["fpr"] > p["fpr"]
    overlay.selector.value = 1
    c1 = ex.curves(probs[1], items[1].mask)
    assert view.figure.layout.annotations[1].text == f"precision-recall: AP {c1['ap']:.3f}"
    np.testing.assert_allclose(view.figure.data[3].y, [c1["base_rate"]] * 2)
    alone = CurvesView(items, probs)
    assert len(alone.widget.children) == 2
    alone.threshold.value = 0.25
    assert alone.figure.data[2].x[0] == pytest.approx(ex.operating_point(probs[0], items[0].mask, 0.25)["fpr"])


def test_inpaint_yourself_moves_the_mask_and_reruns_the_model(model):
    from widgets.defi import InpaintYourself

    view = InpaintYourself(model, photo="coffee", fill="telea", mask_kind="box", size=64, train_fills=("telea",))
    fig = view.figure
    assert "(held out)" in dict((v, k) for k, v in view.photo.options)["coffee"]
    assert "unseen" in dict((v, k) for k, v in view.fill.options)["ns"]
    mask = np.asarray(fig.data[2].z) > 0.5
    ys, xs = np.nonzero(mask)
    assert (ys.mean(), xs.mean()) == pytest.approx((32, 32), abs=0.5)
    view.x.value, view.y.value = 12, 50
    assert view.figure is fig
    mask = np.asarray(fig.data[2].z) > 0.5
    np.testing.assert_array_equal(mask, ex.place_mask("box", 64, (12, 50), view.radius.value))
    r = view.result
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), r.image)
    np.testing.assert_array_equal(r.image[~mask], r.original[~mask])  # the fill touched only the mask
    np.testing.assert_allclose(np.asarray(fig.data[3].z), ex.explain(model, r.image).prob, atol=1e-6)
    assert np.asarray(fig.data[6].z).shape == (64, 64) and len(fig.data[1].x) > 0
    before = np.asarray(fig.data[3].z).copy()
    view.fill.value = "biharmonic"
    assert view.result.fill == "biharmonic" and not np.array_equal(before, np.asarray(fig.data[3].z))
    view.kind.value = "disc"
    assert (np.asarray(fig.data[2].z) > 0.5).sum() == ex.place_mask("disc", 64, (12, 50), view.radius.value).sum()
    assert "AUC" in view.status.value and "biharmonic" in view.status.value
    view.x.value, view.y.value, view.kind.value = 0, 0, "strokes"  # strokes may miss the crop's corner: no error
    assert view.result.mask.shape == (64, 64)
    with pytest.raises(ValueError, match="fill must be one of"):
        InpaintYourself(model, fill="deepfill")


def test_edge_band_view(items):
    from widgets.defi import EdgeBandView

    edges = [ex.edge_band(it.mask).astype(float) * 0.8 + 0.1 for it in items]
    view = EdgeBandView(items, edges)
    np.testing.assert_array_equal(np.asarray(view.figure.data[2].z) > 0.5, ex.edge_band(items[0].mask))
    assert view.scores["auc"] == 1.0 and "<b>0.900</b> inside" in view.readout.value
    edges[1] = np.full_like(edges[1], 0.3)
    view = EdgeBandView(items, edges)
    view.selector.value = 1
    assert view.scores["auc"] == 0.5 and np.asarray(view.figure.data[3].z).max() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="one map per item"):
        EdgeBandView(items, edges[:2])


def test_training_curves_keep_the_best_validation_auc():
    from widgets.defi import TrainingCurves

    curve = TrainingCurves()
    curve({"step": 10, "kind": "train", "loss": 8.0, "seg": 1.5, "edge": 0.6, "lr": 1e-3, "samples": 80})
    curve({"step": 20, "kind": "eval", "val_auc": 0.62, "val_f1": 0.3})
    curve({"step": 40, "kind": "eval", "val_auc": 0.55, "val_f1": 0.35})
    curve.flush()
    names = [t.name for t in curve.figure.data]
    assert names == ["loss", "seg", "edge", "eval/val_auc", "eval/val_f1"]  # lr and samples left out
    assert curve.figure.data[3].yaxis == "y2" and curve.figure.data[0].yaxis == "y"
    assert curve.best == (20, 0.62) and "best <b>0.620</b> at step 20" in curve.readout.value


def test_results_view_switches_protocol_and_marks_the_unseen_fill(items):
    from widgets.defi import ResultsView

    masks = [it.mask for it in items]
    fills = [it.fill for it in items]
    maps = {"defi": _probs(items), "laplacian": [np.clip(m * 0.7 + 0.1, 0, 1) for m in masks]}
    result = {p: {d: per_method(m, masks, fills, protocol=p) for d, m in maps.items()} for p in ("standard", "official")}
    result["unseen_fills"] = ["biharmonic"]
    view = ResultsView(result)
    assert len(view.figure.data) == 4 and view.widget.children[0].children == (view.protocol,)
    assert view.figure.data[0].x == ("telea", "ns", "biharmonic (unseen)", "all")
    assert view.figure.data[1].y[3] == pytest.approx(result["standard"]["defi"]["all"]["f1"])
    view.protocol.value = "official"
    assert view.figure.data[1].y[3] == pytest.approx(result["official"]["defi"]["all"]["f1"])
    assert result["official"]["defi"]["all"]["f1"] > result["standard"]["defi"]["all"]["f1"]
    assert view.figure.layout.title.text == "this run: official protocol"
    other = {k: v for k, v in result.items()}
    other["standard"] = {"defi": per_method(maps["laplacian"], masks, fills), "noise": result["standard"]["defi"]}
    two = ResultsView({"run": result, "study": other})
    assert two.detectors == ["defi", "laplacian", "noise"] and len(two.figure.data) == 6
    two.which.value = "study"
    assert two.figure.data[1].y[0] == pytest.approx(other["standard"]["defi"]["telea"]["f1"])
    assert two.figure.data[2].x == () and len(two.figure.data[4].x) == 4  # no laplacian row in the study


def test_inflation_and_explain_figures(items, model):
    from widgets.defi import explain_figure, inflation_figure

    masks = [it.mask for it in items]
    inf = {"defi": protocol_inflation(_probs(items), masks), "random": protocol_inflation(ex.random_maps(masks), masks)}
    fig = inflation_figure(inf)
    assert [t.name for t in fig.data][0].startswith("standard") and len(fig.data) == 5
    assert fig.data[3].y == (inf["defi"]["minmax_macro_f1"], inf["random"]["minmax_macro_f1"])
    e = ex.explain(model, items[0].image)
    fig = explain_figure(e, items[0].image)
    assert f"{e.high_fraction:.0%}" in fig.layout.annotations[2].text
    assert fig.data[1].y == tuple(e.energy[k] for k in ex.LEVELS)
