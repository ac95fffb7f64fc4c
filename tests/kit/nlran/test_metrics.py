"""kit.nlran.metrics: every number against scikit-learn computed independently here, JSON-ability, missing
classes, bad input, and the paper table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    auc,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize

from kit.nlran.metrics import (
    PAPER,
    PAPER_BASELINES,
    PAPER_SOURCE,
    classification_report,
    paper_table_markdown,
)
from kit.nlran.phantom import CLASSES


def _data(n: int = 60, k: int = 3, seed: int = 0, skill: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += skill  # informative but imperfect
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


def test_every_number_matches_sklearn():
    y, p = _data()
    rep = classification_report(y, p)
    names = list(CLASSES)
    pred = p.argmax(axis=1)
    assert rep["class_names"] == names and rep["n"] == 60
    assert rep["support"] == [int((y == c).sum()) for c in range(3)]
    assert rep["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert rep["auc_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    yb = label_binarize(y, classes=[0, 1, 2])
    assert rep["auc_micro"] == pytest.approx(roc_auc_score(yb.ravel(), p.ravel()), abs=1e-12)
    for c, name in enumerate(names):
        assert rep["auc_per_class"][name] == pytest.approx(roc_auc_score(y == c, p[:, c]), abs=1e-12)
    for avg in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(y, pred, average=avg)
        assert rep[f"precision_{avg}"] == pytest.approx(pr, abs=1e-12)
        assert rep[f"recall_{avg}"] == pytest.approx(rc, abs=1e-12)
        assert rep[f"f1_{avg}"] == pytest.approx(f1, abs=1e-12)
    pr, rc, f1, _ = precision_recall_fscore_support(y, pred, average=None)
    for c, name in enumerate(names):
        assert rep["precision_per_class"][name] == pytest.approx(pr[c], abs=1e-12)
        assert rep["recall_per_class"][name] == pytest.approx(rc[c], abs=1e-12)
        assert rep["f1_per_class"][name] == pytest.approx(f1[c], abs=1e-12)
    assert rep["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert rep["auc_classes"] == names and rep["auc_skipped"] == []


def test_roc_curves_match_sklearn_and_their_areas_match_the_aucs():
    y, p = _data(seed=1)
    rep = classification_report(y, p)
    for c, name in enumerate(CLASSES):
        fpr, tpr, _ = roc_curve(y == c, p[:, c])
        np.testing.assert_allclose(rep["roc"][name]["fpr"], fpr)
        np.testing.assert_allclose(rep["roc"][name]["tpr"], tpr)
        assert auc(fpr, tpr) == pytest.approx(rep["auc_per_class"][name], abs=1e-12)
    yb = label_binarize(y, classes=[0, 1, 2]).ravel()
    fpr, tpr, _ = roc_curve(yb, p.ravel())
    np.testing.assert_allclose(rep["roc"]["micro"]["fpr"], fpr)
    np.testing.assert_allclose(rep["roc"]["micro"]["tpr"], tpr)
    # macro curve: per-class TPR interpolated on the union of FPRs, averaged (sklearn's ROC example recipe)
    curves = [roc_curve(y == c, p[:, c])[:2] for c in range(3)]
    grid = np.unique(np.concatenate([f for f, _ in curves]))
    mean_tpr = sum(np.interp(grid, f, t) for f, t in curves) / 3
    np.testing.assert_allclose(rep["roc"]["macro"]["fpr"], grid)
    np.testing.assert_allclose(rep["roc"]["macro"]["tpr"], mean_tpr)
    assert abs(auc(grid, mean_tpr) - rep["auc_macro"]) < 0.05  # close, not equal (documented)


def test_report_is_json_serialisable_plain_python():
    y, p = _data(n=30, seed=2)
    rep = classification_report(y, p)
    text = json.dumps(rep, allow_nan=False)  # no NaN / inf anywhere
    assert json.loads(text) == rep

    def walk(v):
        if isinstance(v, dict):
            for w in v.values():
                walk(w)
        elif isinstance(v, list):
            for w in v:
                walk(w)
        else:
            assert v is None or type(v) in (int, float, str), type(v)

    walk(rep)


def test_class_missing_from_y_true_is_skipped_in_the_auc_macro_mean():
    y, p = _data(n=40, seed=3)
    keep = y != 1
    y, p = y[keep], p[keep]
    rep = classification_report(y, p, class_names=("a", "b", "c"))
    assert rep["auc_classes"] == ["a", "c"] and rep["auc_skipped"] == ["b"]
    assert rep["auc_per_class"]["b"] is None and rep["roc"]["b"] is None
    expect = np.mean([roc_auc_score(y == 0, p[:, 0]), roc_auc_score(y == 2, p[:, 2])])
    assert rep["auc_macro"] == pytest.approx(expect, abs=1e-12)
    assert math.isfinite(rep["auc_macro"])
    yb = label_binarize(y, classes=[0, 1, 2])
    assert rep["auc_micro"] == pytest.approx(roc_auc_score(yb.ravel(), p.ravel()), abs=1e-12)
    pred = p.argmax(axis=1)
    pr, rc, f1, _ = precision_recall_fscore_support(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert rep["precision_macro"] == pytest.approx(pr) and rep["f1_macro"] == pytest.approx(f1)
    assert rep["confusion_matrix"] == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    assert len(rep["confusion_matrix"]) == 3 and rep["confusion_matrix"][1] == [0, 0, 0]
    json.dumps(rep, allow_nan=False)


def test_perfect_and_two_class_cases():
    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.eye(3)[y] * 0.8 + 0.2 / 3
    rep = classification_report(y, p)
    assert rep["auc_macro"] == 1.0 and rep["auc_micro"] == 1.0 and rep["accuracy"] == 1.0
    assert rep["precision_macro"] == 1.0 and rep["f1_weighted"] == 1.0
    y2 = np.array([0, 1, 1, 0, 1])
    p2 = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9]])
    rep2 = classification_report(y2, p2, class_names=None)
    assert rep2["class_names"] == ["class 0", "class 1"]
    assert rep2["auc_per_class"]["class 1"] == pytest.approx(roc_auc_score(y2, p2[:, 1]))
    micro = roc_auc_score(np.eye(2)[y2].ravel(), p2.ravel())
    assert rep2["auc_micro"] == pytest.approx(micro)


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        (np.zeros((3, 1), int), np.full((3, 3), 1 / 3), "y_true must be 1D"),
        (np.zeros(3, int), np.full(3, 1 / 3), "probs must be 2D"),
        (np.zeros(4, int), np.full((3, 3), 1 / 3), "4 labels but probs has 3 rows"),
        (np.array([0, 1, 3]), np.full((3, 3), 1 / 3), r"y_true must be in \[0, 2\]"),
        (np.array([0, 1, -1]), np.full((3, 3), 1 / 3), r"y_true must be in \[0, 2\]"),
        (np.array([0, 1, 2]), np.ones((3, 3)), "sum.* to 1"),
        (np.array([0, 1, 2]), np.array([[np.nan, 0.5, 0.5]] * 3), "NaN"),
        (np.array([0.5, 1, 2]), np.full((3, 3), 1 / 3), "integer"),
        (np.array([1, 1, 1]), np.full((3, 3), 1 / 3), "single class"),
        (np.zeros(0, int), np.zeros((0, 3)), "empty"),
    ],
)
def test_bad_input_raises(y, p, match):
    with pytest.raises(ValueError, match=match):
        classification_report(y, p)


def test_wrong_number_of_class_names_raises():
    y, p = _data(n=12)
    with pytest.raises(ValueError, match="class_names has 2 names"):
        classification_report(y, p, class_names=("a", "b"))


def test_paper_numbers_and_table():
    assert PAPER == {"auc": 0.9903, "precision": 0.9473, "f1": 0.9462}
    assert "2408.04300" in PAPER_SOURCE
    assert all(v is None for b in PAPER_BASELINES.values() for v in b.values())
    table = paper_table_markdown(None)
    assert "0.9903" in table and "0.9473" in table and "0.9462" in table and "ours" not in table
    y, p = _data(n=30, seed=4)
    rep = classification_report(y, p)
    one = paper_table_markdown(rep)
    assert f"{rep['auc_macro']:.4f}" in one and f"{rep['f1_weighted']:.4f}" in one
    assert one.count("| ours |") == 2
    many = paper_table_markdown({"A": rep, "B": rep})
    assert "| A |" in many and "| B |" in many
    rows = [r for r in many.splitlines() if r.startswith("|")]
    assert all(r.count("|") == 7 for r in rows)  # 6 columns everywhere
    with pytest.raises(ValueError, match="not a classification_report"):
        paper_table_markdown({"A": {"x": 1}})
