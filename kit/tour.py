"""The tour's two small demos (notebooks/00_start_here): a digits classifier trained by ``fit``, and a heat map
over a real photograph that ships with scikit-image."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from kit.core import FitResult, RunDir, fit


def digits_split(seed: int = 0, test_fraction: float = 0.25) -> tuple[TensorDataset, TensorDataset]:
    """Return (train, test) ``TensorDataset`` of scikit-learn's 8x8 digits: images ``[N, 64]`` in [0, 1], labels ``[N]``.

    The 1,797 digits ship inside scikit-learn, so this needs no download.
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test])


def train_digits_classifier(
    max_steps: int = 150,
    seed: int = 0,
    run: RunDir | None = None,
    callbacks: Sequence[Callable[[dict], None]] = (),
    device: str = "auto",
) -> tuple[FitResult, float]:
    """Return (fit result, test accuracy) of a 64-128-10 MLP trained on digits by :func:`kit.core.fit`."""
    train, test = digits_split(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))

    def loss_fn(m, batch):
        x, y = batch
        logits = m(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, y),
                "train_acc": (logits.argmax(1) == y).float().mean()}

    def accuracy(m) -> dict[str, float]:
        x, y = test.tensors
        dev = next(m.parameters()).device
        return {"test_acc": (m(x.to(dev)).argmax(1).cpu() == y).float().mean().item()}

    result = fit(model, loss_fn, train, max_steps=max_steps, batch_size=64, lr=3e-3, eval_fn=accuracy,
                 eval_every=max(1, max_steps // 5), log_every=5, run=run, callbacks=callbacks, seed=seed,
                 device=device, desc="digits")
    return result, result.metrics["test_acc"]


def coins_heatmap(sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (image [303, 384] in [0, 1], heat map [303, 384] in [0, 1]) for scikit-image's ``coins`` photo.

    The heat map is a local-contrast map: the Gaussian-smoothed image minus a much wider Gaussian background,
    clipped at 0 and scaled to [0, 1], so bright coins light up and thresholding it outlines them.
    """
    from skimage import data, filters

    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    image = data.coins().astype(np.float64) / 255.0
    local = filters.gaussian(image, sigma=sigma) - filters.gaussian(image, sigma=12 * sigma)
    heat = np.clip(local, 0, None)
    return image, heat / max(heat.max(), 1e-12)
