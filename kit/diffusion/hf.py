"""Bridge from a diffusers VP/DDPM model (UNet + scheduler) to an EDM / VE denoiser ``D(x, sigma)``.

A discrete VP model at timestep t sees ``x_vp = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``. Dividing by
``sqrt(abar_t)`` gives the VE form ``x = x0 + sigma_t eps`` with ``sigma_t = sqrt((1 - abar_t) / abar_t)``
(Karras et al. 2022, arXiv:2206.00364, Sec. 2 and App. C), so ``x_vp = x / sqrt(1 + sigma^2)``. Non-grid
sigmas map to a fractional timestep by linear interpolation of t over log sigma.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from kit.diffusion.denoisers import as_sigma_batch

__all__ = [
    "scheduler_sigmas",
    "sigma_to_timestep",
    "timestep_to_sigma",
    "discrete_timestep_sigmas",
    "DiffusersDenoiser",
    "from_diffusers",
]

_PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
_RANGE_RTOL = 1e-5  # float32 round-off allowance at the ends of the sigma range


def scheduler_sigmas(scheduler: Any) -> np.ndarray:
    """Return the VE sigmas [T] (float64, increasing in t) of a scheduler's ``alphas_cumprod``."""
    abar = getattr(scheduler, "alphas_cumprod", None)
    if abar is None:
        raise ValueError(f"scheduler must have an alphas_cumprod table (VP/DDPM), got {type(scheduler)}")
    abar = torch.as_tensor(abar).detach().cpu().to(torch.float64).numpy()
    if abar.ndim != 1 or abar.size < 2 or not np.all((abar > 0) & (abar <= 1)):
        raise ValueError("scheduler.alphas_cumprod must be a 1-D table of values in (0, 1]")
    sigmas = np.sqrt((1.0 - abar) / abar)
    if not np.all(np.diff(sigmas) > 0):
        raise ValueError("scheduler sigmas must increase strictly with the timestep")
    return sigmas


def sigma_to_timestep(sigmas: Tensor | float, scheduler: Any) -> Tensor:
    """Return continuous timesteps (float64, sigmas' shape) by interpolating t linearly over log sigma.

    Raises ``ValueError`` stating the model's range when a sigma lies outside [sigma_0, sigma_{T-1}].
    """
    table = scheduler_sigmas(scheduler)
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    s_np = s.detach().cpu().numpy()
    lo, hi = table[0], table[-1]
    outside = np.any(s_np < lo * (1 - _RANGE_RTOL)) or np.any(s_np > hi * (1 + _RANGE_RTOL))
    if not np.all(np.isfinite(s_np)) or outside:
        raise ValueError(
            f"sigma must lie in the model's range [{lo:.6g}, {hi:.6g}], got min {np.min(s_np):.6g}, "
            f"max {np.max(s_np):.6g}"
        )
    s_np = np.clip(s_np, lo, hi)
    t = np.interp(np.log(s_np), np.log(table), np.arange(table.size, dtype=np.float64))
    return torch.from_numpy(np.asarray(t, dtype=np.float64)).reshape(s.shape).to(s.device)


def timestep_to_sigma(t: Tensor | float, scheduler: Any) -> Tensor:
    """Return sigmas (float64, t's shape) at continuous timesteps t; log sigma is linear between steps."""
    table = scheduler_sigmas(scheduler)
    tt = torch.as_tensor(t, dtype=torch.float64)
    t_np = tt.detach().cpu().numpy()
    if not np.all(np.isfinite(t_np)) or np.any(t_np < 0) or np.any(t_np > table.size - 1):
        raise ValueError(f"t must lie in [0, {table.size - 1}], got min {np.min(t_np)}, max {np.max(t_np)}")
    log_s = np.interp(t_np, np.arange(table.size, dtype=np.float64), np.log(table))
    return torch.from_numpy(np.asarray(np.exp(log_s), dtype=np.float64)).reshape(tt.shape).to(tt.device)


def discrete_timestep_sigmas(scheduler: Any, n_points: int, rho: float = 1.0) -> Tensor:
    """Return sigmas [n_points] float64 (sigma_max first) at the timesteps t_i = (t_max^(1/rho) + i / (n - 1)
    (0 - t_max^(1/rho)))^rho from the last training timestep t_max = T - 1 down to 0: uniform in t for rho = 1.

    This is the "discrete" time schedule of latent diffusion / Stable Diffusion (DDIM's timestep spacing), which
    the GITS authors use as the base grid and as the baseline schedule for those models (arXiv:2405.11326; their
    ``schedule_type='discrete'``, ``schedule_rho=1``). The ends are the model's sigma range.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points must be an int >= 2, got {n_points!r}")
    if not np.isfinite(rho) or rho <= 0:
        raise ValueError(f"rho must be a positive finite number, got {rho!r}")
    t_max = float(scheduler_sigmas(scheduler).size - 1)
    frac = np.linspace(0.0, 1.0, n_points)
    t = (t_max ** (1.0 / rho) * (1.0 - frac)) ** rho
    return timestep_to_sigma(torch.from_numpy(t), scheduler)


class DiffusersDenoiser:
    """EDM denoiser ``D(x, sigma)`` around a diffusers VP model; ``model_kwargs`` go to every UNet call."""

    def __init__(self, unet: torch.nn.Module, scheduler: Any, **model_kwargs: Any) -> None:
        config = getattr(scheduler, "config", None)
        pred = getattr(config, "prediction_type", None) if config is not None else None
        if pred is None and isinstance(config, dict):
            pred = config.get("prediction_type")
        if pred not in _PREDICTION_TYPES:
            raise ValueError(
                f"scheduler.config.prediction_type must be one of {_PREDICTION_TYPES}, got {pred!r}"
            )
        self.unet = unet
        self.scheduler = scheduler
        self.prediction_type = pred
        self.model_kwargs = model_kwargs
        self.sigmas = torch.from_numpy(scheduler_sigmas(scheduler))  # [T], float64, increasing
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])

    def _model_dtype(self, fallback: torch.dtype) -> torch.dtype:
        dtype = getattr(self.unet, "dtype", None)
        if isinstance(dtype, torch.dtype):
            return dtype
        param = next(self.unet.parameters(), None)
        return param.dtype if param is not None else fallback

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Return D(x, sigma) [B, C, H, W] in x's dtype, for VE inputs x [B, C, H, W]."""
        s = as_sigma_batch(x, sigma)
        t = sigma_to_timestep(s.detach(), self.scheduler)  # [B], float64
        view = (-1,) + (1,) * (x.ndim - 1)
        s_b = s.view(view)
        scale = torch.rsqrt(1.0 + s_b**2)  # sqrt(abar): alpha of the VP model
        x_vp = x * scale
        t_in = t.to(device=x.device, dtype=torch.float32)
        out = self.unet(x_vp.to(self._model_dtype(x.dtype)), t_in, **self.model_kwargs)
        out = out.sample if hasattr(out, "sample") else out[0]
        if out.shape[1] == 2 * x.shape[1]:  # learned-variance models: keep the mean prediction
            out = out[:, : x.shape[1]]
        if out.shape != x.shape:
            raise ValueError(f"unet output shape {list(out.shape)} does not match x's shape {list(x.shape)}")
        out = out.to(x.dtype)
        if self.prediction_type == "epsilon":
            return x - s_b * out
        if self.prediction_type == "v_prediction":  # x0 = alpha x_vp - sigma_vp v, sigma_vp = s alpha
            return scale * x_vp - s_b * scale * out
        return out


def from_diffusers(unet: torch.nn.Module, scheduler: Any, **model_kwargs: Any) -> DiffusersDenoiser:
    """Return an EDM denoiser D(x, sigma) for a diffusers UNet2DModel or UNet2DConditionModel + scheduler.

    The prediction type (epsilon / v_prediction / sample) is read from ``scheduler.config.prediction_type``.
    Conditioning such as ``encoder_hidden_states=`` is stored and passed to every call.
    """
    return DiffusersDenoiser(unet, scheduler, **model_kwargs)
