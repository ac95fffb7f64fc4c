"""The training augmentation of SO-DFD (arXiv:2405.08487, the authors' dataset code): with probability ``p`` (0.3),
one degradation drawn uniformly from

- ``blocks``: 8 x 8 grey blocks pasted at random places (level k: 4k blocks [PROPOSED: the code's count is not
  recorded in the spec]);
- ``ycbcr_noise``: Gaussian noise of variance 0.001 (level 1) or 0.002 (level 2) added in YCbCr, values in [0, 1];
- ``blur``: a Gaussian blur with a 7 x 7 (level 1) or 9 x 9 (level 2) kernel;
- ``pixelate``: down-sampling by 2 (level 1) or 3 (level 2) and nearest-neighbour up-sampling back;
- ``jpeg``: JPEG at quality 90, 80 or 70;

each at level 1 or 2 with probability 1/2 (JPEG: one of its three qualities).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["OPS", "degrade", "augment"]

OPS = ("blocks", "ycbcr_noise", "blur", "pixelate", "jpeg")
_JPEG_QUALITY = {1: 90, 2: 80, 3: 70}


def _check(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be uint8 RGB [H, W, 3], got {a.dtype} {a.shape}")
    return a


def degrade(image: np.ndarray, op: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3]: ``image`` with degradation ``op`` (one of ``OPS``) at ``level`` (1, 2; JPEG also 3)."""
    a = _check(image)
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    if level not in ((1, 2, 3) if op == "jpeg" else (1, 2)):
        raise ValueError(f"level {level} is not one of {op}'s levels")
    h, w = a.shape[:2]
    if op == "blocks":
        out = a.copy()
        for _ in range(4 * level):
            y, x = int(rng.integers(0, max(1, h - 7))), int(rng.integers(0, max(1, w - 7)))
            out[y:y + 8, x:x + 8] = 128
        return out
    if op == "ycbcr_noise":
        ycc = cv2.cvtColor(a, cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255.0
        ycc += rng.normal(0.0, np.sqrt(0.001 * level), ycc.shape).astype(np.float32)
        ycc = np.clip(np.rint(ycc * 255.0), 0, 255).astype(np.uint8)
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    if op == "blur":
        k = 7 if level == 1 else 9
        return cv2.GaussianBlur(a, (k, k), 0)
    if op == "pixelate":
        f = level + 1
        small = cv2.resize(a, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".jpg", a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY[level]])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def augment(image: np.ndarray, rng: np.random.Generator, p: float = 0.3) -> np.ndarray:
    """``image`` unchanged with probability 1 - ``p``, else one random degradation at a random level."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    a = _check(image)
    if rng.random() >= p:
        return a
    op = OPS[int(rng.integers(len(OPS)))]
    level = int(rng.integers(1, 4)) if op == "jpeg" else int(rng.integers(1, 3))
    return degrade(a, op, level, rng)
