"""Tests of kit.defi.baselines on a synthetic "classically inpainted" image built here with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from kit.defi.baselines import FLOORS, floor_maps, laplacian_energy_map, noise_variance_map

torch.set_num_threads(1)


def _inpainted(seed=0, h=96, w=96):
    """Return (image uint8 [h, w, 3], mask bool [h, w]): a Gaussian-noise texture whose disc is replaced by a
    smooth linear ramp, as a diffusion-style fill leaves it."""
    rng = np.random.default_rng(seed)
    img = 128 + 25 * rng.standard_normal((h, w, 3))
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - h // 2) ** 2 + (xx - w // 2 + 4) ** 2 < (h // 4) ** 2
    ramp = (100 + 0.8 * xx + 0.3 * yy)[..., None] * np.array([1.0, 0.9, 1.1])
    img[disc] = ramp[disc]
    return np.clip(np.round(img), 0, 255).astype(np.uint8), disc


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_floors_find_the_smooth_fill(name):
    img, disc = _inpainted()
    score = FLOORS[name](img)
    assert roc_auc_score(disc.ravel(), score.ravel()) > 0.9
    assert score[disc].mean() > score[~disc].mean() + 0.3


@pytest.mark.parametrize("fn", [laplacian_energy_map, noise_variance_map])
def test_floor_output_shape_dtype_range(fn):
    img, _ = _inpainted(1, 40, 56)
    s = fn(img, window=5)
    assert s.shape == (40, 56) and s.dtype == np.float32
    assert s.min() == 0.0 and s.max() == 1.0
    np.testing.assert_array_equal(fn(torch.from_numpy(img), window=5), s)
    flat = np.full((8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(fn(flat), np.zeros((8, 8), np.float32))


def test_floor_maps_over_images_of_different_sizes():
    images = [_inpainted(2, 32, 32)[0], _inpainted(3, 24, 40)[0]]
    maps = floor_maps(images, "laplacian", window=3)
    assert [m.shape for m in maps] == [(32, 32), (24, 40)]
    np.testing.assert_array_equal(maps[1], laplacian_energy_map(images[1], window=3))
    with pytest.raises(ValueError, match="laplacian"):
        floor_maps(images, "sobel")
    with pytest.raises(ValueError, match=r"images\[1\].*float64"):
        floor_maps([images[0], images[1].astype(np.float64)], "noise")


def test_floors_reject_bad_images():
    img, _ = _inpainted(4, 16, 16)
    with pytest.raises(ValueError, match="float32"):
        laplacian_energy_map(img.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"RGB \[H, W, 3\]"):
        laplacian_energy_map(img[..., 0])
    with pytest.raises(ValueError, match=r"RGB \[H, W, 3\]"):
        noise_variance_map(np.concatenate([img, img[..., :1]], axis=2))
    with pytest.raises(ValueError, match="window"):
        laplacian_energy_map(img, window=4)
    with pytest.raises(ValueError, match="window"):
        noise_variance_map(img, window=0)
