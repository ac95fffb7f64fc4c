"""The learned denoiser of the trajectory series, and how far it is from the optimal one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from kit.diffusion.precond import EDMPrecond, MLPDenoiserNet

Tensor = torch.Tensor


def make_denoiser(dim: int, hidden: int = 256, depth: int = 4, sigma_data: float = 0.5) -> EDMPrecond:
    """Return an EDM-preconditioned MLP denoiser ``D(x [B, dim], sigma) -> [B, dim]`` (Karras et al. 2022)."""
    return EDMPrecond(MLPDenoiserNet(dim, hidden=hidden, depth=depth), sigma_data=sigma_data)


@torch.no_grad()
def denoiser_gap(
    learned: Callable[[Tensor, Tensor], Tensor],
    optimal: Callable[[Tensor, Tensor], Tensor],
    data: Tensor,
    sigmas: Sequence[float],
    n: int = 256,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Return per-sigma RMS errors: ``gap`` = |D_theta - D*|, ``learned`` = |D_theta - y|, ``optimal`` = |D* - y|.

    Noisy inputs are ``x = y + sigma n`` with y drawn from ``data [N, d]``; errors are root-mean-square per
    coordinate, averaged over the n samples, so they compare across dimensions. D* is the exact optimal denoiser
    of the training distribution; ``gap`` is how far the network is from it.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, data.shape[0], (n,), generator=g)
    y = data[idx].to(torch.float64)
    out: dict[str, list[float]] = {"sigma": [], "gap": [], "learned": [], "optimal": []}
    for s in sigmas:
        x = y + float(s) * torch.randn(y.shape, generator=g, dtype=torch.float64)
        d_opt = optimal(x, float(s)).to(torch.float64)
        d_learn = learned(x.float(), float(s)).to(torch.float64)

        def rms(a: Tensor) -> float:
            return float(a.reshape(n, -1).pow(2).mean(1).sqrt().mean())

        out["sigma"].append(float(s))
        out["gap"].append(rms(d_learn - d_opt))
        out["learned"].append(rms(d_learn - y))
        out["optimal"].append(rms(d_opt - y))
    return out
