"""D-TIIL views on a real (few-step) localisation with the committed ShapesWorld model and on hand-made results:
every control changes the figure it drives, in place; the re-binarised mask and the IoU readout match
kit.dtiil; the explorer localises a typed caption and reports bad ones instead of raising."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from kit.data.shapes import Scene, ShapeObject, render  # noqa: E402
from kit.dtiil import metrics  # noqa: E402
from kit.dtiil.localize import LocalizeOptions, LocalizeResult, binarize, upsample  # noqa: E402

torch.set_num_threads(1)
FAST = dict(align_steps=2, align_batch=2, n_noise=2, inpaint_steps=2, embed_lr=1e-2)
TRUE = "a big red circle left of a small blue square"
SWAPPED = "a big red circle left of a small green square"   # a text-side swap: the square's colour


def make_result(seed: int = 0, n: int = 3) -> LocalizeResult:
    """A hand-made result built as the localiser builds one (pixel space: maps at the image size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32] / 32
    per_seed = (np.exp(-((yy - 0.35) ** 2 + (xx - 0.6) ** 2) / 0.02)[None] + 0.3 * rng.random((n, 32, 32)))
    mean = per_seed.mean(0)
    d = (mean - mean.min()) / (mean.max() - mean.min())
    first = np.clip(d + 0.1 * rng.random(d.shape), 0, 1)
    o = LocalizeOptions()
    return LocalizeResult(
        mask=binarize(d, o.tau2), heatmap=upsample(d, (32, 32)), words=["small", "white", "square"], score=87.5,
        first_mask=binarize(first, o.tau1), first_heatmap=upsample(first, (32, 32)),
        edited_image=(rng.random((32, 32, 3)) * 255).astype(np.uint8), seconds=1.0,
        runs=["small yellow cross", "small white square"], run_scores=[0.2, 0.9], per_seed=per_seed.astype(np.float32),
        align_losses={"first": [1.0, 0.8, 0.7], "second": [0.9, 0.6, 0.5]}, embed_drift=rng.random(16), options=o)


@pytest.fixture(scope="module")
def setup():
    from kit.diffusion.t2i import load_shapes_pipeline
    from kit.dtiil.localize import localize
    from kit.dtiil.words import OracleScorer

    pipe = load_shapes_pipeline(solver=None)
    scene = Scene((ShapeObject("circle", "red", "big", 0.3, 0.5), ShapeObject("square", "blue", "small", 0.75, 0.5)))
    image, masks = render(scene, 32)
    scorer = OracleScorer()

    def fn(caption):
        return localize(pipe, image, caption, seed=0, word_scorer=scorer, **FAST)

    return pipe, image, masks[1], fn, fn(SWAPPED)


def test_caption_view_marks_the_predicted_run(setup):
    from widgets.dtiil import CaptionView

    _, _, _, _, result = setup
    view = CaptionView(result, SWAPPED, gt_word="green")
    k = int(np.argmax(result.run_scores))
    assert result.runs == ["big red circle", "small green square"]
    predicted = view.html.value.split("kit-predicted")[1].split("</span>")[0]
    assert result.runs[k].split()[-1] in predicted and " ".join(result.words) == result.runs[k]
    assert "<u class='kit-gt'>green</u>" in view.html.value
    assert f"{result.score:.1f}" in view.info.value
    view.set_result(make_result(), "a small yellow cross right of a small white square")
    assert "square</span>" in view.html.value.split("kit-predicted")[1]   # the hand-made result's best run


def test_region_view_rebinarises_live_and_reads_the_iou(setup):
    from widgets.dtiil import RegionView

    _, image, gt, _, result = setup
    view = RegionView(image, result, gt)
    fig = view.figure
    assert view.tau.value == pytest.approx(result.options.tau2)
    np.testing.assert_array_equal(np.asarray(fig.data[4].z) > 0.5, result.mask)
    np.testing.assert_allclose(np.asarray(fig.data[1].z), result.heatmap)
    assert len(fig.data[3].x) > 0 and len(fig.data[5].x) > 0   # the ground truth's outline
    changed = 0
    for tau in (0.05, 0.5, 0.8):
        before = np.asarray(fig.data[4].z).copy()
        view.tau.value = tau
        assert view.figure is fig
        want = result.rebinarize(tau)
        np.testing.assert_array_equal(np.asarray(fig.data[4].z) > 0.5, want)
        iou = metrics.mask_iou(want, gt)
        assert f"IoU {iou:.3f}" in view.readout.value and f"IoU {iou:.2f}" in fig.layout.annotations[1].text
        changed += not np.array_equal(before, np.asarray(fig.data[4].z))
    assert changed >= 2
    view.alpha.value = 0.2
    assert fig.data[1].opacity == 0.2
    view.which.value = "first"   # the first map and mask, at tau1
    assert view.tau.value == pytest.approx(result.options.tau1)
    np.testing.assert_allclose(np.asarray(fig.data[1].z), result.first_heatmap)
    np.testing.assert_array_equal(np.asarray(fig.data[4].z) > 0.5, result.rebinarize(result.options.tau1, first=True))
    assert fig.layout.annotations[1].text.startswith("M1")


def test_region_view_without_ground_truth_reads_the_flagged_area():
    from widgets.dtiil import RegionView

    r = make_result()
    view = RegionView(r.edited_image, r)
    assert "no ground truth" in view.figure.layout.annotations[1].text
    assert f"{r.mask.mean():.1%}" in view.readout.value and len(view.figure.data[3].x) == 0
    view.tau.value = 0.6
    assert f"{r.rebinarize(0.6).mean():.1%}" in view.readout.value


def test_step_strip_seed_align_and_drift_views(setup):
    from widgets.dtiil import AlignCurves, DriftView, SeedView, StepStrip

    pipe, image, _, _, result = setup
    strip = StepStrip(image, result)
    assert [a.text for a in strip.figure.layout.annotations][:4] == ["I", "D1", "M1 (τ1 0.15)", "I_edit"]
    np.testing.assert_array_equal(np.asarray(strip.figure.data[3].z), result.edited_image)
    np.testing.assert_allclose(np.asarray(strip.figure.data[4].z), result.heatmap)
    other = make_result()
    strip.set_result(other.edited_image, other)
    np.testing.assert_allclose(np.asarray(strip.figure.data[4].z), other.heatmap)

    seeds = SeedView(result)
    fig = seeds.figure
    assert seeds.seed.max == result.per_seed.shape[0] - 1 == 1
    first = np.asarray(fig.data[0].z).copy()
    seeds.seed.value = 1
    assert seeds.figure is fig and not np.allclose(first, np.asarray(fig.data[0].z))
    assert "correlation" in fig.layout.annotations[0].text
    seeds.seed.value = -1
    np.testing.assert_allclose(np.asarray(fig.data[0].z), result.heatmap, atol=1e-6)   # the mean is D_f

    curves = AlignCurves(result, window=2)
    assert [t.name for t in curves.figure.data] == ["first", "first (mean of 2)", "second", "second (mean of 2)"]
    assert list(curves.figure.data[0].y) == pytest.approx(result.align_losses["first"])

    drift = DriftView(result, pipe.tokenizer, SWAPPED)
    bar = drift.figure.data[0]
    assert list(bar.y) == pytest.approx(result.embed_drift.tolist())
    assert bar.x[0] == "0: <bos>" and bar.x[9] == "9: green"
    assert list(bar.marker.color).count("#ff8c00") == len(SWAPPED.split()) + 2   # words, <bos>, <eos>


def test_explorer_localises_the_typed_caption_and_reports_bad_ones(setup):
    from widgets.dtiil import LocalizeExplorer

    pipe, image, gt, fn, result = setup
    ex = LocalizeExplorer(image, SWAPPED, fn, result=result, gt_mask=gt, gt_word="green", tokenizer=pipe.tokenizer)
    fig = ex.region.figure
    assert "ground truth shown" in ex.status.value
    ex.text.value = TRUE
    ex.button.click()
    assert ex.result is not result and ex.caption == TRUE and ex.region.figure is fig
    assert ex.region.gt is None and len(fig.data[3].x) == 0           # no ground truth for an edited caption
    np.testing.assert_allclose(np.asarray(fig.data[1].z), ex.result.heatmap)
    assert "<u" not in ex.caption_view.html.value and "blue" in ex.caption_view.html.value
    assert list(ex.drift.figure.data[0].y) == pytest.approx(ex.result.embed_drift.tolist())
    kept = ex.result
    ex.text.value = "a big red circle left of a small purple pentagon"
    ex.run()
    assert "vocabulary" in ex.status.value and ex.result is kept
    ex.text.value = "a of a"
    ex.run()
    assert "content word" in ex.status.value and ex.result is kept


def test_dataset_views_roc_histogram_and_gallery():
    from kit.dtiil.experiment import Pair
    from widgets.dtiil import CaseGallery, PairGrid, iou_histogram, roc_figure

    res = [make_result(seed=s) for s in range(4)]
    gt = np.zeros((32, 32), bool)
    gt[4:14, 14:26] = True
    subsets = ["consistent", "text", "consistent", "image"]
    pairs = [Pair(r.edited_image, "a small white square", s, None if s == "consistent" else "white",
                  None if s == "consistent" else gt, None, f"p{i}") for i, (r, s) in enumerate(zip(res, subsets))]
    rows = []
    for p, r, score in zip(pairs, res, (95.0, 80.0, 85.0, 70.0)):
        row = {"id": p.id, "subset": p.subset, "caption": p.caption, "score": score, "predicted_words": "white",
               "result": r}
        if p.mask is not None:
            row.update(iou=metrics.mask_iou(r.mask, p.mask), cross_attention_iou=0.1)
        rows.append(row)
    roc = roc_figure(rows, threshold=75.0)   # flags the image-side pair (r 70) only
    assert "AUC 1.00" in roc.data[1].name and (roc.data[2].x[0], roc.data[2].y[0]) == (0.0, 0.5)
    hist = iou_histogram(rows)
    assert [t.name for t in hist.data] == ["D-TIIL, text-edited", "D-TIIL, image-edited",
                                           "cross-attention (all inconsistent)"]
    gallery = CaseGallery(pairs, rows, k=4)
    assert len(gallery.cases) == 2 and len(gallery.figure.data) == 2 * 6
    worst = min(rows[1:4:2], key=lambda r: r["iou"])
    assert gallery.cases[0] is worst and f"iou {worst['iou']:.2f}" in gallery.figure.layout.annotations[3].text
    grid = PairGrid(pairs, cols=3)
    assert len(grid.figure.data) == 8 and len(grid.figure.data[3].x) > 0 and len(grid.figure.data[1].x) == 0
    assert grid.figure.layout.annotations[1].text.startswith("[text: white]")
    with pytest.raises(ValueError, match="keep=True"):
        CaseGallery(pairs, [{k: v for k, v in r.items() if k != "result"} for r in rows])
