"""Augmented views of handwriting images for joint-embedding self-supervision (arXiv:2405.18320).

The paper's VICReg run (arXiv:2405.18320, after arXiv:2105.04906) used ImageNet-style views (crops down to 8%
of the area, horizontal flips, colour jitter). Handwriting is not mirror-symmetric and a writer's identity
lives in stroke shape, slant and width, so ``HandwritingViews`` [PROPOSED] keeps crops large (area >=
``min_scale``), never flips, and instead adds a small rotation and shear, a smooth elastic displacement and a
stroke-width jitter. The geometry is one affine sampling grid + elastic field + one ``grid_sample`` for the
whole batch, the stroke jitter shifted maxima, so a batch of 256 costs tens of milliseconds on one CPU thread.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["HandwritingViews", "two_views"]


def _dilate(x: torch.Tensor) -> torch.Tensor:
    """Images [B, C, H, W] in [0, 1] grey-dilated by one pixel with a cross-shaped structuring element."""
    p = F.pad(x, (1, 1, 1, 1))  # zero padding: the image border is paper
    h, w = x.shape[-2:]
    out = torch.maximum(x, p[..., :h, 1:w + 1])
    out = torch.maximum(out, p[..., 2:, 1:w + 1], out=out)
    out = torch.maximum(out, p[..., 1:h + 1, :w], out=out)
    return torch.maximum(out, p[..., 1:h + 1, 2:], out=out)


@lru_cache(maxsize=8)
def _upsampler(k: int, n: int) -> torch.Tensor:
    """Matrix [n, k] that bicubically interpolates k lattice values (ends aligned) to n points."""
    eye = torch.eye(k, dtype=torch.float64).view(k, 1, 1, k)
    return F.interpolate(eye, size=(1, n), mode="bicubic", align_corners=True).view(k, n).T.float()


def _erode(x: torch.Tensor) -> torch.Tensor:
    """Images [B, C, H, W] grey-eroded by one pixel with a cross: ``1 - dilate(1 - x)`` (ink = 1)."""
    return 1.0 - _dilate(1.0 - x)


class HandwritingViews:
    """Callable ``views(x [B, C, H, W], generator) -> [B, C, size, size]``: a random view of each ink image.

    Ink = 1, paper = 0, values in [0, 1]. Per image, independently: a random resized crop of area fraction
    U(min_scale, max_scale) and aspect ratio log-uniform in [1 / max_aspect, max_aspect], placed uniformly
    inside the image; a rotation U(-max_rotation_deg, max_rotation_deg) and a horizontal shear U(-max_shear,
    max_shear) about the crop centre; a smooth elastic displacement (Gaussian noise on an ``elastic_grid`` x
    ``elastic_grid`` lattice, std ``elastic_alpha`` in normalised [-1, 1] units, i.e.
    ``elastic_alpha * size / 2`` pixels, bicubically upsampled); then stroke-width jitter: grey dilation or
    erosion of the ink by k ~ U{-stroke_jitter, ..., stroke_jitter} pixels (cross-shaped element, k = 0 leaves
    it). No flips. Pixels sampled from outside the image are paper (0). Same generator state -> same views.
    """

    def __init__(self, size: int = 64, min_scale: float = 0.5, max_scale: float = 1.0,
                 max_aspect: float = 1.15, max_rotation_deg: float = 8.0, max_shear: float = 0.2,
                 elastic_alpha: float = 0.03, elastic_grid: int = 4, stroke_jitter: int = 1) -> None:
        if size < 2:
            raise ValueError(f"size must be >= 2, got {size}")
        if not 0.0 < min_scale <= max_scale <= 1.0:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got min_scale={min_scale}, "
                             f"max_scale={max_scale}")
        if max_aspect < 1.0:
            raise ValueError(f"max_aspect must be >= 1, got {max_aspect}")
        if max_rotation_deg < 0 or max_shear < 0 or elastic_alpha < 0:
            raise ValueError(f"max_rotation_deg, max_shear, elastic_alpha must be >= 0, got "
                             f"{max_rotation_deg}, "
                             f"{max_shear}, {elastic_alpha}")
        if elastic_grid < 2:
            raise ValueError(f"elastic_grid must be >= 2, got {elastic_grid}")
        if stroke_jitter < 0:
            raise ValueError(f"stroke_jitter must be >= 0, got {stroke_jitter}")
        self.size, self.min_scale, self.max_scale = int(size), float(min_scale), float(max_scale)
        self.max_aspect, self.max_rotation_deg, self.max_shear = float(max_aspect), float(max_rotation_deg), \
            float(max_shear)
        self.elastic_alpha, self.elastic_grid, self.stroke_jitter = float(elastic_alpha), int(elastic_grid), \
            int(stroke_jitter)

    def __repr__(self) -> str:
        keys = ("size", "min_scale", "max_scale", "max_aspect", "max_rotation_deg", "max_shear",
                "elastic_alpha",                 "elastic_grid", "stroke_jitter")
        return f"HandwritingViews({', '.join(f'{k}={getattr(self, k)}' for k in keys)})"

    def affine(self, u: torch.Tensor) -> torch.Tensor:
        """Affine matrices theta [B, 2, 3] (output -> input normalised coordinates) from uniforms u [B, 6]."""
        scale = self.min_scale + (self.max_scale - self.min_scale) * u[:, 0]
        aspect = torch.exp((2 * u[:, 1] - 1) * math.log(self.max_aspect))
        sx = torch.sqrt(scale * aspect).clamp(max=1.0)
        sy = torch.sqrt(scale / aspect).clamp(max=1.0)
        cx = (2 * u[:, 2] - 1) * (1 - sx)
        cy = (2 * u[:, 3] - 1) * (1 - sy)
        angle = (2 * u[:, 4] - 1) * math.radians(self.max_rotation_deg)
        shear = (2 * u[:, 5] - 1) * self.max_shear
        cos, sin = torch.cos(angle), torch.sin(angle)
        # A = diag(sx, sy) @ R(angle) @ [[1, shear], [0, 1]]
        a00, a01 = sx * cos, sx * (cos * shear - sin)
        a10, a11 = sy * sin, sy * (sin * shear + cos)
        return torch.stack([torch.stack([a00, a01, cx], 1), torch.stack([a10, a11, cy], 1)], 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"x must be a float batch [B, C, H, W] with ink = 1 in [0, 1], got "
                             f"{x.dtype} {tuple(x.shape)}")
        b, c = x.shape[:2]
        gen_device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(b, 7, generator=generator, device=gen_device)
        theta = self.affine(u[:, :6].double()).to(x)
        # the sampling grid theta @ (X, Y, 1) of affine_grid (align_corners=False), built directly: faster
        n = self.size
        ax = (torch.arange(n, dtype=x.dtype, device=x.device) * 2 + 1) / n - 1
        t = theta[:, :, :, None, None]  # [B, 2, 3, 1, 1]
        gx = t[:, 0, 0] * ax + t[:, 0, 1] * ax[:, None] + t[:, 0, 2]
        gy = t[:, 1, 0] * ax + t[:, 1, 1] * ax[:, None] + t[:, 1, 2]
        if self.elastic_alpha > 0:
            k = self.elastic_grid
            noise = torch.randn(b, 2, k, k, generator=generator, device=gen_device).to(x) * self.elastic_alpha
            up = _upsampler(k, n).to(x)
            disp = up @ noise @ up.T  # [B, 2, n, n], smooth
            gx, gy = gx + disp[:, 0], gy + disp[:, 1]
        grid = torch.stack([gx, gy], dim=-1)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = out.clamp(0.0, 1.0)
        if self.stroke_jitter > 0:
            j = (u[:, 6] * (2 * self.stroke_jitter + 1)).floor().long().clamp(max=2 * self.stroke_jitter)
            j = (j - self.stroke_jitter).to(x.device)
            for sign, op in ((1, _dilate), (-1, _erode)):
                idx = torch.nonzero(j * sign > 0).flatten()
                if idx.numel():
                    part, steps = out[idx], (j[idx] * sign).view(-1, 1, 1, 1)
                    res = part
                    for r in range(1, self.stroke_jitter + 1):
                        part = op(part)
                        res = torch.where(steps == r, part, res)
                    out[idx] = res
        return out


def two_views(x: torch.Tensor, views: HandwritingViews, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmented views (v1, v2), each [B, C, size, size], of a batch x [B, C, H, W]."""
    return views(x, generator), views(x, generator)
