"""Noise-level (sigma) schedules for sampling in the EDM / VE convention ``x = x0 + sigma * n``.

Each schedule returns a float64 tensor of ``n + 1`` strictly decreasing sigmas, ``sigma_max`` first and
``sigma_min`` last (both exact), i.e. ``n`` solver steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "SCHEDULES",
    "edm_sigmas",
    "logsnr_sigmas",
    "time_uniform_sigmas",
    "time_quadratic_sigmas",
    "vp_sigma",
    "vp_time",
    "get_schedule",
]


def _check(n: int, sigma_min: float, sigma_max: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of steps) must be an int >= 1, got {n!r}")
    if not (math.isfinite(sigma_min) and math.isfinite(sigma_max) and 0 < sigma_min < sigma_max):
        raise ValueError(f"0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def _finish(sigmas: Tensor, sigma_min: float, sigma_max: float) -> Tensor:
    """Pin the endpoints exactly and check strict monotonicity (float64 round-off could break it)."""
    sigmas[0], sigmas[-1] = sigma_max, sigma_min
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("schedule is not strictly decreasing: n is too large for this sigma range")
    return sigmas


def edm_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """Return EDM's polynomial schedule [n + 1] (Eq. 5 of arXiv:2206.00364).

    ``sigma_i = (sigma_max^(1/rho) + i/n (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``.
    """
    _check(n, sigma_min, sigma_max)
    if not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be finite and > 0, got {rho}")
    frac = torch.arange(n + 1, dtype=torch.float64) / n
    a, b = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return _finish((a + frac * (b - a)) ** rho, sigma_min, sigma_max)


def logsnr_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> Tensor:
    """Return sigmas [n + 1] uniform in log sigma = uniform in log-SNR (DPM-Solver's "logSNR" skip type)."""
    _check(n, sigma_min, sigma_max)
    log_s = torch.linspace(math.log(sigma_max), math.log(sigma_min), n + 1, dtype=torch.float64)
    return _finish(log_s.exp(), sigma_min, sigma_max)


def vp_sigma(t: Tensor | float, beta_d: float = 19.9, beta_min: float = 0.1) -> Tensor:
    """Return the VE sigma of VP time t: ``sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)``.

    The VP-SDE noise level of Karras et al. 2022 (arXiv:2206.00364, Tab. 1).
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.sqrt(torch.expm1(0.5 * beta_d * t**2 + beta_min * t))


def vp_time(sigma: Tensor | float, beta_d: float = 19.9, beta_min: float = 0.1) -> Tensor:
    """Return the VP time t of a VE sigma (inverse of ``vp_sigma``): the positive root of a quadratic in t, written
    as 2 L / (sqrt(beta_min^2 + 2 beta_d L) + beta_min) with L = log1p(sigma^2), which keeps full precision at
    small sigma (the textbook form subtracts two nearly equal numbers there)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    log_term = torch.log1p(sigma**2)
    return 2.0 * log_term / (torch.sqrt(beta_min**2 + 2.0 * beta_d * log_term) + beta_min)


def _check_vp(beta_d: float, beta_min: float) -> None:
    if not (math.isfinite(beta_d) and math.isfinite(beta_min) and beta_d > 0 and beta_min >= 0):
        raise ValueError(f"need beta_d > 0 and beta_min >= 0, got beta_d={beta_d}, beta_min={beta_min}")


def time_uniform_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, beta_d: float = 19.9, beta_min: float = 0.1
) -> Tensor:
    """Return sigmas [n + 1] whose VP times t are uniform (DPM-Solver's "time_uniform" skip type)."""
    _check(n, sigma_min, sigma_max)
    _check_vp(beta_d, beta_min)
    t = torch.linspace(
        float(vp_time(sigma_max, beta_d, beta_min)), float(vp_time(sigma_min, beta_d, beta_min)), n + 1,
        dtype=torch.float64,
    )
    return _finish(vp_sigma(t, beta_d, beta_min), sigma_min, sigma_max)


def time_quadratic_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, beta_d: float = 19.9, beta_min: float = 0.1
) -> Tensor:
    """Return sigmas [n + 1] with VP times uniform in sqrt(t) (DPM-Solver's "time_quadratic" skip type)."""
    _check(n, sigma_min, sigma_max)
    _check_vp(beta_d, beta_min)
    r = torch.linspace(
        math.sqrt(float(vp_time(sigma_max, beta_d, beta_min))),
        math.sqrt(float(vp_time(sigma_min, beta_d, beta_min))),
        n + 1,
        dtype=torch.float64,
    )
    return _finish(vp_sigma(r**2, beta_d, beta_min), sigma_min, sigma_max)


_BUILDERS: dict[str, Callable[..., Tensor]] = {
    "edm": edm_sigmas,
    "logsnr": logsnr_sigmas,
    "time_uniform": time_uniform_sigmas,
    "time_quadratic": time_quadratic_sigmas,
}
SCHEDULES: tuple[str, ...] = tuple(_BUILDERS)


def get_schedule(name: str, n: int, **kwargs: float) -> Tensor:
    """Return the named schedule [n + 1]; ``name`` is one of ``SCHEDULES``, kwargs go to its builder."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown schedule name {name!r}; valid names: {', '.join(SCHEDULES)}")
    return _BUILDERS[name](n, **kwargs)
