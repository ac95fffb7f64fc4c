"""D-TIIL's explore logic on hand-made results and rows: every number against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kit.dtiil import explore, metrics
from kit.dtiil.localize import LocalizeOptions, LocalizeResult, binarize, upsample

CAPTION = "a small yellow cross right of a small white square"
RUNS = ["small yellow cross", "small white square"]


def make_result(size: int = 32, grid: int = 32, n: int = 3, seed: int = 0) -> LocalizeResult:
    """A result whose maps follow the localiser's definitions: per-seed maps d_k at the latent grid, D = min-max
    of their mean upsampled to the image, masks = binarize at tau1 / tau2 (pixel space: grid = image size, as the
    ShapesWorld model)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:grid, :grid] / grid
    blob = np.exp(-((yy - 0.35) ** 2 + (xx - 0.6) ** 2) / 0.02)
    per_seed = (blob[None] + 0.3 * rng.random((n, grid, grid))).astype(np.float32)
    mean = per_seed.mean(0)
    d = (mean - mean.min()) / (mean.max() - mean.min())
    first = np.clip(d + 0.1 * rng.random(d.shape), 0, 1).astype(np.float32)
    o = LocalizeOptions()
    image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    return LocalizeResult(
        mask=binarize(d, o.tau2, (size, size)), heatmap=upsample(d, (size, size)), words=["small", "white", "square"],
        score=87.5, first_mask=binarize(first, o.tau1, (size, size)), first_heatmap=upsample(first, (size, size)),
        edited_image=image, seconds=1.0, runs=list(RUNS), run_scores=[0.2, 0.9], per_seed=per_seed,
        align_losses={"first": [1.0, 0.8, 0.7], "first_unet": [], "second": [0.9, 0.6, 0.5], "second_unet": []},
        embed_drift=rng.random(16).astype(np.float32), options=o)


# ------------------------------------------------------------------------------------------------ caption
def test_caption_segments_cover_the_caption_and_find_the_runs():
    segs = explore.caption_segments(CAPTION, RUNS, [0.2, 0.9], gt_word="white")
    assert "".join(s.text for s in segs) == CAPTION
    runs = {}
    for s in segs:
        if s.run is not None:
            runs.setdefault(s.run, []).append(s.text)
    assert ["".join(v) for v in runs.values()] == RUNS     # the second "small" goes to the second run
    assert all(s.predicted == (s.run == 1) for s in segs)  # the best score
    assert [s.text for s in segs if s.gt] == ["white"]
    assert {s.shade for s in segs if s.run == 0} == {0.0} and {s.shade for s in segs if s.run == 1} == {1.0}


def test_caption_segments_defaults_punctuation_and_lemmas():
    cap = "a big red circle, and two blue squares"
    segs = explore.caption_segments(cap, gt_word="square")   # runs from kit.dtiil.words, no scores
    assert "".join(s.text for s in segs) == cap
    texts = {}
    for s in segs:
        if s.run is not None:
            texts.setdefault(s.run, []).append(s.text)
    assert "".join(texts[0]) == "big red circle,"             # the run keeps its punctuation
    assert not any(s.predicted for s in segs) and {s.shade for s in segs} == {0.0}
    assert [s.text for s in segs if s.gt] == ["squares"]      # matched on the lemma
    assert [s.run for s in explore.caption_segments(cap, predicted=1) if s.predicted][0] == 1


def test_caption_segments_refuse_bad_inputs():
    with pytest.raises(ValueError, match="one value per run"):
        explore.caption_segments(CAPTION, RUNS, [0.1])
    with pytest.raises(ValueError, match="not in the caption"):
        explore.caption_segments(CAPTION, ["green circle"])
    with pytest.raises(ValueError, match="predicted must index"):
        explore.caption_segments(CAPTION, RUNS, predicted=2)
    with pytest.raises(ValueError, match="non-empty"):
        explore.caption_segments("  ")


def test_caption_html_marks_the_predicted_run_and_escapes():
    out = explore.caption_html(CAPTION, RUNS, [0.9, 0.2], gt_word="yellow")
    assert out.count("kit-predicted") == 1
    pred = out.split("kit-predicted")[1].split("</span>")[0]
    assert "small <u class='kit-gt'>yellow</u> cross" in pred and "color:#c00" in pred
    assert "score 0.9" in pred and out.count("class='kit-run") == 2
    assert "&lt;" in explore.caption_html("a red circle <b>", ["red circle"])
    assert explore.predicted_index([0.1, 0.5, 0.5]) == 1 and explore.predicted_index([]) is None


# ------------------------------------------------------------------------------------------------ region
def test_region_readout_matches_rebinarize_and_the_metrics():
    r = make_result()
    gt = np.zeros((32, 32), bool)
    gt[6:18, 12:26] = True
    for tau, first in ((0.3, False), (0.5, False), (0.15, True)):
        out = explore.region_readout(r, tau, gt, first=first)
        np.testing.assert_array_equal(out.mask, r.rebinarize(tau, first=first))
        assert out.iou == metrics.mask_iou(out.mask, gt) and out.f1 == metrics.mask_f1(out.mask, gt)
        assert out.area == pytest.approx(out.mask.mean())
    np.testing.assert_array_equal(explore.region_readout(r, 0.3).mask, r.mask)   # tau2: the result's own mask
    none = explore.region_readout(r, 0.3, None)
    assert none.iou is None and none.f1 is None
    assert explore.region_readout(r, 0.3, np.zeros((32, 32), bool)).iou is None   # an empty GT: a consistent pair
    with pytest.raises(ValueError, match="shape"):
        explore.region_readout(r, 0.3, np.ones((8, 8), bool))


def test_mask_outline_surrounds_the_mask():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    xs, ys = explore.mask_outline(m)
    assert not np.isnan(xs).any() and xs.min() == 2.5 and xs.max() == 8.5 and ys.min() == 1.5 and ys.max() == 4.5
    m[7:9, 0:2] = True   # a second region touching the border: two loops
    xs, ys = explore.mask_outline(m)
    assert np.isnan(xs).sum() == 1 and np.nanmin(xs) == -0.5
    assert [len(a) for a in explore.mask_outline(np.zeros((4, 4), bool))] == [0, 0]


# ------------------------------------------------------------------------------------------------ steps, seeds
def test_step_strip_is_the_pipeline_in_order():
    from kit.dtiil.words import largest_region

    r = make_result()
    image = np.full((32, 32, 3), 9, np.uint8)
    panels = explore.step_strip(r, image)
    assert [p.kind for p in panels] == ["image", "map", "mask", "image", "map", "mask", "image"]
    assert panels[0].title == "I" and panels[2].title.startswith("M1") and panels[5].title == "M (τ2 0.3)"
    np.testing.assert_array_equal(panels[0].data, image)
    np.testing.assert_array_equal(panels[4].data, r.heatmap)
    np.testing.assert_array_equal(panels[5].data, r.mask)
    x1, y1, x2, y2 = largest_region(r.mask)[1]
    np.testing.assert_array_equal(panels[6].data, r.edited_image[y1:y2, x1:x2])
    assert len(explore.step_strip(r, image, crop=False)) == 6


def test_seed_maps_and_their_mean():
    r = make_result()
    np.testing.assert_allclose(explore.seed_map(r), r.heatmap, atol=1e-6)   # the mean is the final map
    for k in range(3):
        m = explore.seed_map(r, k)
        assert m.shape == (32, 32) and m.min() >= 0 and m.max() <= 1
    assert not np.allclose(explore.seed_map(r, 0), explore.seed_map(r, 1))
    agree = explore.seed_agreement(r)
    d = r.per_seed.reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(agree, [np.corrcoef(x, d.mean(0))[0, 1] for x in d])
    with pytest.raises(ValueError, match="seed index"):
        explore.seed_map(r, 3)
    same = make_result(n=1)
    assert explore.seed_agreement(same)[0] == pytest.approx(1.0)


def test_token_labels_and_running_mean():
    from kit.diffusion.text import build_tokenizer

    tok = build_tokenizer(["a", "red", "circle"], max_length=8)
    labels, n = explore.token_labels(tok, "a red circle")
    assert labels == ["<bos>", "a", "red", "circle", "<eos>", "<pad>", "<pad>", "<pad>"] and n == 5
    np.testing.assert_allclose(explore.running_mean([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="window"):
        explore.running_mean([1.0], 0)


# ------------------------------------------------------------------------------------------------ dataset views
ROWS = [
    {"subset": "consistent", "score": 95.0, "fp_area": 0.05, "id": "c0"},
    {"subset": "text", "score": 80.0, "iou": 0.5, "id": "t0"},
    {"subset": "consistent", "score": 75.0, "fp_area": 0.3, "id": "c1"},
    {"subset": "image", "score": 70.0, "iou": 0.1, "id": "i0"},
    {"subset": "text", "score": 90.0, "iou": math.nan, "id": "t1"},
]


def test_roc_points_and_operating_point_against_sklearn():
    from sklearn.metrics import roc_auc_score

    roc = explore.roc_points(ROWS)
    y = [r["subset"] != "consistent" for r in ROWS]
    assert roc["auc"] == pytest.approx(roc_auc_score(y, [100 - r["score"] for r in ROWS]))
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and roc["thresholds"][0] == 0.0
    for fpr, tpr, thr in zip(roc["fpr"], roc["tpr"], roc["thresholds"]):
        assert explore.operating_point(ROWS, thr) == pytest.approx((fpr, tpr))   # flag r < threshold
    assert explore.operating_point(ROWS, 85.0) == (0.5, pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="both"):
        explore.roc_points([r for r in ROWS if r["subset"] == "text"])


def test_worst_cases_order_and_skip_missing_values():
    assert [r["id"] for r in explore.worst_cases(ROWS, 5)] == ["i0", "t0"]   # NaN and consistent rows skipped
    assert [r["id"] for r in explore.worst_cases(ROWS, 1, "fp_area")] == ["c1"]
    with pytest.raises(ValueError, match="metric"):
        explore.worst_cases(ROWS, 2, "score")


def test_comparison_rows_detection_and_markdown():
    rows = [dict(r, word_hit=1.0, random_iou=0.05, cross_attention_iou=0.2) if r["subset"] != "consistent" else
            dict(r, saliency_fp_area=0.1) for r in ROWS]
    table = metrics.summarize(rows)
    out = explore.comparison_rows(table)
    by = {(r["subset"], r["method"]): r for r in out}
    assert by[("text", "D-TIIL")]["iou"] == 0.5 and by[("text", "D-TIIL")]["word_acc"] == 1.0
    assert by[("text", "D-TIIL")]["n"] == 2
    assert by[("image", "random mask, predicted area")]["iou"] == 0.05
    assert ("consistent", "random mask, predicted area") not in by   # no number there
    assert by[("consistent", "D-TIIL")]["fp_area"] == pytest.approx(0.175)
    assert by[("consistent", "saliency, whole object")]["fp_area"] == pytest.approx(0.1)
    assert math.isnan(by[("consistent", "D-TIIL")]["iou"])
    md = explore.markdown_table(out, ["subset", "method", "iou"])
    assert md.splitlines()[1] == "|---|---|---|" and "| consistent | D-TIIL | — |" in md
    det = explore.subset_detection(ROWS, ROWS)
    assert set(det) == {"all", "text", "image"} and det["all"]["threshold_fitted_on"] == "validation"
    assert det["image"]["n"] == 3 and det["text"]["threshold"] == det["all"]["threshold"]
    assert det["image"]["auc"] == pytest.approx(metrics.detection_metrics([95, 75, 70], [0, 0, 1])["auc"])


# ------------------------------------------------------------------------------------------------ scorers, export
def test_build_word_scorer_by_name():
    from kit.dtiil.words import OracleScorer

    oracle = explore.build_word_scorer("oracle", resolution=48)
    assert isinstance(oracle, OracleScorer) and oracle.canvas == 48
    with pytest.raises(ValueError, match="one of"):
        explore.build_word_scorer("dino")


def test_shapes_tiil_export_reads_back(tmp_path):
    from kit.dtiil.experiment import shapes_pairs

    pairs = explore.export_shapes_tiil(tmp_path / "tiil", 6, seed=3)
    assert [p.caption for p in pairs] == [p.caption for p in shapes_pairs(6, seed=3)]
    assert (tmp_path / "tiil" / "consistent.json").is_file()
    check = explore.tiil_round_trip(pairs, tmp_path / "tiil")
    assert check["ok"] and check["n"] == 6 and check["n_consistent"] == 3
    assert all(v == 6 for v in check["matches"].values())
    with pytest.raises(ValueError, match="were exported"):
        explore.tiil_round_trip(pairs[:4], tmp_path / "tiil")


def test_relation_pairs_swap_the_relation_and_mark_both_objects():
    from kit.data.shapes import RELATIONS
    from kit.dtiil.experiment import OPPOSITE, relation_pairs

    pairs = relation_pairs(6, seed=3)
    assert len(pairs) == 6 and relation_pairs(6, seed=3)[2].caption == pairs[2].caption
    for p in pairs:
        assert p.subset == "relation" and p.kind == "relation"
        rel = [r for r in RELATIONS if f" {r} " in p.caption]
        assert len(rel) == 1 and OPPOSITE[rel[0]].split()[0] != p.word and rel[0].split()[0] == p.word
        assert p.mask.shape == (32, 32) and p.mask.mean() > 0.03
    with pytest.raises(ValueError, match="n must be"):
        relation_pairs(-1)


def test_summary_keeps_subsets_and_drops_text_columns():
    from kit.dtiil.experiment import summary

    rows = [{"subset": "text", "kind": "colour", "word": "red", "iou": 0.5, "score": 80.0},
            {"subset": "consistent", "kind": None, "word": None, "fp_area": 0.1, "score": 95.0},
            {"subset": "text", "kind": "shape", "word": "circle", "iou": 0.3, "score": 70.0}]
    table = summary(rows)
    assert table["text"]["iou"] == pytest.approx(0.4) and table["text"]["n"] == 2
    assert table["consistent"]["fp_area"] == pytest.approx(0.1)
    assert "kind" not in table["text"] and "word" not in table["all"]
