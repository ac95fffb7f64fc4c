"""DeFI-Net's explore logic: masks land where the controls put them, fills leave the rest untouched, every map of
an explanation has its shape and meaning, and the threshold readouts agree with independent sklearn / hand counts."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from kit.data.inpainting import make_sample
from kit.defi import explore as ex
from kit.defi.experiment import predict
from kit.defi.metrics import per_method, protocol_inflation, threshold_scores
from kit.defi.model import DeFINet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DeFINet("lite", input_filter="srm").eval()


def _blob_case(seed=0, size=32):
    """A small square mask and a weak, noisy map that is slightly higher inside it."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    mask[8:16, 10:18] = True
    prob = np.clip(0.25 + 0.1 * mask + 0.15 * rng.random((size, size)), 0, 1)
    return prob, mask


# ------------------------------------------------------------------------------------------ masks, fills
def test_box_and_disc_sit_at_the_centre_and_radius():
    box = ex.place_mask("box", 64, center=(20, 40), radius=5)
    ys, xs = np.nonzero(box)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (35, 45, 15, 25)
    disc = ex.place_mask("disc", 64, center=(40, 20), radius=8)
    ys, xs = np.nonzero(disc)
    assert abs(ys.mean() - 20) < 0.5 and abs(xs.mean() - 40) < 0.5
    assert disc.sum() == pytest.approx(math.pi * 64, rel=0.1)
    cut = ex.place_mask("box", 64, center=(0, 0), radius=5)  # cut at the image border
    assert cut.sum() == 36 and cut[:6, :6].all()


def test_strokes_stay_in_their_window_and_follow_the_seed():
    a = ex.place_mask("strokes", 96, center=(30, 60), radius=12, seed=3)
    ys, xs = np.nonzero(a)
    assert a.any() and ys.min() >= 48 and ys.max() < 72 and xs.min() >= 18 and xs.max() < 42
    assert np.array_equal(a, ex.place_mask("strokes", 96, center=(30, 60), radius=12, seed=3))
    assert not np.array_equal(a, ex.place_mask("strokes", 96, center=(30, 60), radius=12, seed=4))


@pytest.mark.parametrize("kwargs,match", [({"kind": "lasso"}, "mask_kind"), ({"radius": 2}, "radius"),
                                          ({"radius": 40}, "radius"), ({"center": (64, 3)}, "center")])
def test_place_mask_rejects_bad_arguments(kwargs, match):
    args = {"kind": "box", "size": 64, "center": None, "radius": None} | kwargs
    with pytest.raises(ValueError, match=match):
        ex.place_mask(**args)


@pytest.mark.parametrize("fill", ["telea", "patch"])
def test_inpaint_yourself_fills_only_inside_the_mask(fill):
    r = ex.inpaint_yourself("coffee", fill, "disc", size=64, seed=1, center=(40, 24), radius=9, crop_seed=2)
    assert r.image.shape == r.original.shape == (64, 64, 3) and r.image.dtype == np.uint8
    np.testing.assert_array_equal(r.mask, ex.place_mask("disc", 64, (40, 24), 9))
    np.testing.assert_array_equal(r.image[~r.mask], r.original[~r.mask])
    assert np.abs(r.image[r.mask].astype(int) - r.original[r.mask]).mean() > 1  # the content inside changed
    again = ex.inpaint_yourself("coffee", "ns", "box", size=64, crop_seed=2)
    np.testing.assert_array_equal(again.original, r.original)  # the crop depends on the crop seed only
    other = ex.inpaint_yourself("coffee", "ns", "box", size=64, crop_seed=3)
    assert not np.array_equal(other.original, r.original)


# ------------------------------------------------------------------------------------------ explain
def test_explain_gives_every_map_at_the_image_size(model):
    image = make_sample("china", "telea", 40, seed=0).image
    e = ex.explain(model, image)
    for name in ("prob", "edge", "reverse", "high_share", "floor"):
        a = getattr(e, name)
        assert a.shape == (40, 40), name
        assert 0 <= a.min() and a.max() <= 1, name
    assert e.saff_weights.shape == (2, 2, 40, 40) and e.residual.shape == (3, 40, 40)
    np.testing.assert_allclose(e.prob, predict(model, image), atol=1e-5)  # the same map as the public call
    w = np.abs(e.saff_weights)
    np.testing.assert_allclose(e.high_share, (w[:, 0] / (w[:, 0] + w[:, 1])).mean(0), rtol=1e-5)
    assert list(e.energy) == list(ex.LEVELS) and all(v > 0 for v in e.energy.values())
    assert e.high_fraction == pytest.approx(float((e.high_share > 0.5).mean()))


def test_the_residual_is_high_pass(model):
    flat = np.full((32, 32, 3), 120, np.uint8)
    ramp = np.repeat(np.linspace(0, 255, 32).astype(np.uint8)[None, :, None], 32, 0).repeat(3, 2)
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    mags = [np.abs(ex.explain(model, im).residual).mean() for im in (flat, ramp, noisy)]
    assert mags[0] < 1e-6 and mags[1] < 0.05 * mags[2]  # flat and linear ramps pass nothing; noise passes
    shown = ex.residual_magnitude(ex.explain(model, noisy).residual)
    assert shown.shape == (32, 32) and shown.max() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ thresholds
def test_overlay_scores_show_the_toggles_inflating_f1():
    prob, mask = _blob_case()
    raw = ex.overlay_scores(prob, mask, 0.5)
    assert not raw.flagged.any() and raw.f1 == 0.0  # a low-confidence map never passes 0.5
    mm = ex.overlay_scores(prob, mask, 0.5, minmax=True)
    assert mm.flagged.any() and mm.f1 > raw.f1 and mm.standard == threshold_scores(prob, mask, 0.5)
    both = ex.overlay_scores(prob, mask, 0.5, minmax=True, macro=True)
    assert both.f1 > mm.f1
    assert both.f1 == pytest.approx(threshold_scores(prob, mask, 0.5, minmax=True, macro=True)["f1"])
    np.testing.assert_array_equal(ex.overlay_scores(prob, mask, 0.3).flagged, prob > 0.3)


@pytest.mark.parametrize("t", [0.2, 0.3, 0.33, 0.45])
def test_the_operating_point_lies_on_sklearns_curves(t):
    prob, mask = _blob_case(1)
    p = ex.operating_point(prob, mask, t)
    fpr, tpr, thr = roc_curve(mask.ravel(), prob.ravel(), drop_intermediate=False)
    k = int(np.nonzero(thr > t)[0].max())  # sklearn flags >= thr; the smallest score above t
    assert p["fpr"] == pytest.approx(fpr[k]) and p["tpr"] == pytest.approx(tpr[k])
    s = threshold_scores(prob, mask, t)
    assert p["recall"] == pytest.approx(s["recall"]) and p["precision"] == pytest.approx(s["precision"])


def test_curves_are_thinned_and_scored_by_sklearn():
    prob, mask = _blob_case(2, size=64)
    c = ex.curves(prob, mask, max_points=50)
    assert len(c["fpr"]) <= 50 and len(c["recall"]) <= 50
    assert (c["fpr"][0], c["tpr"][-1]) == (0.0, 1.0)
    assert c["auc"] == pytest.approx(roc_auc_score(mask.ravel(), prob.ravel()))
    assert c["ap"] == pytest.approx(average_precision_score(mask.ravel(), prob.ravel()))
    assert c["base_rate"] == pytest.approx(mask.mean())
    assert math.isnan(ex.pixel_auc(prob, np.zeros_like(mask)))


def test_edge_band_is_the_two_pixel_inner_ring():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    band = ex.edge_band(mask)
    assert band.sum() == 20 * 20 - 16 * 16 and not band[12:28, 12:28].any() and band[10, 10:30].all()
    perfect = ex.edge_scores(band.astype(float), band)
    assert perfect == {"auc": 1.0, "inside": 1.0, "outside": 0.0}
    assert math.isnan(ex.edge_scores(np.zeros((40, 40)), np.zeros((40, 40), bool))["auc"])


# ------------------------------------------------------------------------------------------ tables
def _data():
    samples = [make_sample("china", f, 32, seed=s) for f in ("telea", "ns") for s in (0, 1)]
    images = [s.image for s in samples] + [samples[0].original]
    masks = [s.mask for s in samples] + [np.zeros((32, 32), bool)]
    return SimpleNamespace(test_images=images, test_masks=masks, test_fills=["telea"] * 2 + ["ns"] * 2 + ["authentic"])


def test_pick_items_takes_the_first_manipulated_items_per_fill():
    items = ex.pick_items(_data(), per_fill=1, unseen=("ns",))
    assert [it.fill for it in items] == ["telea", "ns"]  # the authentic crop has no mask to show
    assert items[1].title.startswith("#2 ns (unseen)")
    assert len(ex.pick_items(_data(), per_fill=2)) == 4


def test_compare_models_and_fill_rows(model):
    d = _data()
    rows = ex.compare_models({"a": model, "b": model}, d.test_images[:4], d.test_masks[:4])
    assert [r["model"] for r in rows] == ["a", "b"] and rows[0] == {**rows[1], "model": "a"}
    assert all(0 <= rows[0][k] <= 1 for k in ("AUC", "F1", "IoU", "official F1"))
    probs = [np.clip(m * 0.6 + 0.2, 0, 1) for m in d.test_masks[:4]]
    result = {p: {"defi": per_method(probs, d.test_masks[:4], d.test_fills[:4], protocol=p)}
              for p in ("standard", "official")} | {"unseen_fills": ["ns"]}
    rows = ex.fill_rows(result, "official")
    assert [(r["fill"], r["unseen"]) for r in rows] == [("telea", False), ("ns", True), ("all", False)]
    assert rows[0]["f1"] == pytest.approx(result["official"]["defi"]["telea"]["f1"])
    with pytest.raises(ValueError, match="protocol"):
        ex.fill_rows(result, "macro")


def test_random_maps_score_chance_auc_but_inflated_macro_f1():
    masks = [m for m in _data().test_masks if m.any()]
    maps = ex.random_maps(masks, seed=0)
    assert [m.shape for m in maps] == [m.shape for m in masks]
    np.testing.assert_array_equal(maps[0], ex.random_maps(masks, seed=0)[0])
    inf = protocol_inflation(maps, masks)
    assert abs(inf["auc"] - 0.5) < 0.1 and inf["minmax_macro_f1"] > inf["raw_positive_f1"] + 0.1


def test_committed_study_is_none_for_a_placeholder(monkeypatch):
    import kit.defi.assets as assets

    monkeypatch.setattr(assets, "committed_results", lambda: {"placeholder": True})
    assert ex.committed_study() is None
    monkeypatch.setattr(assets, "committed_results", lambda: {"evaluation": {"standard": {}}, "steps": 3})
    assert ex.committed_study()["steps"] == 3


def test_markdown_table():
    text = ex.markdown_table([{"a": "x", "b": 0.12345, "c": float("nan")}, {"a": "y", "b": 1, "c": True}], digits=2)
    assert text.splitlines() == ["| a | b | c |", "|---|---|---|", "| x | 0.12 | - |", "| y | 1 | yes |"]
    with pytest.raises(ValueError, match="empty"):
        ex.markdown_table([])
