"""Tests of kit.dtiil.metrics against hand computations on hand-made masks, maps and scores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from kit.dtiil.metrics import (
    _spacy_nlp,
    detection_metrics,
    false_positive_area,
    fit_threshold,
    mask_f1,
    mask_iou,
    normalize_word,
    pixel_auc,
    summarize,
    word_hit,
)

torch.set_num_threads(1)


def _masks():
    pred = np.zeros((4, 5), bool)
    pred[0:2, 0:3] = True  # 6 pixels
    gt = np.zeros((4, 5), bool)
    gt[1:3, 1:3] = True  # 4 pixels; overlap rows 1, cols 1..2 = 2 pixels
    return pred, gt


def test_iou_and_f1_match_hand_counts():
    pred, gt = _masks()
    assert mask_iou(pred, gt) == pytest.approx(2 / 8)  # union 6 + 4 - 2
    assert mask_f1(pred, gt) == pytest.approx(2 * 2 / (6 + 4))
    assert mask_iou(pred, pred) == 1.0 and mask_f1(gt, gt) == 1.0
    assert mask_iou(pred, ~pred) == 0.0 and mask_f1(pred, ~pred) == 0.0


def test_empty_masks_conventions():
    empty = np.zeros((3, 3), bool)
    one = empty.copy()
    one[1, 1] = True
    assert mask_iou(empty, empty) == 1.0 and mask_f1(empty, empty) == 1.0
    assert mask_iou(one, empty) == 0.0 and mask_f1(empty, one) == 0.0


def test_masks_accept_01_arrays_and_tensors():
    pred, gt = _masks()
    assert mask_iou(pred.astype(np.uint8), torch.from_numpy(gt)) == pytest.approx(0.25)
    assert mask_f1(pred.astype(np.float32), gt) == pytest.approx(0.4)


@pytest.mark.parametrize("fn", [mask_iou, mask_f1])
def test_mask_metrics_reject_bad_inputs(fn):
    pred, gt = _masks()
    with pytest.raises(ValueError, match="one shape"):
        fn(pred, gt[:3])
    with pytest.raises(ValueError, match="binarize"):
        fn(pred.astype(np.float32) * 0.7, gt)
    with pytest.raises(ValueError, match="2-d"):
        fn(pred[None], gt[None])


def _pair_auc(scores, labels):
    """The AUC by counting pairs: P(score of a positive > score of a negative), ties one half."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_pixel_auc_matches_pair_counting():
    heat = np.array([[0.9, 0.2, 0.4], [0.4, 0.8, 0.1]])
    gt = np.array([[True, False, True], [False, True, False]])
    want = _pair_auc(heat.ravel(), gt.ravel())
    # positives 0.9, 0.4, 0.8 against negatives 0.2, 0.4, 0.1: 8 wins and one tie of 9 pairs
    assert want == pytest.approx(8.5 / 9)
    assert pixel_auc(heat, gt) == pytest.approx(want)
    assert pixel_auc(-heat, gt) == pytest.approx(1 - want)


def test_pixel_auc_undefined_and_bad_inputs():
    heat = np.random.default_rng(0).random((4, 4))
    assert math.isnan(pixel_auc(heat, np.zeros((4, 4), bool)))
    assert math.isnan(pixel_auc(heat, np.ones((4, 4), bool)))
    gt = np.eye(4, dtype=bool)
    with pytest.raises(ValueError, match="one shape"):
        pixel_auc(heat[:3], gt)
    bad = heat.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pixel_auc(bad, gt)


def test_false_positive_area():
    pred, _ = _masks()
    assert false_positive_area(pred) == pytest.approx(6 / 20)
    assert false_positive_area(np.zeros((2, 2), bool)) == 0.0
    with pytest.raises(ValueError):
        false_positive_area(np.full((2, 2), 0.5))


@pytest.mark.parametrize("word, want", [
    ("Circles", "circle"), ("crosses", "cross"), ("cross", "cross"), ("boxes", "box"), ("berries", "berry"),
    ("circle,", "circle"), ("\u201cRed\u201d", "red"), ("bus", "bus"), ("this", "this"), ("dishes", "dish"),
])
def test_normalize_word_rule(word, want):
    assert normalize_word(word, use_spacy=False) == want


def test_normalize_word_spacy_flag():
    if _spacy_nlp() is None:
        with pytest.raises(ValueError, match="en_core_web_sm"):
            normalize_word("circles", use_spacy=True)
    else:
        assert normalize_word("circles", use_spacy=True) == "circle"
    with pytest.raises(ValueError):
        normalize_word(3)  # type: ignore[arg-type]


def test_word_hit():
    assert word_hit("big red circles", "circle")
    assert word_hit(["big", "Red", "circle,"], "red")
    assert not word_hit("big red circle", "blue")
    assert word_hit("left of a square", "left of")  # every word of a phrase
    assert not word_hit("left square", "left of")
    assert not word_hit("", "circle") and not word_hit([], "circle")
    with pytest.raises(ValueError, match="gt_word"):
        word_hit("red circle", " , ")


def test_detection_direction_low_consistency_is_inconsistent():
    scores = [10, 20, 30, 70, 80, 90]
    labels = [1, 1, 1, 0, 0, 0]
    assert detection_metrics(scores, labels)["auc"] == pytest.approx(1.0)
    assert detection_metrics(scores, [1 - y for y in labels])["auc"] == pytest.approx(0.0)


def test_detection_metrics_at_threshold_match_hand_counts():
    scores = np.array([10.0, 40.0, 60.0, 35.0, 70.0, 90.0, 20.0])
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    out = detection_metrics(scores, labels, threshold=50)
    # predicted inconsistent (r < 50): 10, 40, 35, 20 -> TP 2, FN 1, FP 2, TN 2
    assert out["accuracy"] == pytest.approx(4 / 7)
    assert out["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 2 / 4) / 2)
    assert out["auc"] == pytest.approx(_pair_auc(100 - scores, labels))
    assert out["n"] == 7 and out["n_inconsistent"] == 3 and out["threshold"] == 50
    assert "accuracy" not in detection_metrics(scores, labels)
    assert math.isnan(detection_metrics([10, 20], [1, 1])["auc"])


def test_detection_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="one length"):
        detection_metrics([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        detection_metrics([-1, 50], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        detection_metrics([10, 50], [0, 2])
    with pytest.raises(ValueError, match="empty"):
        detection_metrics([], [])
    with pytest.raises(ValueError, match="threshold"):
        detection_metrics([10, 50], [0, 1], threshold=math.nan)


def test_fit_threshold_separates_separable_classes():
    scores = [5, 12, 30, 41, 55, 80, 95]
    labels = [1, 1, 1, 1, 0, 0, 0]
    t = fit_threshold(scores, labels)
    assert 41 < t < 55
    assert detection_metrics(scores, labels, threshold=t)["balanced_accuracy"] == 1.0


def test_fit_threshold_maximises_balanced_accuracy_with_the_smallest_tie():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=40)
    labels[:2] = (0, 1)
    scores = np.clip(np.round(50 + 20 * rng.standard_normal(40) - 15 * labels), 0, 100)
    t = fit_threshold(scores, labels)
    def ba_at(thr):  # by hand: mean of the two recalls
        flagged = scores < thr
        return (flagged[labels == 1].mean() + (~flagged[labels == 0]).mean()) / 2

    grid = np.arange(-1, 101.01, 0.25)  # integer scores: every plateau holds a grid point
    ba = np.array([ba_at(g) for g in grid])
    got = ba_at(t)
    assert got == pytest.approx(ba.max())
    first = grid[np.isclose(ba, ba.max())].min()  # the smallest grid point reaching the maximum
    assert np.sum(scores < t) == np.sum(scores < first)
    # a tie: both 20 and 60 separate nothing better than the other; the smaller (fewer flagged) wins
    assert fit_threshold([10, 30, 50, 70], [1, 0, 1, 0]) == pytest.approx(20.0)


def test_fit_threshold_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        fit_threshold([10, 20], [0, 0])


def test_summarize_means_by_subset():
    rows = [
        {"subset": "text", "iou": 0.5, "word_hit": True, "score": 40, "id": "a"},
        {"subset": "text", "iou": float("nan"), "word_hit": False, "score": 60, "id": "b"},
        {"subset": "image", "iou": 0.2, "word_hit": True, "score": 20},
        {"subset": "consistent", "iou": None, "fp_area": 0.1, "score": 90},
        {"subset": "consistent", "fp_area": 0.3, "score": 70},
    ]
    table = summarize(rows)
    assert list(table) == ["text", "image", "consistent", "all"]
    assert table["text"] == pytest.approx({"n": 2, "iou": 0.5, "word_hit": 0.5, "score": 50, "fp_area": math.nan},
                                          nan_ok=True)
    assert table["consistent"]["fp_area"] == pytest.approx(0.2)
    assert math.isnan(table["consistent"]["iou"])
    assert table["all"]["iou"] == pytest.approx(0.35) and table["all"]["n"] == 5
    assert "id" not in table["text"]
    assert "all" not in summarize(rows, overall=False)


def test_summarize_rejects_bad_rows():
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        summarize([{"subset": "text", "iou": 1.0}, {"iou": 0.0}])
    with pytest.raises(ValueError, match="'all'"):
        summarize([{"subset": "all", "iou": 1.0}])
