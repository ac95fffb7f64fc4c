"""SO-DFD's training degradations: each does what it says, at its levels, seeded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kit.data.faces import random_identity, render_face
from kit.facesem.augment import OPS, augment, degrade


@pytest.fixture(scope="module")
def face():
    return render_face(random_identity(np.random.default_rng(0)), size=48)


def test_each_degradation(face):
    rng = np.random.default_rng(1)
    for op in OPS:
        out = degrade(face, op, 1, rng)
        assert out.shape == face.shape and out.dtype == np.uint8 and not np.array_equal(out, face), op
    blocks = degrade(face, "blocks", 2, np.random.default_rng(2))
    assert (blocks == 128).all(-1).sum() >= 64  # at least one whole grey 8 x 8 block
    np.testing.assert_array_equal(degrade(face, "blur", 2, rng), cv2.GaussianBlur(face, (9, 9), 0))
    pix = degrade(face, "pixelate", 1, rng)
    assert (pix[0::2, 0::2] == pix[1::2, 1::2]).all()  # 2 x 2 cells of one colour
    flat = np.full((64, 64, 3), 128, np.uint8)
    noisy = cv2.cvtColor(degrade(flat, "ycbcr_noise", 2, np.random.default_rng(3)), cv2.COLOR_RGB2YCrCb)
    assert noisy[..., 0].astype(float).std() / 255 == pytest.approx(np.sqrt(0.002), rel=0.15)
    with pytest.raises(ValueError, match="levels"):
        degrade(face, "blur", 3, rng)
    with pytest.raises(ValueError, match="op must be"):
        degrade(face, "rain", 1, rng)


def test_augment_applies_one_degradation_with_probability_p(face):
    rng = np.random.default_rng(4)
    changed = np.mean([not np.array_equal(augment(face, rng), face) for _ in range(400)])
    assert 0.24 < changed < 0.36
    assert np.array_equal(augment(face, np.random.default_rng(5), p=0.0), face)
    a = [augment(face, np.random.default_rng(6), p=1.0) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    with pytest.raises(ValueError, match="uint8 RGB"):
        augment(face.astype(np.float32), rng)
