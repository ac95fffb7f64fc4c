"""Prompt-to-prompt word swap on the ShapesWorld model: caption pairs, foreground masks, the swap itself."""

from __future__ import annotations

import numpy as np
import pytest

from kit.data.shapes import BACKGROUND, COLOURS, SHAPES, render, sample_scene
from kit.diffusion.t2i import load_shapes_pipeline
from kit.t2i.explore import _iou, foreground_mask, swap_pairs, word_swap


def test_swap_pairs_differ_in_one_colour_or_shape_word():
    pairs = swap_pairs(10, seed=3)
    assert len(pairs) == 10 and pairs == swap_pairs(10, seed=3)
    for k, (a, b) in enumerate(pairs):
        wa, wb = a.split(), b.split()
        diff = [(x, y) for x, y in zip(wa, wb) if x != y]
        assert len(wa) == len(wb) and len(diff) == 1
        vocab = COLOURS if k % 2 == 0 else SHAPES
        assert diff[0][0] in vocab and diff[0][1] in vocab


def test_foreground_mask_finds_the_rendered_objects():
    scene = sample_scene(np.random.default_rng(0), 2)
    img, masks = render(scene)
    fg = foreground_mask(img)
    assert _iou(fg, masks.any(0)) > 0.85
    assert not foreground_mask(np.full((8, 8, 3), BACKGROUND, np.uint8)).any()
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        foreground_mask(img[..., 0])
    assert _iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_word_swap_on_the_committed_model():
    pipe = load_shapes_pipeline()
    same = word_swap(pipe, "a big red circle", "a big red circle", steps=4, seed=1)
    assert np.array_equal(same.source, same.plain) and same.iou_plain == 1.0  # one noise for both rows
    assert np.array_equal(same.swapped, same.source)  # swapping identical maps changes nothing
    out = word_swap(pipe, "a big red circle", "a big red square", steps=4, seed=1, swap_fraction=1.0)
    assert out.source.shape == out.plain.shape == out.swapped.shape == (32, 32, 3)
    assert 0.0 <= out.iou_plain <= 1.0 and 0.0 <= out.iou_swapped <= 1.0
    with pytest.raises(ValueError, match="same number of tokens"):
        word_swap(pipe, "a big red circle", "a big red circle left of a small blue square", steps=2)
    with pytest.raises(ValueError, match="swap_fraction"):
        word_swap(pipe, "a big red circle", "a big red square", swap_fraction=1.5)
    with pytest.raises(ValueError, match="bicycle"):
        word_swap(pipe, "a big red circle", "a big red bicycle")
