"""Synthetic "and" writers, the verification protocol of arXiv:2407.21788 and the CEDAR AND loader."""

from __future__ import annotations

import dataclasses
from itertools import combinations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr
from skimage.morphology import skeletonize

from kit.data.handwriting import (
    CedarAndFolder,
    PairSet,
    Writers,
    WriterStyle,
    _glyphs,
    label_subset,
    render_word,
    style_differences,
    verification_pairs,
    writer_split,
)


def _rng(k: int = 0) -> np.random.Generator:
    return np.random.default_rng(k)


def _slant_by_profile(image: np.ndarray) -> float:
    """The shear angle whose deskewed column profile of the ink is sharpest (a classic slant estimate)."""
    ink = 255.0 - image.astype(float)
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    angles = np.linspace(-0.6, 0.8, 57)
    sharp = []
    for t in angles:
        x = xx + np.tan(t) * (yy - image.shape[0] / 2) + image.shape[1]
        i = np.floor(x).astype(int)
        f = x - i
        n = 3 * image.shape[1]
        h = np.bincount(i.ravel(), (ink * (1 - f)).ravel(), n)
        h += np.bincount(i.ravel() + 1, (ink * f).ravel(), n)
        sharp.append((h ** 2).sum())
    return float(angles[int(np.argmax(sharp))])


def test_font_letter_offsets_come_from_the_font():
    assert np.allclose(_glyphs().offsets, [0.0, 48.48, 103.03], atol=0.01)


def test_same_seed_same_images_and_different_seeds_differ():
    a = Writers(5, seed=3).sample(2, 3, _rng(1))
    b = Writers(5, seed=3).sample(2, 3, _rng(1))
    c = Writers(5, seed=4).sample(2, 3, _rng(1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_writers_of_different_seeds_are_different_people():
    w0, w1 = Writers(5, seed=0), Writers(5, seed=1)
    assert all(w0.style(k) != w1.style(k) for k in range(5))
    assert w0.style(2) == Writers(9, seed=0, noise=0.3).style(2)  # (seed, w) alone fixes the style
    assert len({w0.style(k) for k in range(5)}) == 5


def test_style_vector_round_trip_and_names():
    s = Writers(3, seed=7).style(1)
    v = s.as_vector()
    assert v.shape == (len(WriterStyle.FIELDS),) and len(set(WriterStyle.FIELDS)) == len(v)
    assert WriterStyle.from_vector(v) == s
    assert v[WriterStyle.FIELDS.index("slant")] == s.slant
    assert v[WriterStyle.FIELDS.index("pen_width")] == s.pen_width
    with pytest.raises(ValueError, match="v must have shape"):
        WriterStyle.from_vector(v[:-1])


def test_slant_and_pen_width_are_recoverable_from_images():
    w = Writers(30, seed=0, noise=0.0)
    images = np.concatenate([w.sample(k, 1, _rng()) for k in range(30)])
    slant = [w.style(k).slant for k in range(30)]
    assert spearmanr(slant, [_slant_by_profile(im) for im in images]).statistic > 0.8
    pen = [w.style(k).pen_width for k in range(30)]
    width = [((255.0 - im) / 230.0).sum() / skeletonize(im < 128).sum() for im in images]  # ink per length
    assert spearmanr(pen, width).statistic > 0.75


def test_noise_zero_gives_identical_samples_and_noise_gives_distinct_ones():
    still = Writers(4, seed=2, noise=0.0).sample(1, 3, _rng(5))
    assert (still == still[0]).all()
    noisy = Writers(4, seed=2, noise=1.0).sample(1, 3, _rng(5))
    assert not np.array_equal(noisy[0], noisy[1]) and not np.array_equal(noisy[1], noisy[2])


@pytest.mark.parametrize("noise", [1.0, 1.8])
def test_images_are_dark_ink_on_white_and_stay_inside_the_canvas(noise):
    w = Writers(50, seed=11, noise=noise)
    images = np.concatenate([w.sample(k, 2, _rng(k)) for k in range(50)])
    assert images.dtype == np.uint8 and images.shape == (100, 64, 64)
    assert (images.reshape(100, -1).min(1) < 60).all()
    assert np.median(images) > 240
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert border.min() >= 230


@pytest.mark.parametrize("size", [32, 128])
def test_other_sizes(size):
    images = Writers(4, seed=0, size=size).sample(3, 2, _rng())
    assert images.shape == (2, size, size)
    assert images[:, [0, -1]].min() >= 230 and images[:, :, [0, -1]].min() >= 230


def test_letter_boxes_are_ordered_left_to_right_and_hold_ink():
    w = Writers(20, seed=5, noise=1.4)
    for k in range(20):
        images, boxes = w.sample_with_boxes(k, 2, _rng(k))
        assert boxes.shape == (2, 3, 4)
        for im, bx in zip(images, boxes):
            assert (bx[:, 2] > bx[:, 0]).all() and (bx[:, 3] > bx[:, 1]).all()
            centres = 0.5 * (bx[:, 0] + bx[:, 2])
            assert (np.diff(bx[:, 0]) > 0).all() and (np.diff(centres) > 0).all()
            for x0, y0, x1, y1 in bx:
                assert im[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].min() < 100
    image, box = render_word(w.style(0))
    assert image.shape == (64, 64) and box.shape == (3, 4)
    assert np.array_equal(image, render_word(w.style(0))[0])


def test_style_differences_are_normalised_per_attribute():
    w = Writers(10, seed=0)
    a = w.style(0)
    assert set(style_differences(a, a)) == {"slant", "size", "spacing", "baseline", "letter_shapes",
                                            "pen_width", "pressure", "tremor"}
    assert all(v == 0.0 for v in style_differences(a, a).values())
    gaps = np.array([list(style_differences(w.style(i), w.style(j)).values())
                     for i, j in combinations(range(10), 2)])
    assert 0.6 < gaps.mean() < 2.0  # two random writers differ by about sqrt(2) population stds
    d = style_differences(a, dataclasses.replace(a, slant=a.slant + 0.2))
    assert d["slant"] > 0.5 and all(v == 0.0 for k, v in d.items() if k != "slant")


def test_writer_split_is_disjoint_and_covering_and_label_subset():
    split = writer_split(50, seed=3)
    assert [len(split[k]) for k in ("train", "val", "test")] == [35, 5, 10]
    allw = np.concatenate(list(split.values()))
    assert len(np.unique(allw)) == 50 and set(allw) == set(range(50))
    assert all(np.array_equal(split[k], writer_split(50, seed=3)[k]) for k in split)
    assert not np.array_equal(split["train"], writer_split(50, seed=4)["train"])
    few = label_subset(split["train"], 0.1, seed=0)
    assert len(few) == 4 and set(few) <= set(split["train"])
    assert np.array_equal(label_subset(split["train"], 1.0), split["train"])
    with pytest.raises(ValueError, match="fractions"):
        writer_split(10, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="fraction"):
        label_subset(split["train"], 0.0)


def test_verification_pairs_are_balanced_complete_and_deterministic():
    writer_of = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    pairs = verification_pairs(writer_of, seed=1)
    pos, neg = pairs[pairs[:, 2] == 1], pairs[pairs[:, 2] == 0]
    assert pairs.shape == (2 * (3 + 1 + 6), 3) and len(pos) == len(neg)
    expected = {(i, j) for i, j in combinations(range(10), 2) if writer_of[i] == writer_of[j]}
    assert sorted(map(tuple, pos[:, :2].tolist())) == sorted(expected)
    assert (writer_of[neg[:, 0]] != writer_of[neg[:, 1]]).all()
    assert np.array_equal(neg[:, 0], pos[:, 0])  # each negative starts from its positive's first sample
    assert np.array_equal(pairs, verification_pairs(writer_of, seed=1))
    assert not np.array_equal(pairs, verification_pairs(writer_of, seed=2))
    names = verification_pairs(np.array(["0001", "0001", "0002"]), seed=0)
    assert names.tolist() == [[0, 1, 1], [0, 2, 0]]
    with pytest.raises(ValueError, match="at least 2 writers"):
        verification_pairs(np.zeros(4, int))
    with pytest.raises(ValueError, match="2 or more samples"):
        verification_pairs(np.arange(4))


def test_pair_set_shapes():
    ds = PairSet(Writers(6, seed=0, size=32), [0, 2, 5], samples_per_writer=3, seed=0)
    assert len(ds) == 2 * 3 * 3 and ds.images.shape == (9, 32, 32)
    a, b, y = ds[1]
    assert a.shape == b.shape == (1, 32, 32) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0 and float(a.max()) > 0.7  # ink = 1
    assert y.dtype == torch.int64 and int(y) == 0 and int(ds[0][2]) == 1
    assert np.array_equal(ds.images, PairSet(Writers(6, seed=0, size=32), [0, 2, 5], 3, seed=0).images)


def _write_cedar(root, names):
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(np.full((20, 30 + k), 200 - k, np.uint8)).save(root / name)


def test_cedar_and_folder(tmp_path):
    _write_cedar(tmp_path, ["0001a_num1.png", "0001a_num2.png", "0002b_num1.png"])
    _write_cedar(tmp_path / "more", ["0003c_num4.png"])
    ds = CedarAndFolder(tmp_path)
    assert len(ds) == 4 and ds.writer_ids == ["0001", "0002", "0003"]
    item = ds[1]
    assert item["image"].dtype == np.uint8 and item["image"].shape == (20, 31)
    assert item["writer"] == "0001" and item["name"] == "0001a_num2"
    assert [im.shape for im in ds.images_of("0001")] == [(20, 30), (20, 31)]
    assert verification_pairs(ds.writer_of).shape == (2, 3)
    with pytest.raises(ValueError, match="9999"):
        ds.images_of("9999")


def test_cedar_and_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*XXXXy_numZ"):
        CedarAndFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty.*XXXXy_numZ"):
        CedarAndFolder(tmp_path / "empty")
    _write_cedar(tmp_path / "bad", ["0001a_num1.png", "writer7.png"])
    with pytest.raises(ValueError, match="writer7.png"):
        CedarAndFolder(tmp_path / "bad")


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="n_writers"):
        Writers(1)
    with pytest.raises(ValueError, match="size"):
        Writers(4, size=8)
    with pytest.raises(ValueError, match="noise"):
        Writers(4, noise=-0.1)
    w = Writers(4)
    with pytest.raises(ValueError, match="writer index w"):
        w.style(4)
    with pytest.raises(ValueError, match="writer index w"):
        w.sample(-1, 2, _rng())
    with pytest.raises(ValueError, match="n must be"):
        w.sample(0, -1, _rng())
    with pytest.raises(ValueError, match="n_writers"):
        writer_split(1)
    with pytest.raises(ValueError, match="samples_per_writer"):
        PairSet(w, [0, 1], 1)
