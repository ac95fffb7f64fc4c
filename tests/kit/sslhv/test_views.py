"""Handwriting SSL views of kit.sslhv.views: shapes, range, determinism, no mirroring, ink mass, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from kit.data.handwriting import Writers
from kit.sslhv.views import HandwritingViews, _dilate, _erode, two_views


@pytest.fixture(scope="module")
def ink():
    """Sixteen synthetic "and" images as model inputs [16, 1, 64, 64], ink = 1."""
    w = Writers(4, seed=0, noise=1.7, size=64)
    rng = np.random.default_rng(0)
    imgs = np.concatenate([w.sample(i, 4, rng) for i in range(4)])
    return torch.from_numpy(1.0 - imgs.astype(np.float32) / 255.0)[:, None]


def test_shape_range_and_determinism(ink):
    views = HandwritingViews()
    out = views(ink, torch.Generator().manual_seed(0))
    assert out.shape == ink.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    again = views(ink, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = views(ink, torch.Generator().manual_seed(1))
    assert not torch.allclose(out, other)
    g = torch.Generator().manual_seed(3)
    v1, v2 = two_views(ink, views, g)
    assert v1.shape == v2.shape == ink.shape
    assert (v1 - v2).abs().flatten(1).mean(1).min() > 1e-3  # every image's two views differ
    assert HandwritingViews(size=32)(ink, g).shape == (16, 1, 32, 32)
    with pytest.raises(ValueError, match="float batch"):
        views((ink * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="min_scale"):
        HandwritingViews(min_scale=0.0)


def test_no_horizontal_mirror():
    x = torch.zeros(1, 1, 64, 64)
    x[..., 16:48, 6:26] = 1.0  # ink only on the left
    x[..., 40:48, 26:30] = 1.0
    batch = x.expand(256, 1, 64, 64).contiguous()
    out = HandwritingViews()(batch, torch.Generator().manual_seed(0))[:, 0]
    cols = torch.arange(64, dtype=torch.float32) - 31.5
    com = (out.sum(1) * cols).sum(1) / out.sum((1, 2))
    assert (com < 0).float().mean() == 1.0  # a flip would put about half on the right
    assert float(com.mean()) < -8


def test_ink_mass_preserved(ink):
    mass = ink.sum((1, 2, 3))
    geometric = HandwritingViews(min_scale=1.0, max_aspect=1.0, stroke_jitter=0)
    ratio = geometric(ink, torch.Generator().manual_seed(0)).sum((1, 2, 3)) / mass
    assert ratio.min() > 0.85 and ratio.max() < 1.15
    ratio = HandwritingViews()(ink, torch.Generator().manual_seed(0)).sum((1, 2, 3)) / mass
    assert ratio.min() > 0.3 and ratio.max() < 4.0  # crops zoom in by up to 2x in area; strokes +-1 px


def test_stroke_jitter_is_dilation_or_erosion(ink):
    jitter_only = HandwritingViews(min_scale=1.0, max_aspect=1.0, max_rotation_deg=0, max_shear=0,
                                   elastic_alpha=0.0, stroke_jitter=1)
    out = jitter_only(ink, torch.Generator().manual_seed(0))
    options = torch.stack([_erode(ink), ink, _dilate(ink)])  # [3, B, 1, H, W]
    err = (options - out[None]).abs().flatten(2).amax(2)  # [3, B]
    assert (err.min(0).values < 1e-5).all()
    assert set(err.argmin(0).tolist()) == {0, 1, 2}
    assert (_dilate(ink).sum() > ink.sum()) and (_erode(ink).sum() < ink.sum())


def test_speed_256_images_one_thread(ink):
    batch = ink.repeat(16, 1, 1, 1)
    views, g = HandwritingViews(), torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        views(batch, g)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            views(batch, g)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    print(f"HandwritingViews: 256 x 64 px in {min(times) * 1e3:.1f} ms (best of 3, one thread)")
    assert min(times) < 1.0
