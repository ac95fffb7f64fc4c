"""Data of the trajectory series: scikit-learn's digits and a 2-D ring of Gaussians offline, CIFAR-10 for real
(its published python layout, read by :mod:`kit.data.cifar`)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from kit.data.cifar import load_cifar_arrays
from kit.diffusion.denoisers import GaussianMixtureDenoiser


def load_digits_data() -> torch.Tensor:
    """Return scikit-learn's 1,797 handwritten 8x8 digits as ``[1797, 64]`` float64 in [-1, 1]."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float64)
    return x / 8.0 - 1.0


def ring2d(n_modes: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixtureDenoiser:
    """Return the exact denoiser of a 2-D mixture of ``n_modes`` equal Gaussians on a circle (``.sample`` draws)."""
    if n_modes < 1 or radius < 0 or std <= 0:
        raise ValueError(f"need n_modes >= 1, radius >= 0, std > 0; got {n_modes}, {radius}, {std}")
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(n_modes, 2, 2).clone()
    weights = torch.full((n_modes,), 1.0 / n_modes, dtype=torch.float64)
    return GaussianMixtureDenoiser(weights, means, covs)


def load_cifar10(data_dir: str | os.PathLike, split: str = "train", limit: int | None = None) -> torch.Tensor:
    """Return CIFAR-10 images ``[N, 3, 32, 32]`` float32 in [-1, 1] from ``data_dir/cifar-10-batches-py``.

    ``split`` is "train" (the 50,000 images of data_batch_1..5) or "test". ``limit`` keeps the first N images.
    Missing folders or files raise ``FileNotFoundError`` naming what is missing; nothing is downloaded.
    """
    images, _ = load_cifar_arrays("cifar10", data_dir, split)
    images = images[:limit] if limit is not None else images
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
    return x / 127.5 - 1.0
