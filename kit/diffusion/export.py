"""Hand a GITS (or any VE / EDM sigma) schedule to a diffusers scheduler.

A diffusers VP model at timestep t sees ``x_vp = x / sqrt(1 + sigma_t^2)`` with the VE noise level
``sigma_t = sqrt((1 - abar_t) / abar_t)`` (Karras et al. 2022, arXiv:2206.00364, App. C), so a VE schedule
``sigmas [K+1]`` (sigma_max first) is the same schedule as VP timesteps ``t(sigma)`` or, for the Euler-type
schedulers that work in the VE scale, the same sigmas. Which entry point a scheduler offers (diffusers 0.30-0.42):

- ``set_timesteps(sigmas=...)`` taking the sigmas themselves, final sigma included: ``EulerDiscreteScheduler``
  (`to_diffusers_sigmas` returns the K+1 sigmas unchanged);
- ``set_timesteps(sigmas=...)`` taking a *ramp* in [0, 1] that is pushed through the Karras rho-formula, with the
  final sigma (0 or sigma_min) appended by the scheduler: ``EDMEulerScheduler`` with ``sigma_schedule="karras"``
  (`to_diffusers_sigmas` inverts the formula and drops our final sigma);
- ``set_timesteps(timesteps=...)`` taking K discrete timesteps, one per model call, with the scheduler appending
  its own end (``final_sigmas_type`` "zero" or "sigma_min"; DDPM ends at abar = 1): ``DPMSolverMultistepScheduler``,
  ``DPMSolverSinglestepScheduler``, ``DDPMScheduler``, ``HeunDiscreteScheduler``, ``LCMScheduler``, ``TCDScheduler``
  (`to_diffusers_timesteps`; our final sigma, e.g. 0.002, is dropped and replaced by the scheduler's end);
- neither: ``DDIMScheduler``, ``DEISMultistepScheduler``, ``UniPCMultistepScheduler`` (the latter only with flow
  sigmas). DDIM is Euler in the VE form, so use ``EulerDiscreteScheduler`` or
  ``DPMSolverMultistepScheduler(solver_order=1)`` for a custom DDIM schedule.

`apply_schedule` picks the right entry point, sets the scheduler and checks that it kept our values.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from kit.diffusion.hf import scheduler_sigmas, sigma_to_timestep, timestep_to_sigma

Tensor = torch.Tensor


def _check_sigmas(sigmas: Tensor | np.ndarray | list[float]) -> Tensor:
    s = torch.as_tensor(np.asarray(sigmas, dtype=np.float64) if not isinstance(sigmas, Tensor) else sigmas)
    s = s.detach().cpu().to(torch.float64)
    if s.ndim != 1 or s.numel() < 2:
        raise ValueError(
            f"sigmas must be a 1-D schedule of K+1 >= 2 noise levels, got shape {tuple(s.shape)}"
        )
    if not torch.isfinite(s).all() or not (s[:-1] > s[1:]).all() or s[-1] < 0 or s[-2] <= 0:
        raise ValueError("sigmas must be finite, strictly decreasing (sigma_max first) and non-negative")
    return s


def _is_edm_euler(scheduler: Any) -> bool:
    from diffusers import EDMEulerScheduler

    return isinstance(scheduler, EDMEulerScheduler)


def _is_euler(scheduler: Any) -> bool:
    from diffusers import EulerDiscreteScheduler

    return isinstance(scheduler, EulerDiscreteScheduler)


def _set_timesteps_params(scheduler: Any) -> set[str]:
    fn = getattr(scheduler, "set_timesteps", None)
    if fn is None:
        raise ValueError(
            f"scheduler must be a diffusers scheduler with set_timesteps, got {type(scheduler).__name__}"
        )
    return set(inspect.signature(fn).parameters)


def to_diffusers_timesteps(
    sigmas: Tensor | np.ndarray | list[float], scheduler: Any, integer: bool = True
) -> Tensor:
    """Return timesteps [K] (int64, or float64 with ``integer=False``) for ``set_timesteps(timesteps=...)``.

    ``sigmas`` [K+1] is a VE schedule (sigma_max first). The final sigma is dropped: VP schedulers take one
    timestep per model call and append their own end (``final_sigmas_type``). Each remaining sigma is mapped to the
    scheduler's continuous timestep (log-sigma interpolation of its ``alphas_cumprod`` table); ``integer=True``
    rounds to the nearest train step, which moves each sigma to the table value at that step (most schedulers
    cast custom timesteps to int). Raises ValueError when a sigma lies outside the model's trained range or when
    rounding merges two steps.
    """
    s = _check_sigmas(sigmas)
    t = sigma_to_timestep(s[:-1], scheduler)
    if not integer:
        return t
    t_int = torch.round(t).to(torch.int64)
    if not (t_int[:-1] > t_int[1:]).all():
        raise ValueError(
            f"rounding to integer timesteps merges steps: {t.tolist()} -> {t_int.tolist()}; "
            "use fewer steps near sigma_min or integer=False with a scheduler that accepts float timesteps"
        )
    return t_int


def to_diffusers_sigmas(sigmas: Tensor | np.ndarray | list[float], scheduler: Any) -> Tensor:
    """Return the float64 tensor to pass as ``set_timesteps(sigmas=...)`` to step through ``sigmas`` [K+1].

    - ``EulerDiscreteScheduler``: it works in the VE scale (VP-sigma == VE-sigma), so the K+1 sigmas are returned
      unchanged, final sigma included (the scheduler uses it as the end point); sigmas[:-1] must lie in the model's
      trained range.
    - ``EDMEulerScheduler`` (``sigma_schedule="karras"``): it maps a ramp r to
      ``(s_max^(1/rho) + r (s_min^(1/rho) - s_max^(1/rho)))^rho`` and appends its own final sigma, so the K ramp
      values reproducing sigmas[:-1] are returned (they may fall outside [0, 1] when sigmas exceed the config range;
      it needs a tensor, not a list).
    Other schedulers raise ValueError (use `to_diffusers_timesteps`).
    """
    s = _check_sigmas(sigmas)
    if _is_edm_euler(scheduler):
        cfg = scheduler.config
        if cfg.sigma_schedule != "karras":
            raise ValueError(
                f"EDMEulerScheduler with sigma_schedule={cfg.sigma_schedule!r} ignores custom sigma values; "
                "build it with sigma_schedule='karras'"
            )
        rho = float(cfg.rho)
        lo, hi = float(cfg.sigma_min) ** (1 / rho), float(cfg.sigma_max) ** (1 / rho)
        return (s[:-1] ** (1 / rho) - hi) / (lo - hi)
    if _is_euler(scheduler):
        sigma_to_timestep(s[:-1], scheduler)  # raises if outside the model's trained range
        return s
    raise ValueError(
        f"{type(scheduler).__name__} does not take custom sigma values; supported: EulerDiscreteScheduler, "
        "EDMEulerScheduler (karras). Use to_diffusers_timesteps for VP timestep schedulers"
    )


def apply_schedule(
    scheduler: Any, sigmas: Tensor | np.ndarray | list[float], device: str | torch.device | None = None
) -> Tensor:
    """Return the VE sigmas [K] (float64) the scheduler will call the model at, after setting it to ``sigmas`` [K+1].

    Uses ``set_timesteps(sigmas=...)`` for Euler / EDM-Euler schedulers and integer ``set_timesteps(timesteps=...)``
    for VP schedulers that accept custom timesteps (see the module docstring), then checks the scheduler kept
    them (its timesteps, or its sigmas to float32 precision). Raises ValueError for schedulers with neither entry
    point (e.g. DDIMScheduler) or when the scheduler changed the schedule.
    """
    s = _check_sigmas(sigmas)
    params = _set_timesteps_params(scheduler)
    K = s.numel() - 1
    if _is_euler(scheduler) or _is_edm_euler(scheduler):
        scheduler.set_timesteps(sigmas=to_diffusers_sigmas(s, scheduler), device=device)
        used = scheduler.sigmas.detach().cpu().to(torch.float64)
        want = s if _is_euler(scheduler) else s[:-1]
        if used.numel() != K + 1 or not torch.allclose(used[: want.numel()], want, rtol=1e-5, atol=1e-7):
            raise ValueError(f"{type(scheduler).__name__} did not keep the schedule: {used.tolist()}")
        return used[:K]
    if "timesteps" not in params:
        raise ValueError(
            f"{type(scheduler).__name__}.set_timesteps accepts neither custom timesteps nor sigmas; "
            "for DDIM use EulerDiscreteScheduler or DPMSolverMultistepScheduler(solver_order=1)"
        )
    t = to_diffusers_timesteps(s, scheduler, integer=True)
    scheduler.set_timesteps(timesteps=t.tolist(), device=device)
    got = torch.unique_consecutive(scheduler.timesteps.detach().cpu().round().to(torch.int64))  # Heun repeats
    if not torch.equal(got, t):
        raise ValueError(
            f"{type(scheduler).__name__} did not keep the timesteps: {got.tolist()} vs {t.tolist()}"
        )
    return timestep_to_sigma(t.to(torch.float64), scheduler)


def scheduler_sigma_range(scheduler: Any) -> tuple[float, float]:
    """Return (sigma_min, sigma_max): the VE noise range a VP scheduler's ``alphas_cumprod`` table covers.

    Build the GITS base grid inside this range (``gits_search(..., sigma_min=..., sigma_max=...)``) so that every
    schedule point maps to a timestep the model was trained on.
    """
    table = scheduler_sigmas(scheduler)
    return float(table[0]), float(table[-1])
