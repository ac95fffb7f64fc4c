"""Tests of kit.dtiil.baselines: random masks, spectral-residual saliency and the cross-attention map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.data.shapes import Scene, ShapeObject, render, sample_scene
from kit.dtiil.baselines import (
    content_word_positions,
    cross_attention_map,
    expected_random_iou,
    random_mask,
    saliency_map,
    saliency_object_mask,
)
from kit.dtiil.metrics import mask_iou

torch.set_num_threads(1)


def _blob(h=12, w=10):
    m = np.zeros((h, w), bool)
    m[2:5, 3:7] = True
    m[5, 4] = True  # 13 pixels, not a rectangle
    return m


@pytest.mark.parametrize("mode", ["shift", "pixels"])
def test_random_mask_keeps_area_and_is_seeded(mode):
    like = _blob()
    draws = [random_mask(like, np.random.default_rng(s), mode) for s in range(12)]
    assert all(d.shape == like.shape and d.dtype == bool and d.sum() == like.sum() for d in draws)
    assert np.array_equal(random_mask(like, 7, mode), random_mask(like, 7, mode))
    assert len({d.tobytes() for d in draws}) > 1


def test_random_shift_is_a_cyclic_roll_of_the_mask():
    like = _blob()
    got = random_mask(like, 3, "shift")
    rolls = [np.roll(like, (dy, dx), axis=(0, 1)) for dy in range(like.shape[0]) for dx in range(like.shape[1])]
    assert any(np.array_equal(got, r) for r in rolls)


def test_random_mask_rejects_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        random_mask(_blob(), 0, "scatter")
    with pytest.raises(ValueError, match="bool"):
        random_mask(_blob() * 0.5, 0)
    assert random_mask(_blob().astype(np.uint8), 0).sum() == _blob().sum()
    with pytest.raises(ValueError, match="rng"):
        random_mask(_blob(), "seed")  # type: ignore[arg-type]


def test_expected_random_iou_exact_and_monte_carlo():
    like = _blob()
    gt = np.zeros_like(like)
    gt[6:10, 2:6] = True
    h, w = like.shape
    brute = np.mean([mask_iou(np.roll(like, (dy, dx), axis=(0, 1)), gt) for dy in range(h) for dx in range(w)])
    assert expected_random_iou(like, gt, n=None, mode="shift") == pytest.approx(brute)
    assert expected_random_iou(like, gt, n=600, rng=0, mode="shift") == pytest.approx(brute, abs=0.02)
    exact_pixels = expected_random_iou(like, gt, n=None, mode="pixels")
    assert expected_random_iou(like, gt, n=600, rng=1, mode="pixels") == pytest.approx(exact_pixels, abs=0.01)
    assert exact_pixels < brute  # scattered pixels overlap a compact object less than a moved blob
    empty = np.zeros_like(like)
    assert expected_random_iou(empty, empty, n=None) == 1.0
    with pytest.raises(ValueError, match="one shape"):
        expected_random_iou(like, gt[:5])
    with pytest.raises(ValueError, match="n must"):
        expected_random_iou(like, gt, n=0)


def test_saliency_of_a_blank_image_is_defined():
    blank = np.full((32, 32, 3), 40, np.uint8)
    s = saliency_map(blank)
    assert s.shape == (32, 32) and np.isfinite(s).all() and s.max() == 0
    assert not saliency_object_mask(blank).any()
    with pytest.raises(ValueError, match="uint8"):
        saliency_map(blank.astype(np.float32))


def test_saliency_lands_on_the_object_of_one_object_scenes():
    # measured over these 20 scenes: mean IoU 0.34 (the map peaks on outlines, so the mask covers part of the
    # object and some surround), the mask's centroid inside the object's bounding circle in 16 of 20,
    # a randomly shifted mask of the same shape: mean IoU 0.04
    ious, random_ious, hits = [], [], []
    for seed in range(20):
        scene = sample_scene(np.random.default_rng(seed), 1)
        image, masks = render(scene)
        s = saliency_map(image)
        assert s.shape == (32, 32) and s.min() == 0 and s.max() == pytest.approx(1)
        m = saliency_object_mask(image)
        ious.append(mask_iou(m, masks[0]))
        random_ious.append(expected_random_iou(m, masks[0], n=None))
        ys, xs = np.nonzero(m)
        o = scene.objects[0]
        hits.append(np.hypot((xs.mean() + 0.5) / 32 - o.cx, (ys.mean() + 0.5) / 32 - o.cy) < o.radius)
    assert np.mean(ious) > 0.2
    assert np.mean(ious) > 4 * np.mean(random_ious)
    assert np.mean(hits) >= 0.6


@pytest.fixture(scope="module")
def pipe():
    from kit.diffusion.t2i import load_shapes_pipeline

    return load_shapes_pipeline(solver=None)


def test_content_word_positions(pipe):
    words, pos = content_word_positions(pipe.tokenizer, "a big red circle, a small blue square and a big white cross")
    assert words == ["big", "red", "circle", "small", "blue", "square", "big", "white", "cross"]
    assert pos[:3] == [[2], [3], [4]]  # <bos> a big red circle , -> the comma's token is left out
    assert pos[3] == [7]
    words, pos = content_word_positions(pipe.tokenizer, "a big red circle left of a big blue square", ["Big"])
    assert words == ["big", "big"] and pos == [[2], [8]]  # every occurrence
    with pytest.raises(ValueError, match="not in the caption"):
        content_word_positions(pipe.tokenizer, "a big red circle", ["square"])
    with pytest.raises(ValueError, match="no content word"):
        content_word_positions(pipe.tokenizer, "a of and")


def _one_circle(cx=0.3, cy=0.6):
    image, masks = render(Scene((ShapeObject("circle", "red", "big", cx, cy),)))
    return image, masks[0]


def test_cross_attention_map_shape_range_and_seed(pipe):
    image, _ = _one_circle()
    a = cross_attention_map(pipe, image, "a big red circle", seed=0)
    b = cross_attention_map(pipe, image, "a big red circle", seed=0)
    c = cross_attention_map(pipe, image, "a big red circle", seed=1)
    assert a.shape == (32, 32) and a.dtype == np.float32
    assert a.min() == 0 and a.max() == pytest.approx(1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="strength"):
        cross_attention_map(pipe, image, "a big red circle", strength=0)


def test_cross_attention_of_colour_and_shape_words_is_on_the_object(pipe):
    # measured (6 places x 2 seeds): mean map inside minus outside >= 0.51 for words "red", "circle"; with every
    # content word the size word "big" (which this model attends to the background) pulls it to -0.004 .. 0.19
    for cx, cy in ((0.3, 0.6), (0.7, 0.3)):
        image, mask = _one_circle(cx, cy)
        m = cross_attention_map(pipe, image, "a big red circle", words=["red", "circle"])
        assert m[mask].mean() - m[~mask].mean() > 0.3
