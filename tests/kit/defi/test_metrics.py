"""Tests of kit.defi.metrics against per-image loops written here with sklearn and numpy, and hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score, roc_auc_score

from kit.defi.metrics import (
    official_scores,
    per_method,
    protocol_inflation,
    roc_pr_curves,
    standard_scores,
    threshold_scores,
)

torch.set_num_threads(1)


def _blob(h, w, top, left, size):
    m = np.zeros((h, w), bool)
    m[top:top + size, left:left + size] = True
    return m


def _data(seed=0):
    """Maps with some signal, images of different sizes, an all-authentic image and a constant map."""
    rng = np.random.default_rng(seed)
    masks = [_blob(16, 20, 3, 4, 6), _blob(12, 12, 0, 0, 5), np.zeros((10, 14), bool), _blob(16, 16, 8, 8, 7),
             _blob(8, 8, 2, 2, 3)]
    probs = [np.clip(0.3 * m + 0.6 * rng.random(m.shape), 0, 1) for m in masks]
    probs[1] = 0.2 * probs[1]  # low confidence: raw maps never pass 0.5
    probs[4] = np.full((8, 8), 0.4)  # a constant map
    return probs, masks


def _minmax(p):
    lo, hi = p.min(), p.max()
    return np.zeros_like(p) if hi == lo else (p - lo) / (hi - lo)


def _official_by_hand(probs, masks):
    auc, f1, iou = [], [], []
    for p, m in zip(probs, masks):
        pn = _minmax(np.asarray(p, np.float64))
        y = m.ravel().astype(int)
        auc.append(roc_auc_score(y, pn.ravel()) if 0 < y.sum() < y.size else 0.0)
        pred = (pn > 0.5).ravel().astype(int)
        f1.append(f1_score(y, pred, average="macro", zero_division=0))
        iou.append(jaccard_score(y, pred, zero_division=0))
    return np.mean(auc), np.mean(f1), np.mean(iou)


def test_official_scores_match_a_per_image_sklearn_loop():
    probs, masks = _data()
    got = official_scores(probs, masks)
    auc, f1, iou = _official_by_hand(probs, masks)
    assert got["protocol"] == "official" and got["n_images"] == 5
    assert got["auc"] == pytest.approx(auc, abs=1e-9)
    assert got["f1"] == pytest.approx(f1, abs=1e-9)
    assert got["iou"] == pytest.approx(iou, abs=1e-9)
    # the all-authentic image adds AUC 0 but counts: the mean over the other four, times 4/5
    others = official_scores(probs[:2] + probs[3:], masks[:2] + masks[3:])
    assert got["auc"] == pytest.approx(others["auc"] * 4 / 5, abs=1e-12)


def test_official_scores_accept_tensors_and_stacked_arrays():
    probs, masks = _data(1)
    want = official_scores(probs, masks)
    got = official_scores([torch.from_numpy(p).float() for p in probs], [torch.from_numpy(m) for m in masks])
    assert got["f1"] == pytest.approx(want["f1"], abs=1e-6)
    assert got["auc"] == pytest.approx(want["auc"], abs=1e-6)
    stacked = official_scores(np.stack([probs[0], probs[0]]), np.stack([masks[0], masks[0]]).astype(np.uint8))
    assert stacked["iou"] == pytest.approx(official_scores(probs[:1], masks[:1])["iou"])


def test_standard_scores_match_a_per_image_loop_without_authentic_images():
    probs, masks = _data(2)
    got = standard_scores(probs, masks, threshold=0.5)
    f1, iou, auc, oracle, fpr = [], [], [], [], []
    for p, m in zip(probs, masks):
        y = m.ravel().astype(int)
        pred = (p > 0.5).ravel().astype(int)
        if not m.any():
            fpr.append(pred.mean())
            continue
        f1.append(f1_score(y, pred, zero_division=0))
        iou.append(jaccard_score(y, pred, zero_division=0))
        auc.append(roc_auc_score(y, p.ravel()))
        oracle.append(max(f1_score(y, (p.ravel() >= t).astype(int), zero_division=0) for t in np.unique(p)))
    all_m, all_p = np.concatenate([m.ravel() for m in masks]), np.concatenate([p.ravel() for p in probs])
    pooled = roc_auc_score(all_m, all_p)
    assert got["protocol"] == "standard" and got["threshold"] == 0.5
    assert (got["n_images"], got["n_manipulated"], got["n_authentic"]) == (5, 4, 1)
    for key, want in [("f1", f1), ("iou", iou), ("auc", auc), ("oracle_f1", oracle), ("authentic_fpr", fpr)]:
        assert got[key] == pytest.approx(np.mean(want), abs=1e-9), key
    assert got["auc_pooled"] == pytest.approx(pooled, abs=1e-9)
    assert got["oracle_f1"] >= got["f1"]
    # adding authentic images changes nothing but their own counts
    more = standard_scores(probs + [probs[2]], masks + [masks[2]])
    assert more["f1"] == got["f1"] and more["n_authentic"] == 2


def test_standard_scores_without_a_group_are_nan_not_errors():
    p = np.full((4, 4), 0.7)
    only_authentic = standard_scores([p], [np.zeros((4, 4), bool)])
    assert math.isnan(only_authentic["f1"]) and math.isnan(only_authentic["auc_pooled"])
    assert only_authentic["authentic_fpr"] == 1.0
    assert math.isnan(standard_scores([p], [_blob(4, 4, 0, 0, 2)])["authentic_fpr"])


def test_macro_f1_is_the_mean_of_the_two_class_f1s():
    rng = np.random.default_rng(3)
    m = _blob(10, 10, 2, 3, 5)
    p = np.clip(0.4 * m + 0.6 * rng.random(m.shape), 0, 1)
    y, pred = m.ravel().astype(int), (p > 0.5).ravel().astype(int)
    f1_pos = f1_score(y, pred, pos_label=1)
    f1_neg = f1_score(y, pred, pos_label=0)
    assert threshold_scores(p, m, 0.5, macro=True)["f1"] == pytest.approx((f1_pos + f1_neg) / 2, abs=1e-12)
    assert threshold_scores(p, m, 0.5)["f1"] == pytest.approx(f1_pos, abs=1e-12)


def test_minmax_of_a_constant_map_is_zero():
    m = _blob(6, 6, 1, 1, 3)
    const = np.full((6, 6), 0.7)
    raw = threshold_scores(const, m, 0.5)  # everything flagged
    assert raw["recall"] == 1.0 and raw["precision"] == pytest.approx(9 / 36)
    scaled = threshold_scores(const, m, 0.5, minmax=True)  # all zeros: nothing flagged
    assert scaled == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    off = official_scores([const], [m])
    assert off["auc"] == pytest.approx(0.5) and off["iou"] == 0.0
    assert off["f1"] == pytest.approx(f1_score(m.ravel(), np.zeros(36, int), pos_label=0) / 2)


def test_threshold_scores_match_hand_counts_on_a_4x4_example():
    prob = np.arange(16, dtype=np.float64).reshape(4, 4) / 15
    mask = _blob(4, 4, 1, 1, 2)  # pixels 5, 6, 9, 10
    # t = 0.5 flags pixels 8..15: TP 2 (9, 10), FP 6, FN 2, TN 6
    assert threshold_scores(prob, mask, 0.5) == pytest.approx(
        {"precision": 2 / 8, "recall": 2 / 4, "f1": 4 / 12, "iou": 2 / 10})
    # the authentic class there: TP 6, FP 2, FN 6 -> precision 6/8, recall 6/12, F1 12/20
    assert threshold_scores(prob, mask, 0.5, macro=True) == pytest.approx(
        {"precision": (2 / 8 + 6 / 8) / 2, "recall": (2 / 4 + 6 / 12) / 2, "f1": (4 / 12 + 12 / 20) / 2,
         "iou": 2 / 10})
    # t = 0.3 flags pixels 5..15: TP 4, FP 7, FN 0
    assert threshold_scores(prob, mask, 0.3) == pytest.approx(
        {"precision": 4 / 11, "recall": 1.0, "f1": 8 / 15, "iou": 4 / 11})
    # t = 0.9 flags 14, 15 (no hit); t = 1 flags nothing: every score 0
    assert threshold_scores(prob, mask, 0.9) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    assert threshold_scores(prob, mask, 1.0)["f1"] == 0.0
    # min-max of a map already spanning [0, 1] changes nothing; of a squeezed one it restores the spread
    assert threshold_scores(0.1 + 0.2 * prob, mask, 0.5, minmax=True) == pytest.approx(
        threshold_scores(prob, mask, 0.5))


def test_roc_pr_curves_are_monotonic():
    rng = np.random.default_rng(4)
    m = _blob(12, 12, 3, 3, 6)
    p = np.clip(0.3 * m + 0.7 * rng.random(m.shape), 0, 1)
    c = roc_pr_curves(p, m)
    assert np.all(np.diff(c["fpr"]) >= 0) and np.all(np.diff(c["tpr"]) >= 0)
    assert c["fpr"][0] == 0 and c["tpr"][-1] == 1 and c["fpr"][-1] == 1
    assert np.all(np.diff(c["roc_thresholds"]) < 0)
    assert np.all(np.diff(c["recall"]) <= 0) and np.all(np.diff(c["pr_thresholds"]) > 0)
    assert len(c["pr_thresholds"]) == len(c["precision"]) - 1 == len(c["recall"]) - 1
    assert np.trapezoid(c["tpr"], c["fpr"]) == pytest.approx(roc_auc_score(m.ravel(), p.ravel()))
    with pytest.raises(ValueError, match="single class"):
        roc_pr_curves(p, np.zeros_like(m))


def test_protocol_inflation_rewards_useless_maps():
    rng = np.random.default_rng(5)
    masks = [_blob(48, 48, 4 + i, 6, 15) for i in range(6)]  # about 10 % of each image
    # skewed noise that never passes 0.5: chance AUC, nothing flagged raw, ~16 % flagged after min-max
    probs = [0.3 * rng.random(m.shape) ** 4 for m in masks]
    out = protocol_inflation(probs, masks)
    assert out["n_manipulated"] == 6 and abs(out["auc"] - 0.5) < 0.05
    assert out["raw_positive_f1"] == 0.0
    assert out["raw_macro_f1"] > 0.45  # the authentic class alone scores ~0.95
    assert out["minmax_positive_f1"] < 0.2
    assert out["minmax_macro_f1"] > 0.45 and out["minmax_macro_f1"] - out["minmax_positive_f1"] > 0.25
    # the official protocol reports the inflated number
    assert official_scores(probs, masks)["f1"] == pytest.approx(out["minmax_macro_f1"], abs=1e-12)
    # min-max lifts a well-ranked but low-confidence map from 0 to a perfect positive F1
    shy = protocol_inflation([0.05 + 0.3 * m for m in masks], masks)
    assert shy["raw_positive_f1"] == 0.0 and shy["minmax_positive_f1"] == 1.0
    with pytest.raises(ValueError, match="no manipulated"):
        protocol_inflation([probs[0]], [np.zeros((48, 48), bool)])


def test_per_method_groups_images():
    probs, masks = _data(6)
    methods = ["telea", "ns", "authentic", "telea", "ns"]
    out = per_method(probs, masks, methods)
    assert list(out) == ["telea", "ns", "authentic", "all"]
    assert out["telea"] == standard_scores([probs[0], probs[3]], [masks[0], masks[3]])
    assert out["all"] == standard_scores(probs, masks)
    assert out["authentic"]["n_authentic"] == 1 and math.isnan(out["authentic"]["f1"])
    off = per_method(probs, masks, methods, protocol="official")
    assert off["ns"] == official_scores([probs[1], probs[4]], [masks[1], masks[4]])
    assert per_method(probs, masks, methods, threshold=0.3)["all"]["threshold"] == 0.3
    with pytest.raises(ValueError, match="protocol"):
        per_method(probs, masks, methods, protocol="imdl")
    with pytest.raises(ValueError, match="one length"):
        per_method(probs, masks, methods[:3])
    with pytest.raises(ValueError, match="'all'"):
        per_method(probs, masks, ["all"] * 5)


def test_bad_inputs_raise_clear_errors():
    probs, masks = _data()
    bad = list(masks)
    bad[1] = np.zeros((12, 13), bool)
    with pytest.raises(ValueError, match=r"probs\[1\].*masks\[1\].*\(12, 12\).*\(12, 13\)"):
        official_scores(probs, bad)
    with pytest.raises(ValueError, match=r"\(4, 4\) \(prob\) and \(4, 5\) \(mask\)"):
        threshold_scores(np.zeros((4, 4)), np.zeros((4, 5), bool), 0.5)
    over = list(probs)
    over[3] = probs[3] * 3
    with pytest.raises(ValueError, match=r"probs\[3\].*\[0, 1\]"):
        standard_scores(over, masks)
    nan = list(probs)
    nan[0] = probs[0].copy()
    nan[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        standard_scores(nan, masks)
    with pytest.raises(ValueError, match="one length"):
        official_scores(probs, masks[:3])
    with pytest.raises(ValueError, match="empty"):
        standard_scores([], [])
    with pytest.raises(ValueError, match="wrap a single image"):
        official_scores(probs[0], masks[0])
    with pytest.raises(ValueError, match=r"masks\[0\].*bool"):
        official_scores(probs[:1], [np.full(masks[0].shape, 0.5)])
    with pytest.raises(ValueError, match="threshold"):
        threshold_scores(probs[0], masks[0], math.nan)
