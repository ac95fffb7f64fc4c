"""EDM preconditioning, EDM training loss and a small MLP network for toy data (Karras et al. 2022,
arXiv:2206.00364, Sec. 5 and Tab. 1).

``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)`` with
``c_in = 1/sqrt(s^2 + sd^2)``, ``c_skip = sd^2/(s^2 + sd^2)``, ``c_out = s sd/sqrt(s^2 + sd^2)``,
``c_noise = ln(s)/4`` (``sd`` = sigma_data). Loss weight ``lambda(s) = (s^2 + sd^2)/(s sd)^2``, with
``ln s ~ N(p_mean, p_std^2)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kit.diffusion.denoisers import as_sigma_batch

__all__ = ["edm_coefficients", "EDMPrecond", "edm_loss", "MLPDenoiserNet"]


def edm_coefficients(sigma: Tensor, sigma_data: float = 0.5) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Return (c_skip, c_out, c_in, c_noise), each shaped like sigma, for EDM preconditioning."""
    s2, sd2 = sigma**2, sigma_data**2
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * sigma_data / torch.sqrt(s2 + sd2)
    c_in = 1.0 / torch.sqrt(s2 + sd2)
    c_noise = torch.log(sigma) / 4.0
    return c_skip, c_out, c_in, c_noise


def _check_sigma_data(sigma_data: float) -> None:
    if not (math.isfinite(sigma_data) and sigma_data > 0):
        raise ValueError(f"sigma_data must be finite and > 0, got {sigma_data}")


class EDMPrecond(nn.Module):
    """EDM denoiser D(x, sigma) [B, ...] wrapping a raw network ``net(x_in [B, ...], c_noise [B]) -> F``."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        _check_sigma_data(sigma_data)
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return D(x, sigma) [B, ...] in x's dtype; the network runs in its own parameter dtype."""
        s = as_sigma_batch(x, sigma)
        c_skip, c_out, c_in, c_noise = edm_coefficients(s, self.sigma_data)
        view = (-1,) + (1,) * (x.ndim - 1)
        param = next(self.net.parameters(), None)
        net_dtype = param.dtype if param is not None else x.dtype
        f = self.net((c_in.view(view) * x).to(net_dtype), c_noise.to(net_dtype))
        if f.shape != x.shape:
            raise ValueError(f"net output shape {list(f.shape)} must equal x's shape {list(x.shape)}")
        return c_skip.view(view) * x + c_out.view(view) * f.to(x.dtype)


def edm_loss(
    denoiser: nn.Module,
    x0: Tensor,
    generator: torch.Generator | None = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float = 0.5,
) -> Tensor:
    """Return the scalar EDM loss: mean over batch and elements of lambda(s) (D(x0 + s n, s) - x0)^2.

    ``x0 [B, ...]``; ``ln s ~ N(p_mean, p_std^2)`` per sample; the generator (on x0's device) seeds s and n.
    Averaging over elements (not summing) keeps the loss scale independent of d.
    """
    _check_sigma_data(sigma_data)
    if not (math.isfinite(p_std) and p_std >= 0 and math.isfinite(p_mean)):
        raise ValueError(f"p_mean must be finite and p_std finite and >= 0, got {p_mean}, {p_std}")
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape [B, ...] with B >= 1, got {list(x0.shape)}")
    b = x0.shape[0]
    rnd = torch.randn(b, generator=generator, device=x0.device, dtype=x0.dtype)
    sigma = torch.exp(p_mean + p_std * rnd)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    view = (-1,) + (1,) * (x0.ndim - 1)
    denoised = denoiser(x0 + sigma.view(view) * noise, sigma)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    per_sample = (denoised - x0).pow(2).reshape(b, -1).mean(1)
    return (weight * per_sample).mean()


class MLPDenoiserNet(nn.Module):
    """Small residual MLP F(x_in [B, dim], c_noise [B]) -> [B, dim] for 2-D toys and 8x8 digits.

    c_noise is embedded with fixed sinusoidal (Fourier) features, mapped by a 2-layer MLP and added to every
    hidden layer; activations are SiLU. Inputs with trailing shape are flattened and the output reshaped back.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 4, emb_dim: int = 64) -> None:
        super().__init__()
        for name, val in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            if not (isinstance(val, int) and val >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        if not (isinstance(emb_dim, int) and emb_dim >= 2 and emb_dim % 2 == 0):
            raise ValueError(f"emb_dim must be an even int >= 2, got {emb_dim!r}")
        self.dim = dim
        # Frequencies pi * 2^0 ... pi * 2^8; c_noise = ln(sigma)/4 is in ~[-1.6, 1.1] for sigma in [0.002, 80]
        self.register_buffer("freqs", math.pi * 2.0 ** torch.linspace(0.0, 8.0, emb_dim // 2))
        self.emb = nn.Sequential(nn.Linear(emb_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.emb_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x_in: Tensor, c_noise: Tensor) -> Tensor:
        """Return F [B, ...] (x_in's shape) for x_in [B, ...] with dim trailing elements and c_noise [B]."""
        b = x_in.shape[0]
        h_in = x_in.reshape(b, -1)
        if h_in.shape[1] != self.dim:
            raise ValueError(f"x_in must have {self.dim} trailing elements, got shape {list(x_in.shape)}")
        if c_noise.shape != (b,):
            raise ValueError(f"c_noise must have shape [B] = [{b}], got {list(c_noise.shape)}")
        ang = c_noise[:, None] * self.freqs
        emb = self.act(self.emb(torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)))
        h = self.inp(h_in)
        for block, proj in zip(self.blocks, self.emb_proj):
            h = h + block(self.act(h + proj(emb)))
        return self.out(self.act(h)).reshape(x_in.shape)
