"""ShapesWorld oracle: accuracy on rendered scenes of known ground truth, robustness, adherence semantics."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from kit.data.shapes import (
    BACKGROUND,
    COLOURS,
    SHAPES,
    Scene,
    ShapeObject,
    caption,
    render,
    sample_scene,
    to_tensor,
)
from kit.data.shapes_oracle import adherence, adherence_table, detect_objects


def _truth_vs_detections(res, n, seed, perturb=None):
    """Return per-attribute accuracies of the detections against the scenes' ground truth."""
    rng, noise = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    hits = dict.fromkeys(("count", "colour", "shape", "size", "centre", "mask", "objects", "relation",
                          "n_relation"), 0)
    for _ in range(n):
        s = sample_scene(rng, (1, 3))
        img, masks = render(s, res)
        x = img if perturb is None else perturb(to_tensor(img).numpy(), noise)
        dets = detect_objects(x)
        hits["count"] += len(dets) == len(s.objects)
        for o, m in zip(s.objects, masks):
            hits["objects"] += 1
            d = [d for d in dets if d.colour == o.colour]
            if len(d) != 1:
                continue
            d = d[0]
            hits["colour"] += 1
            hits["shape"] += d.shape == o.shape
            hits["size"] += d.size == o.size
            hits["centre"] += max(abs(d.cx - o.cx), abs(d.cy - o.cy)) < 0.5 / res
            hits["mask"] += (d.mask & m).sum() / (d.mask | m).sum() >= 0.8
        if len(s.objects) == 2:     # the relation of the detected centres equals the caption's
            hits["n_relation"] += 1
            ab = [next((d for d in dets if d.colour == o.colour), None) for o in s.objects]
            if None in ab:
                continue
            dx, dy = ab[0].cx - ab[1].cx, ab[0].cy - ab[1].cy
            if abs(dx) >= abs(dy):
                rel = "left of" if dx < 0 else "right of"
            else:
                rel = "above" if dy < 0 else "below"
            hits["relation"] += rel in caption(s)
    out = {k: hits[k] / hits["objects"] for k in ("colour", "shape", "size", "centre", "mask")}
    return out | {"count": hits["count"] / n, "relation": hits["relation"] / hits["n_relation"]}


def _gaussian_noise(sigma):
    return lambda x, rng: np.clip(x + sigma * rng.standard_normal(x.shape), -1, 1).astype(np.float32)


# Measured over 500 scenes (seed 0): every attribute 1.000 at 16, 32 and 64 pixels, clean and with noise
# sigma 0.05 and 0.2 ([-1, 1] units); with a Gaussian blur of 1 px at 32x32, shape 1.000; noise 0.05 at 16x16,
# shape 0.993. The tests use fewer scenes and keep a margin.
@pytest.mark.parametrize("res", [32, 64])
@pytest.mark.parametrize("perturb", [None, _gaussian_noise(0.05)], ids=["clean", "noise0.05"])
def test_oracle_accuracy_on_rendered_scenes(res, perturb):
    acc = _truth_vs_detections(res, 150, seed=res, perturb=perturb)
    for key in ("colour", "shape", "size", "count", "centre", "mask", "relation"):
        assert acc[key] >= 0.97, (key, acc)


def test_oracle_tolerates_blur():
    def blur(x, rng):
        return np.clip(ndimage.gaussian_filter(x, (0, 1.0, 1.0)) + 0.03 * rng.standard_normal(x.shape), -1, 1)
    acc = _truth_vs_detections(32, 100, seed=7, perturb=blur)
    assert min(acc["colour"], acc["count"], acc["size"], acc["relation"]) >= 0.97, acc
    assert acc["shape"] >= 0.95, acc      # sharp templates only: about 0.8


def test_every_shape_is_recognised_at_both_sizes_and_positions():
    for res in (16, 32):
        for shape in SHAPES:
            for size, (cx, cy) in (("small", (0.3, 0.62)), ("big", (0.57, 0.41))):
                d = detect_objects(render(Scene((ShapeObject(shape, "green", size, cx, cy),)), res)[0])
                assert [(o.shape, o.size, o.colour) for o in d] == [(shape, size, "green")], (res, shape)
                assert d[0].score > 0.8


def test_adherence_flags_exactly_the_wrong_attribute():
    s = Scene((ShapeObject("circle", "red", "big", 0.28, 0.5),
               ShapeObject("square", "blue", "small", 0.75, 0.45)))
    img = render(s, 32)[0]
    truth = "a big red circle left of a small blue square"
    assert caption(s) == truth
    cases = {
        truth: set(),
        "a big green circle left of a small blue square": {"colour", "shape", "size", "relation"},
        "a big red triangle left of a small blue square": {"shape"},
        "a small red circle left of a small blue square": {"size"},
        "a big red circle right of a small blue square": {"relation"},
        "a big red circle above a small blue square": {"relation"},
        "a big red circle": {"count"},
        "a big red circle, a small blue square and a small white cross": {"colour", "shape", "size", "count"},
        "a red circle left of a square": set(),
    }
    for prompt, wrong in cases.items():
        a = adherence(img, prompt)
        got = {k for k in ("colour", "shape", "size", "count", "relation") if a[k] is False}
        assert got == wrong, (prompt, a)
        assert a["all"] is (not wrong)
        assert a["relation"] is None or "left of" in prompt or "right of" in prompt or "above" in prompt
    assert adherence(img, "a big red circle")["relation"] is None


def test_adherence_table_fractions_split_by_object_count():
    rng = np.random.default_rng(3)
    images, prompts, want_colour = [], [], {1: [], 2: [], 3: []}
    for i in range(30):
        s = sample_scene(rng, 1 + i % 3)
        images.append(to_tensor(render(s, 32)[0]))
        text = caption(s)
        if i % 2:            # swap the first object's colour word for one not in the scene
            free = [c for c in COLOURS if c not in text.split() and c not in text.replace(",", "").split()]
            text = text.replace(s.objects[0].colour, free[0], 1)
        prompts.append(text)
        want_colour[len(s.objects)].append(i % 2 == 0)
    table = adherence_table(torch.stack(images), prompts)
    assert table["overall"]["n"] == 30 and table["overall"]["colour"] == pytest.approx(0.5)
    assert table["overall"]["count"] == 1.0
    for n, want in want_colour.items():
        row = table["by_n_objects"][n]
        assert row["n"] == len(want) and row["colour"] == pytest.approx(np.mean(want))
        assert (row["relation"] is None) == (n != 2) and row["n_relation"] == (len(want) if n == 2 else 0)
    with pytest.raises(ValueError, match="same length"):
        adherence_table(images, prompts[:-1])


def test_input_formats_and_bad_input():
    s = Scene((ShapeObject("diamond", "yellow", "big", 0.5, 0.5),))
    img = render(s, 32)[0]
    a, b = detect_objects(img), detect_objects(to_tensor(img))
    assert [(d.shape, d.colour, d.size) for d in a] == [(d.shape, d.colour, d.size) for d in b] == [
        ("diamond", "yellow", "big")]
    assert np.array_equal(a[0].mask, b[0].mask) and a[0].mask.shape == (32, 32)
    blank = np.full((32, 32, 3), BACKGROUND, np.uint8)
    assert detect_objects(blank) == [] and adherence(blank, "a red circle")["all"] is False
    for bad in (img.transpose(2, 0, 1), img[:, :16], img.astype(np.float32), np.full((3, 8, 8), np.nan)):
        with pytest.raises(ValueError, match="image"):
            detect_objects(bad)
    with pytest.raises(ValueError, match="unknown word 'pink'"):
        adherence(img, "a pink diamond")
